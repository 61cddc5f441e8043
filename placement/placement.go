// Package placement puts a process into a VRF the way `ip vrf exec` would,
// but for a process that is already running (the PAM session process):
//
//  1. validate the VRF name;
//  2. resolve the device in the CALLER's network namespace with netlink and
//     require it to be a VRF (unless Options.AllowNonVRF, for tests on
//     hosts without the VRF driver);
//  3. compute iproute2's cgroup dir from the TARGET pid's cgroup2 path
//     (cgroup.VRFDirNS, with the caller's named-netns level); a path with
//     ".." (another cgroup namespace) is refused;
//  4. open it one component at a time from the mount, creating the VRF
//     levels, and refuse it unless every directory below the mount is
//     root's and not delegated (cgroup.OpenVRFDir): a user who owns a
//     cgroup on the way could move the placed process out again;
//  5. attach the sock_create program (bpf.EnsureFD) to that descriptor
//     BEFORE moving the pid, so no socket is created unbound in between;
//  6. move the pid through the same descriptor (cgroup.MoveTo), unless
//     /proc/PID/cgroup already names the directory;
//  7. re-read /proc/PID/cgroup and fail closed unless the pid sits directly
//     in …/vrf/<name> (what `ip vrf identify` reports).
//
// DefaultVRF is iproute2's vrf_switch("default"): the pid goes to the …/vrf
// directory itself, no program is attached there, and `ip vrf identify`
// prints nothing for it.
//
// Sockets the process already has (the ssh connection) are not affected;
// every AF_INET/AF_INET6 socket it or its children create afterwards is
// bound to the VRF. Enter is meant to run many times in one long-lived host
// process (sshd): it leaks no file descriptors, starts no goroutines and runs
// no commands.
package placement

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pam-vrf/pam-vrf/bpf"
	"github.com/pam-vrf/pam-vrf/cgroup"

	"github.com/pam-vrf/pam-vrf/ifname"
)

// Sentinels; errors returned by Enter wrap them (errors.Is).
var (
	ErrNoDevice      = errors.New("no such VRF device")
	ErrNotVRF        = errors.New("device is not a VRF")
	ErrNoCgroup2     = cgroup.ErrNoCgroup2
	ErrBPFPermission = bpf.ErrPermission
	// ErrConflict: the VRF cgroup's sock_create hook (or an ancestor's) is
	// held by another tool in a mode a flags-0 attach cannot replace.
	ErrConflict = bpf.ErrConflict
	// ErrInvalidName: the VRF name cannot be a Linux device name.
	ErrInvalidName = errors.New("invalid VRF name")
	// ErrNotPlaced: the move seemed to work but the pid is not in the VRF
	// cgroup afterwards (raced with another cgroup manager, e.g. logind).
	ErrNotPlaced = errors.New("process is not in the VRF cgroup after the move")
	// ErrUnsafeCgroup: a cgroup on the way is user-owned or delegated, or
	// the process's cgroup is outside the mounted hierarchy.
	ErrUnsafeCgroup = cgroup.ErrUnsafe
)

// DefaultVRF names the default VRF, as in `ip vrf exec default`.
const DefaultVRF = "default"

// Options tune Enter; the zero value is right for production.
type Options struct {
	CgroupMount string // "" = cgroup.Mount()
	AllowNonVRF bool   // tests on a host without the VRF driver: accept any device (e.g. veth)
}

// Result describes a successful placement.
type Result struct {
	Dir     string     // cgroup directory, e.g. /sys/fs/cgroup/user.slice/…/session-3.scope/vrf/mgmt
	Ifindex int        // VRF device ifindex in the caller's network namespace (0: the default VRF)
	Program bpf.Result // what happened to the sock_create program
}

// kindError prints its own message and unwraps to a sentinel and a cause.
type kindError struct {
	msg   string
	kind  error
	cause error
}

func (e *kindError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

func (e *kindError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

// Enter moves pid into VRF vrf. See the package documentation for the steps.
// Errors start with `enter VRF "<vrf>": ` and say what failed and where.
func Enter(pid int, vrf string, opt Options) (Result, error) {
	res, err := enter(pid, vrf, opt)
	if err != nil {
		return Result{}, fmt.Errorf("enter VRF %q: %w", vrf, err)
	}
	return res, nil
}

func enter(pid int, vrf string, opt Options) (Result, error) {
	if err := ValidName(vrf); err != nil {
		return Result{}, err
	}
	if pid <= 0 {
		return Result{}, fmt.Errorf("invalid pid %d", pid)
	}
	leaf := ""
	ifindex := 0
	if vrf != DefaultVRF {
		var err error
		if ifindex, err = resolve(vrf, opt.AllowNonVRF); err != nil {
			return Result{}, err
		}
		leaf = vrf
	}

	mount := opt.CgroupMount
	if mount == "" {
		var err error
		if mount, err = cgroupMount(); err != nil {
			return Result{}, err
		}
	}
	procPath, err := cgroup.ProcPath(pid)
	if err != nil {
		if errors.Is(err, cgroup.ErrOutside) {
			return Result{}, &kindError{msg: fmt.Sprintf("pid %d", pid), kind: ErrUnsafeCgroup, cause: err}
		}
		return Result{}, err
	}
	// The netns level belongs to the namespace the device was resolved in,
	// i.e. the caller's (same thread, so /proc/thread-self is right).
	ns, err := cgroup.NetnsName()
	if err != nil {
		return Result{}, err
	}
	base, levels := cgroup.VRFLevels(procPath, ns, leaf)
	d, err := cgroup.OpenVRFDir(mount, base, levels)
	if err != nil {
		return Result{}, err
	}
	defer d.Close()
	res := Result{Dir: d.Path, Ifindex: ifindex}

	// Attach first: from the moment the pid is in the directory, its new
	// sockets must be bound. The default VRF's directory gets no program.
	if ifindex != 0 {
		if res.Program, err = bpf.EnsureFD(d.FD, d.Path, uint32(ifindex)); err != nil {
			return Result{}, err
		}
	}
	want := strings.TrimPrefix(d.Path, mount)
	if procPath == want {
		// Already there (a host process opening another session, su or
		// login inside a placed session). A cgroup.procs write would still
		// be a full migration in the kernel (threadgroup rwsem, css_set
		// lookups) for nothing, and the /proc read just done is the
		// verification. make bench: saves ~15% of a warm open_session.
		return res, nil
	}
	if err := cgroup.MoveTo(d, pid); err != nil {
		return Result{}, err
	}

	got, err := cgroup.ProcPath(pid)
	if err != nil {
		return Result{}, fmt.Errorf("verify placement: %w", err)
	}
	if got != want {
		return Result{}, &kindError{msg: fmt.Sprintf("verify placement of pid %d in %s: now in %s", pid, d.Path, got), kind: ErrNotPlaced}
	}
	return res, nil
}

// mountCache is the cgroup2 mount point found by the last cgroup.Mount().
// Reading /proc/self/mountinfo is the single most expensive step of Enter:
// the kernel renders every mount (40-100 µs on the 2-vCPU bench VM, a third
// of a warm open_session; make bench). A process that places many sessions
// reuses the answer while statfs says the path still is a cgroup2 mount;
// all cgroup2 mounts of one cgroup namespace show the same hierarchy, so a
// remount elsewhere only changes the path we log, and an unmount makes the
// statfs check fail and mountinfo be read again. A process placing one
// session (sshd's per-connection process) reads mountinfo once, as before.
var mountCache atomic.Pointer[string]

func cgroupMount() (string, error) {
	if m := mountCache.Load(); m != nil {
		var st unix.Statfs_t
		if unix.Statfs(*m, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return *m, nil
		}
	}
	m, err := cgroup.Mount()
	if err != nil {
		return "", err
	}
	mountCache.Store(&m)
	return m, nil
}

// resolve returns the ifindex of the VRF device in the caller's netns.
func resolve(name string, allowNonVRF bool) (int, error) {
	// A private handle, closed on return: a long-lived sshd calls this per
	// login, and the package-level netlink handle would be shared state.
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return 0, fmt.Errorf("look up device %s: open netlink: %w", name, err)
	}
	defer h.Close()

	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return 0, &kindError{msg: fmt.Sprintf("VRF %s does not exist", name), kind: ErrNoDevice}
		}
		return 0, fmt.Errorf("look up device %s: %w", name, err)
	}
	if _, ok := l.(*netlink.Vrf); !ok && !allowNonVRF {
		return 0, &kindError{msg: fmt.Sprintf("%s is a %s device, not a VRF", name, l.Type()), kind: ErrNotVRF}
	}
	return l.Attrs().Index, nil
}

// ValidName checks that name can be a VRF (network device) name: non-empty,
// at most 15 bytes (IFNAMSIZ-1), valid UTF-8, no '/', ':', whitespace or
// NUL, not "." or "..".
// Same rule as config.ValidVRFName; kept local so placement does not
// depend on the policy package.
func ValidName(name string) error {
	if err := ifname.Valid(name); err != nil {
		return &kindError{msg: fmt.Sprintf("invalid VRF name %q", name), kind: ErrInvalidName, cause: err}
	}
	return nil
}
