package netsetup

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Hosts that route carry VRFs of their own; these tests are about leaving
// them alone (tables.go). The host kernel has no VRF driver, so the VRFs
// here are hand-built States; the VM test (tests/e2e/othervrf_test.go)
// has real ones.

// withBlue adds VRF blue (table) with a port and its route and rules, as a
// router would carry it.
func withBlue(st *State, table uint32) *State {
	st.Links["blue"] = Link{Name: "blue", Index: 20, Kind: "vrf", Table: table, Up: true}
	st.Links["bd0"] = Link{Name: "bd0", Index: 21, Kind: "dummy", Master: 20, Up: true}
	st.Rules = append(st.Rules,
		Rule{Family: unix.AF_INET, Pref: 500, Table: table, Dst: "10.20.0.0/16", Action: frActToTbl},
		// blue's own DNS steering, Cumulus style
		Rule{Family: unix.AF_INET, Pref: PrefDNSRuleLegacy, Table: table, Dst: "198.51.100.53/32", Iif: "lo", Action: frActToTbl})
	return st
}

// touches: the steps that name blue, its port, or table 2000.
func touches(steps []Step, what ...string) []string {
	var out []string
	for _, s := range steps {
		for _, w := range what {
			if strings.Contains(s.ID, w) || strings.Contains(s.Desc, w) {
				out = append(out, s.ID+": "+s.Desc)
			}
		}
	}
	return out
}

func TestPlanRefusesTableOfAnotherVRF(t *testing.T) {
	cfg := testCfg()
	// fresh host: blue has table 1000 already
	_, err := Plan(cfg, withBlue(freshState(), 1000))
	pe, ok := err.(*PlanError)
	if !ok || !strings.Contains(pe.Msg, "table 1000 is also the table of VRF blue") || !strings.Contains(pe.Fix, "--table 1001") {
		t.Fatalf("blue on table 1000, fresh host: %v", err)
	}
	// applied host, blue made since: still refused (two VRFs on one table
	// share every route), and the fix says how to move one of them
	_, err = Plan(cfg, withBlue(converge(t, cfg, freshState()), 1000))
	pe, ok = err.(*PlanError)
	if !ok || !strings.Contains(pe.Msg, "VRF blue") || !strings.Contains(pe.Fix, "ip link add blue type vrf table 1001") || !strings.Contains(pe.Fix, "vrf-netsetup revert") {
		t.Fatalf("blue on table 1000, applied host: %v", err)
	}
	// the suggested table skips what other VRFs and rules use
	st := withBlue(freshState(), 1000)
	st.Links["red"] = Link{Name: "red", Index: 30, Kind: "vrf", Table: 1001}
	st.Rules = append(st.Rules, Rule{Family: unix.AF_INET, Pref: 600, Table: 1002, Action: frActToTbl})
	if _, err := Plan(cfg, st); err == nil || !strings.Contains(err.Error(), "--table 1003") {
		t.Fatalf("free table suggestion: %v", err)
	}

	// blue on a table of its own: apply plans as without it, and no step
	// names blue, its port or its table
	for name, st := range map[string]*State{"fresh": withBlue(freshState(), 2000), "applied": withBlue(converge(t, cfg, freshState()), 2000)} {
		steps, err := Plan(cfg, st)
		if err != nil {
			t.Fatalf("%s host, blue on 2000: %v", name, err)
		}
		if bad := touches(steps, "blue", "bd0", "2000", "198.51.100.53", "10.20.0.0"); len(bad) > 0 {
			t.Errorf("%s host: steps touch blue: %v", name, bad)
		}
		if name == "applied" && len(steps) != 0 {
			t.Errorf("applied host with blue beside it is not converged: %v", ids(steps))
		}
	}
}

func TestPlanRefusesForeignTable(t *testing.T) {
	cfg := testCfg()
	refused := func(name string, st *State, want ...string) {
		t.Helper()
		_, err := Plan(cfg, st)
		if err == nil {
			t.Errorf("%s: not refused", name)
			return
		}
		for _, w := range append([]string{"table 1000", "VRF mgmt does not exist yet"}, want...) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q: %v", name, w, err)
			}
		}
	}
	accepted := func(name string, st *State) {
		t.Helper()
		if _, err := Plan(cfg, st); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}
	foreignRoute := Route{Family: unix.AF_INET, Table: 1000, Dst: "10.0.0.0/8", Gw: "192.0.2.254", Dev: "eth0", Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_STATIC}

	st := freshState()
	st.Routes = append(st.Routes, foreignRoute)
	refused("someone's route", st, "holds 1 route(s) (10.0.0.0/8 via 192.0.2.254 dev eth0)", "--table 1001", "ip route flush table 1000")

	st = freshState()
	st.Rules = append(st.Rules, Rule{Family: unix.AF_INET, Pref: 200, Table: 1000, Dst: "10.1.0.0/16", Action: frActToTbl})
	refused("policy routing into the table", st, `is looked up by "ipv4 200: from all to 10.1.0.0/16 lookup 1000"`, "ip rule del")

	// a pref-99 rule for a subnet is not our shape (ours are /32 and /128)
	st = freshState()
	st.Rules = append(st.Rules, Rule{Family: unix.AF_INET, Pref: PrefDNSRuleLegacy, Table: 1000, Dst: "10.0.0.0/8", Iif: "lo", Action: frActToTbl})
	refused("someone's pref-99 subnet rule", st, "10.0.0.0/8")

	// the saved configuration is for another table: no claim on this one
	st = freshState()
	st.Routes = append(st.Routes, foreignRoute)
	other := cfg
	other.Table = 3000
	st.Files[ConfigPath] = FileState{Exists: true, Content: string(EncodeConfig(other))}
	refused("saved config for table 3000", st)

	// the iface's RA route a DHCP client's hook left in the table while a
	// rollback released the iface: not someone else's
	st = freshState()
	st.Routes = append(st.Routes, Route{Family: unix.AF_INET6, Table: 1000, Dst: "default", Gw: "fe80::1", Dev: "eth0", Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_RA})
	accepted("the iface's RA route left by a hook", st)

	// what is ours, or what an earlier apply of this VRF and table left
	st = freshState()
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		st.Routes = append(st.Routes, Route{Family: f, Table: 1000, Dst: "default", Type: unix.RTN_UNREACHABLE, Metric: UnreachableMetric})
	}
	st.Rules = append(st.Rules, dnsRule(cfg, "192.0.2.53"), Rule{Family: unix.AF_INET, Pref: PrefDNSRuleLegacy, Table: 1000, Dst: "192.0.2.54/32", Iif: "lo", Action: frActToTbl})
	accepted("an older release's unreachable defaults and our DNS rules, VRF deleted", st)

	st = freshState()
	st.Routes = append(st.Routes, foreignRoute)
	st.Files[ConfigPath] = FileState{Exists: true, Content: string(EncodeConfig(cfg))}
	accepted("re-apply of the saved mgmt/1000 after ip link del mgmt", st)

	st = freshState()
	st.Routes = append(st.Routes, foreignRoute)
	st.Interrupted = []string{"unit"}
	accepted("an apply killed half-way", st)

	st = converge(t, cfg, freshState())
	st.Routes = append(st.Routes, foreignRoute)
	accepted("our VRF exists: its table holds what it holds", st)
}

// TestPlanRevertKeepsL3mdevForOtherVRFs: the l3mdev rule was absent before
// apply (no VRF then); revert deletes it only if no other VRF is left,
// moves local back to 0 unless a VRF was made since apply, and never
// touches blue's rules.
func TestPlanRevertKeepsL3mdevForOtherVRFs(t *testing.T) {
	cfg := testCfg()
	old := freshState()
	old.Files[ConfigPath] = FileState{}
	got := ids(PlanRevert(cfg, old, converge(t, cfg, freshState())))
	wantOrder(t, got, "revert-local0-v4", "revert-l3mdev-del-v4", "revert-local-del-v4", "revert-l3mdev-del-v6", "revert-vrf-delete")

	live := withBlue(converge(t, cfg, freshState()), 2000) // blue made after apply
	steps := PlanRevert(cfg, old, live)
	for _, id := range ids(steps) {
		if strings.HasPrefix(id, "revert-l3mdev-del") {
			t.Errorf("revert deletes the l3mdev rule blue needs: %v", ids(steps))
		}
	}
	wantOrder(t, ids(steps), "revert-release", "revert-guard-mgmt-v4", "revert-vrf-delete")
	if bad := touches(steps, "revert-local"); len(bad) > 0 {
		t.Errorf("revert moves the local rule back in front of blue's l3mdev lookups: %v", bad)
	}
	if bad := touches(steps, "blue", "bd0", "2000", "198.51.100.53", "10.20.0.0"); len(bad) > 0 {
		t.Errorf("revert touches blue: %v", bad)
	}
	// blue existed before apply too: the same, except that the local rule
	// goes back where it was (blue lived with that order before)
	steps = PlanRevert(cfg, withBlue(freshState(), 2000), live)
	if bad := touches(steps, "l3mdev-del", "blue", "2000", "198.51.100.53"); len(bad) > 0 {
		t.Errorf("revert with blue from before: %v", bad)
	}
	wantOrder(t, ids(steps), "revert-local0-v4", "revert-local-del-v4")
}

// TestDNSRulesAfterL3mdev: the steering rule sits after the l3mdev rule and
// the guards (VRF-bound traffic is resolved by its own table first) and
// before local and main (default-VRF traffic still reaches it); apply moves
// an older release's pref-99 rules, adding the new one first; nobody's
// pref-99 rule for another table or for a subnet is touched by apply or
// revert.
func TestDNSRulesAfterL3mdev(t *testing.T) {
	cfg := testCfg()
	cfg.Nameservers = []string{"192.0.2.53"}
	r := dnsRule(cfg, "192.0.2.53")
	if !(PrefL3mdev < PrefVRFGuard && PrefVRFGuard < r.Pref && r.Pref < PrefLocalNew) {
		t.Fatalf("DNS rule at %d: want after l3mdev %d and guard %d, before local %d", r.Pref, PrefL3mdev, PrefVRFGuard, PrefLocalNew)
	}
	if !strings.Contains(renderVRFNetwork(cfg, nil, cfg.Nameservers), "Priority=1002\n") {
		t.Errorf("networkd declares the rule at another preference:\n%s", renderVRFNetwork(cfg, nil, cfg.Nameservers))
	}
	st := converge(t, cfg, freshState())
	if !hasRule(st, r) {
		t.Fatalf("converged state lacks %+v", r)
	}
	if steps := mustPlan(t, cfg, st); len(steps) != 0 {
		t.Fatalf("converged: %v", ids(steps))
	}

	// an older release's rule at 99, blue's DNS rule at 99 for its table,
	// an admin's subnet rule at 99 into our table
	legacy := r
	legacy.Pref = PrefDNSRuleLegacy
	admin := Rule{Family: unix.AF_INET, Pref: PrefDNSRuleLegacy, Table: 1000, Dst: "10.0.0.0/8", Iif: "lo", Action: frActToTbl}
	st = withBlue(converge(t, cfg, freshState()), 2000)
	st.Rules = slices.DeleteFunc(st.Rules, func(x Rule) bool { return x == r }) // only the legacy one
	st.Rules = append(st.Rules, legacy, admin)
	steps := mustPlan(t, cfg, st)
	if got := strings.Join(ids(steps), " "); got != "rule-dns-192.0.2.53/32 rule-dns-del-legacy-192.0.2.53/32" {
		t.Fatalf("migration plan %q, want the new rule added, then the old one deleted", got)
	}
	if bad := touches(steps, "198.51.100.53", "10.0.0.0/8", "2000"); len(bad) > 0 {
		t.Errorf("apply touches rules that are not ours: %v", bad)
	}

	// revert: our rules go (both preferences), blue's and the admin's stay,
	// and one of blue's that vanished since apply is not brought back
	old := freshState()
	old.Files[ConfigPath] = FileState{}
	old.Rules = append(old.Rules, Rule{Family: unix.AF_INET, Pref: PrefDNSRuleLegacy, Table: 2000, Dst: "203.0.113.53/32", Iif: "lo", Action: frActToTbl})
	live := withBlue(converge(t, cfg, freshState()), 2000)
	live.Rules = append(live.Rules, r, legacy, admin)
	steps = PlanRevert(cfg, old, live)
	wantOrder(t, ids(steps), "revert-dns-192.0.2.53/32", "revert-dns-legacy-192.0.2.53/32")
	if bad := touches(steps, "198.51.100.53", "203.0.113.53", "10.0.0.0/8", "2000"); len(bad) > 0 {
		t.Errorf("revert touches rules that are not ours: %v", bad)
	}
}

// TestCheckTableLine: check fails, with the fix, when another VRF uses our
// table, and says which other VRFs there are when all is well.
func TestCheckTableLine(t *testing.T) {
	cfg := testCfg()
	r := checkTable(cfg, withBlue(converge(t, cfg, freshState()), 2000))
	if !r.OK || r.Name != "table" || !strings.Contains(r.Detail, "table 1000 is used by VRF mgmt only; other VRFs: blue (table 2000)") {
		t.Errorf("blue on its own table: %s", r)
	}
	r = checkTable(cfg, withBlue(converge(t, cfg, freshState()), 1000))
	if r.OK || !strings.Contains(r.Detail, "table 1000 is also the table of VRF blue") || !strings.Contains(r.Fix, "ip link add blue type vrf table 1001") {
		t.Errorf("blue on our table: %s", r)
	}
	if r := checkTable(cfg, freshState()); !r.OK || !strings.Contains(r.Detail, "no other VRF uses table 1000") {
		t.Errorf("fresh host: %s", r)
	}
	st := freshState()
	st.Routes = append(st.Routes, Route{Family: unix.AF_INET6, Table: 1000, Dst: "2001:db8:1::/48", Dev: "eth0", Type: unix.RTN_UNICAST})
	if r := checkTable(cfg, st); r.OK || !strings.Contains(r.Detail, "2001:db8:1::/48 dev eth0") {
		t.Errorf("foreign route, no VRF: %s", r)
	}
}

// TestDNSRuleOrderInNetns: in a live kernel, with the rules apply makes
// (l3mdev 1000, guards 1001, DNS 1002, local 32765), a locally originated
// lookup for the DNS server from the default VRF still reaches the VRF
// table, other destinations still use main; apply moves a pref-99 rule of
// an older release and leaves another table's pref-99 rule alone. (That
// the l3mdev rule now answers first for another VRF's sockets needs a VRF
// device, which this kernel cannot make: the VM test shows it.)
func TestDNSRuleOrderInNetns(t *testing.T) {
	ns, n := newNS(t)
	cfg := testCfg()
	cfg.Nameservers = []string{"192.0.2.53"}
	vethPair(t, n, "eth9", "eth9peer", netns.None())
	addAddr(t, n, "eth9", "198.51.100.10/24")
	vethPair(t, n, "vrfside", "vrfpeer", netns.None())
	addAddr(t, n, "vrfside", "10.9.9.1/24")
	side, _ := n.H.LinkByName("vrfside")
	for _, rt := range []*netlink.Route{
		{Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, Gw: net.IPv4(198, 51, 100, 1)},
		{Dst: &net.IPNet{IP: net.IPv4(192, 0, 2, 53), Mask: net.CIDRMask(32, 32)}, LinkIndex: side.Attrs().Index, Scope: unix.RT_SCOPE_LINK, Table: int(cfg.Table)},
	} {
		if err := n.H.RouteAdd(rt); err != nil {
			t.Fatal(err)
		}
	}
	legacy := dnsRule(cfg, "192.0.2.53")
	legacy.Pref = PrefDNSRuleLegacy
	blue := Rule{Family: unix.AF_INET, Pref: PrefDNSRuleLegacy, Table: 2000, Dst: "198.51.100.53/32", Iif: "lo", Action: frActToTbl}
	for _, r := range []Rule{legacy, blue} {
		if err := n.RuleAdd(r); err != nil {
			t.Fatal(err)
		}
	}
	rd := testReader(ns, n, t.TempDir())
	st, err := rd.Read(cfg)
	if err != nil {
		t.Fatal(err)
	}
	steps := append(append(withoutCatchAll(planGuard(cfg, st)), planRules(st)...), planDNSRules(cfg, DNSStatic, st)...)
	wantOrder(t, ids(steps), "rule-guard-iif-v4", "rule-l3mdev-v4", "rule-local-add-v4", "rule-local-del0-v4", "rule-dns-192.0.2.53/32", "rule-dns-del-legacy-192.0.2.53/32")
	if err := Apply(testEnv(ns, n, t.TempDir()), steps); err != nil {
		t.Fatal(err)
	}

	rules, err := n.RuleList(unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range rules {
		order = append(order, r.String())
	}
	want := []string{
		"ipv4 99: from all to 198.51.100.53/32 iif lo lookup 2000",
		"ipv4 1000: from all lookup [l3mdev-table]",
		"ipv4 1001: from all iif mgmt unreachable",
		"ipv4 1001: from all oif mgmt unreachable",
		"ipv4 1002: from all to 192.0.2.53/32 iif lo lookup 1000",
		"ipv4 32765: from all lookup local",
		"ipv4 32766: from all lookup 254",
		"ipv4 32767: from all lookup 253",
	}
	if strings.Join(order, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rules:\n%s\nwant:\n%s", strings.Join(order, "\n"), strings.Join(want, "\n"))
	}
	get := func(dst string) netlink.Route {
		t.Helper()
		rts, err := n.H.RouteGet(net.ParseIP(dst))
		if err != nil || len(rts) == 0 {
			t.Fatalf("route get %s: %v", dst, err)
		}
		return rts[0]
	}
	if rt := get("192.0.2.53"); rt.LinkIndex != side.Attrs().Index || rt.Table != int(cfg.Table) {
		t.Errorf("default VRF to the DNS server: dev index %d table %d, want vrfside (%d) table %d", rt.LinkIndex, rt.Table, side.Attrs().Index, cfg.Table)
	}
	if rt := get("192.0.2.54"); rt.Table != unix.RT_TABLE_MAIN {
		t.Errorf("another destination: table %d, want main", rt.Table)
	}
	if err := udpRoute(t, ns, "192.0.2.53"); err != nil {
		t.Errorf("a client's connect to the DNS server: %v", err)
	}
	st, _ = rd.Read(cfg)
	if s := planDNSRules(cfg, DNSStatic, st); len(s) != 0 {
		t.Errorf("second run: %v", ids(s))
	}
}

// TestPlanRefusesToOrphanTheSavedSetup: on a host set up for eth0 in mgmt,
// an apply for eth1 (or for VRF oob) would leave eth0 enslaved with nothing
// persisting or reverting it: refused, naming revert. Once the old setup
// is gone, nothing is refused.
func TestPlanRefusesToOrphanTheSavedSetup(t *testing.T) {
	cfg := testCfg()
	live := converge(t, cfg, freshState())
	if !live.file(ConfigPath).Exists {
		t.Fatal("converged state has no saved configuration")
	}
	live.Links["eth1"] = Link{Name: "eth1", Index: 30, Kind: "device", Up: true}
	other := cfg
	other.Iface = "eth1"
	_, err := Plan(other, live)
	if err == nil || !strings.Contains(err.Error(), "set up for eth0 in VRF mgmt") || !strings.Contains(err.Error(), "vrf-netsetup revert first") {
		t.Errorf("apply --iface eth1 over eth0: %v", err)
	}
	other = cfg
	other.VRF, other.Table = "oob", 1100
	if _, err := Plan(other, live); err == nil || !strings.Contains(err.Error(), "set up for eth0 in VRF mgmt") {
		t.Errorf("apply --vrf oob over mgmt: %v", err)
	}
	// the same settings again: the usual converged plan
	if _, err := Plan(cfg, live); err != nil {
		t.Errorf("re-apply refused: %v", err)
	}
	// after `ip link del mgmt` the saved setup orphans nothing
	delete(live.Links, "mgmt")
	other = cfg
	other.Iface = "eth1"
	if _, err := Plan(other, live); err != nil && strings.Contains(err.Error(), "set up for") {
		t.Errorf("old VRF gone, still refused: %v", err)
	}
}
