package netsetup

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Reader builds a State from the live system.
type Reader struct {
	Net    *Net
	FS     FS     // persistent files (--root)
	Sysctl Sysctl // runtime sysctls (netns of Net)
	Svc    ServiceManager
	// HostRoot is where /sys/module and /lib/modules are read ("/" unless a
	// test fakes them). Kept apart from FS: --root is about files we write.
	HostRoot string
	// Hooks: read (and so plan) the nameserver connect hooks, which live
	// in the root cgroup: the running host's only, never a test's netns.
	Hooks bool
}

// Read snapshots the live state relevant to cfg.
func (r *Reader) Read(cfg Config) (*State, error) {
	st := &State{Links: map[string]Link{}, Addrs: map[string][]Addr{}, Sysctls: map[string]string{}, Files: map[string]FileState{}}
	if err := r.readLinks(st); err != nil {
		return nil, err
	}
	for _, name := range []string{cfg.Iface, cfg.VRF} {
		if err := r.readAddrs(st, name); err != nil {
			return nil, err
		}
	}
	if err := r.readRoutes(st, cfg); err != nil {
		return nil, err
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := r.Net.RuleList(fam)
		if err != nil {
			return nil, err
		}
		st.Rules = append(st.Rules, rules...)
	}
	for _, s := range l3mdevSysctls {
		v, _ := r.Sysctl.Get(s) // unreadable -> "" -> plan writes it
		st.Sysctls[s] = v
	}
	st.Module = readModule(r.HostRoot)
	st.SSHPin = readSSHPin(r.HostRoot, cfg.VRF)
	if r.Hooks {
		st.DNSBind = readDNSBind(cfg.VRF)
	}
	st.Manager = DetectManager(r.FS, r.Svc, cfg.Iface)
	if _, offline := r.Svc.(Offline); !offline && r.Svc != nil {
		// processes are the running system's: not asked for --root
		host := r.HostRoot
		if host == "" {
			host = "/"
		}
		st.DHCPClients = readDHCPClients(filepath.Join(host, "proc"), cfg.Iface)
	}
	for _, p := range []string{"/sbin/dhclient", "/usr/sbin/dhclient"} {
		if _, err := os.Stat(r.FS.P(p)); err == nil {
			st.DhclientInstalled = true
		}
	}
	if r.Svc != nil {
		st.ResolvedActive = r.Svc.IsActive("systemd-resolved.service")
		st.SSHService = r.Svc.IsActive("ssh.service")
		st.NetworkManagerActive = r.Svc.IsActive("NetworkManager.service")
		// An enabled ssh.socket that is not running still owns sshd: with
		// BindToDevice= systemd stops it when the VRF device goes away,
		// and the apply that re-creates the VRF must bind it again, not
		// start ssh.service instead.
		st.SSHSocket = r.Svc.IsActive("ssh.socket") || (r.Svc.IsEnabled("ssh.socket") && !st.SSHService)
	}
	paths := append(candidatePaths(cfg, st.Manager), r.FS.Glob("/etc/systemd/resolved.conf.d/*.conf")...)
	paths = append(paths, r.FS.Glob("/etc/systemd/system/*.service.d/"+ServiceDropInName)...)
	for _, u := range cfg.services() {
		paths = append(paths, unitDropInPath(u))
	}
	for _, p := range paths {
		fs, err := r.FS.Stat(p)
		if err != nil {
			return nil, err
		}
		st.Files[p] = fs
	}
	if ur, ok := r.Svc.(UnitReader); ok {
		if units := unitsToRead(cfg, st.Files); len(units) > 0 {
			vrf := 0
			if l, ok := st.link(cfg.VRF); ok && l.Kind == "vrf" {
				vrf = l.Index
			}
			var err error
			if st.Units, st.SystemdVersion, err = readUnits(ur, units, vrf); err != nil {
				return nil, fmt.Errorf("read units %s: %w", strings.Join(units, " "), err)
			}
		}
	}
	st.Upstream = HarvestNameservers(r.FS, st.Files[ResolvConf])
	if m, err := r.FS.Stat(ApplyMarker); err == nil && m.Exists {
		st.Interrupted = strings.Fields(m.Content)
	}
	return st, nil
}

func (r *Reader) readLinks(st *State) error {
	links, err := retryDump(func() ([]netlink.Link, error) { return r.Net.H.LinkList() })
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		lk := Link{Name: a.Name, Index: a.Index, Kind: l.Type(), Master: a.MasterIndex, Up: a.Flags&net.FlagUp != 0}
		if v, ok := l.(*netlink.Vrf); ok {
			lk.Table = v.Table
		}
		st.Links[a.Name] = lk
	}
	return nil
}

func (r *Reader) readAddrs(st *State, name string) error {
	l, ok := st.Links[name]
	if !ok {
		return nil
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) {
		return r.Net.H.AddrList(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: l.Index, Name: name}}, netlink.FAMILY_ALL)
	})
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", name, err)
	}
	now := time.Now()
	for _, a := range addrs {
		st.Addrs[name] = append(st.Addrs[name], fromNetlinkAddr(name, a, now))
	}
	return nil
}

// addrSettableFlags are the IFA_F_* flags RTM_NEWADDR takes (the kernel
// masks IPv6 ones to this set in inet6_rtm_newaddr); the others
// (permanent, tentative, deprecated, secondary, ...) it derives itself.
const addrSettableFlags = unix.IFA_F_NODAD | unix.IFA_F_OPTIMISTIC | unix.IFA_F_HOMEADDRESS |
	unix.IFA_F_MANAGETEMPADDR | unix.IFA_F_NOPREFIXROUTE | unix.IFA_F_MCAUTOJOIN

// infiniteLft is INFINITY_LIFE_TIME: an address that never expires.
const infiniteLft = 0xffffffff

func fromNetlinkAddr(dev string, a netlink.Addr, now time.Time) Addr {
	out := Addr{
		CIDR:    a.IPNet.String(),
		Scope:   a.Scope,
		Dynamic: a.Flags&unix.IFA_F_PERMANENT == 0,
		Flags:   uint32(a.Flags) & addrSettableFlags,
	}
	if a.Label != "" && a.Label != dev {
		out.Label = a.Label
	}
	if a.IP.To4() != nil {
		out.Broadcast = "0.0.0.0" // none, unless the kernel reported one
		if a.Broadcast != nil {
			out.Broadcast = a.Broadcast.String()
		}
	}
	if a.Peer != nil {
		out.Peer = a.Peer.String()
	}
	until := func(lft int) *time.Time {
		if uint32(lft) == infiniteLft {
			return nil
		}
		t := now.Add(time.Duration(lft) * time.Second)
		return &t
	}
	// the kernel always reports both lifetimes; 0/0 only from fakes
	if a.ValidLft != 0 || a.PreferedLft != 0 {
		out.ValidUntil, out.PreferredUntil = until(a.ValidLft), until(a.PreferedLft)
	}
	return out
}

// readRoutes keeps the main-table routes through the iface (what enslaving
// flushes: a multipath route with any hop through it, a route whose
// nexthop object sends through it) and everything in the VRF table.
func (r *Reader) readRoutes(st *State, cfg Config) error {
	_, hasIface := st.Links[cfg.Iface]
	nhDevs, err := r.Net.nexthopDevs()
	if err != nil {
		return err
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		extras, err := retryDump(func() (map[string]routeExtra, error) { return r.Net.routeExtras(fam) })
		if err != nil {
			return err
		}
		// One dump of every table (the library filters in Go anyway),
		// kept in the order the plan reads them: the VRF table, then main.
		routes, err := retryDump(func() ([]netlink.Route, error) {
			return r.Net.H.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return fmt.Errorf("list %s routes: %w", famName(fam), err)
		}
		var inMain []Route
		for _, rt := range routes {
			switch rt.Table {
			case int(cfg.Table):
				st.Routes = append(st.Routes, fromNetlinkRoute(st, rt, extras[extraKeyOf(rt)], nhDevs))
			case unix.RT_TABLE_MAIN:
				if !hasIface {
					continue
				}
				if out := fromNetlinkRoute(st, rt, extras[extraKeyOf(rt)], nhDevs); out.via(cfg.Iface) {
					inMain = append(inMain, out)
				}
			}
		}
		st.Routes = append(st.Routes, inMain...)
	}
	return nil
}

// fromNetlinkRoute records rt with x, what the library left out of it.
// Expiry becomes a wall-clock time, as address lifetimes do.
func fromNetlinkRoute(st *State, rt netlink.Route, x routeExtra, nhDevs map[uint32][]int) Route {
	out := Route{Family: rt.Family, Table: uint32(rt.Table), Dst: "default", Metric: uint32(rt.Priority),
		Type: uint8(rt.Type), Protocol: uint8(rt.Protocol), Scope: uint8(rt.Scope), Onlink: rt.Flags&unix.RTNH_F_ONLINK != 0,
		Tos: uint8(rt.Tos), Realm: uint32(rt.Realm), Pref: x.Pref, NHID: x.NHID}
	if rt.Dst != nil {
		if ones, _ := rt.Dst.Mask.Size(); ones != 0 || !rt.Dst.IP.IsUnspecified() {
			out.Dst = rt.Dst.String()
		}
	}
	out.Gw = gwString(rt.Gw, rt.Via)
	if rt.Src != nil {
		out.Src = rt.Src.String()
	}
	devName := func(idx int) string {
		if l, ok := st.linkByIndex(idx); ok {
			return l.Name
		}
		return ""
	}
	if rt.LinkIndex > 0 {
		out.Dev = devName(rt.LinkIndex)
	}
	for _, h := range rt.MultiPath {
		out.MultiPath = append(out.MultiPath, Hop{Gw: gwString(h.Gw, h.Via), Dev: devName(h.LinkIndex),
			Weight: h.Hops + 1, Onlink: h.Flags&unix.RTNH_F_ONLINK != 0})
	}
	if x.NHID != 0 {
		for _, idx := range nhDevs[x.NHID] {
			out.NHDevs = append(out.NHDevs, devName(idx))
		}
	}
	if x.Expires > 0 {
		t := time.Now().Add(x.Expires)
		out.Expires = &t
	}
	m := RouteMetrics{MTU: rt.MTU, MTULock: rt.MTULock, Window: rt.Window, Rtt: rt.Rtt, RttVar: rt.RttVar,
		Ssthresh: rt.Ssthresh, Cwnd: rt.Cwnd, AdvMSS: rt.AdvMSS, Reordering: rt.Reordering, Hoplimit: rt.Hoplimit,
		InitCwnd: rt.InitCwnd, Features: rt.Features, RtoMin: rt.RtoMin, RtoMinLock: rt.RtoMinLock,
		InitRwnd: rt.InitRwnd, QuickACK: rt.QuickACK, Congctl: rt.Congctl, FastOpenNoCookie: rt.FastOpenNoCookie}
	m.MTULock = m.MTU > 0 && x.Lock&(1<<unix.RTAX_MTU) != 0
	m.RtoMinLock = m.RtoMin > 0 && x.Lock&(1<<unix.RTAX_RTO_MIN) != 0
	if m != (RouteMetrics{}) {
		out.Metrics = &m
	}
	return out
}

// gwString: the gateway, also when it is an RTA_VIA (IPv4 via an IPv6
// gateway, RFC 8950).
func gwString(gw net.IP, via netlink.Destination) string {
	if gw != nil {
		return gw.String()
	}
	if v, ok := via.(*netlink.Via); ok && v != nil && v.Addr != nil {
		return v.Addr.String()
	}
	return ""
}

// retryDump retries a dump interrupted by a concurrent change.
func retryDump[R any](f func() (R, error)) (R, error) {
	for i := 0; ; i++ {
		v, err := f()
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < 5 {
			continue
		}
		return v, err
	}
}

// readModule: the VRF driver is loaded if /sys/module/vrf exists, loadable
// if modules.dep or modules.builtin of the running kernel lists vrf.ko.
func readModule(root string) ModuleState {
	if root == "" {
		root = "/"
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	m := ModuleState{Release: unix.ByteSliceToString(uts.Release[:])}
	if _, err := os.Stat(filepath.Join(root, "sys/module/vrf")); err == nil {
		m.Loaded, m.Available = true, true
		return m
	}
	for _, f := range []string{"modules.dep", "modules.builtin"} {
		data, err := os.ReadFile(filepath.Join(root, "lib/modules", m.Release, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			mod, _, _ := strings.Cut(line, ":")
			base := filepath.Base(mod)
			if base == "vrf.ko" || strings.HasPrefix(base, "vrf.ko.") {
				m.Available = true
			}
		}
	}
	return m
}
