//go:build cgo

package nss

/*
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/types.h>

static int pamvrf_getgrouplist(const char *user, gid_t group, gid_t *groups, int *ngroups)
{
	return getgrouplist(user, group, groups, ngroups);
}
*/
import "C"

import (
	"fmt"
	"syscall"
	"unsafe"
)

// maxGroups is NGROUPS_MAX on Linux; getgrouplist reports the count it needs.
const maxGroups = 65536

// notFound reports whether a get*_r return code means "no such entry"
// (getpwnam_r(3): 0, ENOENT, ESRCH, EBADF or EPERM with a NULL result).
func notFound(rc C.int) bool {
	switch syscall.Errno(rc) {
	case 0, syscall.ENOENT, syscall.ESRCH, syscall.EBADF, syscall.EPERM:
		return true
	}
	return false
}

func userGIDs(user string) ([]uint32, error) {
	cu := C.CString(user)
	defer C.free(unsafe.Pointer(cu))

	var pw C.struct_passwd
	var res *C.struct_passwd
	buf := make([]byte, 1024)
	for {
		rc := C.getpwnam_r(cu, &pw, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &res)
		if rc == C.ERANGE && len(buf) < 1<<20 {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if res == nil {
			if notFound(rc) {
				return nil, fmt.Errorf("look up user %q: %w", user, ErrNoUser)
			}
			return nil, fmt.Errorf("look up user %q: %w", user, syscall.Errno(rc))
		}
		break
	}
	primary := pw.pw_gid

	n := C.int(64)
	for {
		groups := make([]C.gid_t, n)
		got := n
		if C.pamvrf_getgrouplist(cu, primary, &groups[0], &got) >= 0 {
			out := make([]uint32, got)
			for i := range out {
				out[i] = uint32(groups[i])
			}
			return out, nil
		}
		// -1: got now holds the number needed (glibc); grow and retry.
		if got <= n {
			got = 2 * n
		}
		if got > maxGroups {
			return nil, fmt.Errorf("groups of %q: more than %d", user, maxGroups)
		}
		n = got
	}
}

func groupGID(name string) (uint32, bool, error) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var gr C.struct_group
	var res *C.struct_group
	buf := make([]byte, 1024)
	for {
		rc := C.getgrnam_r(cn, &gr, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &res)
		if rc == C.ERANGE && len(buf) < 16<<20 {
			// Large groups list every member in the entry.
			buf = make([]byte, 4*len(buf))
			continue
		}
		if res == nil {
			if notFound(rc) {
				return 0, false, nil
			}
			return 0, false, fmt.Errorf("look up group %q: %w", name, syscall.Errno(rc))
		}
		return uint32(gr.gr_gid), true, nil
	}
}
