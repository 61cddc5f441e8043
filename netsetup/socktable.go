package netsetup

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ProcSocket is one IP socket a process holds, as the kernel's socket table
// (sock_diag, what `ss -p` reads) reports it.
type ProcSocket struct {
	PID   int
	Proto string // "tcp", "udp"
	Local string // "127.0.0.1:323", "[::1]:323"
	State uint8  // TCP state (10 = listen); 7 (close) for an unconnected UDP socket
	// BoundIf is the device the socket is bound to (SO_BINDTODEVICE, or a
	// VRF's sock_create program): ss prints it as %NAME. 0 = unbound.
	BoundIf int
}

// String is the ss-like "udp 127.0.0.1:323%mgmt (pid 812)".
func (s ProcSocket) String(names map[int]string) string {
	dev := ""
	if s.BoundIf != 0 {
		dev = "%" + names[s.BoundIf]
		if names[s.BoundIf] == "" {
			dev = "%if" + strconv.Itoa(s.BoundIf)
		}
	}
	return fmt.Sprintf("%s %s%s (pid %d)", s.Proto, s.Local, dev, s.PID)
}

// socketInodes: the inodes of the sockets process pid has open, from its
// /proc/PID/fd links (none when it has exited meanwhile).
func socketInodes(procRoot string, pid int) []uint32 {
	dir := procRoot + "/" + strconv.Itoa(pid) + "/fd/"
	fds, _ := os.ReadDir(dir)
	var out []uint32
	for _, fd := range fds {
		t, err := os.Readlink(dir + fd.Name())
		if ino, ok := strings.CutPrefix(t, "socket:["); err == nil && ok {
			if n, err := strconv.ParseUint(strings.TrimSuffix(ino, "]"), 10, 32); err == nil {
				out = append(out, uint32(n))
			}
		}
	}
	return out
}

// ProcessSockets returns the TCP and UDP sockets (IPv4 and IPv6) that pids
// hold, read from the socket table of network namespace ns (netns.None():
// the current one). Sockets are matched to processes by inode through
// /proc/PID/fd, as ss -p does.
func ProcessSockets(ns netns.NsHandle, pids []int) ([]ProcSocket, error) {
	owner := map[uint32]int{}
	for _, pid := range pids {
		for _, ino := range socketInodes("/proc", pid) {
			if _, seen := owner[ino]; !seen {
				owner[ino] = pid
			}
		}
	}
	if len(owner) == 0 {
		return nil, nil
	}
	var h *netlink.Handle
	var err error
	if ns > 0 {
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_INET_DIAG)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_INET_DIAG)
	}
	if err != nil {
		return nil, fmt.Errorf("open sock_diag socket: %w", err)
	}
	defer h.Close()
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		return nil, fmt.Errorf("set the sock_diag socket's timeout: %w", err)
	}
	var out []ProcSocket
	for _, q := range []struct {
		proto string
		dump  func(uint8) ([]*netlink.Socket, error)
	}{{"tcp", h.SocketDiagTCP}, {"udp", h.SocketDiagUDP}} {
		for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
			socks, err := retryDump(func() ([]*netlink.Socket, error) { return q.dump(fam) })
			if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
				return nil, fmt.Errorf("read the %s socket table (sock_diag): %w", q.proto, err)
			}
			for _, s := range socks {
				pid, ok := owner[s.INode]
				if !ok || s.INode == 0 {
					continue
				}
				out = append(out, ProcSocket{PID: pid, Proto: q.proto, State: s.State, BoundIf: int(s.ID.Interface),
					Local: net.JoinHostPort(s.ID.Source.String(), strconv.Itoa(int(s.ID.SourcePort)))})
			}
		}
	}
	return out, nil
}
