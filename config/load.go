package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// maxSymlinks is the kernel's limit (MAXSYMLINKS) on symlinks in one lookup.
const maxSymlinks = 40

// Load reads and parses the policy at path. The policy decides where root
// logins go, so Load first refuses a file that anyone but root could have
// written (as sshd's StrictModes does):
//
//   - the file must be a regular file owned by root and not group- or
//     world-writable, as seen by fstat on the opened descriptor (so the
//     checked file is the file read);
//   - every directory on the way to it, following symlinks one component at
//     a time, must be owned by root and not group- or world-writable, except
//     that a root-owned directory with the sticky bit (like /tmp) is
//     accepted: there only root can rename or remove the root-owned entries
//     this check insists on;
//   - every symlink on the way must be owned by root (in a sticky directory
//     its owner could replace it) and resolve within 40 hops.
//
// A missing file (ENOENT on path) is "no policy": &Policy{Path: path}, nil.
// A dangling symlink is an error, not "no policy": someone meant a policy.
func Load(path string) (*Policy, error) {
	f, st, err := openPolicy(path)
	if err != nil {
		return nil, err
	}
	if f == nil {
		return &Policy{Path: path}, nil
	}
	defer f.Close()
	data, err := readPolicy(path, f)
	if err != nil {
		return nil, err
	}
	pol, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	pol.File = idOf(st)
	return pol, nil
}

// openPolicy opens path after the checks described at Load. It returns a nil
// file and nil error if path does not exist.
func openPolicy(path string) (*os.File, *syscall.Stat_t, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, refuse(path, err, "%v", err)
	}
	resolved, err := resolve(path, abs)
	if err != nil {
		return nil, nil, err
	}
	// O_NOFOLLOW: real has no symlinks left, so one appearing now is a
	// race worth failing on. O_NONBLOCK: a FIFO must not hang the login.
	f, err := os.OpenFile(resolved, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, refuse(path, err, "%v", err)
	}
	var st *syscall.Stat_t
	fi, err := f.Stat() // fstat: the descriptor we will read from
	if err != nil {
		err = refuse(path, err, "%v", err)
	} else {
		st = fi.Sys().(*syscall.Stat_t)
		err = checkFile(path, abs, resolved, st)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// refuse builds the error for a policy Load will not read.
func refuse(path string, err error, format string, args ...any) *Error {
	return &Error{Path: path, Msg: "refusing policy: " + fmt.Sprintf(format, args...), Err: err}
}

// checkFile checks the opened policy file; resolved is its symlink-free
// path, abs the absolute path it was asked for.
func checkFile(path, abs, resolved string, st *syscall.Stat_t) error {
	what := ""
	if resolved != abs {
		what = "symlink target " + resolved + ": "
	}
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return refuse(path, nil, "%snot a regular file (%s)", what, fileType(st.Mode))
	case st.Uid != 0:
		return refuse(path, nil, "%sowned by uid %d, not root (fix: chown root %s)", what, st.Uid, resolved)
	case st.Mode&0o022 != 0:
		perm := st.Mode & 0o7777
		return refuse(path, nil, "%smode %04o is group/world-writable (fix: chmod %04o %s)", what, perm, perm&^0o022, resolved)
	case st.Size > MaxFileSize:
		return refuse(path, nil, "%s%d bytes, more than the limit of %d", what, st.Size, MaxFileSize)
	}
	return nil
}

func fileType(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return "a directory"
	case syscall.S_IFIFO:
		return "a FIFO"
	case syscall.S_IFSOCK:
		return "a socket"
	case syscall.S_IFCHR:
		return "a character device"
	case syscall.S_IFBLK:
		return "a block device"
	case syscall.S_IFLNK:
		return "a symlink"
	}
	return fmt.Sprintf("type %#o", mode&syscall.S_IFMT)
}

// resolve walks abs from "/" the way the kernel does, checking every
// directory it enters and every symlink it follows, and returns the
// symlink-free path of the last component (which it does not check: the
// caller checks the opened file). filepath.EvalSymlinks would give the same
// path but hide the directories that held intermediate symlinks, and those
// decide where the symlinks point.
func resolve(path, abs string) (string, error) {
	cur := "/"
	if err := checkDir(path, cur); err != nil {
		return "", err
	}
	rest := strings.Split(abs, "/")
	for hops := 0; len(rest) > 0; {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur is symlink-free, so this is the kernel's ".."
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", refuse(path, err, "%v", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&fs.ModeSymlink != 0 {
			if hops++; hops > maxSymlinks {
				return "", refuse(path, syscall.ELOOP, "more than %d symlinks", maxSymlinks)
			}
			if st.Uid != 0 {
				return "", refuse(path, nil, "symlink %s is owned by uid %d, not root (fix: chown -h root %s)", next, st.Uid, next)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", refuse(path, err, "%v", err)
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(strings.Split(target, "/"), rest...)
			continue
		}
		if onlyDots(rest) {
			// The last component; the caller checks it once opened.
			return next, nil
		}
		if !fi.IsDir() {
			return "", refuse(path, syscall.ENOTDIR, "%s is not a directory", next)
		}
		if err := checkDir(path, next); err != nil {
			return "", err
		}
		cur = next
	}
	return cur, nil
}

func onlyDots(parts []string) bool {
	for _, p := range parts {
		if p != "" && p != "." {
			return false
		}
	}
	return true
}

// checkDir refuses a directory that a non-root user could change entries of.
func checkDir(path, dir string) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return refuse(path, err, "%s: %v", dir, err)
	}
	switch {
	case st.Uid != 0:
		return refuse(path, nil, "directory %s is owned by uid %d, not root (fix: chown root %s)", dir, st.Uid, dir)
	case st.Mode&0o022 != 0 && st.Mode&syscall.S_ISVTX == 0:
		return refuse(path, nil, "directory %s: mode %04o is group/world-writable (fix: chmod go-w %s)", dir, st.Mode&0o7777, dir)
	}
	return nil
}

// readPolicy reads the opened policy, at most MaxFileSize bytes.
func readPolicy(path string, f *os.File) ([]byte, error) {
	// The file may grow after fstat; the limit applies to what is read.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &Error{Path: path, Msg: "read: " + err.Error(), Err: err}
	}
	if len(data) > MaxFileSize {
		return nil, refuse(path, nil, "more than the limit of %d bytes", MaxFileSize)
	}
	return data, nil
}
