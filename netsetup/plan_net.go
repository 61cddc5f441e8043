package netsetup

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/pam-vrf/pam-vrf/netsetup/hostnet"
	"golang.org/x/sys/unix"
)

// Addresses every VRF device gets: without a loopback address inside the VRF,
// anything talking to 127.0.0.1 from a VRF-bound process (ntpq, local
// daemons, resolved's extra listener) fails.
var vrfLoopbacks = []string{"127.0.0.1/8", "::1/128"}

// vrfAddrs: the loopbacks, plus in DNS mode resolved the extra listener as a
// /32. 127.0.0.1/8 on a VRF device makes only 127.0.0.1 local in the VRF
// table (the kernel installs "local 127.0.0.0/8" for loopback devices only;
// on mgmt it is "127.0.0.0/8 dev mgmt scope link"), so without the /32 a
// VRF-bound query to 127.0.0.153 is sent out of mgmt and never answered -
// seen in the test guest: `ip vrf exec mgmt getent hosts mirror.test` exit 2,
// and with `ip addr add 127.0.0.153/32 dev mgmt` it answers.
func vrfAddrs(cfg Config, dns string) []string {
	out := append([]string(nil), vrfLoopbacks...)
	if dns == DNSResolved && cfg.ResolvedListener != "127.0.0.1" {
		out = append(out, cfg.ResolvedListener+"/32")
	}
	return out
}

func planNet(cfg Config, st *State) ([]Step, error) {
	var steps []Step
	iface, ok := st.link(cfg.Iface)
	if !ok {
		return nil, &PlanError{fmt.Sprintf("interface %s does not exist", cfg.Iface), "check --iface (ip -br link)"}
	}
	vrf, vrfExists := st.link(cfg.VRF)
	if vrfExists {
		if vrf.Kind != "vrf" {
			return nil, &PlanError{fmt.Sprintf("device %s exists but is a %s, not a VRF", cfg.VRF, vrf.Kind), "pick another --vrf name or delete the device"}
		}
		if vrf.Table != cfg.Table {
			return nil, &PlanError{fmt.Sprintf("VRF %s exists with table %d, not %d", cfg.VRF, vrf.Table, cfg.Table), fmt.Sprintf("use --table %d, or delete the VRF (ip link del %s) and re-run", vrf.Table, cfg.VRF)}
		}
	}
	if err := tableConflict(cfg, st); err != nil {
		return nil, err
	}
	// a manager that takes over creates the VRF from its files
	byManager := takeoverOf(cfg, st) != nil
	if !vrfExists {
		if !st.Module.Loaded {
			steps = append(steps, stepModule(st.Module))
		}
		if !byManager {
			steps = append(steps, stepVRFCreate(cfg))
		}
	}
	if (!vrfExists || !vrf.Up) && !byManager {
		steps = append(steps, stepLinkUp(cfg.VRF, vrfExists))
	}
	steps = append(steps, planGuard(cfg, st)...)
	steps = append(steps, planRules(st)...)
	for _, a := range vrfAddrs(cfg, EffectiveDNS(cfg, st)) {
		if !vrfExists || !st.hasAddr(cfg.VRF, a) {
			steps = append(steps, stepAddrAdd(cfg.VRF, a))
		}
	}

	enslaved := vrfExists && iface.Master == vrf.Index
	if !enslaved && iface.Master != 0 {
		m, _ := st.linkByIndex(iface.Master)
		return nil, &PlanError{fmt.Sprintf("%s is already enslaved to %s", cfg.Iface, m.Name), fmt.Sprintf("release it first (ip link set %s nomaster) or pick another --iface", cfg.Iface)}
	}
	if byManager {
		// the manager enslaves the iface itself and puts its DHCP/RA
		// routes into the VRF table; enslaving behind its back breaks it
		// (hostnet's Takeover says how).
		return steps, nil
	}
	if err := unmovableRoutes(st, cfg, enslaved); err != nil {
		return nil, err
	}
	// a DHCP client that drops its lease on the enslave and whose hook puts
	// the new lease's routes into the VRF table: wait for those, do not
	// move the old ones (gone with the lease)
	rebind := !enslaved && hostDHCP(cfg, st).RoutesByHook
	if !enslaved {
		steps = append(steps, stepEnslave(cfg, st))
		steps = append(steps, stepReaddAddrs(cfg.Iface, st.Addrs[cfg.Iface]))
		if rebind {
			steps = append(steps, stepRebind(cfg, st))
		}
	}
	for _, r := range movableRoutes(st, cfg.Iface) {
		if rebind && r.Family == unix.AF_INET {
			continue
		}
		steps = append(steps, stepMoveRoute(r, cfg.Table, routeInTable(st, r, cfg.Table)))
	}
	return steps, nil
}

// stepRebind waits (bounded) for the DHCP client to bind its lease again
// after the enslave and for its hook to put the IPv4 default route into
// the VRF table.
func stepRebind(cfg Config, st *State) Step {
	w := rebindWant(cfg, st, cfg.VRF)
	return stepSettle(hostnet.Cmd{ID: "dhcp-rebind", Desc: fmt.Sprintf("wait for %s to bind its lease again on %s (the enslave dropped it) and its hook to put the routes into table %d", w.Who, cfg.Iface, cfg.Table)}, false, *w)
}

// needsTakeover: on a host whose manager enslaves the iface, it is not
// (yet) in the VRF, or routes through it are still in main.
func needsTakeover(cfg Config, st *State) bool {
	if takeoverOf(cfg, st) == nil {
		return false
	}
	iface, _ := st.link(cfg.Iface)
	vrf, ok := st.link(cfg.VRF)
	return !ok || iface.Master != vrf.Index || len(movableRoutes(st, cfg.Iface)) > 0
}

// stepTakeover has the manager apply its files (tk.Enslave: enslave, routes
// into the VRF table), or with restart re-create a VRF device deleted
// under it (tk.Recreate), then waits for it to be done (bounded) so verify
// and check see the final state.
func stepTakeover(cfg Config, st *State, tk *hostnet.Takeover, disruptive, restart bool) Step {
	w := settleWant{Iface: cfg.Iface, Master: cfg.VRF, Table: cfg.Table, Families: defaultFamilies(st, cfg.Iface, cfg.Table), Who: tk.Who}
	c := tk.Enslave
	if restart {
		c = tk.Recreate
	}
	return stepSettle(c, disruptive, w)
}

// planGuard adds the guard rules and the catch-all routes (before the
// iface is enslaved, so VRF traffic never falls through to main), then
// drops an older release's unreachable default routes.
func planGuard(cfg Config, st *State) (steps []Step) {
	defer func() {
		for i := range steps {
			steps[i].Guard = true
		}
	}()
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		if !hasCatchAll(st, cfg, fam) {
			steps = append(steps, stepCatchAll(cfg, fam))
		}
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		for _, g := range guardRules(cfg.VRF, fam) {
			if !hasRule(st, g) {
				dir := "iif"
				if g.Oif != "" {
					dir = "oif"
				}
				steps = append(steps, stepRuleAdd("rule-guard-"+dir+"-"+famTag(fam), g))
			}
		}
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		if hasUnreachableDefault(st, cfg.Table, fam) {
			steps = append(steps, stepLegacyUnreachableDel(cfg.Table, fam))
		}
	}
	return steps
}

func hasRule(st *State, r Rule) bool {
	for _, x := range st.Rules {
		if sameRule(x, r) {
			return true
		}
	}
	return false
}

// hasCatchAll: the VRF table ends in "default dev VRF metric 4278198272".
// A lookup for the VRF that misses every other route of the table (no
// DHCP default yet, an IPv4 socket on an IPv6-only management network)
// ends there, in the VRF, whose driver drops what is routed to the VRF
// device itself, instead of falling through to main and leaving by the
// data plane. The guard rules cannot do that for sockets bound to the VRF:
// since Linux 5.17 the kernel clears flowi_oif for them (the VRF moves to
// flowi_l3mdev), so an "oif VRF" rule never matches their lookups. Unlike
// the "unreachable default" vrf.rst suggests, the route names the device:
// the kernel deletes it with the VRF, so nothing in the table outlives it
// to blackhole what the DNS steering rules send there.
func hasCatchAll(st *State, cfg Config, fam int) bool {
	for _, r := range st.Routes {
		if isCatchAll(r, cfg) && r.Family == fam {
			return true
		}
	}
	return false
}

func isCatchAll(r Route, cfg Config) bool {
	return r.Table == cfg.Table && r.Dst == "default" && r.Dev == cfg.VRF && r.Gw == "" && r.Type == unix.RTN_UNICAST && r.Metric == UnreachableMetric
}

func hasUnreachableDefault(st *State, table uint32, fam int) bool {
	for _, r := range st.Routes {
		if r.Table == table && r.Family == fam && r.Dst == "default" && r.Type == unix.RTN_UNREACHABLE && r.Metric == UnreachableMetric {
			return true
		}
	}
	return false
}

// movableRoutes are the main-table routes through the iface that are not
// "connected" (proto kernel): defaults and static/DHCP routes. Enslaving
// flushes them from main; they belong in the VRF table.
func movableRoutes(st *State, iface string) []Route {
	var out []Route
	for _, r := range st.Routes {
		if r.Table != unix.RT_TABLE_MAIN || !r.via(iface) || r.Protocol == unix.RTPROT_KERNEL || r.Type != unix.RTN_UNICAST {
			continue
		}
		if p, err := netip.ParsePrefix(r.Dst); err == nil && (p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast()) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// unmovableRoutes refuses routes through the iface that cannot follow it
// into the VRF table as they are:
//   - a route using a nexthop object (nhid), while the iface is still to
//     be enslaved: the kernel deletes the nexthop objects of a device that
//     goes down, as enslaving cycles it, and their routes with them, so
//     there is nothing left to move or to restore;
//   - a multipath route with hops through other devices too: in the VRF
//     table those hops would take data-plane traffic into the VRF, in main
//     the iface's hops would leave it.
func unmovableRoutes(st *State, cfg Config, enslaved bool) error {
	for _, r := range movableRoutes(st, cfg.Iface) {
		tbl := ""
		if r.Family == unix.AF_INET6 {
			tbl = "-6 "
		}
		if r.NHID != 0 && !enslaved {
			return &PlanError{
				Msg: fmt.Sprintf("route %s uses nexthop object %d (dev %s): enslaving %s deletes the object and the route, so it cannot be moved into table %d", routeString(r), r.NHID, strings.Join(r.devs(), ","), cfg.Iface, cfg.Table),
				Fix: fmt.Sprintf("give the route its nexthop inline (ip %sroute replace %s via GW dev %s ...) and re-run; re-create the object in the VRF after apply if you need it", tbl, r.Dst, cfg.Iface),
			}
		}
		if devs := r.devs(); len(r.MultiPath) > 0 && len(devs) > 1 {
			return &PlanError{
				Msg: fmt.Sprintf("multipath route %s has hops through %s: only those through %s can move into table %d", routeString(r), strings.Join(devs, ", "), cfg.Iface, cfg.Table),
				Fix: fmt.Sprintf("split it: one route through %s only (it moves into the VRF) and one through the other devices, in main (ip %sroute replace %s nexthop ...)", cfg.Iface, tbl, r.Dst),
			}
		}
	}
	return nil
}

// routeInTable: an equivalent route already exists in table.
func routeInTable(st *State, r Route, table uint32) bool {
	for _, x := range st.Routes {
		if x.Table == table && x.Family == r.Family && x.Dst == r.Dst && x.Gw == r.Gw && x.Dev == r.Dev && x.Metric == r.Metric && x.Type == r.Type && sameHops(x.MultiPath, r.MultiPath) {
			return true
		}
	}
	return false
}

func sameHops(a, b []Hop) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// planRules orders rules: l3mdev (1000) before local (32765), both families.
// The new local rule is added before the old one is deleted so there is never
// a moment without a local rule (that would break every local address).
//
// They are Guard steps (before the enslave where apply enslaves the iface or
// the manager creates the VRF first): without the l3mdev rule a lookup for a socket
// bound to a VRF port misses the VRF table (the kernel adds the rule only
// for the first VRF a netns ever has, and revert removed it), and
// NetworkManager's DHCP client, which connects such a socket to the server
// right after the ACK, failed ("Network is unreachable") and went without
// its IPv4 lease until it expired.
func planRules(st *State) (steps []Step) {
	defer func() {
		for i := range steps {
			steps[i].Guard = true
		}
	}()
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		var hasL3, hasLocalNew, hasLocal0 bool
		for _, r := range st.Rules {
			if r.Family != fam {
				continue
			}
			switch {
			case r.IsL3mdev() && r.Pref == PrefL3mdev:
				hasL3 = true
			case r.IsLocal() && r.Pref == PrefLocalNew:
				hasLocalNew = true
			case r.IsLocal() && r.Pref == PrefLocalOrig:
				hasLocal0 = true
			}
		}
		if !hasL3 {
			steps = append(steps, stepRuleAdd("rule-l3mdev-"+famTag(fam), Rule{Family: fam, Pref: PrefL3mdev, L3mdev: true, Action: frActToTbl, Proto: unix.RTPROT_KERNEL}))
		}
		if !hasLocalNew {
			steps = append(steps, stepRuleAdd("rule-local-add-"+famTag(fam), localRule(fam, PrefLocalNew)))
		}
		if hasLocal0 {
			steps = append(steps, stepRuleDel("rule-local-del0-"+famTag(fam), localRule(fam, PrefLocalOrig)))
		}
	}
	return steps
}

// localRule is the rule for the local table. It is added as RTPROT_KERNEL,
// like the kernel's own at pref 0: networkd then never treats it as foreign
// (whether or not it manages any link here), and it is not declared in the
// VRF's .network either, where networkd would delete it together with the VRF
// device (`ip link del mgmt` left the host without local delivery: no ping
// to 127.0.0.1, no ssh to its own address).
func localRule(fam int, pref uint32) Rule {
	return Rule{Family: fam, Pref: pref, Table: unix.RT_TABLE_LOCAL, Action: frActToTbl, Proto: unix.RTPROT_KERNEL}
}

func famTag(fam int) string {
	if fam == unix.AF_INET6 {
		return "v6"
	}
	return "v4"
}
