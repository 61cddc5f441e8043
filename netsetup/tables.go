package netsetup

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"golang.org/x/sys/unix"
)

// Hosts that route (FRR, Cumulus, ifupdown2 setups) already carry VRFs of
// their own. vrf-netsetup must leave them as they are: it never takes a
// table another VRF or someone's policy routing uses (tableConflict), revert
// keeps the l3mdev rule those VRFs need (PlanRevert), and the DNS steering
// rules come after the l3mdev rule, so they never see VRF-bound traffic
// that its own table routes (PrefDNSRule).

// otherVRFs lists the VRF devices other than name, sorted.
func otherVRFs(st *State, name string) []Link {
	var out []Link
	for _, l := range st.Links {
		if l.Kind == "vrf" && l.Name != name {
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// isOurDNSRule: the shape of a DNS steering rule for table (planDNSRules),
// at the current or the pre-1002 preference. Anything else looking up our
// table is someone else's.
func isOurDNSRule(r Rule, table uint32) bool {
	if (r.Pref != PrefDNSRule && r.Pref != PrefDNSRuleLegacy) || r.Iif != "lo" || r.Oif != "" || r.Table != table ||
		r.Other || r.L3mdev || actionOf(r) != frActToTbl {
		return false
	}
	p, err := netip.ParsePrefix(r.Dst)
	return err == nil && p.Bits() == p.Addr().BitLen()
}

// persistedFor: the saved configuration (ConfigPath) is for this VRF and
// table, i.e. an earlier apply claimed the table here.
func persistedFor(cfg Config, st *State) bool {
	f := st.file(ConfigPath)
	if !f.Exists {
		return false
	}
	var c Config
	if _, err := toml.Decode(f.Content, &c); err != nil {
		return false
	}
	return c.VRF == cfg.VRF && c.Table == cfg.Table
}

// refuseReplace: the saved configuration is for another interface or
// VRF that is still set up. Applying over it would leave that one enslaved
// (or that VRF standing) with nothing persisting it and nothing to revert
// it: the next revert restores the state saved by the first apply only.
func refuseReplace(cfg Config, st *State) error {
	f := st.file(ConfigPath)
	if !f.Exists {
		return nil
	}
	var old Config
	if _, err := toml.Decode(f.Content, &old); err != nil || (old.VRF == cfg.VRF && old.Iface == cfg.Iface) {
		return nil
	}
	vrf, hasVRF := st.link(old.VRF)
	iface, hasIface := st.link(old.Iface)
	if !hasVRF || vrf.Kind != "vrf" {
		return nil // the old setup is gone already: nothing to orphan
	}
	what := fmt.Sprintf("VRF %s", old.VRF)
	if hasIface && iface.Master == vrf.Index {
		what = fmt.Sprintf("%s in VRF %s", old.Iface, old.VRF)
	}
	return &PlanError{
		Msg: fmt.Sprintf("this host is set up for %s (saved in %s); apply --vrf %s --iface %s would leave it in place, unpersisted and outside what revert restores",
			what, ConfigPath, cfg.VRF, cfg.Iface),
		Fix: fmt.Sprintf("vrf-netsetup revert first (from the console, or a session that does not come through %s), then apply with the new settings", old.Iface),
	}
}

// tableConflict: cfg.Table is in use by something that is not ours.
//   - Another VRF device has it: two VRFs on one table share every route,
//     each one's traffic would take the other's paths. Refused always, also
//     on a host applied before (the boot unit then fails visibly, and check
//     says why; revert still works).
//   - Our VRF does not exist and the table holds routes, or rules look it
//     up, that apply did not make: making it the VRF's table would hand
//     those routes to management traffic and that policy traffic to the
//     VRF. When the saved configuration names this VRF and table (a
//     re-apply: boot, dhclient hook, after `ip link del`), or an apply was
//     killed half-way (ApplyMarker: it may have moved routes already), the
//     table is ours already and what is in it stays as it is. Routes of an
//     older release (unreachable defaults, see guardRules) are ours.
func tableConflict(cfg Config, st *State) *PlanError {
	var users []string // sorted
	for _, l := range otherVRFs(st, cfg.VRF) {
		if l.Table == cfg.Table {
			users = append(users, l.Name)
		}
	}
	free := freeTable(cfg, st)
	_, vrfExists := st.link(cfg.VRF)
	if len(users) > 0 {
		fix := fmt.Sprintf("give %s a table of its own, e.g. --table %d (no VRF uses it; check that `ip route show table %d` is empty; tables in use: ip -d link show type vrf)", cfg.VRF, free, free)
		if vrfExists {
			// A VRF's table cannot be changed: one of them is re-created.
			fix = fmt.Sprintf("re-create %s with a table of its own (ip link del %s; ip link add %s type vrf table %d; enslave its ports again), or move %s: vrf-netsetup revert (or ip link del %s), then apply with --table %d (check that `ip route show table %d` is empty)",
				users[0], users[0], users[0], free, cfg.VRF, cfg.VRF, free, free)
		}
		return &PlanError{
			Msg: fmt.Sprintf("table %d is also the table of VRF %s: VRF %s would share its routes", cfg.Table, strings.Join(users, ", "), cfg.VRF),
			Fix: fix,
		}
	}
	if vrfExists || persistedFor(cfg, st) || len(st.Interrupted) > 0 {
		return nil
	}
	var routes, rules []string
	for _, r := range st.Routes {
		// The iface's DHCP and RA routes are what the table is for; a
		// DHCP client's hook racing a rollback can leave one behind.
		if r.Table != cfg.Table || (r.Type == unix.RTN_UNREACHABLE && r.Dst == "default" && r.Metric == UnreachableMetric) ||
			r.Dev == cfg.Iface && (r.Protocol == unix.RTPROT_RA || r.Protocol == unix.RTPROT_DHCP) {
			continue
		}
		routes = append(routes, routeString(r))
	}
	for _, r := range st.Rules {
		if r.Table == cfg.Table && !r.L3mdev && !isOurDNSRule(r, cfg.Table) {
			rules = append(rules, fmt.Sprintf("%q", r.String()))
		}
	}
	if len(routes) == 0 && len(rules) == 0 {
		return nil
	}
	var what, flush []string
	if len(routes) > 0 {
		what = append(what, fmt.Sprintf("holds %d route(s) (%s)", len(routes), first(routes, 3)))
		flush = append(flush, fmt.Sprintf("ip route flush table %d; ip -6 route flush table %d", cfg.Table, cfg.Table))
	}
	if len(rules) > 0 {
		what = append(what, fmt.Sprintf("is looked up by %s", first(rules, 3)))
		flush = append(flush, "delete those rules (ip rule del ...)")
	}
	return &PlanError{
		Msg: fmt.Sprintf("table %d %s, and VRF %s does not exist yet: these are not vrf-netsetup's, and making the table %s's would mix them with management traffic", cfg.Table, strings.Join(what, " and "), cfg.VRF, cfg.VRF),
		Fix: fmt.Sprintf("pick an unused table, e.g. --table %d (check that `ip route show table %d` is empty), or, if they are stale, %s", free, free, strings.Join(flush, " and ")),
	}
}

// freeTable suggests a table after cfg.Table that no VRF and no rule uses
// (whether it holds routes only the admin can tell: Reader reads cfg.Table).
func freeTable(cfg Config, st *State) uint32 {
	used := map[uint32]bool{cfg.Table: true}
	for _, l := range st.Links {
		if l.Kind == "vrf" {
			used[l.Table] = true
		}
	}
	for _, r := range st.Rules {
		used[r.Table] = true
	}
	t := cfg.Table
	for used[t] || (t >= 252 && t <= 255) || t == 0 {
		t++
	}
	return t
}

func first(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(", and %d more", len(items)-n)
}

// routeString renders a route like `ip route` (enough to recognise it).
func routeString(r Route) string {
	s := r.Dst
	switch r.Type {
	case unix.RTN_UNICAST:
	case unix.RTN_BLACKHOLE:
		s = "blackhole " + s
	case unix.RTN_UNREACHABLE:
		s = "unreachable " + s
	case unix.RTN_PROHIBIT:
		s = "prohibit " + s
	case unix.RTN_LOCAL:
		s = "local " + s
	case unix.RTN_BROADCAST:
		s = "broadcast " + s
	default:
		s = fmt.Sprintf("type %d %s", r.Type, s)
	}
	if r.Gw != "" {
		s += " via " + r.Gw
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	if r.NHID != 0 {
		s += fmt.Sprintf(" nhid %d", r.NHID)
	}
	for _, h := range r.MultiPath {
		s += " nexthop"
		if h.Gw != "" {
			s += " via " + h.Gw
		}
		s += fmt.Sprintf(" dev %s weight %d", h.Dev, h.Weight)
	}
	return s
}
