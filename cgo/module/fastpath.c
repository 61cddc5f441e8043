/*
 * The fast path: what pam_vrf.so decides and does in C, without starting the
 * Go runtime. A new ssh login is a new process; starting Go in it costs more
 * than the placement itself (make bench).
 *
 * The decision comes from the policy's decision table, which the Go part
 * writes after it has read the policy with every check (Go package fastpath
 * has the format and says when): parsing TOML and the safety checks stay
 * in Go; group membership (NSS) is asked here (nssgroups.c), bounded as
 * package nss bounds it. The placement is placement.Enter step by step:
 * the device must be a VRF, iproute2's cgroup path, every directory root's
 * and not delegated, our program (pinned, or loaded and pinned) attached
 * with flags 0 through the same directory fd the process is moved through,
 * verified.
 *
 * Every step either matches what the Go part would do, exactly, or hands the
 * session over to it (FP_HANDOVER), which then decides from scratch and
 * applies the failure rule. In particular the fast path never refuses a
 * session and never reports a failure: it has only "ignore", "placed" and
 * "not sure". It hands over when:
 *   - the module line has an option other than config= and on_error=
 *     (debug, or a misspelt one: the Go part reports it);
 *   - there is no decision table for the policy file, or the file's
 *     identity (dev, ino, size, mtime, ctime) is not the recorded one, or
 *     the table is not root's and 0644 or stricter;
 *   - group rules and NSS fails, does not know the user or does not answer
 *     within the policy's nss_timeout (nssgroups.c asks as package nss
 *     does); the Go part then reports it under the failure rule;
 *   - the VRF is "default" (rare: su back to the default VRF);
 *   - the device is missing or not a VRF, the program cannot be found or
 *     loaded, the cgroup walk meets a directory that is not root's or is
 *     delegated, a path with "..", another program or attach mode on the
 *     hook, or any system call fails: the Go part then says why.
 * What it may leave behind on a handover (a VRF cgroup directory created, our
 * program attached to it) is what the Go part does first anyway.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <dirent.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_ext.h>

#include "fastpath.h"
#include "sys.h"
#include "nssgroups.h"

/*
 * make bench builds a variant with -DPAMVRF_TRACE that logs how long each
 * step took (the decomposition of a new-process login it prints).
 */
#ifdef PAMVRF_TRACE
#include <time.h>
static double trace_t[8];
static int trace_n;
static void trace(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (trace_n < 8)
		trace_t[trace_n++] = (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}
#else
#define trace() do { } while (0)
#endif

#define DEFAULT_POLICY "/etc/security/pam_vrf.toml"
#define MAGIC "pam_vrf-fastpath 2"
#define MAX_FILE (64 * 1024)
#define PROG_NAME "pam_vrf_sock"

/*
 * read_trusted reads a root-owned, not group/world-writable regular file:
 * into small (smallsz bytes, on the caller's stack) when it fits, else into
 * malloc'd memory. Four system calls and no allocation for a usual table:
 * every login that loads the module pays for this read (make bench, "not
 * placed"), so it opens the file by its full path instead of through a
 * directory fd.
 */
static char *read_trusted(const char *path, char *small, size_t smallsz)
{
	struct stat st;
	char *buf;
	ssize_t n;
	int fd = sys_open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return NULL;
	if (sys_fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) ||
	    st.st_size <= 0 || st.st_size >= MAX_FILE) {
		sys_close(fd);
		return NULL;
	}
	buf = (size_t)st.st_size < smallsz ? small : malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		sys_close(fd);
		return NULL;
	}
	n = sys_read(fd, buf, (size_t)st.st_size);
	sys_close(fd);
	if (n != st.st_size) {
		if (buf != small)
			free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/*
 * cut returns the next token of *s, cut off in place, and advances *s past
 * it; runs of c separate as one, as with strtok_r; NULL at the end.
 *
 * cut, u64 and is_i64 stand in for strtok_r and strtoull: every process
 * that loads the stack runs this parser (a service the module does not act
 * for, a user with no rule), and libc's versions are code such a fresh
 * process has not run yet (SSE4.2 strspn/strcspn, locale-aware number
 * parsing). Run cold, they cost 16 to 28 µs, as much as the table read or
 * more (open_session timed in a fresh process per sample).
 */
static char *cut(char **s, char c)
{
	char *p = *s, *tok;

	while (*p == c)
		p++;
	if (*p == '\0') {
		*s = p;
		return NULL;
	}
	tok = p;
	while (*p != '\0' && *p != c)
		p++;
	if (*p != '\0')
		*p++ = '\0';
	*s = p;
	return tok;
}

/* words splits line (modified in place) at spaces into at most max words. */
static int words(char *line, char **w, int max)
{
	char *tok;
	int n = 0;

	while (n < max && (tok = cut(&line, ' ')) != NULL)
		w[n++] = tok;
	return n;
}

/* u64 parses a word of decimal digits, nothing else; 0 on success. */
static int u64(const char *s, uint64_t *v)
{
	uint64_t x = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (d > 9 || x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

/* is_u64, is_i64: is the word exactly this number (Go's strconv format)? */
static int is_u64(const char *s, uint64_t want)
{
	uint64_t v;

	return u64(s, &v) == 0 && v == want;
}

static int is_i64(const char *s, int64_t want)
{
	uint64_t v;

	if (*s == '-')
		return want < 0 && u64(s + 1, &v) == 0 && v == -(uint64_t)want;
	return want >= 0 && u64(s, &v) == 0 && v == (uint64_t)want;
}

/* listed: is s among w[0..n), or is the list "*"? */
static int listed(char **w, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (strcmp(w[i], "*") == 0 || strcmp(w[i], s) == 0)
			return 1;
	return 0;
}

static uint64_t fnv64a(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* table_path: FP_DIR/policy-<fnv64a(policy), 16 hex digits>, as Go's
 * fastpath.PolicyFile names it (by hand: no stdio on this path). */
static void table_path(const char *policy, char *out)
{
	static const char hex[] = "0123456789abcdef";
	static const char prefix[] = FP_DIR "/policy-";
	uint64_t h = fnv64a(policy);
	char *p = out + sizeof prefix - 1;

	memcpy(out, prefix, sizeof prefix - 1);
	for (int i = 15; i >= 0; i--, h >>= 4)
		p[i] = hex[h & 0xf];
	p[16] = '\0';
}

/* The decision, from the policy's table. The strings point into the table
 * (words cut in place), so they live as long as it does: no copies, and a
 * stack frame that stays small on the path every login takes. */
struct decision {
	enum fp_result result;
	const char *mount; /* the cgroup2 mount the Go part found */
	const char *vrf;
	const char *line;  /* the rule's line in the policy */
	const char *kind;  /* "user" or "group" rule, NULL: the default (config.Decision.Rule) */
	const char *name;  /* the rule's user or group */
};

static void decide(const char *policy, char *table, const char *user, const char *service, struct decision *d,
		   int *groups_timed_out)
{
	char *w[64], *rest = table, *line;
	const char *user_vrf = NULL, *user_line = NULL, *def_vrf = NULL, *def_line = NULL;
	/* group rules for this service, in policy order (config.Policy.Decide) */
	const char *gname[NSS_MAX_GROUPS], *gvrf[NSS_MAX_GROUPS], *gline[NSS_MAX_GROUPS];
	unsigned char member[NSS_MAX_GROUPS] = { 0 };
	long timeout_ms = -1;
	struct stat st;
	int n, ng = 0, have_policy = 0, have_services = 0, acts = 0, have_user = 0, have_default = 0;

	d->result = FP_HANDOVER;
	d->mount = d->vrf = d->line = d->kind = d->name = NULL;
	line = cut(&rest, '\n');
	if (line == NULL || strcmp(line, MAGIC) != 0)
		return;
	/* The identity the Go part recorded is that of the opened file
	 * (symlinks followed), as stat() reports it. */
	if (sys_stat(policy, &st) != 0)
		return;
	while ((line = cut(&rest, '\n')) != NULL) {
		n = words(line, w, 64);
		if (n == 64)
			return; /* a line longer than we read: the Go part decides */
		if (n == 6 && strcmp(w[0], "policy") == 0) {
			if (!is_u64(w[1], (uint64_t)st.st_dev) || !is_u64(w[2], (uint64_t)st.st_ino) ||
			    !is_i64(w[3], (int64_t)st.st_size) ||
			    !is_i64(w[4], (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec) ||
			    !is_i64(w[5], (int64_t)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec))
				return;
			have_policy = 1;
		} else if (n == 2 && strcmp(w[0], "cgroup2") == 0) {
			d->mount = w[1];
		} else if (n >= 2 && strcmp(w[0], "services") == 0) {
			have_services = 1;
			acts = listed(w + 1, n - 1, service);
		} else if (n == 2 && strcmp(w[0], "nss-timeout") == 0) {
			uint64_t ms;

			/* above config.MaxNSSTimeout (60 s): the Go part decides */
			timeout_ms = u64(w[1], &ms) == 0 && ms <= 60000 ? (long)ms : -1;
		} else if (n == 3 && strcmp(w[0], "default") == 0) {
			have_default = strcmp(w[1], "-") != 0;
			def_vrf = w[1];
			def_line = w[2];
		} else if (n >= 5 && strcmp(w[0], "user") == 0 && strcmp(w[1], user) == 0 &&
			   listed(w + 4, n - 4, service)) {
			have_user = 1;
			user_vrf = w[2];
			user_line = w[3];
		} else if (n >= 5 && strcmp(w[0], "group") == 0 && listed(w + 4, n - 4, service)) {
			if (ng == NSS_MAX_GROUPS)
				return; /* more group rules than we ask for at once */
			gname[ng] = w[1];
			gvrf[ng] = w[2];
			gline[ng] = w[3];
			ng++;
		}
	}
	if (!have_policy || !have_services || timeout_ms <= 0)
		return;
	/* config.Policy.ActsFor, then Decide: user rule, group rules, default. */
	if (!acts) {
		d->result = FP_IGNORE;
		return;
	}
	if (have_user) {
		d->kind = "user";
		d->name = user;
		d->vrf = user_vrf;
		d->line = user_line;
	} else if (ng > 0) {
		/* NSS, bounded; a failure or a timeout is the Go part's to report
		 * (config.GroupError and the failure rule). */
		int rc = nss_members(user, gname, ng, member, timeout_ms);
		if (rc != 0) {
			*groups_timed_out = rc == -2;
			return;
		}
		for (int i = 0; i < ng && d->kind == NULL; i++)
			if (member[i]) {
				d->kind = "group";
				d->name = gname[i];
				d->vrf = gvrf[i];
				d->line = gline[i];
			}
	}
	if (d->kind == NULL) {
		if (!have_default) {
			d->result = FP_IGNORE;
			return;
		}
		d->vrf = def_vrf;
		d->line = def_line;
	}
	if (strcmp(d->vrf, "-") == 0) {
		d->result = FP_IGNORE; /* a rule with vrf = "": leave the session where it is */
		return;
	}
	d->result = FP_PLACED;
	if (strcmp(d->vrf, "default") == 0 || d->mount == NULL || d->mount[0] != '/')
		d->result = FP_HANDOVER;
}

/* ---- placement: placement.Enter, in C ---- */

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

/*
 * vrf_index resolves name in this thread's network namespace with one
 * RTM_GETLINK and returns its ifindex if it is a VRF (any device in the
 * host-test build, as the Go part's pamvrf_anydevice build), else 0.
 */
static unsigned vrf_index(const char *name)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
		char attrs[64];
	} req;
	char buf[16384];
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct rtattr *rta;
	unsigned ifindex = 0;
	int is_vrf = 0, len, fd;
	size_t nlen = strlen(name) + 1;

	if (nlen > IFNAMSIZ)
		return 0;
	memset(&req, 0, sizeof req);
	req.nh.nlmsg_type = RTM_GETLINK;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof req.ifi);
	req.ifi.ifi_family = AF_UNSPEC;
	rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.nh.nlmsg_len));
	rta->rta_type = IFLA_IFNAME;
	rta->rta_len = RTA_LENGTH(nlen);
	memcpy(RTA_DATA(rta), name, nlen);
	req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
	rta = (struct rtattr *)((char *)&req + req.nh.nlmsg_len);
	rta->rta_type = IFLA_EXT_MASK;
	rta->rta_len = RTA_LENGTH(sizeof(uint32_t));
	*(uint32_t *)RTA_DATA(rta) = RTEXT_FILTER_SKIP_STATS;
	req.nh.nlmsg_len += RTA_ALIGN(rta->rta_len);

	fd = sys_socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return 0;
	if (sys_sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    (len = (int)sys_recv(fd, buf, sizeof buf, 0)) < 0) {
		sys_close(fd);
		return 0;
	}
	sys_close(fd);
	for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (unsigned)len); nh = NLMSG_NEXT(nh, len)) {
		struct ifinfomsg *ifi;
		int alen;

		if (nh->nlmsg_type != RTM_NEWLINK)
			return 0; /* NLMSG_ERROR: ENODEV and the like, for Go to report */
		ifi = NLMSG_DATA(nh);
		alen = (int)IFLA_PAYLOAD(nh);
		for (rta = IFLA_RTA(ifi); RTA_OK(rta, alen); rta = RTA_NEXT(rta, alen)) {
			if (rta->rta_type != IFLA_LINKINFO)
				continue;
			int ilen = (int)RTA_PAYLOAD(rta);
			for (struct rtattr *i = RTA_DATA(rta); RTA_OK(i, ilen); i = RTA_NEXT(i, ilen))
				if (i->rta_type == IFLA_INFO_KIND && RTA_PAYLOAD(i) >= 4 &&
				    strncmp(RTA_DATA(i), "vrf", RTA_PAYLOAD(i)) == 0)
					is_vrf = 1;
		}
		ifindex = (unsigned)ifi->ifi_index;
		break;
	}
#ifdef PAMVRF_ANYDEVICE
	is_vrf = 1;
#endif
	return is_vrf ? ifindex : 0;
}

/* netns_name: the name under /var/run/netns of this thread's network
 * namespace ("" for none), iproute2's netns_identify_pid. */
static void netns_name(char *out, size_t len)
{
	struct stat self, st;
	struct dirent *e;
	DIR *d;

	out[0] = '\0';
	if (sys_stat("/proc/thread-self/ns/net", &self) != 0)
		return;
	d = opendir("/var/run/netns");
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char p[300];

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "/var/run/netns/%s", e->d_name);
		if (sys_stat(p, &st) == 0 && st.st_dev == self.st_dev && st.st_ino == self.st_ino) {
			snprintf(out, len, "%s", e->d_name);
			break;
		}
	}
	closedir(d);
}

/* prog_info fills info for the program fd refers to; 0 on success. */
static int prog_info(int fd, struct bpf_prog_info *info)
{
	union bpf_attr attr;

	memset(info, 0, sizeof *info);
	memset(&attr, 0, sizeof attr);
	attr.info.bpf_fd = (uint32_t)fd;
	attr.info.info_len = sizeof *info;
	attr.info.info = (uint64_t)(uintptr_t)info;
	return (int)sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr);
}

/*
 * program returns an fd of our program for ifindex: the pin (bpf.PinPath),
 * else a fresh load, which it pins. The pin directory is root's and 0700
 * in a bpffs, so a pin there was made by pam_vrf (Go or C) for that ifindex;
 * type and name are checked all the same.
 */
static int program(unsigned ifindex, uint32_t *id)
{
	struct bpf_insn insns[] = {
		/* bpf.Instructions: r2 = ifindex; *(u32 *)(r1 + 0) = r2; r0 = 1; exit */
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_2, .imm = (int32_t)ifindex },
		{ .code = BPF_STX | BPF_MEM | BPF_W, .dst_reg = BPF_REG_1, .src_reg = BPF_REG_2, .off = 0 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	char path[128];
	struct bpf_prog_info info;
	union bpf_attr attr;
	struct stat st;
	struct statfs sfs;
	int fd, have_dir;

	snprintf(path, sizeof path, FP_PIN_DIR "/sock-%u", ifindex);
	/* bpffs' root is world-writable: only a directory of root's counts. */
	have_dir = sys_lstat(FP_PIN_DIR, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0 && !(st.st_mode & 022);
	if (have_dir) {
		memset(&attr, 0, sizeof attr);
		attr.pathname = (uint64_t)(uintptr_t)path;
		fd = (int)sys_bpf(BPF_OBJ_GET, &attr);
		if (fd >= 0) {
			if (prog_info(fd, &info) == 0 && info.type == BPF_PROG_TYPE_CGROUP_SOCK &&
			    strncmp(info.name, PROG_NAME, sizeof info.name) == 0) {
				*id = info.id;
				return fd;
			}
			sys_close(fd);
			return -1; /* something else sits there: Go sorts it out */
		}
	}
	memset(&attr, 0, sizeof attr);
	attr.prog_type = BPF_PROG_TYPE_CGROUP_SOCK;
	attr.expected_attach_type = BPF_CGROUP_INET_SOCK_CREATE;
	attr.insns = (uint64_t)(uintptr_t)insns;
	attr.insn_cnt = sizeof insns / sizeof *insns;
	attr.license = (uint64_t)(uintptr_t)"GPL";
	snprintf(attr.prog_name, sizeof attr.prog_name, "%s", PROG_NAME);
	fd = (int)sys_bpf(BPF_PROG_LOAD, &attr);
	if (fd < 0)
		return -1;
	if (!have_dir && sys_statfs(FP_BPFFS, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC && sys_mkdir(FP_PIN_DIR, 0700) == 0)
		have_dir = 1;
	if (have_dir) {
		memset(&attr, 0, sizeof attr);
		attr.pathname = (uint64_t)(uintptr_t)path;
		attr.bpf_fd = (uint32_t)fd;
		if (sys_bpf(BPF_OBJ_PIN, &attr) != 0 && errno == EEXIST) {
			/* A concurrent first login pinned its copy: use that one,
			 * so that one program serves every session of the VRF. */
			memset(&attr, 0, sizeof attr);
			attr.pathname = (uint64_t)(uintptr_t)path;
			int won = (int)sys_bpf(BPF_OBJ_GET, &attr);
			if (won >= 0) {
				sys_close(fd);
				fd = won;
			}
		}
	}
	if (prog_info(fd, &info) != 0) {
		sys_close(fd);
		return -1;
	}
	*id = info.id;
	return fd;
}

/* proc_cgroup reads this process's cgroup2 path; refuses ".." (another
 * cgroup namespace), as the Go side does. Plain read(2) into the stack: no
 * stdio buffer to allocate on the login path. */
static int proc_cgroup(char *buf, size_t len)
{
	char data[4096], *line, *rest = data;
	ssize_t n;
	int fd = sys_open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = sys_read(fd, data, sizeof data - 1);
	sys_close(fd);
	if (n <= 0 || n == (ssize_t)sizeof data - 1)
		return -1; /* a v1 hierarchy list this long: the Go part reads it */
	data[n] = '\0';
	while ((line = cut(&rest, '\n')) != NULL) {
		if (strncmp(line, "0::/", 4) != 0)
			continue;
		if (strstr(line, "/..") != NULL || strstr(line, "/./") != NULL || strlen(line + 3) >= len)
			return -1;
		snprintf(buf, len, "%s", line + 3);
		return 0;
	}
	return -1;
}

/* step opens (and with create, first makes) name below fd, and checks it is
 * root's and not delegated; fd is closed. */
static int step(int fd, const char *name, int create)
{
	struct stat st;
	char v[8];
	int nfd;

	/* Open first: on every login but a VRF's first the level exists. */
	nfd = sys_openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	if (nfd < 0 && errno == ENOENT && create) {
		if (sys_mkdirat(fd, name, 0755) != 0 && errno != EEXIST) {
			sys_close(fd);
			return -1;
		}
		nfd = sys_openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	}
	sys_close(fd);
	if (nfd < 0)
		return -1;
	/* user.delegate marks only user-owned cgroups, refused above. */
	if (sys_fstat(nfd, &st) != 0 || st.st_uid != 0 ||
	    (sys_fgetxattr(nfd, "trusted.delegate", v, sizeof v) > 0 && v[0] == '1'))
		goto bad;
	return nfd;
bad:
	sys_close(nfd);
	return -1;
}

/* place puts this process into VRF vrf below cgroup2 mount mnt, as
 * placement.Enter does; 0 = done (dir: the cgroup directory). */
static int place(const char *vrf, const char *mnt, char *dir, size_t dirlen, unsigned *ifindex_out)
{
	char cg[PATH_MAX], base[PATH_MAX], walk[PATH_MAX], ns[256], level[300], want[PATH_MAX + 400], *p;
	struct statfs sfs;
	union bpf_attr attr;
	uint32_t ids[2], prog_id = 0;
	unsigned ifindex;
	int fd = -1, prog = -1, rc = -1, n;

	ifindex = vrf_index(vrf);
	if (ifindex == 0)
		return -1;
	prog = program(ifindex, &prog_id);
	if (prog < 0)
		return -1;
	trace(); /* device checked, program found */

	/* iproute2's path: <mount><cgroup cut at "/vrf">[/<netns>-ns]/vrf/<vrf> */
	if (proc_cgroup(cg, sizeof cg) != 0)
		goto out;
	snprintf(base, sizeof base, "%s", cg);
	if ((p = strstr(base, "/vrf")) != NULL)
		*p = '\0';
	netns_name(ns, sizeof ns);
	level[0] = '\0';
	if (ns[0] != '\0') {
		snprintf(level, sizeof level, "%s-ns", ns);
		p = strrchr(base, '/');
		if (p != NULL && strcmp(p + 1, level) == 0)
			*p = '\0';
	}
	if (snprintf(want, sizeof want, "%s%s%s/vrf/%s", strcmp(base, "/") == 0 ? "" : base,
		     level[0] ? "/" : "", level, vrf) >= (int)sizeof want)
		goto out;
	fd = sys_open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || sys_fstatfs(fd, &sfs) != 0 || sfs.f_type != CGROUP2_SUPER_MAGIC)
		goto out;
	snprintf(walk, sizeof walk, "%s", base);
	for (char *rest = walk, *c = cut(&rest, '/'); c != NULL; c = cut(&rest, '/'))
		if ((fd = step(fd, c, 0)) < 0)
			goto out;
	if (level[0] != '\0' && (fd = step(fd, level, 1)) < 0)
		goto out;
	if ((fd = step(fd, "vrf", 1)) < 0 || (fd = step(fd, vrf, 1)) < 0)
		goto out;
	trace(); /* cgroup read, walked, made */

	/* The hook, as bpf.Ensure sees it. */
	memset(&attr, 0, sizeof attr);
	attr.query.target_fd = (uint32_t)fd;
	attr.query.attach_type = BPF_CGROUP_INET_SOCK_CREATE;
	attr.query.prog_ids = (uint64_t)(uintptr_t)ids;
	attr.query.prog_cnt = 2;
	if (sys_bpf(BPF_PROG_QUERY, &attr) != 0 || (attr.query.prog_cnt > 0 && attr.query.attach_flags != 0))
		goto out; /* multi/override/link attachments: bpf.ErrConflict, from Go */
	if (!(attr.query.prog_cnt == 1 && ids[0] == prog_id)) {
		/* empty, or one flags-0 program for another ifindex or iproute2's:
		 * attaching with flags 0 replaces it, as bpf.Ensure does. */
		memset(&attr, 0, sizeof attr);
		attr.target_fd = (uint32_t)fd;
		attr.attach_bpf_fd = (uint32_t)prog;
		attr.attach_type = BPF_CGROUP_INET_SOCK_CREATE;
		if (sys_bpf(BPF_PROG_ATTACH, &attr) != 0)
			goto out;
	}
	trace(); /* attached */

	/* Move through the same directory, then verify as `ip vrf identify`
	 * would see it. */
	if (strcmp(cg, want) != 0) {
		char pid[24];
		int procs = sys_openat(fd, "cgroup.procs", O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0);

		if (procs < 0)
			goto out;
		n = snprintf(pid, sizeof pid, "%d", sys_getpid());
		if (sys_write(procs, pid, (size_t)n) != n) {
			sys_close(procs);
			goto out;
		}
		sys_close(procs);
		trace(); /* moved */
		if (proc_cgroup(cg, sizeof cg) != 0 || strcmp(cg, want) != 0)
			goto out;
	} else {
		trace();
	}
	trace(); /* verified */
	if (snprintf(dir, dirlen, "%s%s", mnt, want) >= (int)dirlen)
		goto out;
	*ifindex_out = ifindex;
	rc = 0;
out:
	if (fd >= 0)
		sys_close(fd);
	sys_close(prog);
	return rc;
}

static PAMVRF_APART enum fp_result place_logged(pam_handle_t *pamh, const char *user, const char *policy,
						const struct decision *d);

enum fp_result pamvrf_fastpath(pam_handle_t *pamh, const char *user, const char *service, int argc,
			       const char **argv, int *groups_timed_out)
{
	const char *policy = DEFAULT_POLICY;
	char path[sizeof FP_DIR "/policy-" + 16], small[4096], *table;
	struct decision d;

#ifdef PAMVRF_TRACE
	trace_n = 0;
#endif
	trace(); /* start */
	if (user[0] == '\0')
		return FP_HANDOVER;
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "config=", 7) == 0 && argv[i][7] == '/')
			policy = argv[i] + 7;
		else if (strcmp(argv[i], "on_error=allow") != 0 && strcmp(argv[i], "on_error=deny") != 0)
			return FP_HANDOVER;
	}
	table_path(policy, path);
	table = read_trusted(path, small, sizeof small);
	if (table == NULL)
		return FP_HANDOVER;
	decide(policy, table, user, service, &d, groups_timed_out);
	trace(); /* decided */
	if (d.result == FP_PLACED)
		d.result = place_logged(pamh, user, policy, &d);
	if (table != small)
		free(table);
	return d.result;
}

/*
 * place_logged places the session as decided and logs it as the Go part
 * does. Out of line: its buffers are on the stack only of logins placed.
 */
static __attribute__((noinline)) PAMVRF_APART enum fp_result place_logged(pam_handle_t *pamh, const char *user,
							     const char *policy, const struct decision *d)
{
	char dir[2 * PATH_MAX];
	unsigned ifindex = 0;

	if (place(d->vrf, d->mount, dir, sizeof dir, &ifindex) != 0)
		return FP_HANDOVER;
	if (d->kind != NULL)
		pam_syslog(pamh, LOG_INFO, "user \"%s\" placed in VRF \"%s\" (%s \"%s\" (%s:%s), ifindex %u, cgroup %s)",
			   user, d->vrf, d->kind, d->name, policy, d->line, ifindex, dir);
	else
		pam_syslog(pamh, LOG_INFO, "user \"%s\" placed in VRF \"%s\" (default (%s:%s), ifindex %u, cgroup %s)",
			   user, d->vrf, policy, d->line, ifindex, dir);
#ifdef PAMVRF_TRACE
	if (trace_n == 7)
		pam_syslog(pamh, LOG_DEBUG, "trace_us: decide=%.1f device+program=%.1f mkdir=%.1f attach=%.1f move=%.1f verify=%.1f",
			   trace_t[1] - trace_t[0], trace_t[2] - trace_t[1], trace_t[3] - trace_t[2],
			   trace_t[4] - trace_t[3], trace_t[5] - trace_t[4], trace_t[6] - trace_t[5]);
#endif
	return FP_PLACED;
}
