package netsetup

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ipIn runs ip(8) in ns (forked from a thread that joined it).
func ipIn(t *testing.T, ns netns.NsHandle, args ...string) string {
	t.Helper()
	var out []byte
	err := inNS(ns, func() error {
		var err error
		out, err = exec.Command("ip", args...).CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func needIP(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8)")
	}
}

var lifetimeRe = regexp.MustCompile(`(expires|valid_lft|preferred_lft) (\d+)sec`)

// lifetimes cuts the counting-down lifetimes out of ip(8) output, so the
// rest can be compared byte for byte, and returns them in order.
func lifetimes(s string) (string, []int) {
	var secs []int
	for _, m := range lifetimeRe.FindAllStringSubmatch(s, -1) {
		n, _ := strconv.Atoi(m[2])
		secs = append(secs, n)
	}
	return lifetimeRe.ReplaceAllString(s, "$1 Nsec"), secs
}

// sameLifetimes: after within 2s below before (time passed), never above.
func sameLifetimes(t *testing.T, what string, before, after []int) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("%s: lifetimes %v, then %v", what, before, after)
	}
	for i := range before {
		if d := before[i] - after[i]; d < -1 || d > 2 {
			t.Errorf("%s: lifetime %d was %ds, restored as %ds", what, i, before[i], after[i])
		}
	}
}

// attrNS: a netns with eth0 (a veth standing in for the NIC) holding
// 192.0.2.10/24 and 2001:db8::10/64, and routes through it that carry
// what a plain "via GW dev eth0" record lost: src, metrics, IPv6
// preference and expiry, multipath hops with weights and onlink.
func attrNS(t *testing.T) (netns.NsHandle, *Net) {
	t.Helper()
	needIP(t)
	ns, n := newNS(t)
	vethPair(t, n, "eth0", "peer0", netns.None())
	pl, _ := n.H.LinkByName("peer0")
	_ = n.H.LinkSetUp(pl)
	addAddr(t, n, "eth0", "192.0.2.10/24")
	addAddr(t, n, "eth0", "2001:db8::10/64")
	for _, r := range [][]string{
		{"route", "add", "198.51.100.0/24", "via", "192.0.2.1", "dev", "eth0", "proto", "static", "metric", "50",
			"src", "192.0.2.10", "mtu", "lock", "1400", "advmss", "1360", "hoplimit", "32", "initcwnd", "10", "rto_min", "50ms", "congctl", "reno"},
		{"route", "add", "203.0.113.0/24", "proto", "static", "nexthop", "via", "192.0.2.1", "dev", "eth0", "weight", "2",
			"nexthop", "via", "192.0.2.2", "dev", "eth0", "weight", "1", "onlink"},
		{"-6", "route", "add", "2001:db8:5::/48", "via", "2001:db8::1", "dev", "eth0", "proto", "static",
			"src", "2001:db8::10", "mtu", "1400", "pref", "high"},
		{"-6", "route", "add", "2001:db8:6::/48", "via", "2001:db8::1", "dev", "eth0", "proto", "ra",
			"pref", "low", "expires", "600", "hoplimit", "64"},
		{"-6", "route", "add", "2001:db8:7::/48", "proto", "static", "nexthop", "via", "2001:db8::1", "dev", "eth0", "weight", "3",
			"nexthop", "via", "2001:db8::2", "dev", "eth0"},
	} {
		ipIn(t, ns, r...)
	}
	return ns, n
}

// mainRoutes: `ip -d route show` of main, both families.
func mainRoutes(t *testing.T, ns netns.NsHandle, table string) string {
	return ipIn(t, ns, "-d", "route", "show", "table", table) + ipIn(t, ns, "-6", "-d", "route", "show", "table", table)
}

// roundTrip persists and reloads st, as apply's backup and revert do.
func roundTrip(t *testing.T, st *State) *State {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var out State
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// TestMovedRoutesKeepAttributes: the routes through eth0 move into the
// VRF table and come back to main (rollback of the moves) as they were,
// `ip -d route show` byte for byte, expiry within a second or two.
func TestMovedRoutesKeepAttributes(t *testing.T) {
	ns, n := attrNS(t)
	cfg := testCfg()
	st, err := testReader(ns, n, t.TempDir()).Read(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st = roundTrip(t, st)
	mv := movableRoutes(st, "eth0")
	if len(mv) != 5 {
		t.Fatalf("movable routes (want the 5 added, multipath ones too): %+v", mv)
	}
	before, beforeSecs := lifetimes(mainRoutes(t, ns, "main"))
	var steps []Step
	for _, r := range mv {
		steps = append(steps, stepMoveRoute(r, cfg.Table, false))
	}
	env := testEnv(ns, n, t.TempDir())
	if err := Apply(env, steps); err != nil {
		t.Fatal(err)
	}
	if left, _ := lifetimes(mainRoutes(t, ns, "main")); strings.Contains(left, "via") {
		t.Errorf("main still has routes through eth0 after the moves:\n%s", left)
	}
	moved, movedSecs := lifetimes(mainRoutes(t, ns, strconv.Itoa(int(cfg.Table))))
	for _, line := range strings.Split(before, "\n") {
		if strings.Contains(line, "proto kernel") || strings.HasPrefix(line, "\t") || line == "" {
			continue
		}
		if !strings.Contains(moved, line) {
			t.Errorf("moved into table %d without its attributes:\n  was %s\ntable has:\n%s", cfg.Table, line, moved)
		}
	}
	sameLifetimes(t, "moved", beforeSecs, movedSecs)
	if err := rollback(env, os.Stderr, steps); err != nil {
		t.Fatal(err)
	}
	after, afterSecs := lifetimes(mainRoutes(t, ns, "main"))
	if after != before {
		t.Errorf("main after the moves were rolled back:\n%s\nwant:\n%s", after, before)
	}
	sameLifetimes(t, "restored", beforeSecs, afterSecs)
	if left := mainRoutes(t, ns, strconv.Itoa(int(cfg.Table))); strings.TrimSpace(left) != "" {
		t.Errorf("table %d after rollback:\n%s", cfg.Table, left)
	}
}

// TestReleaseRestoresRoutesAndAddresses: revert's release, from a saved
// state, puts flushed routes and addresses back as they were: flags
// (noprefixroute, nodad), label, peer, no broadcast where there was none,
// and what is left of finite lifetimes.
func TestReleaseRestoresRoutesAndAddresses(t *testing.T) {
	ns, n := attrNS(t)
	ipIn(t, ns, "addr", "add", "192.0.2.20/24", "dev", "eth0", "noprefixroute", "label", "eth0:m", "valid_lft", "300", "preferred_lft", "200")
	ipIn(t, ns, "addr", "add", "10.1.1.1", "peer", "10.1.1.2/32", "dev", "eth0")
	ipIn(t, ns, "-6", "addr", "add", "2001:db8:1::20/64", "dev", "eth0", "noprefixroute", "nodad", "mngtmpaddr")
	cfg := testCfg()
	st, err := testReader(ns, n, t.TempDir()).Read(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st = roundTrip(t, st)
	routesBefore, rSecs := lifetimes(mainRoutes(t, ns, "main"))
	addrsBefore, aSecs := lifetimes(ipIn(t, ns, "-d", "addr", "show", "dev", "eth0"))

	// what enslaving a VRF flushes, and more: every route and address
	l, _ := n.H.LinkByName("eth0")
	for _, r := range movableRoutes(st, "eth0") {
		ipIn(t, ns, "-"+famTag(r.Family)[1:], "route", "del", r.Dst, "table", "main", "proto", strconv.Itoa(int(r.Protocol)))
	}
	for _, a := range st.Addrs["eth0"] {
		if na, err := netlink.ParseAddr(a.CIDR); err == nil && !na.IP.IsLinkLocalUnicast() {
			if a.Peer != "" {
				na.Peer, _ = netlink.ParseIPNet(a.Peer)
			}
			if err := n.H.AddrDel(l, na); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				t.Fatalf("del %s: %v", a.CIDR, err)
			}
		}
	}
	if left := ipIn(t, ns, "route", "show", "table", "main", "198.51.100.0/24"); left != "" {
		t.Fatalf("route survived the flush: %s", left)
	}

	env := testEnv(ns, n, t.TempDir())
	if err := releaseToMain(env, cfg, st.Addrs["eth0"], movableRoutes(st, "eth0"), nil); err != nil {
		t.Fatal(err)
	}
	addrsAfter, aSecsAfter := lifetimes(ipIn(t, ns, "-d", "addr", "show", "dev", "eth0"))
	if addrsAfter != addrsBefore {
		t.Errorf("addresses after release:\n%s\nwant:\n%s", addrsAfter, addrsBefore)
	}
	sameLifetimes(t, "addresses", aSecs, aSecsAfter)
	if !strings.Contains(addrsAfter, "192.0.2.20/24 scope global secondary dynamic noprefixroute eth0:m") {
		t.Errorf("192.0.2.20 lost its flags or label:\n%s", addrsAfter)
	}
	routesAfter, rSecsAfter := lifetimes(mainRoutes(t, ns, "main"))
	if routesAfter != routesBefore {
		t.Errorf("main after release:\n%s\nwant:\n%s", routesAfter, routesBefore)
	}
	sameLifetimes(t, "routes", rSecs, rSecsAfter)
}

// TestNexthopObjectRouteRefused: a route through eth0 by nexthop object
// is recorded with its nhid, and apply refuses it by name (enslaving
// would delete object and route) instead of losing it.
func TestNexthopObjectRouteRefused(t *testing.T) {
	needIP(t)
	ns, n := newNS(t)
	vethPair(t, n, "eth0", "peer0", netns.None())
	pl, _ := n.H.LinkByName("peer0")
	_ = n.H.LinkSetUp(pl) // carrier, or the kernel refuses the nexthop
	addAddr(t, n, "eth0", "192.0.2.10/24")
	ipIn(t, ns, "nexthop", "add", "id", "5", "via", "192.0.2.1", "dev", "eth0")
	ipIn(t, ns, "route", "add", "198.51.100.0/24", "nhid", "5")
	cfg := testCfg()
	st, err := testReader(ns, n, t.TempDir()).Read(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mv := movableRoutes(st, "eth0")
	if len(mv) != 1 || mv[0].NHID != 5 || len(mv[0].NHDevs) != 1 || mv[0].NHDevs[0] != "eth0" {
		t.Fatalf("nhid route read as %+v", mv)
	}
	_, err = planNet(cfg, st)
	var pe *PlanError
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "198.51.100.0/24") || !strings.Contains(pe.Msg, "nexthop object 5") {
		t.Fatalf("plan: %v, want a refusal naming the route and nexthop object 5", err)
	}
	// the refusal is right: down (what enslaving does) takes object and route
	l, _ := n.H.LinkByName("eth0")
	_ = n.H.LinkSetDown(l)
	if out := ipIn(t, ns, "route", "show", "198.51.100.0/24"); out != "" {
		t.Errorf("nhid route outlived its device going down: %s", out)
	}
}

// TestMixedMultipathRefused: a multipath route with hops through eth0 and
// another device cannot move whole; apply says so.
func TestMixedMultipathRefused(t *testing.T) {
	st := &State{Links: map[string]Link{"eth0": {Name: "eth0", Index: 2}, "eth1": {Name: "eth1", Index: 3}}}
	st.Routes = []Route{{Family: unix.AF_INET, Table: unix.RT_TABLE_MAIN, Dst: "default", Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_STATIC,
		MultiPath: []Hop{{Gw: "192.0.2.1", Dev: "eth0", Weight: 1}, {Gw: "198.51.100.1", Dev: "eth1", Weight: 1}}}}
	_, err := planNet(testCfg(), st)
	var pe *PlanError
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "eth0, eth1") {
		t.Fatalf("plan: %v, want a refusal naming both devices", err)
	}
}

// TestOldStateLoads: a state saved before the new fields loads, and its
// routes and addresses convert as before (no lifetimes, no metrics).
func TestOldStateLoads(t *testing.T) {
	old := `{"links":{"eth0":{"name":"eth0","index":2,"kind":"veth","up":true}},
	"addrs":{"eth0":[{"cidr":"192.0.2.10/24","scope":0,"dynamic":true}]},
	"routes":[{"family":2,"table":254,"dst":"default","gw":"192.0.2.1","dev":"eth0","metric":100,"type":1,"protocol":16,"scope":0}]}`
	var st State
	if err := json.Unmarshal([]byte(old), &st); err != nil {
		t.Fatal(err)
	}
	mv := movableRoutes(&st, "eth0")
	if len(mv) != 1 || mv[0].Metrics != nil || mv[0].Expires != nil || mv[0].Src != "" {
		t.Fatalf("old route read as %+v", mv)
	}
	na, live, err := nlAddr(st.Addrs["eth0"][0], time.Now())
	if err != nil || !live || na.ValidLft != 0 || na.PreferedLft != 0 || na.Broadcast != nil || na.Flags != 0 {
		t.Fatalf("old address converts to %+v live %v err %v: want permanent, library-derived broadcast", na, live, err)
	}
	b, _ := json.Marshal(mv[0])
	for _, k := range []string{"src", "metrics", "pref", "expires", "multipath", "nhid", "tos", "realm"} {
		if strings.Contains(string(b), `"`+k+`"`) {
			t.Errorf("old route re-saved with %q: %s", k, b)
		}
	}
}
