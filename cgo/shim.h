/* Declarations shared by the C half of pam_vrf.so and its Go exports. */
#ifndef PAM_VRF_SHIM_H
#define PAM_VRF_SHIM_H

#include <security/pam_modules.h>

/* pam_syslog with a preformatted message (Go does the formatting). */
void pamvrf_log(pam_handle_t *pamh, int prio, const char *msg);
/* Show msg to the user as a PAM_ERROR_MSG (no-op without a conversation). */
void pamvrf_error(pam_handle_t *pamh, const char *msg);

#endif
