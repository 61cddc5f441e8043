/*
 * pamdriver: drives a real libpam stack the way a login program does, so the
 * Go module is tested from a C process (never loaded into a Go test binary,
 * where two Go runtimes would share one process).
 *
 *   pamdriver -d CONFDIR -s SERVICE -u USER [-- CMD ARGS...]
 *       pam_start_confdir, pam_open_session; print the result and this
 *       process's cgroup; run CMD in a forked child (it inherits the session's
 *       cgroup, as a shell does); pam_close_session, pam_end.
 *   pamdriver ... -n N      N open/close cycles in this one process; print fd,
 *                           thread and RSS figures after cycle 1 and cycle N.
 *   pamdriver ... -f N      N times: open_session, fork; the child calls
 *                           pam_setcred, pam_close_session, pam_end and must
 *                           exit within 1 s (a Go runtime entered after fork
 *                           hangs); the parent closes the session.
 *   pamdriver ... -t N [-b DIR] N timed cycles (benchmarks): per cycle, with
 *                           CLOCK_MONOTONIC, the time of pam_open_session +
 *                           pam_close_session ("oc") and of the whole
 *                           pam_start..pam_end cycle ("cycle"); prints
 *                           "time: ..." with median/p99 of each and the raw
 *                           samples ("samples_oc_us:", "samples_cycle_us:").
 *                           With -b, before every cycle (untimed) the driver
 *                           writes its pid to DIR/cgroup.procs, i.e. starts
 *                           each session from a session cgroup as a fresh
 *                           login would (logind's move just before ours).
 *                           With -m DIR, inside the timed open+close, the
 *                           driver itself does the bare kernel part of a
 *                           placement: mkdir -p DIR, move itself into it (the
 *                           "floor + mkdir + move" baseline). With -g GROUP,
 *                           also the bare group lookup a group rule needs,
 *                           inline (getpwnam_r, getgrouplist, getgrnam_r).
 *                           The "time:"
 *                           line ends with the threads and RSS after the
 *                           last cycle.
 *   pamdriver ... -w        hold: open_session, print "held: rc=... fds=...
 *                           threads=... rss_kb=... cgroup=...", wait for EOF
 *                           on stdin (a barrier), then close_session and
 *                           pam_end and print "released: rc=...".
 *
 * libpam's pam_syslog() calls __syslog_chk(); this program defines it (and
 * the other syslog entry points), so the module's auth-log lines are printed
 * on stderr as "syslog: <prio> <text>" and tests can assert on them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <security/pam_appl.h>

static void vlog(int pri, const char *fmt, va_list ap)
{
	char buf[4096];

	vsnprintf(buf, sizeof buf, fmt, ap);
	fprintf(stderr, "syslog: %d %s\n", pri & 7, buf);
	fflush(stderr);
}

void __syslog_chk(int pri, int flag, const char *fmt, ...)
{
	va_list ap;

	(void)flag;
	va_start(ap, fmt);
	vlog(pri, fmt, ap);
	va_end(ap);
}

void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap)
{
	(void)flag;
	vlog(pri, fmt, ap);
}

void syslog(int pri, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(pri, fmt, ap);
	va_end(ap);
}

void vsyslog(int pri, const char *fmt, va_list ap)
{
	vlog(pri, fmt, ap);
}

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	(void)data;
	*resp = calloc((size_t)n, sizeof **resp);
	if (*resp == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		const char *kind = msg[i]->msg_style == PAM_ERROR_MSG ? "error" :
				   msg[i]->msg_style == PAM_TEXT_INFO ? "info" : "prompt";
		printf("conv: %s: %s\n", kind, msg[i]->msg);
	}
	fflush(stdout);
	return PAM_SUCCESS;
}

static const struct pam_conv pconv = { conv, NULL };
static const char *confdir, *service, *user;

static pam_handle_t *start(void)
{
	pam_handle_t *h = NULL;
	int rc = pam_start_confdir(service, user, &pconv, confdir, &h);

	if (rc != PAM_SUCCESS) {
		fprintf(stderr, "pam_start_confdir: %s\n", pam_strerror(h, rc));
		exit(3);
	}
	return h;
}

static void print_cgroup(const char *label)
{
	char line[4096];
	FILE *f = fopen("/proc/self/cgroup", "r");

	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "0::", 3) == 0)
			printf("%s: %s", label, line + 3);
	fclose(f);
	fflush(stdout);
}

static long count_fds(void)
{
	long n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

static long status_field(const char *key)
{
	char line[256];
	long v = -1;
	size_t k = strlen(key);
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, k) == 0 && line[k] == ':')
			v = strtol(line + k + 1, NULL, 10);
	fclose(f);
	return v;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cycle(void)
{
	pam_handle_t *h = start();
	int rc = pam_open_session(h, 0);
	int rc2 = pam_close_session(h, 0);

	pam_end(h, rc);
	return rc != PAM_SUCCESS ? rc : rc2;
}

/*
 * The Go runtime grows its pool of OS threads and its heap to a steady state
 * in the first cycles; a leak keeps growing after that. So the figures are
 * taken after cycle 1, after a warm-up of n/10 cycles, and after cycle n.
 */
static int loop(long n)
{
	long fds[3], thr[3], rss[3], fail = 0, warm = n / 10 > 1 ? n / 10 : 1;
	double t0 = 0;

	for (long i = 1; i <= n; i++) {
		if (cycle() != PAM_SUCCESS)
			fail++;
		int k = i == 1 ? 0 : i == warm ? 1 : i == n ? 2 : -1;
		if (k >= 0) {
			fds[k] = count_fds(), thr[k] = status_field("Threads"), rss[k] = status_field("VmRSS");
			if (k == 1)
				t0 = now_ms();
		}
	}
	printf("loop: cycles=%ld failed=%ld warmup=%ld fds=%ld/%ld/%ld threads=%ld/%ld/%ld rss_kb=%ld/%ld/%ld "
	       "us_per_cycle=%.1f\n",
	       n, fail, warm, fds[0], fds[1], fds[2], thr[0], thr[1], thr[2], rss[0], rss[1], rss[2],
	       n > warm ? (now_ms() - t0) * 1e3 / (double)(n - warm) : 0.0);
	return fail == 0 ? 0 : 1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n-1]. */
static double pct(const double *v, long n, double p)
{
	long k = (long)(p / 100.0 * (double)n + 0.999999) - 1;

	if (n == 0)
		return 0;
	return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static void print_samples(const char *label, const double *v, long n)
{
	printf("%s:", label);
	for (long i = 0; i < n; i++)
		printf(" %.1f", v[i]);
	printf("\n");
}

static int move_self(const char *dir)
{
	char path[4096];
	FILE *f;
	int ok;

	snprintf(path, sizeof path, "%s/cgroup.procs", dir);
	f = fopen(path, "a");
	if (f == NULL)
		return -1;
	ok = fprintf(f, "%d", (int)getpid()) > 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* bare_place: mkdir -p dir (iproute2's make_path: every missing level is
 * a new cgroup) and move this process into it. */
static int bare_place(const char *dir)
{
	char p[4096];

	snprintf(p, sizeof p, "%s", dir);
	for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
		if (s != NULL)
			*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			return -1;
		if (s == NULL)
			break;
		*s = '/';
	}
	return move_self(dir);
}

/* bare_groups: is user a member of group, asked of NSS as a group rule
 * needs it (no thread, no bound: the bare query). 0 = answered. */
static int bare_groups(const char *group)
{
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	char buf[16384];
	gid_t gids[256];
	int n = 256, member = 0;

	if (getpwnam_r(user, &pw, buf, sizeof buf, &pwp) != 0 || pwp == NULL)
		return -1;
	if (getgrouplist(user, pw.pw_gid, gids, &n) < 0)
		return -1;
	if (getgrnam_r(group, &gr, buf, sizeof buf, &grp) != 0)
		return -1;
	for (int i = 0; grp != NULL && i < n; i++)
		member |= gids[i] == gr.gr_gid;
	return member ? 0 : -1;
}

static int timed(long n, const char *before, const char *bare, const char *group)
{
	double *oc = calloc((size_t)n, sizeof *oc), *cy = calloc((size_t)n, sizeof *cy);
	long fail = 0;

	if (oc == NULL || cy == NULL)
		return 2;
	for (long i = 0; i < n; i++) {
		if (before != NULL && move_self(before) != 0) {
			fprintf(stderr, "pamdriver: move to %s: %s\n", before, strerror(errno));
			return 2;
		}
		double t0 = now_ms();
		pam_handle_t *h = start();
		double t1 = now_ms();
		int rc = pam_open_session(h, 0);
		if (group != NULL && bare_groups(group) != 0)
			rc = PAM_SESSION_ERR;
		if (bare != NULL && bare_place(bare) != 0)
			rc = PAM_SESSION_ERR;
		int rc2 = pam_close_session(h, 0);
		double t2 = now_ms();
		pam_end(h, rc);
		double t3 = now_ms();

		if (rc != PAM_SUCCESS || rc2 != PAM_SUCCESS)
			fail++;
		oc[i] = (t2 - t1) * 1e3;
		cy[i] = (t3 - t0) * 1e3;
	}
	print_samples("samples_oc_us", oc, n);
	print_samples("samples_cycle_us", cy, n);
	qsort(oc, (size_t)n, sizeof *oc, cmp_double);
	qsort(cy, (size_t)n, sizeof *cy, cmp_double);
	printf("time: cycles=%ld failed=%ld oc_median_us=%.1f oc_p99_us=%.1f cycle_median_us=%.1f cycle_p99_us=%.1f "
	       "threads=%ld rss_kb=%ld\n",
	       n, fail, pct(oc, n, 50), pct(oc, n, 99), pct(cy, n, 50), pct(cy, n, 99), status_field("Threads"),
	       status_field("VmRSS"));
	free(oc);
	free(cy);
	return fail == 0 ? 0 : 1;
}

static int hold(void)
{
	char buf[256];
	pam_handle_t *h = start();
	int rc = pam_open_session(h, 0);

	printf("held: rc=%d fds=%ld threads=%ld rss_kb=%ld ", rc, count_fds(), status_field("Threads"),
	       status_field("VmRSS"));
	print_cgroup("cgroup");
	fflush(stdout);
	while (read(0, buf, sizeof buf) > 0)
		;
	int rc2 = pam_close_session(h, 0);
	pam_end(h, rc);
	printf("released: rc=%d\n", rc2);
	fflush(stdout);
	return rc == PAM_SUCCESS && rc2 == PAM_SUCCESS ? 0 : 1;
}

static int fork_test(long n)
{
	long done = 0;
	double worst = 0;

	for (long i = 0; i < n; i++) {
		pam_handle_t *h = start();
		int rc = pam_open_session(h, 0);
		pid_t pid;
		double t0;
		int status = 0, finished = 0;

		if (rc != PAM_SUCCESS) {
			printf("fork: open_session failed at iteration %ld: %s\n", i, pam_strerror(h, rc));
			return 1;
		}
		fflush(NULL);
		pid = fork();
		if (pid < 0)
			return 2;
		if (pid == 0) {
			/* What sshd's post-auth child and login's child do. */
			pam_setcred(h, PAM_REINITIALIZE_CRED);
			pam_close_session(h, 0);
			pam_end(h, PAM_SUCCESS | PAM_DATA_SILENT);
			_exit(0);
		}
		t0 = now_ms();
		while (now_ms() - t0 < 1000) {
			pid_t w = waitpid(pid, &status, WNOHANG);
			if (w == pid) {
				finished = 1;
				break;
			}
			usleep(1000);
		}
		if (!finished) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			printf("fork: child hung at iteration %ld (killed after 1 s)\n", i);
			return 1;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			printf("fork: child failed at iteration %ld (status 0x%x)\n", i, status);
			return 1;
		}
		if (now_ms() - t0 > worst)
			worst = now_ms() - t0;
		done++;
		pam_close_session(h, 0);
		pam_end(h, PAM_SUCCESS);
	}
	printf("fork: %ld/%ld children finished, slowest %.1f ms\n", done, n, worst);
	return 0;
}

int main(int argc, char **argv)
{
	long loops = 0, forks = 0, timings = 0;
	const char *before = NULL, *bare = NULL, *group = NULL;
	int c, holding = 0;

	while ((c = getopt(argc, argv, "d:s:u:n:f:t:b:m:g:w")) != -1) {
		switch (c) {
		case 'd': confdir = optarg; break;
		case 's': service = optarg; break;
		case 'u': user = optarg; break;
		case 'n': loops = atol(optarg); break;
		case 'f': forks = atol(optarg); break;
		case 't': timings = atol(optarg); break;
		case 'b': before = optarg; break;
		case 'm': bare = optarg; break;
		case 'g': group = optarg; break;
		case 'w': holding = 1; break;
		default:
			fprintf(stderr, "usage: pamdriver -d CONFDIR -s SERVICE -u USER [-n N | -f N | -t N [-b DIR] [-m DIR] | -w] [-- CMD...]\n");
			return 2;
		}
	}
	if (confdir == NULL || service == NULL || user == NULL) {
		fprintf(stderr, "pamdriver: -d, -s and -u are required\n");
		return 2;
	}
	if (loops > 0)
		return loop(loops);
	if (forks > 0)
		return fork_test(forks);
	if (timings > 0)
		return timed(timings, before, bare, group);
	if (holding)
		return hold();

	pam_handle_t *h = start();
	int rc = pam_open_session(h, 0);
	printf("open_session: %d %s\n", rc, pam_strerror(h, rc));
	print_cgroup("cgroup");
	if (rc == PAM_SUCCESS && optind < argc) {
		fflush(NULL);
		pid_t pid = fork();
		if (pid == 0) {
			execvp(argv[optind], argv + optind);
			_exit(127);
		}
		int status;
		waitpid(pid, &status, 0);
		printf("command: exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128);
	}
	int rc2 = pam_close_session(h, 0);
	printf("close_session: %d %s\n", rc2, pam_strerror(h, rc2));
	pam_end(h, rc);
	fflush(NULL);
	return rc == PAM_SUCCESS ? 0 : 1;
}
