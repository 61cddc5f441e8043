/* The C fast path of pam_vrf.so; see fastpath.c and the Go package fastpath. */
#ifndef PAM_VRF_FASTPATH_H
#define PAM_VRF_FASTPATH_H

#include <security/pam_modules.h>

enum fp_result {
	FP_IGNORE,	/* decided: leave the session where it is (PAM_IGNORE) */
	FP_PLACED,	/* decided and done: the caller is in its VRF (PAM_SUCCESS) */
	FP_HANDOVER,	/* not sure: the Go part decides (and may redo what was done) */
};

/*
 * PAMVRF_APART marks the code that only a login the module places, or hands
 * over to the Go part, runs. GCC puts such functions in .text.unlikely,
 * ahead of the rest, so the code every login runs (the decision) sits on one
 * page, next to the read-only data it reads. On the host of make bench each
 * page of the module a fresh process touches for the first time costs it
 * about 2 µs, fault or not (eight more pages run: +19 µs); this layout and
 * -fno-plt (Makefile) took a login the module leaves alone from +49 to
 * +33 µs over a module that does nothing. "cold" also makes GCC optimise
 * these functions for size: their time is spent in system calls.
 */
#define PAMVRF_APART __attribute__((cold))

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
