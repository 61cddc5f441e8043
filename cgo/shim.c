/*
 * The C half of pam_vrf.so: the PAM ABI entry points.
 *
 * Only pam_sm_open_session enters Go. Every other entry point answers here,
 * in C, because libpam may call them in a process forked after the module
 * was loaded (sshd runs pam_setcred in its post-auth child; login and su run
 * pam_end in their children), and a forked child holds a Go runtime whose
 * threads did not survive the fork: entering Go there can deadlock.
 *
 * For the same reason open_session itself refuses to enter Go when called in
 * a process other than the one that loaded the module. No known PAM
 * application does that (sshd, login, su, sudo and cron all open the session
 * in the process that ran pam_start), so the guard only matters for an
 * unusual host program (xrdp-sesman); it logs and leaves the session alone,
 * whatever on_error says: the failure rule's one exception, since deciding
 * it would need the Go runtime this guard exists to avoid.
 */
#include <stdlib.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "shim.h"
#include "_cgo_export.h"

static pid_t loaded_in;

__attribute__((constructor)) static void pamvrf_record_loader(void)
{
	loaded_in = getpid();
}

void pamvrf_log(pam_handle_t *pamh, int prio, const char *msg)
{
	pam_syslog(pamh, prio, "%s", msg);
}

void pamvrf_error(pam_handle_t *pamh, const char *msg)
{
	pam_error(pamh, "%s", msg);
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	const void *user = NULL, *service = NULL;

	if (getpid() != loaded_in) {
		pam_syslog(pamh, LOG_ERR,
			   "open_session called in process %ld, forked after pam_vrf.so was loaded in %ld: "
			   "not entering the Go runtime; session left unplaced",
			   (long)getpid(), (long)loaded_in);
		return PAM_IGNORE;
	}
	/* A missing user is a failure like any other: the Go side applies the
	 * failure rule (it knows which services the module acts for). */
	if (pam_get_item(pamh, PAM_USER, &user) != PAM_SUCCESS || user == NULL)
		user = "";
	if (pam_get_item(pamh, PAM_SERVICE, &service) != PAM_SUCCESS || service == NULL)
		service = "";
	return pamvrfOpenSession(pamh, (char *)user, (char *)service, (int)getpid(),
				 (flags & PAM_SILENT) != 0, argc, (char **)argv);
}

/*
 * Nothing to undo: the VRF cgroup lives below the session's scope, and
 * systemd removes it with the scope; the program goes with the cgroup.
 */
PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh; (void)flags; (void)argc; (void)argv;
	return PAM_SUCCESS;
}

/*
 * A module listed on auth/account/password lines by mistake stays inert,
 * and never enters Go (these run in forked children too).
 */
#define PAMVRF_INERT(name)                                                              \
	PAM_EXTERN int name(pam_handle_t *pamh, int flags, int argc, const char **argv) \
	{                                                                               \
		(void)pamh; (void)flags; (void)argc; (void)argv;                        \
		return PAM_IGNORE;                                                      \
	}

PAMVRF_INERT(pam_sm_setcred)
PAMVRF_INERT(pam_sm_authenticate)
PAMVRF_INERT(pam_sm_acct_mgmt)
PAMVRF_INERT(pam_sm_chauthtok)
