package netsetup

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func stepModule(m ModuleState) Step {
	return Step{ID: "module-vrf", Desc: "load the VRF driver (modprobe vrf)",
		Do: func(e *Env) error { return e.Mod.Load(m) }}
}

// stepVRFCreate goes through the netlink Handle, so on a kernel without the
// driver it fails with EOPNOTSUPP like any other step (and rolls back).
func stepVRFCreate(cfg Config) Step {
	// The kernel adds the l3mdev rules with the first VRF and leaves them
	// when the last one goes: the undo removes the ones it added.
	var before []Rule
	return Step{ID: "vrf-create", Desc: fmt.Sprintf("create VRF device %s (table %d)", cfg.VRF, cfg.Table),
		Do: func(e *Env) error {
			before = l3mdevRules(e)
			err := e.Net.H.LinkAdd(&netlink.Vrf{LinkAttrs: netlink.LinkAttrs{Name: cfg.VRF}, Table: cfg.Table})
			if errors.Is(err, unix.EOPNOTSUPP) {
				return fmt.Errorf("create VRF %s: %w (the kernel has no VRF driver: modprobe vrf; %s)", cfg.VRF, err, modulePackageHint(readModule("/").Release))
			}
			if err != nil {
				return fmt.Errorf("create VRF %s: %w", cfg.VRF, err)
			}
			return nil
		},
		Undo: func(e *Env) error { return dropVRF(e, cfg, before) }}
}

// l3mdevRules: the l3mdev rules of both families.
func l3mdevRules(e *Env) []Rule {
	var out []Rule
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, _ := e.Net.RuleList(fam)
		for _, r := range rs {
			if r.IsL3mdev() {
				out = append(out, r)
			}
		}
	}
	return out
}

// dropVRF undoes the creation of cfg.VRF (by apply, or by the manager it
// had take over): the device goes, and, once no VRF is left, the l3mdev
// rules the kernel added with the first one (those not in before).
func dropVRF(e *Env, cfg Config, before []Rule) error {
	if l, err := e.linkByName(cfg.VRF); err == nil {
		if err := e.Net.H.LinkDel(l); err != nil {
			return fmt.Errorf("delete VRF %s: %w", cfg.VRF, err)
		}
	}
	links, err := e.Net.H.LinkList()
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.Type() == "vrf" {
			return nil // another VRF needs the rules
		}
	}
	for _, r := range l3mdevRules(e) {
		if slices.ContainsFunc(before, func(b Rule) bool { return sameRule(b, r) }) {
			continue
		}
		if err := ignore(e.Net.RuleDel(r), unix.ENOENT); err != nil {
			return fmt.Errorf("delete rule %s the kernel added with VRF %s: %w", r, cfg.VRF, err)
		}
	}
	return nil
}

func stepLinkUp(name string, existed bool) Step {
	s := Step{ID: "link-up-" + name, Desc: "bring " + name + " up",
		Do: func(e *Env) error {
			l, err := e.linkByName(name)
			if err != nil {
				return fmt.Errorf("find %s: %w", name, err)
			}
			return wrap(e.Net.H.LinkSetUp(l), "set %s up", name)
		}}
	if existed {
		s.Undo = func(e *Env) error {
			l, err := e.linkByName(name)
			if err != nil {
				return nil
			}
			return wrap(e.Net.H.LinkSetDown(l), "set %s down", name)
		}
	}
	return s
}

func defaultDst(fam int) *net.IPNet {
	if fam == unix.AF_INET6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

// stepLegacyUnreachableDel removes the unreachable default an older
// vrf-netsetup put into the VRF table (see hasCatchAll for why it went);
// the catch-all route is in place by then.
func stepLegacyUnreachableDel(table uint32, fam int) Step {
	r := func() *netlink.Route {
		return &netlink.Route{Family: fam, Table: int(table), Dst: defaultDst(fam), Type: unix.RTN_UNREACHABLE, Priority: UnreachableMetric}
	}
	return Step{ID: "route-unreachable-del-" + famTag(fam),
		Desc: fmt.Sprintf("delete the %s unreachable default from table %d (an older vrf-netsetup's; it outlived the VRF)", famName(fam), table),
		Do: func(e *Env) error {
			return wrap(ignore(e.Net.H.RouteDel(r()), unix.ESRCH, unix.ENOENT), "delete %s unreachable default from table %d", famName(fam), table)
		},
		Undo: func(e *Env) error {
			return wrap(ignore(e.Net.H.RouteAdd(r()), unix.EEXIST), "restore %s unreachable default in table %d", famName(fam), table)
		}}
}

// catchAllRoute is the VRF table's catch-all route (see hasCatchAll).
func catchAllRoute(e *Env, cfg Config, fam int) (*netlink.Route, error) {
	l, err := e.linkByName(cfg.VRF)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", cfg.VRF, err)
	}
	r := &netlink.Route{Family: fam, Table: int(cfg.Table), Dst: defaultDst(fam), LinkIndex: l.Attrs().Index,
		Priority: UnreachableMetric, Protocol: unix.RTPROT_STATIC}
	if fam == unix.AF_INET {
		r.Scope = netlink.SCOPE_LINK
	}
	return r, nil
}

func deleteCatchAll(e *Env, cfg Config, fam int) error {
	r, err := catchAllRoute(e, cfg, fam)
	if err != nil {
		return nil // the VRF went, and the route with it
	}
	return wrap(ignore(e.Net.H.RouteDel(r), unix.ESRCH, unix.ENOENT), "delete %s catch-all from table %d", famName(fam), cfg.Table)
}

// stepCatchAll adds the VRF table's catch-all route.
func stepCatchAll(cfg Config, fam int) Step {
	route := func(e *Env) (*netlink.Route, error) { return catchAllRoute(e, cfg, fam) }
	added := false
	return Step{ID: "route-catchall-" + famTag(fam), AfterVRF: true,
		Desc: fmt.Sprintf("add %s default dev %s metric %d to table %d (lookups the table misses end in the VRF)", famName(fam), cfg.VRF, UnreachableMetric, cfg.Table),
		Do: func(e *Env) error {
			r, err := route(e)
			if err != nil {
				return err
			}
			err = e.Net.H.RouteAdd(r)
			added = err == nil
			return wrap(ignore(err, unix.EEXIST), "add %s catch-all to table %d", famName(fam), cfg.Table)
		},
		Undo: func(e *Env) error {
			if !added {
				return nil
			}
			return deleteCatchAll(e, cfg, fam)
		}}
}

func stepRuleAdd(id string, r Rule) Step {
	added := false
	return Step{ID: id, Desc: "add rule " + r.String(),
		Do: func(e *Env) error {
			// The kernel adds the l3mdev rule itself when the first VRF is
			// created, possibly by an earlier step: only add what is missing,
			// and only undo what we added.
			have, err := e.Net.RuleList(r.Family)
			if err != nil {
				return err
			}
			for _, x := range have {
				if sameRule(x, r) {
					return nil
				}
			}
			added = true
			return e.Net.RuleAdd(r)
		},
		Undo: func(e *Env) error {
			if !added {
				return nil
			}
			return e.Net.RuleDel(r)
		}}
}

func stepRuleDel(id string, r Rule) Step {
	return Step{ID: id, Desc: "delete rule " + r.String(),
		Do:   func(e *Env) error { return e.Net.RuleDel(r) },
		Undo: func(e *Env) error { return e.Net.RuleAdd(r) }}
}

func stepAddrAdd(link, cidr string) Step {
	a := func() *netlink.Addr {
		p := netip.MustParsePrefix(cidr)
		return &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	}
	return Step{ID: "addr-" + link + "-" + cidr, Desc: fmt.Sprintf("add address %s to %s", cidr, link),
		Do: func(e *Env) error {
			l, err := e.linkByName(link)
			if err != nil {
				return fmt.Errorf("find %s: %w", link, err)
			}
			return wrap(ignore(e.Net.H.AddrAdd(l, a()), unix.EEXIST), "add %s to %s", cidr, link)
		},
		Undo: func(e *Env) error {
			l, err := e.linkByName(link)
			if err != nil {
				return nil
			}
			return wrap(ignore(e.Net.H.AddrDel(l, a()), unix.EADDRNOTAVAIL), "delete %s from %s", cidr, link)
		}}
}

// stepEnslave moves the iface into the VRF. The kernel cycles the device:
// IPv6 addresses and every non-connected route through it are flushed, so
// the captured addresses/routes (from the pre-apply State) are re-added by
// the next steps, and restored into main on undo.
func stepEnslave(cfg Config, st *State) Step {
	addrs := st.Addrs[cfg.Iface]
	routes := movableRoutes(st, cfg.Iface)
	return Step{ID: "enslave", Disruptive: true,
		Desc: fmt.Sprintf("enslave %s to %s (keeps its addresses; connections through %s may drop)", cfg.Iface, cfg.VRF, cfg.Iface),
		Do: func(e *Env) error {
			l, err := e.linkByName(cfg.Iface)
			if err != nil {
				return fmt.Errorf("find %s: %w", cfg.Iface, err)
			}
			v, err := e.linkByName(cfg.VRF)
			if err != nil {
				return fmt.Errorf("find %s: %w", cfg.VRF, err)
			}
			return wrap(e.Net.H.LinkSetMasterByIndex(l, v.Attrs().Index), "enslave %s to %s", cfg.Iface, cfg.VRF)
		},
		Undo: func(e *Env) error {
			// a client the hook ran in the VRF leaves it first, as on revert
			if d := hostDHCP(cfg, st); d.RunsInVRF {
				if err := stepClientOutOfVRF(cfg, d.ClientName()).Do(e); err != nil {
					return err
				}
			}
			return releaseToMain(e, cfg, addrs, routes, rebindWant(cfg, st, ""))
		}}
}

// rebindWant: for a DHCP client that drops its lease when the iface is
// enslaved or released and binds it again (hostnet DHCP.RoutesByHook),
// what to wait for: the iface with master (or none), and its IPv4 default
// route back in table (main when released). nil for other clients.
func rebindWant(cfg Config, st *State, master string) *settleWant {
	d := hostDHCP(cfg, st)
	if !d.RoutesByHook {
		return nil
	}
	table := uint32(unix.RT_TABLE_MAIN)
	if master != "" {
		table = cfg.Table
	}
	w := settleWant{Iface: cfg.Iface, Master: master, Table: table, Who: d.ClientName()}
	for _, f := range defaultFamilies(st, cfg.Iface, cfg.Table) {
		if f == unix.AF_INET {
			w.Families = append(w.Families, f)
		}
	}
	return &w
}

// releaseToMain takes the iface out of the VRF and puts back the addresses
// and main-table routes captured before it was enslaved: the undo of
// enslave, and revert's release. With rebind (a DHCP client that drops and
// binds its lease again on the release) it first waits for the client, so
// what it puts back is not dropped right after, and fills in only what the
// client did not restore.
func releaseToMain(e *Env, cfg Config, addrs []Addr, routes []Route, rebind *settleWant) error {
	l, err := e.linkByName(cfg.Iface)
	if err != nil {
		return fmt.Errorf("find %s: %w", cfg.Iface, err)
	}
	if err := e.Net.H.LinkSetNoMaster(l); err != nil {
		return fmt.Errorf("release %s from %s: %w", cfg.Iface, cfg.VRF, err)
	}
	if rebind != nil {
		if err := waitNetworkd(e, *rebind); err != nil {
			return err
		}
	}
	if err := readdAddrs(e, cfg.Iface, addrs); err != nil {
		return err
	}
	for _, r := range routes {
		if err := e.putRoute(r, unix.RT_TABLE_MAIN); err != nil {
			return fmt.Errorf("restore route %s to main: %w", routeString(r), err)
		}
	}
	return nil
}

func stepReaddAddrs(iface string, addrs []Addr) Step {
	return Step{ID: "readd-addrs", Desc: fmt.Sprintf("re-add addresses of %s the kernel flushed (%d captured)", iface, len(addrs)),
		Do: func(e *Env) error { return readdAddrs(e, iface, addrs) }}
}

// readdAddrs re-adds captured addresses that are gone, except IPv6
// link-local and dynamic IPv6 ones, which the kernel (SLAAC) or the DHCPv6
// client recreate with correct lifetimes. The others come back with their
// flags, label, broadcast, peer and what is left of their lifetimes; one
// whose valid lifetime ran out since it was captured is not re-added (the
// kernel would have dropped it by now). Addresses from states saved
// before those were recorded are re-added as they always were: permanent,
// broadcast derived from the prefix.
func readdAddrs(e *Env, iface string, addrs []Addr) error {
	l, err := e.linkByName(iface)
	if err != nil {
		return fmt.Errorf("find %s: %w", iface, err)
	}
	now := time.Now()
	for _, a := range readdOrder(addrs) {
		p, err := netip.ParsePrefix(a.CIDR)
		if err != nil {
			continue
		}
		if p.Addr().Is6() && (p.Addr().IsLinkLocalUnicast() || a.Dynamic) {
			continue
		}
		na, live, err := nlAddr(a, now)
		if err != nil {
			return fmt.Errorf("re-add %s to %s: %w", a.CIDR, iface, err)
		}
		if !live {
			continue
		}
		if err := ignore(e.Net.H.AddrAdd(l, na), unix.EEXIST); err != nil {
			return fmt.Errorf("re-add %s to %s: %w", a.CIDR, iface, err)
		}
	}
	return nil
}

// readdOrder: the order to re-add addresses in so the kernel lists them
// as it did (it matters for source address selection): IPv4 in dump
// order (the kernel appends), IPv6 reversed (it puts the newest first
// among the addresses of one scope).
func readdOrder(addrs []Addr) []Addr {
	var v4, v6 []Addr
	for _, a := range addrs {
		if strings.Contains(a.CIDR, ":") {
			v6 = append([]Addr{a}, v6...)
		} else {
			v4 = append(v4, a)
		}
	}
	return append(v4, v6...)
}

// nlAddr converts a recorded Addr into a netlink address as of now; live
// is false when its valid lifetime has run out.
func nlAddr(a Addr, now time.Time) (na *netlink.Addr, live bool, err error) {
	p, err := netip.ParsePrefix(a.CIDR)
	if err != nil {
		return nil, false, err
	}
	na = &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Flags: int(a.Flags & addrSettableFlags), Label: a.Label}
	if a.Peer != "" {
		pp, err := netip.ParsePrefix(a.Peer)
		if err != nil {
			return nil, false, fmt.Errorf("peer %q: %w", a.Peer, err)
		}
		na.Peer = &net.IPNet{IP: pp.Addr().AsSlice(), Mask: net.CIDRMask(pp.Bits(), pp.Addr().BitLen())}
	}
	if a.Broadcast != "" {
		// "0.0.0.0" (none) is also how the library is told to send none
		if na.Broadcast = net.ParseIP(a.Broadcast).To4(); na.Broadcast == nil {
			return nil, false, fmt.Errorf("broadcast %q: not an IPv4 address", a.Broadcast)
		}
	}
	if a.ValidUntil == nil && a.PreferredUntil == nil {
		return na, true, nil // forever: the kernel's default
	}
	left := func(t *time.Time) int {
		if t == nil {
			return infiniteLft
		}
		d := t.Sub(now)
		if d <= 0 {
			return 0
		}
		return int((d + time.Second - 1) / time.Second)
	}
	na.ValidLft, na.PreferedLft = left(a.ValidUntil), left(a.PreferredUntil)
	if na.ValidLft == 0 {
		return nil, false, nil
	}
	if uint32(na.PreferedLft) > uint32(na.ValidLft) {
		na.PreferedLft = na.ValidLft // the kernel refuses preferred > valid
	}
	return na, true, nil
}

// stepMoveRoute puts r into the VRF table and removes it from main (the
// kernel usually flushed it already when the iface was enslaved).
func stepMoveRoute(r Route, table uint32, already bool) Step {
	desc := fmt.Sprintf("move %s route %s from main to table %d", famName(r.Family), routeString(r), table)
	return Step{ID: "route-move-" + famTag(r.Family) + "-" + r.Dst, Desc: desc, RouteMove: true,
		Do: func(e *Env) error {
			if !already {
				if err := e.putRoute(r, table); err != nil {
					return fmt.Errorf("add route %s to table %d: %w", routeString(r), table, err)
				}
			}
			return wrap(e.delRoute(r, unix.RT_TABLE_MAIN), "delete route %s from main", routeString(r))
		},
		Undo: func(e *Env) error {
			if err := e.putRoute(r, unix.RT_TABLE_MAIN); err != nil {
				return fmt.Errorf("restore route %s to main: %w", routeString(r), err)
			}
			if already {
				return nil
			}
			return wrap(e.delRoute(r, table), "delete route %s from table %d", routeString(r), table)
		}}
}

// delRoute deletes the recorded route r from table, if it is there. It
// names the route by what the kernel matches on (dst, tos, metric,
// nexthops, prefsrc), not by its metrics: an IPv4 delete that carries
// metrics must match them exactly, and the library cannot send an
// RTAX_LOCK with both the mtu and the rto_min lock, so such a route was
// never found (ESRCH, ignored) and stayed.
func (e *Env) delRoute(r Route, table uint32) error {
	r.Metrics = nil
	nr, err := e.nlRoute(r, table)
	if err != nil {
		return err
	}
	return ignore(e.Net.H.RouteDel(nr), unix.ESRCH, unix.ENOENT)
}

// nlRoute converts a recorded Route into a netlink route in table.
func (e *Env) nlRoute(r Route, table uint32) (*netlink.Route, error) {
	nr := &netlink.Route{Family: r.Family, Table: int(table), Priority: int(r.Metric), Type: int(r.Type),
		Protocol: netlink.RouteProtocol(r.Protocol), Scope: netlink.Scope(r.Scope), Tos: int(r.Tos), Realm: int(r.Realm)}
	if r.Dst == "default" {
		nr.Dst = defaultDst(r.Family)
	} else {
		_, d, err := net.ParseCIDR(r.Dst)
		if err != nil {
			return nil, fmt.Errorf("route dst %q: %w", r.Dst, err)
		}
		nr.Dst = d
	}
	nr.Gw, nr.Via = gwOf(r.Family, r.Gw)
	if r.Src != "" {
		if nr.Src = net.ParseIP(r.Src); nr.Src == nil {
			return nil, fmt.Errorf("route %s: src %q", r.Dst, r.Src)
		}
	}
	if r.Onlink {
		nr.Flags |= int(netlink.FLAG_ONLINK)
	}
	if r.Dev != "" {
		l, err := e.linkByName(r.Dev)
		if err != nil {
			return nil, fmt.Errorf("find %s: %w", r.Dev, err)
		}
		nr.LinkIndex = l.Attrs().Index
	}
	for _, h := range r.MultiPath {
		nh := &netlink.NexthopInfo{Hops: max(h.Weight-1, 0)}
		nh.Gw, nh.Via = gwOf(r.Family, h.Gw)
		if h.Onlink {
			nh.Flags |= int(netlink.FLAG_ONLINK)
		}
		if h.Dev != "" {
			l, err := e.linkByName(h.Dev)
			if err != nil {
				return nil, fmt.Errorf("route %s: find hop device %s: %w", r.Dst, h.Dev, err)
			}
			nh.LinkIndex = l.Attrs().Index
		}
		nr.MultiPath = append(nr.MultiPath, nh)
	}
	if m := r.Metrics; m != nil {
		nr.MTU, nr.MTULock, nr.Window, nr.Rtt, nr.RttVar = m.MTU, m.MTULock, m.Window, m.Rtt, m.RttVar
		nr.Ssthresh, nr.Cwnd, nr.AdvMSS, nr.Reordering, nr.Hoplimit = m.Ssthresh, m.Cwnd, m.AdvMSS, m.Reordering, m.Hoplimit
		nr.InitCwnd, nr.Features, nr.RtoMin, nr.RtoMinLock = m.InitCwnd, m.Features, m.RtoMin, m.RtoMinLock
		nr.InitRwnd, nr.QuickACK, nr.Congctl, nr.FastOpenNoCookie = m.InitRwnd, m.QuickACK, m.Congctl, m.FastOpenNoCookie
	}
	return nr, nil
}

// gwOf: an IPv6 gateway of an IPv4 route goes as RTA_VIA (RFC 8950).
func gwOf(family int, gw string) (net.IP, netlink.Destination) {
	if gw == "" {
		return nil, nil
	}
	ip := net.ParseIP(gw)
	if family == unix.AF_INET && ip != nil && ip.To4() == nil {
		return nil, &netlink.Via{AddrFamily: unix.AF_INET6, Addr: ip}
	}
	return ip, nil
}

// putRoute adds or replaces the recorded route r in table, with every
// attribute recorded. An expiring route whose time ran out since it was
// captured is left out: the kernel would have dropped it, and its owner
// (router advertisements) puts it back.
func (e *Env) putRoute(r Route, table uint32) error {
	var x routeExtra
	if r.Expires != nil {
		if x.Expires = time.Until(*r.Expires); x.Expires <= 0 {
			return nil
		}
	}
	x.Pref, x.NHID = r.Pref, r.NHID
	nr, err := e.nlRoute(r, table)
	if err != nil {
		return err
	}
	if x.NHID != 0 {
		// the object is the nexthop; the kernel refuses both (the dump
		// shows the object's hops too, nexthop_compat_mode)
		nr.Gw, nr.Via, nr.LinkIndex, nr.MultiPath, nr.Flags = nil, nil, 0, nil, 0
	}
	// Every recorded route goes through one writer, the one that knows
	// RTA_PREF, RTA_EXPIRES and RTA_NH_ID (routeattrs.go).
	return e.Net.routeReplaceRaw(nr, x)
}

func ignore(err error, errnos ...unix.Errno) error {
	for _, n := range errnos {
		if errors.Is(err, n) {
			return nil
		}
	}
	return err
}

func wrap(err error, format string, a ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(a, err)...)
}
