/*
 * Group membership for the fast path's group rules, as package nss answers
 * it for the Go part: the user's gid list once (getgrouplist, primary group
 * included), each named group's gid once (getgrnam_r), gids compared.
 *
 * NSS has no timeout of its own and a directory (LDAP, SSSD) can hang, so
 * the lookup runs in a thread of its own and the login waits at most the
 * policy's nss_timeout for it. A thread that does not answer in time is
 * left to finish (or stay blocked in the C library) on its own; the job it
 * works on is freed by whichever of the two lets go last; a thread that
 * answers is joined, so the login leaves no thread behind. The thread
 * starts with every signal blocked: the PAM host's handlers run in its own
 * threads.
 *
 * The C library functions this needs, but for free and memcpy, are looked
 * up when a group rule is decided instead of imported. libpam loads modules
 * with RTLD_NOW, which binds every import in every process that loads the
 * stack, also the ones the module then leaves alone; these 23 cost each of
 * them about 20 µs (pam_start timed in a fresh process per sample), for
 * the logins decided by a group rule alone. Those now pay it: 20 µs the
 * first time in a process, about 2 µs after that. Each call looks them up for itself, so no state is
 * shared between the threads of a PAM host.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nssgroups.h"

struct libc {
	__typeof__(calloc) *fn_calloc;
	__typeof__(realloc) *fn_realloc;
	__typeof__(strdup) *fn_strdup;
	__typeof__(clock_gettime) *fn_clock_gettime;
	__typeof__(sigfillset) *fn_sigfillset;
	__typeof__(pthread_sigmask) *fn_pthread_sigmask;
	__typeof__(pthread_create) *fn_pthread_create;
	__typeof__(pthread_join) *fn_pthread_join;
	__typeof__(pthread_detach) *fn_pthread_detach;
	__typeof__(pthread_mutex_init) *fn_pthread_mutex_init;
	__typeof__(pthread_mutex_destroy) *fn_pthread_mutex_destroy;
	__typeof__(pthread_mutex_lock) *fn_pthread_mutex_lock;
	__typeof__(pthread_mutex_unlock) *fn_pthread_mutex_unlock;
	__typeof__(pthread_condattr_init) *fn_pthread_condattr_init;
	__typeof__(pthread_condattr_setclock) *fn_pthread_condattr_setclock;
	__typeof__(pthread_condattr_destroy) *fn_pthread_condattr_destroy;
	__typeof__(pthread_cond_init) *fn_pthread_cond_init;
	__typeof__(pthread_cond_destroy) *fn_pthread_cond_destroy;
	__typeof__(pthread_cond_signal) *fn_pthread_cond_signal;
	__typeof__(pthread_cond_timedwait) *fn_pthread_cond_timedwait;
	__typeof__(getpwnam_r) *fn_getpwnam_r;
	__typeof__(getgrouplist) *fn_getgrouplist;
	__typeof__(getgrnam_r) *fn_getgrnam_r;
};

/* bind_libc fills l from the process's C library; 0, or -1 if one is missing. */
static int bind_libc(struct libc *l)
{
	static const struct {
		size_t off;
		const char *name;
	} fns[] = {
#define FN(name) { offsetof(struct libc, fn_##name), #name }
		FN(calloc),
		FN(realloc),
		FN(strdup),
		FN(clock_gettime),
		FN(sigfillset),
		FN(pthread_sigmask),
		FN(pthread_create),
		FN(pthread_join),
		FN(pthread_detach),
		FN(pthread_mutex_init),
		FN(pthread_mutex_destroy),
		FN(pthread_mutex_lock),
		FN(pthread_mutex_unlock),
		FN(pthread_condattr_init),
		FN(pthread_condattr_setclock),
		FN(pthread_condattr_destroy),
		FN(pthread_cond_init),
		FN(pthread_cond_destroy),
		FN(pthread_cond_signal),
		FN(pthread_cond_timedwait),
		FN(getpwnam_r),
		FN(getgrouplist),
		FN(getgrnam_r),
#undef FN
	};
	_Static_assert(sizeof fns / sizeof *fns * sizeof(void (*)(void)) == sizeof(struct libc),
		       "bind_libc() must fill every field of struct libc");

	for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
		void *f = dlsym(RTLD_DEFAULT, fns[i].name);

		if (f == NULL)
			return -1;
		memcpy((char *)l + fns[i].off, &f, sizeof f);
	}
	return 0;
}

struct job {
	struct libc c;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, abandoned, rc, n;
	char *user;
	char *names[NSS_MAX_GROUPS];
	unsigned char member[NSS_MAX_GROUPS];
};

static void job_free(struct job *j)
{
	j->c.fn_pthread_mutex_destroy(&j->mu);
	j->c.fn_pthread_cond_destroy(&j->cv);
	free(j->user);
	for (int i = 0; i < j->n; i++)
		free(j->names[i]);
	free(j);
}

/* lookup fills j->member; 0 or -1. */
static int lookup(struct job *j)
{
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	gid_t *gids = NULL;
	char *buf = NULL;
	size_t blen = 16384;
	int ngids = 64, rc = -1, err;

	for (;;) {
		char *nb = j->c.fn_realloc(buf, blen);
		if (nb == NULL)
			goto out;
		buf = nb;
		err = j->c.fn_getpwnam_r(j->user, &pw, buf, blen, &pwp);
		if (err != ERANGE || blen >= (1 << 20))
			break;
		blen *= 2;
	}
	if (err != 0 || pwp == NULL)
		goto out; /* NSS failed, or does not know a user PAM knows */
	for (;;) {
		int want = ngids;
		gid_t *ng = j->c.fn_realloc(gids, (size_t)ngids * sizeof *gids);
		if (ng == NULL)
			goto out;
		gids = ng;
		if (j->c.fn_getgrouplist(j->user, pw.pw_gid, gids, &want) >= 0) {
			ngids = want;
			break;
		}
		if (want <= ngids || want > 65536)
			goto out;
		ngids = want;
	}
	for (int i = 0; i < j->n; i++) {
		for (;;) {
			err = j->c.fn_getgrnam_r(j->names[i], &gr, buf, blen, &grp);
			if (err != ERANGE || blen >= (1 << 20))
				break;
			blen *= 2;
			char *nb = j->c.fn_realloc(buf, blen);
			if (nb == NULL)
				goto out;
			buf = nb;
		}
		if (err != 0 && err != ENOENT && err != ESRCH)
			goto out;
		if (grp == NULL)
			continue; /* no such group: nobody is a member */
		for (int k = 0; k < ngids; k++)
			if (gids[k] == gr.gr_gid)
				j->member[i] = 1;
	}
	rc = 0;
out:
	free(buf);
	free(gids);
	return rc;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	int rc = lookup(j), last;

	j->c.fn_pthread_mutex_lock(&j->mu);
	j->rc = rc;
	j->done = 1;
	last = j->abandoned;
	j->c.fn_pthread_cond_signal(&j->cv);
	j->c.fn_pthread_mutex_unlock(&j->mu);
	if (last)
		job_free(j);
	return NULL;
}

int nss_members(const char *user, const char *const *names, int n, unsigned char *member, long timeout_ms)
{
	struct libc c;
	pthread_condattr_t ca;
	pthread_t th;
	sigset_t all, old;
	struct timespec until;
	struct job *j;
	int rc = -1, err = 0, last = 0;

	if (n < 0 || n > NSS_MAX_GROUPS || bind_libc(&c) != 0 || (j = c.fn_calloc(1, sizeof *j)) == NULL)
		return -1;
	j->c = c;
	c.fn_pthread_mutex_init(&j->mu, NULL);
	c.fn_pthread_condattr_init(&ca);
	c.fn_pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	c.fn_pthread_cond_init(&j->cv, &ca);
	c.fn_pthread_condattr_destroy(&ca);
	j->user = c.fn_strdup(user);
	for (int i = 0; i < n; i++)
		if ((j->names[i] = c.fn_strdup(names[i])) != NULL)
			j->n = i + 1;
	if (j->user == NULL || j->n != n) {
		job_free(j);
		return -1;
	}

	c.fn_sigfillset(&all);
	c.fn_pthread_sigmask(SIG_SETMASK, &all, &old);
	err = c.fn_pthread_create(&th, NULL, worker, j);
	c.fn_pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		job_free(j);
		return -1;
	}

	c.fn_clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	c.fn_pthread_mutex_lock(&j->mu);
	while (!j->done && err != ETIMEDOUT)
		err = c.fn_pthread_cond_timedwait(&j->cv, &j->mu, &until);
	if (j->done) {
		rc = j->rc;
		memcpy(member, j->member, (size_t)n);
		last = 1;
	} else {
		j->abandoned = 1; /* the worker frees the job when it is done */
		rc = -2;
	}
	c.fn_pthread_mutex_unlock(&j->mu);
	if (last) {
		c.fn_pthread_join(th, NULL);
		job_free(j);
	} else {
		c.fn_pthread_detach(th);
	}
	return rc;
}
