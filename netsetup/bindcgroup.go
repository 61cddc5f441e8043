package netsetup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/pam-vrf/pam-vrf/bpf"
	"github.com/pam-vrf/pam-vrf/cgroup"
	"golang.org/x/sys/unix"
)

// BindOwnCgroup is the ExecStartPre= of a --service drop-in
// (`vrf-netsetup __bind-cgroup VRF`, run with "+" inside the unit's fresh
// cgroup before its daemon starts). systemd 249 to at least 252 attaches a
// BPFProgram= only at the first start after a daemon-reload: on every later
// start of the unit it logs "Foreign BPF program already exists, ignoring"
// and leaves the new cgroup without the program (systemd issue 26845), so a
// restart by an admin, by Restart= or by a package upgrade would run the
// daemon outside the VRF. This attaches the program pinned for vrf to the
// cgroup the way systemd does (BPF_F_ALLOW_MULTI), unless it is there.
func BindOwnCgroup(vrf string) (attached bool, err error) {
	mount, err := cgroup.Mount()
	if err != nil {
		return false, err
	}
	p, err := cgroup.ProcPath(os.Getpid())
	if err != nil {
		return false, err
	}
	// Delegate=yes units run ExecStartPre= in UNIT/.control, a cgroup that
	// goes away after it; their daemons start in UNIT itself.
	p = strings.TrimSuffix(p, "/.control")
	return bindCgroup(filepath.Join(mount, p), pinPath(vrf))
}

// bindCgroup attaches the program pinned at pin to the cgroup dir as a
// multi-program sock_create hook, unless that program is already attached.
func bindCgroup(dir, pin string) (bool, error) {
	prog, err := ebpf.LoadPinnedProgram(pin, nil)
	if err != nil {
		return false, fmt.Errorf("open the program pinned at %s (vrf-netsetup apply pins it): %w", pin, err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return false, fmt.Errorf("read the program pinned at %s: %w", pin, err)
	}
	id, ok := info.ID()
	if !ok {
		return false, fmt.Errorf("read the program pinned at %s: the kernel reports no id", pin)
	}
	ids, err := bpf.Attached(dir)
	if err != nil {
		return false, err
	}
	if slices.Contains(ids, id) {
		return false, nil
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	defer unix.Close(fd)
	err = link.RawAttachProgram(link.RawAttachProgramOptions{Target: fd, Program: prog, Attach: ebpf.AttachCGroupInetSockCreate, Flags: unix.BPF_F_ALLOW_MULTI})
	if errors.Is(err, unix.EEXIST) {
		return false, nil // systemd attached it meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("attach the program pinned at %s to cgroup %s: %w", pin, dir, err)
	}
	return true, nil
}

// bindCgroupLine is the ExecStartPre= of the drop-in: "-" so that the unit
// still starts without vrf-netsetup (then outside the VRF, which check
// reports), "+" for the privileges BPF_PROG_ATTACH needs in any unit.
func bindCgroupLine(vrf string) string {
	return "ExecStartPre=-+/usr/sbin/vrf-netsetup __bind-cgroup " + vrf
}

// isBindCgroupArg: a VRF name as the hidden command accepts it.
func isBindCgroupArg(s string) bool {
	return validIfName(s) == nil && !strings.HasPrefix(s, "-")
}

// BindCgroupCommand runs `vrf-netsetup __bind-cgroup VRF` and says what
// it did, for the unit's journal.
func BindCgroupCommand(args []string) (string, error) {
	if len(args) != 1 || !isBindCgroupArg(args[0]) {
		return "", &FlagError{"__bind-cgroup", "want one VRF name (used in --service drop-ins)"}
	}
	attached, err := BindOwnCgroup(args[0])
	switch {
	case err != nil:
		return "", fmt.Errorf("bind this unit to VRF %s: %w", args[0], err)
	case attached:
		return fmt.Sprintf("vrf-netsetup: attached the sock_create program of VRF %s to this unit's cgroup (systemd did not)", args[0]), nil
	}
	return "", nil
}
