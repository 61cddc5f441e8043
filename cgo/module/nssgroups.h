/* Group membership through NSS, bounded in time; see nssgroups.c. */
#ifndef PAM_VRF_NSSGROUPS_H
#define PAM_VRF_NSSGROUPS_H

#define NSS_MAX_GROUPS 32

/*
 * nss_members sets member[i] for each of the n group names the user is a
 * member of (primary or supplementary; a name NSS does not know has no
 * members). 0 = answered; -1 = NSS failed or does not know the user; -2 =
 * no answer within timeout_ms. On either the Go part decides and reports
 * it (told of a timeout, so as not to wait a second time). Cold: apart from
 * the decision's code, as PAMVRF_APART (fastpath.h) explains.
 */
__attribute__((visibility("hidden"), cold))
int nss_members(const char *user, const char *const *names, int n, unsigned char *member, long timeout_ms);

#endif
