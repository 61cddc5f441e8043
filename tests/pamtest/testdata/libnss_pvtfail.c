/*
 * A failing NSS "group" source for the failure-rule tests: with
 * PVTFAIL_MODE=hang every lookup sleeps 30 s (a directory that does not
 * answer), with PVTFAIL_MODE=error it fails with EIO (a directory that is
 * down). Loaded by glibc as libnss_pvtfail.so.2 when nsswitch.conf names
 * "pvtfail"; the test puts it on LD_LIBRARY_PATH in a private mount
 * namespace whose /etc/nsswitch.conf says "group: pvtfail".
 */
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum nss_status fail(int *errnop)
{
	const char *mode = getenv("PVTFAIL_MODE");

	if (mode != NULL && strcmp(mode, "hang") == 0)
		sleep(30);
	*errnop = EIO;
	return NSS_STATUS_UNAVAIL;
}

enum nss_status _nss_pvtfail_getgrnam_r(const char *name, struct group *gr, char *buf, size_t len, int *errnop)
{
	(void)name; (void)gr; (void)buf; (void)len;
	return fail(errnop);
}

enum nss_status _nss_pvtfail_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t len, int *errnop)
{
	(void)gid; (void)gr; (void)buf; (void)len;
	return fail(errnop);
}

enum nss_status _nss_pvtfail_initgroups_dyn(const char *user, gid_t group, long *start, long *size,
					    gid_t **groups, long limit, int *errnop)
{
	(void)user; (void)group; (void)start; (void)size; (void)groups; (void)limit;
	return fail(errnop);
}
