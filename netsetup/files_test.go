package netsetup

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

func writeRoot(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if strings.HasPrefix(c, "->") {
			if err := os.Symlink(strings.TrimPrefix(c, "->"), full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFilesInTempRoot: networkd detection, file generation, the resolv.conf
// stub symlink replaced by a plain file, and a second plan with no file steps.
func TestFilesInTempRoot(t *testing.T) {
	root := t.TempDir()
	writeRoot(t, root, map[string]string{
		"/run/systemd/network/10-netplan-eth0.network": "[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n",
		"/etc/systemd/network/99-other.network":        "[Match]\nName=eth1 eth2\n",
		"/run/systemd/resolve/stub-resolv.conf":        "nameserver 127.0.0.53\nsearch corp.example\n",
		"/run/systemd/resolve/resolv.conf":             "nameserver 192.0.2.53\nnameserver 127.0.0.1\nsearch corp.example\n",
		"/etc/resolv.conf":                             "->../run/systemd/resolve/stub-resolv.conf",
	})
	fsys := FS{Root: root}
	m := DetectManager(fsys, Offline{}, "eth0")
	if m.Kind != "networkd" || m.NetworkFile != "/run/systemd/network/10-netplan-eth0.network" || !m.Netplan {
		t.Fatalf("manager %+v", m)
	}
	if DetectManager(fsys, Offline{}, "eth9").Kind != "none" {
		t.Fatal("eth9 must not match")
	}
	cfg := testCfg()
	st := freshState()
	st.Manager = m
	st.Files = map[string]FileState{}
	for _, p := range candidatePaths(cfg, m) {
		st.Files[p], _ = fsys.Stat(p)
	}
	st.Upstream = HarvestNameservers(fsys, st.Files[ResolvConf])
	if strings.Join(st.Upstream, ",") != "192.0.2.53" {
		t.Fatalf("harvested %v (loopback must be dropped)", st.Upstream)
	}
	files, err := planFiles(cfg, DNSStatic, st)
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{FS: fsys}
	if err := Apply(env, files); err != nil {
		t.Fatal(err)
	}
	rc, _ := fsys.Stat(ResolvConf)
	if rc.Symlink != "" || !strings.Contains(rc.Content, "nameserver 192.0.2.53\n") || !strings.Contains(rc.Content, "search corp.example") || strings.Contains(rc.Content, "127.0.0.53") {
		t.Fatalf("resolv.conf %+v", rc)
	}
	for _, p := range []string{"/etc/systemd/network/mgmt.netdev", "/etc/systemd/network/mgmt.network",
		"/etc/systemd/network/10-netplan-eth0.network.d/pam-vrf.conf", UnitPath, SysctlConf, ConfigPath} {
		if f, _ := fsys.Stat(p); !f.Exists {
			t.Errorf("%s not written", p)
		}
	}
	if w, _ := fsys.Stat(UnitWants); w.Symlink != UnitPath {
		t.Errorf("unit not enabled: %+v", w)
	}
	// the written config file loads back to the same settings
	back, err := LoadConfigFile(fsys.P(ConfigPath), Defaults(), false)
	if err != nil || back.Iface != "eth0" || back.Table != 1000 || back.VRF != "mgmt" {
		t.Fatalf("config round trip %+v %v", back, err)
	}
	// no temp files left behind
	ents, _ := os.ReadDir(filepath.Join(root, "etc"))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".pam-vrf-") {
			t.Errorf("temp file left: %s", e.Name())
		}
	}
	// second run: nothing
	for _, p := range candidatePaths(cfg, m) {
		st.Files[p], _ = fsys.Stat(p)
	}
	again, _ := planFiles(cfg, DNSStatic, st)
	if len(again) != 0 {
		t.Fatalf("second run file steps %v", ids(again))
	}
	// undo restores the symlink
	old := FileState{Exists: true, Symlink: "../run/systemd/resolve/stub-resolv.conf"}
	if err := fsys.Restore(ResolvConf, old); err != nil {
		t.Fatal(err)
	}
	if f, _ := fsys.Stat(ResolvConf); f.Symlink != old.Symlink {
		t.Fatalf("restore: %+v", f)
	}
}

func TestLockoutGuard(t *testing.T) {
	dir := t.TempDir()
	// 192.0.2.10:22 <- 198.51.100.7:50000 ESTABLISHED; a listener; and v6
	os.WriteFile(dir+"/tcp", []byte("  sl  local_address rem_address   st\n"+
		"   0: 0A0200C0:0016 07643300C6:C350 01 00000000:00000000\n"+
		"   1: 00000000:0016 00000000:0000 0A 00000000:00000000\n"), 0o644)
	os.WriteFile(dir+"/tcp6", []byte("  sl  local_address rem_address   st\n"), 0o644)
	a := EstablishedOnPort(dir, 22)
	if len(a) != 1 || a[0] != netip.MustParseAddr("192.0.2.10") {
		t.Fatalf("parsed %v", a)
	}
	cfg := testCfg()
	st := freshState()
	steps := []Step{{ID: "enslave", Disruptive: true}}
	g := &Guard{ProcNet: dir, ProcRoot: t.TempDir()} // no sshd seen: port 22 counts
	if err := g.Check(cfg, st, steps); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("established ssh on eth0 must refuse: %v", err)
	}
	g = &Guard{ProcNet: t.TempDir(), SSHConnection: "198.51.100.7 50000 2001:db8::10 22"}
	if err := g.Check(cfg, st, steps); err == nil || !strings.Contains(err.Error(), "SSH_CONNECTION") {
		t.Fatalf("SSH_CONNECTION on eth0 must refuse: %v", err)
	}
	g = &Guard{ProcNet: t.TempDir(), SSHConnection: "198.51.100.7 50000 10.0.0.5 22"}
	if err := g.Check(cfg, st, steps); err != nil {
		t.Fatalf("session via another interface: %v", err)
	}
	g = &Guard{ProcNet: dir, ProcRoot: t.TempDir()}
	if err := g.Check(cfg, st, []Step{{ID: "rule"}}); err != nil {
		t.Fatalf("non-disruptive plan refused: %v", err)
	}
}

// listenDNS: a UDP socket on the peer's 10.9.0.2:53, in netns ns, closed
// when the test ends; the test answers from it as it likes.
func listenDNS(t *testing.T, ns netns.NsHandle) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	if err := inNS(ns, func() error {
		var e error
		pc, e = net.ListenPacket("udp4", "10.9.0.2:53")
		return e
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// TestDNSQueryResendsOverUDP: a server that misses the first datagram
// (lost, or the host too busy) answers the resend within the timeout;
// one that never answers fails after the timeout, saying how often the
// query went out.
func TestDNSQueryResendsOverUDP(t *testing.T) {
	nsA, _, nsB, _ := peeredNS(t, "eth0")
	pc := listenDNS(t, nsB)
	seen := make(chan int, 1)
	go func() {
		buf := make([]byte, 512)
		for i := 1; ; i++ {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if i == 1 {
				continue // the first one is lost
			}
			resp := append([]byte(nil), buf[:n]...)
			resp[2] |= 0x80
			resp[3] = 0x80
			pc.WriteTo(resp, from)
			seen <- i
			return
		}
	}()
	start := time.Now()
	ans, err := Query(nsA, "eth0", netip.MustParseAddrPort("10.9.0.2:53"), ".", qtypeSOA, 3*time.Second)
	if err != nil || ans.Rcode != 0 {
		t.Fatalf("query with its first datagram lost: %+v err %v", ans, err)
	}
	if n := <-seen; n != 2 {
		t.Fatalf("answered datagram %d, want the resend (2)", n)
	}
	if d := time.Since(start); d < udpResend/2 || d > 2*udpResend {
		t.Errorf("answered after %v: want about one resend interval (%v)", d, udpResend)
	}
	_, err = Query(nsA, "eth0", netip.MustParseAddrPort("10.9.0.2:53"), ".", qtypeSOA, 2500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "within 2.5s, the query sent 3 times") {
		t.Fatalf("silent server: err %v, want no answer within 2.5s after 3 sends", err)
	}
}

// TestDNSQueryThroughVeth: a real query from a socket bound (SO_BINDTODEVICE)
// to a veth in one netns, answered by an in-test responder in the peer netns.
func TestDNSQueryThroughVeth(t *testing.T) {
	nsA, _, nsB, _ := peeredNS(t, "eth0")
	pc := listenDNS(t, nsB)
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 512)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		q := append([]byte(nil), buf[:n]...)
		got <- q
		resp := append([]byte(nil), q...)
		resp[2] |= 0x80 // QR
		resp[3] = 0x80  // RA, NOERROR
		pc.WriteTo(resp, from)
	}()
	ans, err := Query(nsA, "eth0", netip.MustParseAddrPort("10.9.0.2:53"), ".", qtypeSOA, 2*time.Second)
	if err != nil || ans.Rcode != 0 {
		t.Fatalf("query: %+v err %v", ans, err)
	}
	q := <-got
	if len(q) != 17 || q[12] != 0 || q[14] != 6 { // root name, type SOA
		t.Fatalf("query packet %x", q)
	}
	// bound to the loopback device, the same server is unreachable: the
	// device binding really steers the socket
	if _, err := Query(nsA, "lo", netip.MustParseAddrPort("10.9.0.2:53"), ".", qtypeSOA, 300*time.Millisecond); err == nil {
		t.Fatal("query via lo must fail")
	}
	_ = netns.None()
}
