package bpf

import (
	"encoding/hex"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Thin raw bpf(2) wrappers. cilium/ebpf has equivalents, but its
// link.QueryPrograms hides the cgroup's attach flags (needed to tell "another
// tool owns this hook" from "no permission") and ProgramInfo reads
// /proc/self/fdinfo for every program, which makes the reuse walk several
// times slower than it needs to be.

func bpfCall(cmd int, attr unsafe.Pointer, size uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return 0, errno
	}
	return r, nil
}

// union bpf_attr, BPF_PROG_QUERY member.
type progQueryAttr struct {
	targetFD        uint32
	attachType      uint32
	queryFlags      uint32
	attachFlags     uint32
	progIDs         uint64
	count           uint32
	_               uint32
	progAttachFlags uint64
	linkIDs         uint64
	linkAttachFlags uint64
	revision        uint64
}

func query(cgFD int) (Attachment, error) {
	// Two rounds: size, then fetch; retry if programs were added in between
	// (the kernel returns ENOSPC and the new count).
	ids := make([]uint32, 4)
	for {
		attr := progQueryAttr{
			targetFD:   uint32(cgFD),
			attachType: uint32(ebpf.AttachCGroupInetSockCreate),
			progIDs:    uint64(uintptr(unsafe.Pointer(&ids[0]))),
			count:      uint32(len(ids)),
		}
		_, err := bpfCall(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		runtime.KeepAlive(ids) // only referenced through attr.progIDs
		if err == unix.ENOSPC && int(attr.count) > len(ids) {
			ids = make([]uint32, attr.count)
			continue
		}
		if err != nil {
			return Attachment{}, err
		}
		a := Attachment{Flags: attr.attachFlags}
		for _, id := range ids[:attr.count] {
			a.Programs = append(a.Programs, ebpf.ProgramID(id))
		}
		return a, nil
	}
}

// union bpf_attr, BPF_*_GET_NEXT_ID / BPF_PROG_GET_FD_BY_ID member.
type getIDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

func nextProgID(start uint32) (uint32, error) {
	attr := getIDAttr{id: start}
	if _, err := bpfCall(unix.BPF_PROG_GET_NEXT_ID, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return 0, err
	}
	return attr.nextID, nil
}

// progFDByID returns an O_CLOEXEC fd (the kernel always sets it for bpf fds).
func progFDByID(id uint32) (int, error) {
	attr := getIDAttr{id: id}
	fd, err := bpfCall(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return -1, err
	}
	return int(fd), nil
}

// Leading part of struct bpf_prog_info, up to and including name (4.15+);
// the kernel fills min(info_len, its size).
type progInfoRaw struct {
	typ          uint32
	id           uint32
	tag          [8]byte
	jitedLen     uint32
	xlatedLen    uint32
	jitedInsns   uint64
	xlatedInsns  uint64
	loadTime     uint64
	createdByUID uint32
	nrMapIDs     uint32
	mapIDs       uint64
	name         [16]byte
}

type objInfoAttr struct {
	fd      uint32
	infoLen uint32
	info    uint64
}

type progInfo struct {
	typ  uint32
	id   uint32
	tag  string // hex, as ebpf.ProgramInfo.Tag
	name string
}

func objInfo(fd int) (progInfo, error) {
	var raw progInfoRaw
	attr := objInfoAttr{
		fd:      uint32(fd),
		infoLen: uint32(unsafe.Sizeof(raw)),
		info:    uint64(uintptr(unsafe.Pointer(&raw))),
	}
	_, err := bpfCall(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(&raw) // only referenced through attr.info
	if err != nil {
		return progInfo{}, err
	}
	return progInfo{
		typ:  raw.typ,
		id:   raw.id,
		tag:  hex.EncodeToString(raw.tag[:]),
		name: unix.ByteSliceToString(raw.name[:]),
	}, nil
}
