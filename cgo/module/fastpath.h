/* The C fast path of pam_vrf.so; see fastpath.c and the Go package fastpath. */
#ifndef PAM_VRF_FASTPATH_H
#define PAM_VRF_FASTPATH_H

#include <security/pam_modules.h>

enum fp_result {
	FP_IGNORE,	/* decided: leave the session where it is (PAM_IGNORE) */
	FP_PLACED,	/* decided and done: the caller is in its VRF (PAM_SUCCESS) */
	FP_HANDOVER,	/* not sure: the Go part decides (and may redo what was done) */
};

/* Paths; the Go side has the same (fastpath.Dir, bpf.BPFFSMount, bpf.PinDir). */
#define FP_DIR "/run/pam-vrf/fastpath"
#define FP_BPFFS "/sys/fs/bpf"
#define FP_PIN_DIR FP_BPFFS "/pam_vrf"

/* On FP_HANDOVER, *groups_timed_out tells whether the group lookup of this
 * login already ran out of time (the Go part then does not ask again). */
__attribute__((visibility("hidden")))
enum fp_result pamvrf_fastpath(pam_handle_t *pamh, const char *user, const char *service, int argc,
			       const char **argv, int *groups_timed_out);

#endif
