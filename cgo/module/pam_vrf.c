/*
 * pam_vrf.so: the PAM module proper, in C.
 *
 * Only pam_sm_open_session does anything, and only there, in the process
 * that opens the session, is the Go part (pam_vrf/core.so beside this file,
 * built from cgo/) loaded. Every process that merely loads the stack (sshd's
 * pre-authentication monitor for every connecting client, su, login before
 * a session opens, a PAM stack whose session phase never runs) pays for a
 * small C library: no Go runtime, no threads, no package initialisation.
 *
 * A Go runtime cannot survive fork(): its threads are gone in the child. So
 * the Go part is entered only in the process that loaded it; a child forked
 * after that (no common PAM application opens the session there) is left
 * alone with an error in the auth log. A child forked before the Go part was
 * ever loaded (xrdp-sesman opens sessions in a fork) loads it itself.
 *
 * Before any of that, the fast path (fastpath.c) replays what the Go part
 * recorded: for a service the module does not act for, a user with no rule,
 * and a login into a VRF the Go part has placed sessions into before, the
 * Go part is not loaded at all.
 *
 * The other entry points never enter Go: libpam may call them in processes
 * forked after open_session (sshd's post-auth child runs pam_setcred; login
 * and su run pam_end in their children).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "fastpath.h"
#include "sys.h"

/*
 * The Go part's entry point (cgo/main.go: pamvrf_core_open2). The number is
 * its signature's version: during a package upgrade a process that loaded
 * the old pam_vrf.so may load the new Go part; with a new name it finds no
 * entry point and applies the failure rule, instead of calling one with
 * other arguments.
 */
typedef int (*core_open_fn)(pam_handle_t *pamh, const char *user, const char *service, int pid,
			    int silent, int groups_timed_out, int argc, const char **argv);

#define CORE_NAME "pam_vrf/core.so"

static core_open_fn core_open;
static pid_t core_pid; /* the process the Go runtime was started in */

/* core_path: the Go part lives in pam_vrf/ beside this module's own file. */
static int core_path(char *buf, size_t len)
{
	Dl_info info;
	const char *slash;

	if (dladdr((void *)core_path, &info) == 0 || info.dli_fname == NULL)
		return -1;
	slash = strrchr(info.dli_fname, '/');
	if (slash == NULL)
		return -1;
	if ((size_t)snprintf(buf, len, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname, CORE_NAME) >= len)
		return -1;
	return 0;
}

/*
 * load_core loads the Go part; on failure it returns a message in err (the
 * caller's: a static buffer here would make the module's .bss spill onto a
 * page of its own, one more mapping for every process that loads the stack).
 */
static const char *load_core(char *err, size_t errlen)
{
	char path[PATH_MAX];
	void *h;

	if (core_path(path, sizeof path) != 0)
		return "cannot find the module's own path";
	/* RTLD_NODELETE: a Go runtime can never be unloaded. */
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (h == NULL) {
		snprintf(err, errlen, "load %s: %s", path, dlerror());
		return err;
	}
	core_open = (core_open_fn)dlsym(h, "pamvrf_core_open2");
	if (core_open == NULL) {
		snprintf(err, errlen, "%s has no pamvrf_core_open2", path);
		return err;
	}
	core_pid = sys_getpid();
	return NULL;
}

/* has_arg reports whether the module line has exactly this argument. */
static int has_arg(int argc, const char **argv, const char *arg)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], arg) == 0)
			return 1;
	return 0;
}

/*
 * handover gives the session to the Go part, loading it first if need be.
 * Out of line and apart (PAMVRF_APART), so that its buffers are on the stack,
 * and its code in the pages touched, only of the logins that take this path.
 */
static __attribute__((noinline)) PAMVRF_APART int handover(pam_handle_t *pamh, int flags, const char *user, const char *service,
					      int groups_timed_out, int argc, const char **argv)
{
	char errbuf[PATH_MAX + 256];
	const char *err;

	if (core_open != NULL && sys_getpid() != core_pid) {
		pam_syslog(pamh, LOG_ERR,
			   "open_session called in process %ld, forked after pam_vrf started its Go part in %ld: "
			   "not entering it; session left unplaced",
			   (long)sys_getpid(), (long)core_pid);
		return PAM_IGNORE;
	}
	if (core_open == NULL && (err = load_core(errbuf, sizeof errbuf)) != NULL) {
		/*
		 * The failure rule without the Go part (pam/failure.go): the
		 * pam.d line's on_error decides for the default services.
		 */
		int acts = strcmp(service, "sshd") == 0 || strcmp(service, "login") == 0;
		int deny = acts && has_arg(argc, argv, "on_error=deny");

		pam_syslog(pamh, deny ? LOG_ERR : LOG_WARNING,
			   "user \"%s\" service \"%s\": internal failure: %s; %s", user, service, err,
			   deny ? "session refused (on_error=deny, pam.d line)" : "session continues unbound");
		if (acts && !(flags & PAM_SILENT))
			pam_error(pamh, "pam_vrf: internal error (see the auth log); %s",
				  deny ? "session refused" : "this session continues without VRF placement");
		return deny ? PAM_SESSION_ERR : PAM_IGNORE;
	}
	return core_open(pamh, user, service, (int)sys_getpid(), (flags & PAM_SILENT) != 0, groups_timed_out, argc, argv);
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	const void *user = NULL, *service = NULL;
	int groups_timed_out = 0;

	if (pam_get_item(pamh, PAM_USER, &user) != PAM_SUCCESS || user == NULL)
		user = "";
	if (pam_get_item(pamh, PAM_SERVICE, &service) != PAM_SUCCESS || service == NULL)
		service = "";

	switch (pamvrf_fastpath(pamh, user, service, argc, argv, &groups_timed_out)) {
	case FP_IGNORE:
		return PAM_IGNORE;
	case FP_PLACED:
		return PAM_SUCCESS;
	case FP_HANDOVER:
		break;
	}
	return handover(pamh, flags, user, service, groups_timed_out, argc, argv);
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

/* A module listed on auth/account/password lines by mistake stays inert. */
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
