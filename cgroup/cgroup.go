// Package cgroup finds the cgroup v2 hierarchy, reads a process's v2 path,
// computes the per-VRF cgroup directory exactly the way iproute2's
// `ip vrf exec` does (ip/ipvrf.c: vrf_path() and vrf_switch()), and moves a
// process into it.
//
// Layout compatibility is the point of this package: `ip vrf identify`,
// `ip vrf pids` and a later `ip vrf exec` in the same session must see our
// placement as if iproute2 had made it, so the directory is
//
//	<cgroup2 mount><caller's v2 path cut at the first "/vrf">[/<netns>-ns]/vrf/<name>
//
// Differences from iproute2, on purpose:
//   - The mount comes from /proc/self/mountinfo (iproute2 reads /proc/mounts;
//     both list mounts in the same order, mountinfo has an unambiguous
//     escaping scheme). When there is no cgroup2 mount iproute2 mounts one at
//     /var/run/cgroup2; we return ErrNoCgroup2 instead: a PAM module must not
//     mount file systems inside sshd.
//   - VRFDir returns a cleaned path (iproute2 can produce "//" around the
//     netns level); the kernel resolves both to the same cgroup.
//
// Nothing here starts goroutines or processes: the code runs inside sshd.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNoCgroup2 means no cgroup v2 hierarchy is mounted (or a process has no
// v2 membership line), so VRF placement by cgroup is impossible.
var ErrNoCgroup2 = errors.New("no cgroup2 hierarchy mounted")

// ErrOutside: a process's cgroup path is not below the cgroup2 mount as this
// process sees it (another cgroup namespace, "..").
var ErrOutside = errors.New("cgroup outside the mounted hierarchy")

// ErrUnsafe: a cgroup on the way to the VRF cgroup is not root's: owned by
// another user, or delegated (systemd's Delegate=, marked by the
// trusted.delegate or user.delegate xattr). Its owner could move a placed
// process out, pre-create the VRF cgroup with limits, or swap directories.
var ErrUnsafe = errors.New("cgroup not owned by root or delegated")

// Mount returns the mount point of the first cgroup2 file system listed in
// /proc/self/mountinfo, e.g. "/sys/fs/cgroup" (unified) or
// "/sys/fs/cgroup/unified" (systemd hybrid layout). iproute2 picks the
// first one as well.
func Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	defer f.Close()
	return parseMountinfo(f)
}

// parseMountinfo returns the mount point of the first cgroup2 entry.
// Format (proc(5)): "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS".
func parseMountinfo(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		// The optional fields end at the lone "-" separator; the file
		// system type follows it. Start after field 6 so a mount point
		// can never be mistaken for the separator.
		for i := 6; i < len(fields)-1; i++ {
			if fields[i] != "-" {
				continue
			}
			if fields[i+1] == "cgroup2" {
				return unescapeOctal(fields[4]), nil
			}
			break
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	return "", fmt.Errorf("find cgroup2 mount in /proc/self/mountinfo: %w", ErrNoCgroup2)
}

// unescapeOctal undoes the kernel's show_path() escaping in mountinfo:
// space, tab, newline and backslash are written as \040 \011 \012 \134.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			v := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// ProcPath returns the cgroup v2 path of pid: the text after "0::" in
// /proc/PID/cgroup, e.g. "/user.slice/user-1000.slice/session-3.scope".
// The path is relative to the cgroup2 mount (of the reader's cgroup
// namespace).
func ProcPath(pid int) (string, error) {
	p := "/proc/" + strconv.Itoa(pid) + "/cgroup"
	data, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read cgroup of pid %d: %w", pid, err)
	}
	v, err := parseProcCgroup(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return v, nil
}

func parseProcCgroup(data []byte) (string, error) {
	for line := range bytes.Lines(data) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		if rest, ok := bytes.CutPrefix(line, []byte("0::")); ok {
			if len(rest) == 0 || rest[0] != '/' {
				return "", fmt.Errorf("malformed cgroup2 line %q", line)
			}
			// A process outside the reader's cgroup namespace shows as
			// "/../…": joined to the mount, that path leaves cgroupfs.
			if p := string(rest); p != "/" && (path.Clean(p) != p || slices.Contains(strings.Split(p, "/"), "..")) {
				return "", fmt.Errorf("cgroup2 path %q is not below this cgroup namespace's root: %w", p, ErrOutside)
			}
			return string(rest), nil
		}
	}
	return "", fmt.Errorf("no \"0::\" (cgroup2) line: %w", ErrNoCgroup2)
}

// VRFDir returns the cgroup directory `ip vrf exec <vrf>` would use for a
// process whose v2 path is procPath, in a network namespace without a
// name. See VRFDirNS.
func VRFDir(mount, procPath, vrf string) string {
	return VRFDirNS(mount, procPath, "", vrf)
}

// VRFDirNS is iproute2's vrf_switch() path: mount + base + ["/" + netns +
// "-ns"] + "/vrf/" + vrf, where base is procPath cut at the FIRST occurrence
// of "/vrf" (C strstr) and "/" becomes "". netns is the name of the
// caller's network namespace under /var/run/netns ("" for none, see
// NetnsName); a base already ending in "<netns>-ns" is not extended twice.
//
// The strstr cut is a quirk kept on purpose for compatibility: it does not
// stop at a path component, so "/system.slice/vrfd.service" becomes "" and
// a process there lands in <mount>/vrf/<name>, exactly where `ip vrf exec`
// would put it. Callers must validate vrf (no "/", not "." or "..").
func VRFDirNS(mount, procPath, netns, vrf string) string {
	base, levels := VRFLevels(procPath, netns, vrf)
	return path.Join(append([]string{mount, base}, levels...)...)
}

// NetnsRunDir is where `ip netns add` binds named network namespaces
// (iproute2's NETNS_RUN_DIR).
const NetnsRunDir = "/var/run/netns"

// NetnsName returns the name under /var/run/netns of the network namespace
// the calling thread is in, or "" when it has none or the directory does
// not exist (iproute2's netns_identify_pid(): first entry whose
// st_dev/st_ino match). It looks at /proc/thread-self, not /proc/self,
// because netlink resolves devices in the calling thread's namespace.
func NetnsName() (string, error) {
	return netnsName(NetnsRunDir)
}

func netnsName(runDir string) (string, error) {
	var self unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &self); err != nil {
		if err2 := unix.Stat("/proc/self/ns/net", &self); err2 != nil {
			return "", fmt.Errorf("stat own network namespace: %w", err)
		}
	}
	entries, err := os.ReadDir(runDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil // no named namespaces at all
		}
		return "", fmt.Errorf("identify network namespace: %w", err)
	}
	for _, e := range entries {
		var st unix.Stat_t
		if unix.Stat(runDir+"/"+e.Name(), &st) != nil {
			continue // stale or unreadable entry; iproute2 skips it too
		}
		if st.Dev == self.Dev && st.Ino == self.Ino {
			return e.Name(), nil
		}
	}
	return "", nil
}

// MakeDir creates dir and missing parents with mode 0755 (iproute2's
// make_path). Existing directories are fine, so concurrent logins race
// harmlessly.
func MakeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	return nil
}

// Move creates dir if needed and moves pid (the whole process) into it by
// writing to dir/cgroup.procs, opened O_WRONLY|O_APPEND as iproute2 does.
func Move(dir string, pid int) error {
	if err := MakeDir(dir); err != nil {
		return err
	}
	procs := dir + "/cgroup.procs"
	f, err := os.OpenFile(procs, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("move pid %d to cgroup %s: %w", pid, dir, err)
	}
	// The kernel parses one pid per write; a failed write is the real answer
	// (ESRCH, EBUSY for domain-controller conflicts, EACCES...).
	_, werr := f.WriteString(strconv.Itoa(pid))
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("move pid %d to cgroup %s: %w", pid, dir, werr)
	}
	if cerr != nil {
		return fmt.Errorf("move pid %d to cgroup %s: %w", pid, dir, cerr)
	}
	return nil
}

// VRFLevels splits iproute2's VRF cgroup path (VRFDirNS) into the base that
// already exists (the caller's cgroup cut at "/vrf", as a path below the
// mount) and the directory names created below it: ["<netns>-ns",] "vrf"
// [, vrf]. vrf == "" gives the default VRF's directory, …/vrf itself.
func VRFLevels(procPath, netns, vrf string) (base string, levels []string) {
	base = procPath
	if i := strings.Index(base, "/vrf"); i >= 0 {
		base = base[:i]
	}
	if base == "" {
		base = "/"
	}
	if netns != "" {
		level := netns + "-ns"
		if path.Base(base) == level {
			base = path.Dir(base)
		}
		levels = append(levels, level)
	}
	levels = append(levels, "vrf")
	if vrf != "" {
		levels = append(levels, vrf)
	}
	return base, levels
}

// Dir is an open cgroup directory: the descriptor every later step uses, so
// that what was checked is what gets the program and the process.
type Dir struct {
	FD   int
	Path string
}

// Close closes the descriptor.
func (d *Dir) Close() error { return unix.Close(d.FD) }

// OpenVRFDir opens the VRF cgroup base+levels below mount one component at
// a time (openat, O_NOFOLLOW), creating the levels with mode 0755 as
// iproute2's make_path does. Every directory below the mount's root must be
// owned by root and not delegated (ErrUnsafe); the mount must be cgroup2.
// The mount's root itself is not checked: in a container it is the
// container's own, delegated, cgroup.
func OpenVRFDir(mount, base string, levels []string) (*Dir, error) {
	fd, err := unix.Open(mount, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup2 mount %s: %w", mount, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil || sfs.Type != unix.CGROUP2_SUPER_MAGIC {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a cgroup2 mount: %w", mount, ErrNoCgroup2)
	}
	cur := mount
	step := func(name string, create bool) error {
		if create {
			if err := unix.Mkdirat(fd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("create cgroup %s: %w", path.Join(cur, name), err)
			}
		}
		nfd, err := unix.Openat(fd, name, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open cgroup %s: %w", path.Join(cur, name), err)
		}
		unix.Close(fd)
		fd, cur = nfd, path.Join(cur, name)
		return checkOwner(fd, cur)
	}
	for _, c := range strings.Split(strings.Trim(base, "/"), "/") {
		if c == "" {
			continue
		}
		if c == "." || c == ".." {
			unix.Close(fd)
			return nil, fmt.Errorf("cgroup path %q: %w", base, ErrOutside)
		}
		if err := step(c, false); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	for _, c := range levels {
		if err := step(c, true); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	return &Dir{FD: fd, Path: cur}, nil
}

// delegateXattr marks a cgroup systemd delegated (systemd.resource-control(5),
// Delegate=; since v251). The user.delegate of unprivileged managers marks
// only user-owned cgroups, which the owner check refuses already.
const delegateXattr = "trusted.delegate"

func checkOwner(fd int, p string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat cgroup %s: %w", p, err)
	}
	if st.Uid != 0 {
		return fmt.Errorf("cgroup %s is owned by uid %d: %w", p, st.Uid, ErrUnsafe)
	}
	var buf [8]byte
	if n, err := unix.Fgetxattr(fd, delegateXattr, buf[:]); err == nil && n > 0 && buf[0] == '1' {
		return fmt.Errorf("cgroup %s is delegated (%s): %w", p, delegateXattr, ErrUnsafe)
	}
	return nil
}

// MoveTo moves pid into the open cgroup d (its cgroup.procs, opened
// relative to the same descriptor).
func MoveTo(d *Dir, pid int) error {
	fd, err := unix.Openat(d.FD, "cgroup.procs", unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("move pid %d to cgroup %s: %w", pid, d.Path, err)
	}
	_, werr := unix.Write(fd, []byte(strconv.Itoa(pid)))
	unix.Close(fd)
	if werr != nil {
		return fmt.Errorf("move pid %d to cgroup %s: %w", pid, d.Path, werr)
	}
	return nil
}
