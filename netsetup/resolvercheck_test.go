package netsetup

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// dnsResponder answers real UDP queries in netns b at addr:53 with the
// response code rcodes["name TYPE"] (NOERROR when absent), and records what
// it was asked (count).
func dnsResponder(t *testing.T, na *Net, addr string, rcodes map[string]int) (count func() int) {
	t.Helper()
	var pc net.PacketConn
	if err := inNS(na.NS, func() error {
		var e error
		pc, e = net.ListenPacket("udp4", addr+":53")
		return e
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var mu sync.Mutex
	n := 0
	go func() {
		buf := make([]byte, 512)
		for {
			m, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := append([]byte(nil), buf[:m]...)
			var labels []string
			i := 12
			for i < len(q) && q[i] != 0 {
				l := int(q[i])
				labels = append(labels, string(q[i+1:i+1+l]))
				i += 1 + l
			}
			name := strings.Join(labels, ".")
			if name == "" {
				name = "."
			}
			typ := map[uint16]string{1: "A", 6: "SOA"}[binary.BigEndian.Uint16(q[i+1:])]
			key := name + " " + typ
			mu.Lock()
			n++
			mu.Unlock()
			resp := q
			resp[2] |= 0x80
			resp[3] = 0x80 | byte(rcodes[key])
			if rcodes[key] == 0 {
				binary.BigEndian.PutUint16(resp[6:], 1) // ANCOUNT (the record itself is not needed)
			}
			pc.WriteTo(resp, from)
		}
	}()
	return func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestCheckDNSTellsRefusalFromSilence: the resolver and resolution checks
// over real sockets bound to a veth (standing in for the VRF device), with
// a responder in the peer netns, for the answers forwarders and
// split-horizon servers really give.
func TestCheckDNSTellsRefusalFromSilence(t *testing.T) {
	_, na, _, nb := peeredNS(t, "vrfdev")
	addAddr(t, nb, "peer0", "10.9.0.3/24") // nothing listens: port unreachable
	c := &Checker{Reader: &Reader{Net: na}, DNSTimeout: 500 * time.Millisecond}
	run := func(resolv, query string) (CheckResult, CheckResult) {
		cfg := testCfg()
		cfg.VRF, cfg.Iface, cfg.QueryName = "vrfdev", "vrfdev", query
		st := &State{Files: map[string]FileState{ResolvConf: {Exists: true, Content: resolv}}}
		rs := c.checkDNS(cfg, st, true)
		if len(rs) != 2 || rs[0].Name != "resolver" || rs[1].Name != "resolution" {
			t.Fatalf("results %+v", rs)
		}
		return rs[0], rs[1]
	}

	t.Run("recursive server", func(t *testing.T) {
		asked := dnsResponder(t, nb, "10.9.0.2", nil)
		r, n := run("nameserver 10.9.0.2\n", ".")
		if !r.OK || !n.OK || !strings.Contains(n.Detail, ". SOA (root zone) resolved by 10.9.0.2") {
			t.Fatalf("resolver %+v\nresolution %+v", r, n)
		}
		if !strings.Contains(n.Detail, "(NOERROR, 1 answer records)") || asked() != 1 {
			t.Fatalf("%d queries, want one", asked())
		}
	})
	t.Run("split horizon: refuses the root, serves the search domain", func(t *testing.T) {
		dnsResponder(t, nb, "10.9.0.2", map[string]int{". SOA": 5})
		r, n := run("nameserver 10.9.0.2\nsearch corp.test\n", ".")
		if !r.OK || !strings.Contains(r.Detail, "10.9.0.2 answered REFUSED for . SOA") {
			t.Fatalf("a refusing server is reachable: %+v", r)
		}
		if !n.OK || !strings.Contains(n.Detail, "corp.test SOA (search domain) resolved by 10.9.0.2") {
			t.Fatalf("resolution %+v", n)
		}
	})
	t.Run("authoritative only: NXDOMAIN for the root", func(t *testing.T) {
		dnsResponder(t, nb, "10.9.0.2", map[string]int{". SOA": 3})
		_, n := run("nameserver 10.9.0.2\n", ".")
		if !n.OK || !strings.Contains(n.Detail, "(NXDOMAIN, 0 answer records)") {
			t.Fatalf("resolution %+v", n)
		}
	})
	t.Run("refuses everything", func(t *testing.T) {
		dnsResponder(t, nb, "10.9.0.2", map[string]int{". SOA": 5, "corp.test SOA": 5})
		r, n := run("nameserver 10.9.0.2\nsearch corp.test\n", ".")
		if !r.OK {
			t.Fatalf("a refusing server is reachable: %+v", r)
		}
		if n.OK || !strings.Contains(n.Fix, "--query-name NAME") || !strings.Contains(n.Detail, "REFUSED for corp.test SOA") {
			t.Fatalf("resolution %+v", n)
		}
	})
	t.Run("named host: resolves, or NXDOMAIN", func(t *testing.T) {
		dnsResponder(t, nb, "10.9.0.2", map[string]int{". SOA": 5, "gone.corp.test A": 3})
		_, n := run("nameserver 10.9.0.2\n", "mirror.corp.test")
		if !n.OK || !strings.Contains(n.Detail, "mirror.corp.test A (--query-name)") {
			t.Fatalf("resolution %+v", n)
		}
		_, n = run("nameserver 10.9.0.2\n", "gone.corp.test")
		if n.OK || !strings.Contains(n.Fix, "does not exist") {
			t.Fatalf("NXDOMAIN: %+v", n)
		}
	})
	t.Run("no server answers", func(t *testing.T) {
		r, n := run("nameserver 10.9.0.3\nnameserver 10.9.0.99\n", ".")
		if r.OK || !strings.Contains(r.Detail, "no nameserver answers from VRF vrfdev") || n.OK || !strings.Contains(n.Detail, "not tried") {
			t.Fatalf("resolver %+v\nresolution %+v", r, n)
		}
	})
	t.Run("one silent, one answering", func(t *testing.T) {
		dnsResponder(t, nb, "10.9.0.2", nil)
		r, n := run("nameserver 10.9.0.3\nnameserver 10.9.0.2\n", ".")
		if !r.OK || !strings.Contains(r.Detail, "(no answer: ") || !n.OK {
			t.Fatalf("resolver %+v\nresolution %+v", r, n)
		}
	})
}

// dnsTCPResponder answers length-prefixed queries over TCP in netns of na
// at addr:53 with NOERROR.
func dnsTCPResponder(t *testing.T, na *Net, addr string) {
	t.Helper()
	var ln net.Listener
	if err := inNS(na.NS, func() error {
		var e error
		ln, e = net.Listen("tcp4", addr+":53")
		return e
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				q[2] |= 0x80
				q[3] = 0x80
				c.Write(append(l[:], q...))
			}()
		}
	}()
}

// TestCheckDNSPaths: the management nameserver asked over UDP and TCP from
// the device and from no device; one that answers only over UDP fails,
// naming TCP.
func TestCheckDNSPaths(t *testing.T) {
	_, na, _, nb := peeredNS(t, "vrfdev")
	c := &Checker{Reader: &Reader{Net: na}, DNSTimeout: 500 * time.Millisecond}
	cfg := testCfg()
	cfg.VRF, cfg.Iface, cfg.Nameservers = "vrfdev", "vrfdev", []string{"10.9.0.2"}
	st := &State{Files: map[string]FileState{ResolvConf: {Exists: true, Content: "nameserver 10.9.0.2\n"}}}

	dnsResponder(t, nb, "10.9.0.2", nil)
	r, ok := c.checkDNSPaths(cfg, st, DNSStatic, true)
	if !ok || r.OK || !strings.Contains(r.Fix, "must answer DNS over TCP") || !strings.Contains(r.Detail, "tcp to 10.9.0.2:53 from vrfdev") {
		t.Fatalf("UDP-only server: %+v", r)
	}
	dnsTCPResponder(t, nb, "10.9.0.2")
	r, ok = c.checkDNSPaths(cfg, st, DNSStatic, true)
	if !ok || !r.OK || r.Detail != "10.9.0.2 answered . SOA over UDP and TCP, from VRF vrfdev and from the default VRF" {
		t.Fatalf("TCP server: %+v", r)
	}
	if _, ok := c.checkDNSPaths(cfg, st, DNSStatic, false); ok {
		t.Fatalf("no VRF: asked anyway")
	}
}
