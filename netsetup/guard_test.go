package netsetup

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// udpRoute asks the kernel for a locally originated route the way a client
// does: connect(2) on a UDP socket. nil = routable.
func udpRoute(t *testing.T, ns netns.NsHandle, dst string) error {
	t.Helper()
	return inNS(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ip := net.ParseIP(dst).To4()
		return unix.Connect(fd, &unix.SockaddrInet4{Port: 53, Addr: [4]byte(ip)})
	})
}

// inputRoute asks for the route of a packet received on dev (what the
// kernel does for a packet arriving in the VRF). nil = routable.
func inputRoute(n *Net, dev, dst string) error {
	_, err := n.H.RouteGetWithOptions(net.ParseIP(dst), &netlink.RouteGetOptions{Iif: dev, SrcAddr: net.ParseIP("198.51.100.7")})
	return err
}

// TestGuardRulesKeepVRFTrafficInAndOutliveNothing: the guard rules stop a
// lookup for the VRF device that its table misses from falling through to
// main; once the device is gone they are inert, so the DNS steering rule
// (to SERVER iif lo lookup TABLE) over an emptied table falls through and
// the server stays reachable - the unreachable default route they replace
// blackholed it. When the device comes back, so does the guard. A veth
// named like the VRF stands in for it (this host has no VRF driver), and
// the iif rule is what is exercised: for a non-VRF oif the kernel treats a
// failed lookup as on-link, so the oif rule is shown in the VM tests.
func TestGuardRulesKeepVRFTrafficInAndOutliveNothing(t *testing.T) {
	ns, n := newNS(t)
	cfg := testCfg()
	addVeth := func() {
		vethPair(t, n, cfg.VRF, "mgmtpeer", netns.None())
		addAddr(t, n, cfg.VRF, "198.51.100.10/24")
	}
	addVeth()
	if err := inNS(ns, func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0) }); err != nil {
		t.Fatal(err)
	}
	vethPair(t, n, "eth9", "eth9peer", netns.None())
	addAddr(t, n, "eth9", "192.0.2.10/24")
	dns := "192.0.2.53"
	env := testEnv(ns, n, t.TempDir())
	rd := testReader(ns, n, t.TempDir())
	st, err := rd.Read(cfg)
	if err != nil {
		t.Fatal(err)
	}
	steps := append(planGuard(cfg, st), stepRuleAdd("dns", dnsRule(cfg, dns)))
	if len(steps) != 7 { // 2 catch-all routes, 4 guard rules, the DNS rule
		t.Fatalf("plan: %v", steps)
	}
	// Before: a packet received on the device is routed to 203.0.113.1 by
	// the main table - the leak the guard closes.
	if err := n.H.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4(203, 0, 113, 0), Mask: net.CIDRMask(24, 32)}, Gw: net.IPv4(198, 51, 100, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := inputRoute(n, cfg.VRF, "203.0.113.1"); err != nil {
		t.Fatalf("without the guard the main route serves the device: %v", err)
	}
	if err := Apply(env, steps); err != nil {
		t.Fatal(err)
	}
	if err := inputRoute(n, cfg.VRF, "203.0.113.1"); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("guarded: a lookup the VRF table misses must end unreachable, got %v", err)
	}
	if err := udpRoute(t, ns, dns); err != nil {
		t.Fatalf("default VRF to the DNS server (steered into table %d, its catch-all): %v", cfg.Table, err)
	}

	// The device goes: guard inert, nothing captured.
	l, _ := n.H.LinkByName(cfg.VRF)
	if err := n.H.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	st2, _ := rd.Read(cfg)
	for _, r := range st2.Routes {
		if r.Table == cfg.Table {
			t.Errorf("route %+v outlived the VRF device in table %d", r, cfg.Table)
		}
	}
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		for _, g := range guardRules(cfg.VRF, f) {
			if !hasRule(st2, g) {
				t.Errorf("guard rule %s gone with the device (it should wait for it)", g)
			}
		}
	}
	if err := udpRoute(t, ns, dns); err != nil {
		t.Fatalf("VRF device gone: the DNS server must stay reachable: %v", err)
	}

	// It comes back (new ifindex): guarded again, with no apply.
	addVeth()
	if err := n.H.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4(203, 0, 113, 0), Mask: net.CIDRMask(24, 32)}, Gw: net.IPv4(198, 51, 100, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := inputRoute(n, cfg.VRF, "203.0.113.1"); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("re-created device: guard must apply again, got %v", err)
	}
	// Undo removes exactly what apply added.
	if err := rollback(env, os.Stderr, steps); err != nil {
		t.Fatal(err)
	}
	if err := inputRoute(n, cfg.VRF, "203.0.113.1"); err != nil {
		t.Fatalf("after undo the guard is gone: %v", err)
	}
}
