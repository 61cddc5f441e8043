/*
 * The C helpers of the Go part (pam_vrf/core.so). The PAM module itself is
 * cgo/module/pam_vrf.c: it loads this library lazily, in open_session, and
 * calls pamvrf_core_open2 (main.go). Nothing here is a PAM entry point.
 */
#include <stdarg.h>
#include <stdlib.h>

#include <security/pam_modules.h>
#include <security/pam_ext.h>

#include "shim.h"

void pamvrf_log(pam_handle_t *pamh, int prio, const char *msg)
{
	pam_syslog(pamh, prio, "%s", msg);
}

void pamvrf_error(pam_handle_t *pamh, const char *msg)
{
	pam_error(pamh, "%s", msg);
}
