package netsetup

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DNS rcodes we report by name.
var rcodeNames = map[int]string{0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

// DNSAnswer is what check needs from a response.
type DNSAnswer struct {
	Rcode   int // response code (0 NOERROR, 5 REFUSED, ...)
	Answers int // answer records (ANCOUNT)
}

// Query sends one real DNS query over UDP to server from a socket bound with
// SO_BINDTODEVICE to dev (the VRF device), in netns ns - exactly the path a
// resolver in a VRF-bound process takes. The socket is created on a thread
// inside ns; once created it stays in that netns. An error means no answer
// at all (unreachable, refused port, timeout).
func Query(ns netns.NsHandle, dev string, server netip.AddrPort, name string, qtype uint16, timeout time.Duration) (DNSAnswer, error) {
	return QueryOver(ns, "udp", dev, server, name, qtype, timeout)
}

// QueryOver is Query over network "udp" or "tcp"; dev "" is a socket bound
// to no device, as a resolver in the default VRF has (unbound explicitly:
// check may run from a login placed in a VRF, whose sockets the cgroup
// binds).
func QueryOver(ns netns.NsHandle, network, dev string, server netip.AddrPort, name string, qtype uint16, timeout time.Duration) (DNSAnswer, error) {
	q, id, err := buildQuery(name, qtype)
	if err != nil {
		return DNSAnswer{}, err
	}
	via := dev
	if via == "" {
		via = "the default VRF"
	}
	var conn net.Conn
	err = inNS(ns, func() error {
		d := net.Dialer{Timeout: timeout, Control: func(network, address string, c syscall.RawConn) error {
			var serr error
			if cerr := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), dev) }); cerr != nil {
				return cerr
			}
			if serr != nil {
				return fmt.Errorf("SO_BINDTODEVICE %q: %w", dev, serr)
			}
			return nil
		}}
		var derr error
		conn, derr = d.DialContext(context.Background(), network, server.String())
		return derr
	})
	if err != nil {
		return DNSAnswer{}, fmt.Errorf("%s to %s from %s: %w", network, server, via, err)
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	_ = conn.SetDeadline(deadline)
	if network == "tcp" {
		// RFC 1035 4.2.2: each message prefixed with its length
		q = append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)
	}
	send := func() error {
		if _, err := conn.Write(q); err != nil {
			return fmt.Errorf("send query to %s via %s (%s): %w", server, via, network, err)
		}
		return nil
	}
	if err := send(); err != nil {
		return DNSAnswer{}, err
	}
	buf := make([]byte, 4096)
	sent := 1
	for {
		if network != "tcp" {
			// UDP: wait for an answer until the next resend at most
			_ = conn.SetReadDeadline(minTime(time.Now().Add(udpResend), deadline))
		}
		n, err := readMsg(conn, network, buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if network != "tcp" && time.Now().Before(deadline) {
					if err := send(); err != nil {
						return DNSAnswer{}, err
					}
					sent++
					continue
				}
				again := ""
				if sent > 1 {
					again = fmt.Sprintf(", the query sent %d times", sent)
				}
				return DNSAnswer{}, fmt.Errorf("no answer from %s via %s (%s) within %s%s", server, via, network, timeout, again)
			}
			return DNSAnswer{}, fmt.Errorf("read answer from %s via %s (%s): %w", server, via, network, err)
		}
		if n < 12 || binary.BigEndian.Uint16(buf) != id || buf[2]&0x80 == 0 {
			continue // not our response; keep waiting until the deadline
		}
		return DNSAnswer{Rcode: int(buf[3] & 0x0f), Answers: int(binary.BigEndian.Uint16(buf[6:]))}, nil
	}
}

// udpResend: over UDP the query goes out again at this interval until the
// timeout, as a stub resolver retries: one datagram lost or late (a busy
// host or link) must not read as "no nameserver answers".
const udpResend = time.Second

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// readMsg reads one DNS message into buf: a datagram, or over TCP a
// length-prefixed message (cut to buf; only the header is looked at).
func readMsg(conn net.Conn, network string, buf []byte) (int, error) {
	if network != "tcp" {
		return conn.Read(buf)
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	msg := make([]byte, n)
	if _, err := io.ReadFull(conn, msg); err != nil {
		return 0, err
	}
	return copy(buf, msg), nil
}

// buildQuery encodes a standard query with RD set.
func buildQuery(name string, qtype uint16) ([]byte, uint16, error) {
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	msg := []byte{idb[0], idb[1], 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	name = strings.TrimSuffix(name, ".")
	if name != "" {
		for _, label := range strings.Split(name, ".") {
			if len(label) == 0 || len(label) > 63 {
				return nil, 0, fmt.Errorf("query name %q: bad label", name)
			}
			msg = append(msg, byte(len(label)))
			msg = append(msg, label...)
		}
	}
	msg = append(msg, 0, byte(qtype>>8), byte(qtype), 0, 1) // root, qtype, class IN
	return msg, id, nil
}

// RcodeName renders a DNS rcode.
func RcodeName(rc int) string {
	if n, ok := rcodeNames[rc]; ok {
		return n
	}
	return fmt.Sprintf("rcode %d", rc)
}
