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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nssgroups.h"

struct job {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, abandoned, rc, n;
	char *user;
	char *names[NSS_MAX_GROUPS];
	unsigned char member[NSS_MAX_GROUPS];
};

static void job_free(struct job *j)
{
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
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
		char *nb = realloc(buf, blen);
		if (nb == NULL)
			goto out;
		buf = nb;
		err = getpwnam_r(j->user, &pw, buf, blen, &pwp);
		if (err != ERANGE || blen >= (1 << 20))
			break;
		blen *= 2;
	}
	if (err != 0 || pwp == NULL)
		goto out; /* NSS failed, or does not know a user PAM knows */
	for (;;) {
		int want = ngids;
		gid_t *ng = realloc(gids, (size_t)ngids * sizeof *gids);
		if (ng == NULL)
			goto out;
		gids = ng;
		if (getgrouplist(j->user, pw.pw_gid, gids, &want) >= 0) {
			ngids = want;
			break;
		}
		if (want <= ngids || want > 65536)
			goto out;
		ngids = want;
	}
	for (int i = 0; i < j->n; i++) {
		for (;;) {
			err = getgrnam_r(j->names[i], &gr, buf, blen, &grp);
			if (err != ERANGE || blen >= (1 << 20))
				break;
			blen *= 2;
			char *nb = realloc(buf, blen);
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

	pthread_mutex_lock(&j->mu);
	j->rc = rc;
	j->done = 1;
	last = j->abandoned;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
	if (last)
		job_free(j);
	return NULL;
}

int nss_members(const char *user, const char *const *names, int n, unsigned char *member, long timeout_ms)
{
	pthread_condattr_t ca;
	pthread_t th;
	sigset_t all, old;
	struct timespec until;
	struct job *j;
	int rc = -1, err = 0, last = 0;

	if (n < 0 || n > NSS_MAX_GROUPS || (j = calloc(1, sizeof *j)) == NULL)
		return -1;
	pthread_mutex_init(&j->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cv, &ca);
	pthread_condattr_destroy(&ca);
	j->user = strdup(user);
	for (int i = 0; i < n; i++)
		if ((j->names[i] = strdup(names[i])) != NULL)
			j->n = i + 1;
	if (j->user == NULL || j->n != n) {
		job_free(j);
		return -1;
	}

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&th, NULL, worker, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		job_free(j);
		return -1;
	}

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&j->mu);
	while (!j->done && err != ETIMEDOUT)
		err = pthread_cond_timedwait(&j->cv, &j->mu, &until);
	if (j->done) {
		rc = j->rc;
		memcpy(member, j->member, (size_t)n);
		last = 1;
	} else {
		j->abandoned = 1; /* the worker frees the job when it is done */
		rc = -2;
	}
	pthread_mutex_unlock(&j->mu);
	if (last) {
		pthread_join(th, NULL);
		job_free(j);
	} else {
		pthread_detach(th);
	}
	return rc;
}
