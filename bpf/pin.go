package bpf

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PinDir holds one pinned program per ifindex, sock-<ifindex>, in the bpffs
// that systemd mounts at /sys/fs/bpf. The pin is the O(1) lookup every
// login uses to find the already-loaded program: the Go path here and the C
// fast path of pam_vrf.so (cgo/module) alike. The program for an ifindex
// never changes (the ifindex is its only input), so a pin is never stale in
// content; a VRF re-created with a new ifindex gets a new pin, and the old
// one holds a 4-instruction program until reboot or the package's removal
// (which removes the directory). Without a bpffs at BPFFSMount, nothing is
// pinned and Ensure falls back to the walk.
const (
	BPFFSMount = "/sys/fs/bpf"
	PinDir     = BPFFSMount + "/pam_vrf"
)

// PinPath is where the program for ifindex is pinned.
func PinPath(ifindex uint32) string {
	return PinDir + "/sock-" + strconv.FormatUint(uint64(ifindex), 10)
}

// union bpf_attr, BPF_OBJ_PIN / BPF_OBJ_GET member.
type objAttr struct {
	pathname  uint64
	bpfFD     uint32
	fileFlags uint32
}

func objCall(cmd int, path string, fd int) (int, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	attr := objAttr{pathname: uint64(uintptr(unsafe.Pointer(p))), bpfFD: uint32(fd)}
	r, err := bpfCall(cmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return -1, err
	}
	return int(r), nil
}

// pinnedFD opens the pinned program for ifindex, or returns -1 when there is
// none or it is not ours (type, name and tag are checked).
func pinnedFD(ifindex uint32) int {
	fd, err := objCall(unix.BPF_OBJ_GET, PinPath(ifindex), 0)
	if err != nil {
		return -1
	}
	if ok, _ := isOurs(fd, ifindex); !ok {
		unix.Close(fd)
		return -1
	}
	return fd
}

// pin pins the program fd for ifindex (best effort: a missing bpffs or a
// concurrent pin by another login are fine).
func pin(fd int, ifindex uint32) error {
	var st unix.Statfs_t
	if err := unix.Statfs(BPFFSMount, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("no bpffs at %s", BPFFSMount)
	}
	if err := os.Mkdir(PinDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	// bpffs' root is world-writable (sticky): a directory someone else made
	// there is not ours to trust.
	var dst unix.Stat_t
	if err := unix.Lstat(PinDir, &dst); err != nil || dst.Uid != 0 || dst.Mode&0o022 != 0 || dst.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s is not a directory of root's, not group/world-writable", PinDir)
	}
	if _, err := objCall(unix.BPF_OBJ_PIN, PinPath(ifindex), fd); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("pin %s: %w", PinPath(ifindex), err)
	}
	return nil
}

// pinOrAdopt pins the freshly loaded program fd for ifindex; when a
// concurrent first login pinned its copy first, it closes fd and returns
// that one, so that one program serves every session of the VRF.
func pinOrAdopt(fd int, ifindex uint32) int {
	if pin(fd, ifindex) != nil {
		return fd
	}
	if won := pinnedFD(ifindex); won >= 0 {
		if same, _ := sameProgram(fd, won); same {
			unix.Close(won)
			return fd
		}
		unix.Close(fd)
		return won
	}
	return fd
}

func sameProgram(a, b int) (bool, error) {
	ia, err := objInfo(a)
	if err != nil {
		return false, err
	}
	ib, err := objInfo(b)
	if err != nil {
		return false, err
	}
	return ia.id == ib.id, nil
}

// isOurs reports whether the program fd is ours for ifindex: type
// cgroup_sock, name ProgramName, and the tag of Instructions(ifindex).
func isOurs(fd int, ifindex uint32) (bool, error) {
	info, err := objInfo(fd)
	if err != nil {
		return false, err
	}
	return info.typ == progTypeCgroupSock && info.name == ProgramName && hasTag(Instructions(ifindex), info.tag), nil
}

// union bpf_attr, BPF_PROG_ATTACH member.
type attachAttr struct {
	targetFD     uint32
	attachBPFFD  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBPFFD uint32
}

// attach is BPF_PROG_ATTACH with flags 0 (iproute2's bpf_prog_attach_fd).
func attach(cg, prog int) error {
	attr := attachAttr{targetFD: uint32(cg), attachBPFFD: uint32(prog), attachType: attachCgroupInetSockCreate}
	_, err := bpfCall(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// Pins lists the pins in PinDir (file names, sock-<ifindex>).
func Pins() []string {
	entries, _ := os.ReadDir(PinDir)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// UnpinExcept removes every pin in PinDir whose name is not in keep (test
// suites: a pin outlives the device it was made for).
func UnpinExcept(keep []string) {
	for _, n := range Pins() {
		if !slices.Contains(keep, n) {
			os.Remove(PinDir + "/" + n)
		}
	}
}
