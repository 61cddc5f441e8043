/*
 * System calls of pam_vrf.so, made through libc's syscall() instead of one
 * libc wrapper each.
 *
 * libpam loads modules with dlopen(RTLD_NOW): every function the module
 * imports is looked up through every library of the host process when the
 * stack is loaded, in every process that loads it (sshd's pre-auth monitor
 * for each connection, logins the module then leaves alone). Each import
 * cost about 0.6 µs of pam_start in a fresh process here (pam_start timed
 * per sample; a test library with 66 imports against one with 4). One syscall()
 * import replaces seventeen.
 *
 * Same arguments, return values and errno as the libc functions, but not
 * cancellation points. The stat family passes libc's struct stat and
 * struct statfs to the kernel as they are: that is right only where libc's
 * layout is the kernel's, so other architectures keep libc's wrappers.
 */
#ifndef PAM_VRF_SYS_H
#define PAM_VRF_SYS_H

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

static inline int sys_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

static inline int sys_open(const char *path, int flags)
{
	return sys_openat(AT_FDCWD, path, flags, 0);
}

static inline int sys_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

static inline ssize_t sys_read(int fd, void *buf, size_t n)
{
	return syscall(SYS_read, fd, buf, n);
}

static inline ssize_t sys_write(int fd, const void *buf, size_t n)
{
	return syscall(SYS_write, fd, buf, n);
}

static inline int sys_mkdirat(int dirfd, const char *path, mode_t mode)
{
	return (int)syscall(SYS_mkdirat, dirfd, path, mode);
}

static inline int sys_mkdir(const char *path, mode_t mode)
{
	return sys_mkdirat(AT_FDCWD, path, mode);
}

static inline ssize_t sys_fgetxattr(int fd, const char *name, void *value, size_t size)
{
	return syscall(SYS_fgetxattr, fd, name, value, size);
}

static inline int sys_socket(int domain, int type, int protocol)
{
	return (int)syscall(SYS_socket, domain, type, protocol);
}

static inline ssize_t sys_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to,
				 socklen_t tolen)
{
	return syscall(SYS_sendto, fd, buf, n, flags, to, tolen);
}

static inline ssize_t sys_recv(int fd, void *buf, size_t n, int flags)
{
	return syscall(SYS_recvfrom, fd, buf, n, flags, (struct sockaddr *)0, (socklen_t *)0);
}

static inline pid_t sys_getpid(void)
{
	return (pid_t)syscall(SYS_getpid);
}

#if defined(__x86_64__) || defined(__aarch64__)
static inline int sys_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	return (int)syscall(SYS_newfstatat, dirfd, path, st, flags);
}

static inline int sys_fstat(int fd, struct stat *st)
{
	return (int)syscall(SYS_fstat, fd, st);
}

static inline int sys_statfs(const char *path, struct statfs *st)
{
	return (int)syscall(SYS_statfs, path, st);
}

static inline int sys_fstatfs(int fd, struct statfs *st)
{
	return (int)syscall(SYS_fstatfs, fd, st);
}
#else
static inline int sys_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	return fstatat(dirfd, path, st, flags);
}

static inline int sys_fstat(int fd, struct stat *st)
{
	return fstat(fd, st);
}

static inline int sys_statfs(const char *path, struct statfs *st)
{
	return statfs(path, st);
}

static inline int sys_fstatfs(int fd, struct statfs *st)
{
	return fstatfs(fd, st);
}
#endif

static inline int sys_stat(const char *path, struct stat *st)
{
	return sys_fstatat(AT_FDCWD, path, st, 0);
}

static inline int sys_lstat(const char *path, struct stat *st)
{
	return sys_fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW);
}

#endif
