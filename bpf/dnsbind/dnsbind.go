// Package dnsbind owns the cgroup connect programs that bind a socket
// connecting to one of the management network's nameservers to the VRF
// device, so DNS to them works over TCP as over UDP, whatever the
// l3mdev_accept sysctls say.
//
// # Why a socket option and not only a rule
//
// vrf-netsetup steers locally originated packets to a management
// nameserver into the VRF table with a rule (`to SERVER iif lo lookup
// TABLE`). That moves the queries, but the answers arrive on a port of the
// VRF, and the kernel gives a packet that arrived through a VRF to a socket
// bound to no device only when net.ipv4.{tcp,udp}_l3mdev_accept is 1. The
// udp one vrf-netsetup sets; the tcp one `--sshd vrf-only` keeps 0 on
// purpose (with 1, every daemon listening in the default VRF answers on the
// management NIC). So a truncated answer's retry over TCP, DNS over TLS and
// systemd-resolved's TCP fallback failed there. A socket bound to the VRF
// device before connect() needs no sysctl: its route lookup uses the VRF
// table and its answers match it.
//
// # The programs
//
// One cgroup/connect4 and one cgroup/connect6 program, attached to the root
// cgroup through bpf_links pinned in the bpffs (so they stay after
// vrf-netsetup exits, and go with the pins): for a socket bound to no device
// that connects to a listed server on port 53 or 853, they call
// bpf_setsockopt(SO_BINDTODEVICE, VRF). Everything else, sockets already
// bound (a login placed in any VRF, `ip vrf exec`, a data-plane VRF's
// daemons) included, is left alone. The servers and the device name are
// immediates, so the kernel's program tag says whether an attached program
// is the one wanted. The device is named, not numbered: a VRF deleted makes
// the option fail (ENODEV) and the socket stays as it was, so nothing here
// captures traffic while the VRF is absent; one re-created under the same
// name is found again.
//
// Built with cilium/ebpf's asm package like the sock_create program (no
// clang). The root cgroup's hooks run for every network namespace: the
// programs act only in the one vrf-netsetup runs in (its netns cookie).
// Needs kernel 5.7 (cgroup bpf_link) and 5.9 (SO_BINDTODEVICE from
// bpf_setsockopt; on older kernels the option fails and the socket stays
// unbound, as without the hook).
package dnsbind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Ports are the destination ports whose connects are bound: DNS and DNS
// over TLS.
var Ports = []uint16{53, 853}

// struct bpf_sock_addr offsets (uapi bpf.h) and bpf_sock.bound_dev_if.
const (
	offUserIP4   = 4
	offUserIP6   = 8
	offUserPort  = 24
	offSk        = 64 // __bpf_md_ptr(struct bpf_sock *, sk)
	offBoundDev  = 0
	stackNameOff = -16 // IFNAMSIZ bytes for the device name
)

// Names of the programs as the kernel shows them (bpftool prog show).
const (
	Name4 = "pam_vrf_dns4"
	Name6 = "pam_vrf_dns6"
)

// Instructions returns the connect program for family (unix.AF_INET or
// AF_INET6) that binds unbound sockets connecting to one of servers (those
// of that family) on Ports to device dev. A non-zero netns cookie limits it
// to sockets of that network namespace (the root cgroup's hooks run for
// every netns, and a container's may have a device of the same name).
func Instructions(family int, dev string, servers []netip.Addr, netns uint64) (asm.Instructions, error) {
	if len(dev) == 0 || len(dev) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("device name %q: want 1 to %d bytes", dev, unix.IFNAMSIZ-1)
	}
	var addrs []netip.Addr
	for _, s := range servers {
		if s.Is4() == (family == unix.AF_INET) && !s.Is4In6() {
			addrs = append(addrs, s)
		}
	}
	insns := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
	if netns != 0 {
		insns = append(insns,
			asm.FnGetNetnsCookie.Call(), // r1 is still the context
			asm.LoadImm(asm.R1, int64(netns), asm.DWord),
			asm.JNE.Reg(asm.R0, asm.R1, "out"),
		)
	}
	insns = append(insns,
		// sockets already bound (any VRF, SO_BINDTODEVICE) stay as they are
		asm.LoadMem(asm.R2, asm.R6, offSk, asm.DWord),
		asm.LoadMem(asm.R2, asm.R2, offBoundDev, asm.Word),
		asm.JNE.Imm(asm.R2, 0, "out"),
		asm.LoadMem(asm.R2, asm.R6, offUserPort, asm.Word),
	)
	for _, p := range Ports {
		insns = append(insns, asm.JEq.Imm32(asm.R2, int32(portWord(p)), "addr"))
	}
	insns = append(insns, asm.Ja.Label("out"))
	for i, a := range addrs {
		b := a.AsSlice()
		next := fmt.Sprintf("next%d", i)
		for w := 0; w*4 < len(b); w++ {
			ld := asm.LoadMem(asm.R2, asm.R6, int16(offUserIP4), asm.Word)
			if family == unix.AF_INET6 {
				ld = asm.LoadMem(asm.R2, asm.R6, int16(offUserIP6+4*w), asm.Word)
			}
			if i == 0 && w == 0 {
				ld = ld.WithSymbol("addr")
			} else if w == 0 {
				ld = ld.WithSymbol(fmt.Sprintf("next%d", i-1))
			}
			insns = append(insns, ld, asm.JNE.Imm32(asm.R2, int32(binary.NativeEndian.Uint32(b[4*w:])), next))
		}
		insns = append(insns, asm.Ja.Label("bind"))
	}
	// the last server's mismatch (or, with none, the port match) lands here
	last := "addr"
	if len(addrs) > 0 {
		last = fmt.Sprintf("next%d", len(addrs)-1)
	}
	insns = append(insns, asm.Ja.Label("out").WithSymbol(last))
	var name [unix.IFNAMSIZ]byte
	copy(name[:], dev)
	insns = append(insns,
		asm.LoadImm(asm.R1, int64(binary.NativeEndian.Uint64(name[0:8])), asm.DWord).WithSymbol("bind"),
		asm.StoreMem(asm.RFP, stackNameOff, asm.R1, asm.DWord),
		asm.LoadImm(asm.R1, int64(binary.NativeEndian.Uint64(name[8:16])), asm.DWord),
		asm.StoreMem(asm.RFP, stackNameOff+8, asm.R1, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, unix.SOL_SOCKET),
		asm.Mov.Imm(asm.R3, unix.SO_BINDTODEVICE),
		asm.Mov.Reg(asm.R4, asm.RFP),
		asm.Add.Imm(asm.R4, stackNameOff),
		asm.Mov.Imm(asm.R5, unix.IFNAMSIZ),
		asm.FnSetsockopt.Call(),
		// allow the connect whatever the option did
		asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
		asm.Return(),
	)
	return resolveJumps(insns)
}

// resolveJumps sets the offset of every labelled jump: cilium/ebpf does it
// when loading, not when hashing, and the kernel's tag of an attached
// program must be compared with the instructions as loaded.
func resolveJumps(insns asm.Instructions) (asm.Instructions, error) {
	at := map[string]int{}
	pos := 0
	for _, ins := range insns {
		if sym := ins.Symbol(); sym != "" {
			at[sym] = pos
		}
		pos += int(ins.Size() / asm.InstructionSize)
	}
	pos = 0
	for i, ins := range insns {
		if ref := ins.Reference(); ref != "" && ins.OpCode.JumpOp() != asm.InvalidJumpOp {
			target, ok := at[ref]
			if !ok {
				return nil, fmt.Errorf("jump to unknown label %q", ref)
			}
			insns[i].Offset = int16(target - pos - 1)
		}
		pos += int(ins.Size() / asm.InstructionSize)
	}
	return insns, nil
}

// portWord is a port as the program reads bpf_sock_addr.user_port: the
// kernel loads the sockaddr's 16-bit network-order port natively and
// zero-extends it (htons(p) in the low half on either byte order).
func portWord(p uint16) uint32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return uint32(binary.NativeEndian.Uint16(b[:]))
}

// Spec is the loadable program for family.
func Spec(family int, dev string, servers []netip.Addr, netns uint64) (*ebpf.ProgramSpec, error) {
	insns, err := Instructions(family, dev, servers, netns)
	if err != nil {
		return nil, err
	}
	name, attach := Name4, ebpf.AttachCGroupInet4Connect
	if family == unix.AF_INET6 {
		name, attach = Name6, ebpf.AttachCGroupInet6Connect
	}
	return &ebpf.ProgramSpec{Name: name, Type: ebpf.CGroupSockAddr, AttachType: attach, License: "GPL", Instructions: insns}, nil
}

// PinPath is where the link of family's program for vrf is pinned.
func PinPath(pinDir, vrf string, family int) string {
	f := "4"
	if family == unix.AF_INET6 {
		f = "6"
	}
	return filepath.Join(pinDir, "dns"+f+"-"+vrf)
}

// Families are the two address families, in the order they are handled.
var Families = []int{unix.AF_INET, unix.AF_INET6}

// Tag is the kernel tag of the program the pinned link of family for vrf
// runs; "" when none is pinned.
func Tag(pinDir, vrf string, fam int) (string, error) {
	pin := PinPath(pinDir, vrf, fam)
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("open %s: %w", pin, err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return "", fmt.Errorf("read %s: %w", pin, err)
	}
	prog, err := ebpf.NewProgramFromID(info.Program)
	if err != nil {
		return "", fmt.Errorf("read %s's program: %w", pin, err)
	}
	defer prog.Close()
	pi, err := prog.Info()
	if err != nil {
		return "", fmt.Errorf("read %s's program: %w", pin, err)
	}
	return pi.Tag, nil
}

// Matches reports whether tag is that of the program for family, dev and
// servers (false for a bad device name).
func Matches(tag string, fam int, dev string, servers []netip.Addr, netns uint64) bool {
	insns, err := Instructions(fam, dev, servers, netns)
	if err != nil {
		return false
	}
	ok, err := insns.HasTag(tag, nativeEndian)
	return err == nil && ok
}

// HasFamily reports whether servers has an address of family.
func HasFamily(servers []netip.Addr, fam int) bool {
	for _, s := range servers {
		if s.Is4() == (fam == unix.AF_INET) && !s.Is4In6() {
			return true
		}
	}
	return false
}

// Ensure attaches (or updates in place) the programs for dev and servers to
// cgroupDir and pins their links under pinDir; a family without servers
// has its link removed. It returns a function that puts back what was
// there before (the old programs are held until it is called or dropped).
func Ensure(cgroupDir, pinDir, vrf, dev string, servers []netip.Addr, netns uint64) (undo func() error, err error) {
	var undos []func() error
	undoAll := func() error {
		var errs []error
		for i := len(undos) - 1; i >= 0; i-- {
			errs = append(errs, undos[i]())
		}
		return errors.Join(errs...)
	}
	for _, fam := range Families {
		u, err := ensureFamily(cgroupDir, pinDir, vrf, dev, servers, netns, fam)
		if err != nil {
			if uerr := undoAll(); uerr != nil {
				err = fmt.Errorf("%w; undo: %w", err, uerr)
			}
			return nil, err
		}
		undos = append(undos, u)
	}
	return undoAll, nil
}

func ensureFamily(cgroupDir, pinDir, vrf, dev string, servers []netip.Addr, netns uint64, fam int) (func() error, error) {
	pin := PinPath(pinDir, vrf, fam)
	old, err := link.LoadPinnedLink(pin, nil)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", pin, err)
	}
	var oldProg *ebpf.Program // what the pinned link ran before, for undo
	if old != nil {
		defer old.Close()
		if info, err := old.Info(); err == nil {
			oldProg, _ = ebpf.NewProgramFromID(info.Program)
		}
	}
	if !HasFamily(servers, fam) {
		if old == nil {
			return func() error { return nil }, nil
		}
		if err := old.Unpin(); err != nil {
			return nil, fmt.Errorf("remove %s: %w", pin, err)
		}
		// closing the last reference detaches it
		return func() error { return reattach(cgroupDir, pin, oldProg, fam) }, nil
	}
	spec, err := Spec(fam, dev, servers, netns)
	if err != nil {
		return nil, err
	}
	prog, err := ebpf.NewProgram(spec)
	if err != nil {
		return nil, fmt.Errorf("load %s for %s: %w", spec.Name, dev, err)
	}
	defer prog.Close()
	if old != nil {
		if err := old.Update(prog); err != nil {
			// a link detached behind our back (bpftool link detach)
			// cannot be updated: attach anew in its place
			if uerr := old.Unpin(); uerr != nil {
				return nil, fmt.Errorf("update %s: %w; remove it: %w", pin, err, uerr)
			}
			return attachNew(cgroupDir, pinDir, pin, spec, prog)
		}
		return func() error {
			if oldProg == nil {
				return removePin(pin)
			}
			l, err := link.LoadPinnedLink(pin, nil)
			if err != nil {
				return err
			}
			defer l.Close()
			return l.Update(oldProg)
		}, nil
	}
	return attachNew(cgroupDir, pinDir, pin, spec, prog)
}

// attachNew attaches prog to the cgroup and pins the link at pin; undo
// removes the pin.
func attachNew(cgroupDir, pinDir, pin string, spec *ebpf.ProgramSpec, prog *ebpf.Program) (func() error, error) {
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return nil, err
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroupDir, Attach: spec.AttachType, Program: prog})
	if err != nil {
		return nil, fmt.Errorf("attach %s to cgroup %s: %w", spec.Name, cgroupDir, err)
	}
	defer l.Close()
	if err := l.Pin(pin); err != nil {
		// a kernel without cgroup bpf_link (before 5.7) gives a link that
		// cannot be pinned: it goes when this process exits
		return nil, fmt.Errorf("pin %s (needs kernel 5.7+): %w", pin, err)
	}
	return func() error { return removePin(pin) }, nil
}

// reattach puts a removed family's program back (undo of a removal).
func reattach(cgroupDir, pin string, prog *ebpf.Program, fam int) error {
	if prog == nil {
		return nil
	}
	attach := ebpf.AttachCGroupInet4Connect
	if fam == unix.AF_INET6 {
		attach = ebpf.AttachCGroupInet6Connect
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroupDir, Attach: attach, Program: prog})
	if err != nil {
		return err
	}
	defer l.Close()
	return l.Pin(pin)
}

// removePin unpins a link: with no other reference the kernel detaches it.
func removePin(pin string) error {
	err := os.Remove(pin)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Remove detaches vrf's programs (both families); none attached is fine.
func Remove(pinDir, vrf string) error {
	var errs []error
	for _, fam := range Families {
		errs = append(errs, removePin(PinPath(pinDir, vrf, fam)))
	}
	return errors.Join(errs...)
}

// Probe loads (and drops) a program of each family: nil when this kernel
// accepts them. What the kernel version promises a patched or locked-down
// kernel may still refuse; apply then leaves the hooks out rather than
// failing on them.
func Probe() error {
	for _, fam := range Families {
		probe := netip.MustParseAddr("192.0.2.1")
		if fam == unix.AF_INET6 {
			probe = netip.MustParseAddr("2001:db8::1")
		}
		spec, err := Spec(fam, "lo", []netip.Addr{probe}, 1)
		if err != nil {
			return err
		}
		prog, err := ebpf.NewProgram(spec)
		if err != nil {
			return fmt.Errorf("load %s: %w", spec.Name, err)
		}
		prog.Close()
	}
	return nil
}

// NetnsCookie is the kernel's cookie of the calling thread's network
// namespace (SO_NETNS_COOKIE, kernel 5.14; 0 where it cannot be read:
// the programs then do not look at the namespace).
func NetnsCookie() uint64 {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0
	}
	return c
}

// Describe is one line for a plan: the servers and the device.
func Describe(dev string, servers []netip.Addr) string {
	s := make([]string, len(servers))
	for i, a := range servers {
		s[i] = a.String()
	}
	return fmt.Sprintf("sockets connecting to %s port 53/853 bound to %s", strings.Join(s, ", "), dev)
}

// nativeEndian is binary.LittleEndian or binary.BigEndian (asm's
// marshaller takes only those two).
var nativeEndian binary.ByteOrder = func() binary.ByteOrder {
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return binary.LittleEndian
	}
	return binary.BigEndian
}()
