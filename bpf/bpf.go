// Package bpf owns the cgroup/sock_create program that binds every new
// AF_INET/AF_INET6 socket of a cgroup to a VRF device, the way
// `ip vrf exec` does (iproute2 ip/ipvrf.c: prog_load, vrf_configure_cgroup).
//
// # The program
//
// Four instructions built with cilium/ebpf's asm package (no clang, no ELF):
//
//	r2 = ifindex
//	*(u32 *)(r1 + 0) = r2   // bpf_sock.bound_dev_if, offset 0
//	r0 = 1                  // allow the socket
//	exit
//
// Like iproute2 and systemd's bind-iface.bpf.c it writes nothing but
// bound_dev_if and does not look at family/type/protocol; the kernel only
// runs INET_SOCK_CREATE for user AF_INET/AF_INET6 sockets, so AF_UNIX,
// AF_PACKET and netlink are unaffected. The store is a register store
// (BPF_STX): verifiers before ~6.3, e.g. Debian 12's 6.1, reject immediate
// stores (BPF_ST) into the context.
//
// # Attach: legacy BPF_PROG_ATTACH with flags 0
//
// Ensure attaches with link.RawAttachProgram and Flags 0, exactly like
// iproute2's bpf_prog_attach_fd. In that mode a cgroup holds ONE program per
// hook, and attaching another replaces it atomically, so:
//   - any number of logins into the same cgroup leaves one program, without
//     locks and without state;
//   - `ip vrf exec` (also flags 0) into a cgroup we populated replaces our
//     program instead of failing, and vice versa;
//   - the attachment belongs to the cgroup, survives the short-lived PAM
//     process without bpffs pinning, and disappears with rmdir of the cgroup.
//
// link.AttachCgroup is not used: it creates bpf_links / ALLOW_MULTI
// attachments, which stack up per login, make a later flags-0 attach
// (`ip vrf exec`) fail with EPERM, and die with the process unless pinned.
//
// # Idempotence and reuse
//
// Ensure first asks the kernel (BPF_PROG_QUERY) what is attached. If exactly
// one program is attached with flags 0 and its kernel tag equals the tag of
// our program for this ifindex (or of iproute2's equivalent program for it),
// nothing is done. The ifindex is an immediate in the instructions, so a VRF
// that was deleted and re-created with a new ifindex has a different tag and
// the program gets replaced.
//
// Each ssh login gets a new session scope and therefore a new
// …/vrf/<name> cgroup, so a naive implementation loads (and verifies) a new
// program per login and keeps one copy per session in kernel memory. Ensure
// instead finds the program already loaded for the ifindex:
//
//   - first its pin, PinPath(ifindex) in the bpffs systemd mounts at
//     /sys/fs/bpf: one BPF_OBJ_GET, O(1) whatever else is loaded. The C fast
//     path of pam_vrf.so (cgo/module) uses the same pin, and attaching a
//     pinned program needs only CAP_NET_ADMIN, not CAP_BPF;
//   - else a walk of the loaded programs (BPF_PROG_GET_NEXT_ID +
//     GET_FD_BY_ID + OBJ_GET_INFO_BY_FD) for one of type cgroup_sock named
//     ProgramName with the expected tag, capped at maxWalk programs (each
//     costs ~3.6 µs, and a host where users may load programs must not
//     make every login pay for theirs);
//   - else it loads one (the verifier runs) and pins it. When concurrent
//     first logins race, the loser of the pin adopts the winner's copy, so
//     one program serves every session of a VRF.
//
// A pin for a deleted device's ifindex holds a 4-instruction program until
// reboot (bpffs lives in memory) or the package's removal; ifindexes are
// not reused while the kernel runs, so it is never wrong, only idle.
//
// Without CAP_SYS_ADMIN the walk (and the tag check of an attached program)
// is not permitted; Ensure then simply loads a fresh program and replaces,
// which is always correct.
//
// This package never calls rlimit.RemoveMemlock (it runs inside sshd; since
// 5.11 BPF memory is charged to the memory cgroup), starts no goroutines and
// runs no commands.
package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The kernel's numbers for the program type and hook (uapi bpf.h).
const (
	progTypeCgroupSock         = uint32(ebpf.CGroupSock)
	attachCgroupInetSockCreate = uint32(ebpf.AttachCGroupInetSockCreate)
)

// ProgramName is the kernel-visible name of our program (bpftool prog show),
// also used to find a reusable copy. At most 15 bytes (BPF_OBJ_NAME_LEN-1).
const ProgramName = "pam_vrf_sock"

// ErrPermission means the kernel refused to load, query or attach for lack of
// privilege (EPERM/EACCES). PermissionHint says what is missing.
var ErrPermission = errors.New("no BPF permission")

// PermissionHint explains ErrPermission to an administrator.
const PermissionHint = "needs CAP_BPF+CAP_NET_ADMIN or CAP_SYS_ADMIN; kernel lockdown?"

// ErrConflict means the cgroup's sock_create hook is managed in a mode that a
// flags-0 attach cannot replace (bpf_link, ALLOW_MULTI or ALLOW_OVERRIDE
// attachments, e.g. systemd's or another tool's), so we refuse instead of
// failing half-way.
var ErrConflict = errors.New("sock_create hook of cgroup is managed by another tool (multi/override/bpf_link attachment)")

// Result reports what Ensure did.
type Result struct {
	Changed   bool   // a program was attached (false: the right one was already there)
	Reused    bool   // the attached program was an already-loaded copy (no verifier run)
	ProgramID uint32 // kernel ID of the program now attached
}

// Instructions returns the program that sets bpf_sock.bound_dev_if to
// ifindex and allows the socket.
func Instructions(ifindex uint32) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R2, int32(ifindex)),
		// STX, not ST: older verifiers reject immediate stores into ctx.
		asm.StoreMem(asm.R1, 0, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R0, 1),
		asm.Return(),
	}
}

// iproute2Instructions is iproute2's prog_load() program for ifindex; only
// used to recognise an equivalent program attached by `ip vrf exec`.
func iproute2Instructions(ifindex uint32) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.Mov.Imm(asm.R3, int32(ifindex)),
		asm.Mov.Imm(asm.R2, 0),
		asm.StoreMem(asm.R1, 0, asm.R3, asm.Word),
		asm.Mov.Imm(asm.R0, 1),
		asm.Return(),
	}
}

// Spec returns the loadable program for ifindex.
func Spec(ifindex uint32) *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{
		Name:         ProgramName,
		Type:         ebpf.CGroupSock,
		AttachType:   ebpf.AttachCGroupInetSockCreate,
		License:      "GPL",
		Instructions: Instructions(ifindex),
	}
}

// hasTag reports whether a kernel tag (hex) is that of insns. The kernel
// switched the tag hash from SHA-1 to SHA-256 in 6.18, so
// ProgramSpec.Tag() (SHA-1 only) must not be used; HasTag accepts both.
func hasTag(insns asm.Instructions, tag string) bool {
	ok, err := insns.HasTag(tag, nativeEndian)
	if err != nil {
		// Only fails for instructions that cannot be marshalled, i.e. a
		// bug in Instructions(); never silently treat it as "no match".
		panic(fmt.Sprintf("bpf: hashing sock program: %v", err))
	}
	return ok
}

// nativeEndian is binary.LittleEndian or binary.BigEndian: asm's marshaller
// accepts only those two values, not binary.NativeEndian.
var nativeEndian binary.ByteOrder = func() binary.ByteOrder {
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return binary.LittleEndian
	}
	return binary.BigEndian
}()

// Load loads a fresh copy of the program for ifindex (runs the verifier).
// Verifier failures come back as *ebpf.VerifierError (print with %+v).
func Load(ifindex uint32) (*ebpf.Program, error) {
	prog, err := ebpf.NewProgram(Spec(ifindex))
	if err != nil {
		// A verifier rejection also returns EACCES; only errors without a
		// verifier log are about privilege.
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) && len(ve.Log) > 0 {
			return nil, fmt.Errorf("load program for ifindex %d: %w", ifindex, err)
		}
		return nil, fmt.Errorf("load program for ifindex %d: %w", ifindex, permErr(err))
	}
	return prog, nil
}

// FindLoaded returns an already-loaded copy of our program for ifindex (type
// cgroup_sock, name ProgramName, matching tag), or nil and no error if there
// is none. It walks all loaded programs; see the package doc for its cost.
// Needs CAP_SYS_ADMIN. The caller must Close the program.
func FindLoaded(ifindex uint32) (*ebpf.Program, error) {
	fd, err := findLoadedFD(ifindex)
	if err != nil || fd < 0 {
		return nil, err
	}
	prog, err := ebpf.NewProgramFromFD(fd) // takes ownership of fd
	if err != nil {
		return nil, fmt.Errorf("open program for ifindex %d: %w", ifindex, err)
	}
	return prog, nil
}

// maxWalk caps the reuse walk: past it, loading a fresh copy is cheaper, and
// a host where unprivileged users may load programs cannot make every login
// pay for theirs.
const maxWalk = 512

// findLoadedFD is FindLoaded returning a raw fd (-1: none found).
func findLoadedFD(ifindex uint32) (int, error) {
	insns := Instructions(ifindex)
	var id uint32
	for n := 0; n < maxWalk; n++ {
		next, err := nextProgID(id)
		if errors.Is(err, unix.ENOENT) {
			return -1, nil
		}
		if err != nil {
			return -1, fmt.Errorf("walk loaded programs: %w", permErr(err))
		}
		id = next
		fd, err := progFDByID(id)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // unloaded since GET_NEXT_ID
			}
			return -1, fmt.Errorf("open program %d: %w", id, permErr(err))
		}
		info, err := objInfo(fd)
		if err == nil && info.typ == progTypeCgroupSock && info.name == ProgramName && hasTag(insns, info.tag) {
			return fd, nil
		}
		unix.Close(fd)
	}
	return -1, nil
}

// Attachment is the kernel's view of a cgroup's sock_create hook.
type Attachment struct {
	Flags    uint32           // attach flags of the cgroup for this hook (0, BPF_F_ALLOW_OVERRIDE, BPF_F_ALLOW_MULTI)
	Programs []ebpf.ProgramID // programs attached directly to the cgroup, in run order
}

// Query asks the kernel (BPF_PROG_QUERY) which INET_SOCK_CREATE programs are
// attached directly to cgroupDir and with which flags.
func Query(cgroupDir string) (Attachment, error) {
	cg, err := openCgroup(cgroupDir)
	if err != nil {
		return Attachment{}, fmt.Errorf("query sock programs of %s: %w", cgroupDir, err)
	}
	defer unix.Close(cg)
	a, err := query(cg)
	if err != nil {
		return Attachment{}, fmt.Errorf("query sock programs of %s: %w", cgroupDir, permErr(err))
	}
	return a, nil
}

// Attached returns the IDs of the INET_SOCK_CREATE programs attached to
// cgroupDir (kernel query, BPF_PROG_QUERY).
func Attached(cgroupDir string) ([]ebpf.ProgramID, error) {
	a, err := Query(cgroupDir)
	return a.Programs, err
}

// Ensure makes sure exactly one INET_SOCK_CREATE program is attached to
// cgroupDir with flags 0 and that it binds sockets to ifindex. See the
// package documentation for the algorithm. Errors name the cgroup; EPERM and
// EACCES wrap ErrPermission, an incompatible existing attachment ErrConflict.
func Ensure(cgroupDir string, ifindex uint32) (Result, error) {
	return ensure(cgroupDir, ifindex, true)
}

// EnsureFD is Ensure on an open cgroup directory (cgroupDir only names it
// in errors): the caller that checked the directory and will move the
// process through the same descriptor leaves no window in which the path
// could name another directory.
func EnsureFD(cg int, cgroupDir string, ifindex uint32) (Result, error) {
	return ensureFD(cg, cgroupDir, ifindex, true)
}

// ensure is Ensure with the reuse walk optional (benchmarks compare both).
func ensure(cgroupDir string, ifindex uint32, reuse bool) (Result, error) {
	cg, err := openCgroup(cgroupDir)
	if err != nil {
		return Result{}, fmt.Errorf("attach sock program to %s: %w", cgroupDir, err)
	}
	defer unix.Close(cg)
	return ensureFD(cg, cgroupDir, ifindex, reuse)
}

func ensureFD(cg int, cgroupDir string, ifindex uint32, reuse bool) (Result, error) {
	if ifindex == 0 {
		return Result{}, fmt.Errorf("attach sock program to %s: invalid ifindex 0", cgroupDir)
	}

	cur, err := query(cg)
	if err != nil {
		return Result{}, fmt.Errorf("attach sock program to %s: query attached programs: %w", cgroupDir, permErr(err))
	}
	if len(cur.Programs) > 0 && cur.Flags != 0 {
		return Result{}, fmt.Errorf("attach sock program to %s: %w (%d program(s), attach flags %#x)",
			cgroupDir, ErrConflict, len(cur.Programs), cur.Flags)
	}
	if len(cur.Programs) == 1 {
		id := uint32(cur.Programs[0])
		if ok, _ := bindsTo(id, ifindex); ok {
			return Result{ProgramID: id}, nil
		}
		// Wrong ifindex, foreign program, or we may not inspect it
		// (no CAP_SYS_ADMIN): replacing is always correct.
	}

	// The program: the pin (O(1)), else the capped walk, else a fresh load.
	// Errors of the optional lookups (EPERM without CAP_SYS_ADMIN) fall back
	// to loading; a real permission problem shows up there.
	fd, reused, pinned := -1, false, false
	if reuse {
		if fd = pinnedFD(ifindex); fd >= 0 {
			reused, pinned = true, true
		} else if fd, _ = findLoadedFD(ifindex); fd >= 0 {
			reused = true
		}
	}
	if fd < 0 {
		prog, err := Load(ifindex)
		if err != nil {
			return Result{}, fmt.Errorf("attach sock program to %s: %w", cgroupDir, err)
		}
		fd, err = unix.Dup(prog.FD())
		prog.Close()
		if err != nil {
			return Result{}, fmt.Errorf("attach sock program to %s: %w", cgroupDir, err)
		}
	}
	if !pinned && reuse {
		fd = pinOrAdopt(fd, ifindex) // the next login finds it in O(1)
	}
	// The cgroup keeps its own reference; our fd is not needed afterwards.
	defer unix.Close(fd)

	// Flags 0: replace semantics, iproute2-compatible; see package doc.
	if err := attach(cg, fd); err != nil {
		if errors.Is(err, unix.EPERM) {
			if anc := blockingAncestor(cgroupDir); anc != "" {
				return Result{}, fmt.Errorf("attach sock program to %s: %w: ancestor cgroup %s holds a non-overridable sock_create program: %w",
					cgroupDir, ErrConflict, anc, err)
			}
		}
		return Result{}, fmt.Errorf("attach sock program to %s: %w", cgroupDir, permErr(err))
	}
	info, err := objInfo(fd)
	if err != nil {
		return Result{}, fmt.Errorf("attach sock program to %s: read program id: %w", cgroupDir, err)
	}
	return Result{Changed: true, Reused: reused, ProgramID: info.id}, nil
}

// BindsTo reports whether the loaded program id is ours (or iproute2's)
// for ifindex: what a cgroup that systemd attached a pinned copy to (a
// unit's BPFProgram=) binds its sockets to. Needs CAP_SYS_ADMIN.
func BindsTo(id ebpf.ProgramID, ifindex uint32) (bool, error) {
	return bindsTo(uint32(id), ifindex)
}

// bindsTo reports whether program id is ours (or iproute2's) for ifindex.
func bindsTo(id, ifindex uint32) (bool, error) {
	fd, err := progFDByID(id)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	info, err := objInfo(fd)
	if err != nil {
		return false, err
	}
	if info.typ != progTypeCgroupSock {
		return false, nil
	}
	return hasTag(Instructions(ifindex), info.tag) || hasTag(iproute2Instructions(ifindex), info.tag), nil
}

// blockingAncestor explains an EPERM from a flags-0 attach the way the
// kernel's hierarchy_allows_attach() decides: the nearest ancestor with a
// program for this hook forbids attaching below it unless it was attached
// with ALLOW_MULTI or ALLOW_OVERRIDE. Returns "" if no ancestor is to blame
// (then the EPERM is about privilege). Only used on the error path.
func blockingAncestor(dir string) string {
	for p := filepath.Dir(dir); p != dir && p != "/"; dir, p = p, filepath.Dir(p) {
		fd, err := unix.Open(p, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return ""
		}
		a, err := query(fd)
		unix.Close(fd)
		if err != nil {
			return "" // left the cgroup2 hierarchy, or may not query
		}
		const allowOverride, allowMulti = 1, 2
		if a.Flags&allowMulti != 0 {
			return ""
		}
		if len(a.Programs) > 0 {
			if a.Flags&allowOverride != 0 {
				return ""
			}
			return p
		}
	}
	return ""
}

func openCgroup(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open cgroup: %w", err)
	}
	return fd, nil
}

// permErr marks EPERM/EACCES with ErrPermission and keeps just the errno,
// "no BPF permission: operation not permitted"; cilium's hint about
// RLIMIT_MEMLOCK does not apply (memcg accounting since 5.11, and we must
// not raise rlimits inside sshd).
func permErr(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) && (errno == unix.EPERM || errno == unix.EACCES) {
		return fmt.Errorf("%w: %w", ErrPermission, errno)
	}
	return err
}
