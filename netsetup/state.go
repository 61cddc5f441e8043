package netsetup

import "time"

// State is a snapshot of everything the plan depends on. It is plain data
// (JSON-serialisable) so unit tests can use recorded states and revert can
// store the pre-apply state.
type State struct {
	Links  map[string]Link   `json:"links"`
	Addrs  map[string][]Addr `json:"addrs"`  // by link name
	Routes []Route           `json:"routes"` // main-table routes via the iface + all routes in the VRF table
	Rules  []Rule            `json:"rules"`
	// Sysctls holds the l3mdev accept values ("" = unreadable).
	Sysctls map[string]string `json:"sysctls"`
	// Files holds every path the plan may write or that detection reads.
	Files  map[string]FileState `json:"files"`
	Module ModuleState          `json:"module"`
	// Manager is how the host configures the iface (hostnet).
	Manager Manager `json:"manager"`
	// ResolvedActive: systemd-resolved is running (DNS mode auto picks "resolved").
	ResolvedActive bool `json:"resolved_active"`
	// SSHSocket: sshd is socket-activated (ssh.socket active, or enabled
	// while ssh.service is not running); SSHService: ssh.service is active.
	SSHSocket  bool `json:"ssh_socket,omitempty"`
	SSHService bool `json:"ssh_service,omitempty"`
	// DHCPClients serving the iface, NetworkManagerActive, and whether
	// dhclient is installed: what decides if apply can keep the host
	// configured (Unsupported, hostnet).
	DHCPClients          []DHCPClient `json:"dhcp_clients,omitempty"`
	NetworkManagerActive bool         `json:"networkmanager_active,omitempty"`
	DhclientInstalled    bool         `json:"dhclient_installed,omitempty"`
	// Upstream nameservers harvested from resolved/networkd/resolv.conf.
	Upstream []string `json:"upstream,omitempty"`
	// SSHPin: the pinned program for sshd mode vrf-only.
	SSHPin SSHPin `json:"ssh_pin"`
	// DNSBind: the nameserver connect programs pinned for the VRF
	// (dnsbind.go), nil when the kernel cannot run them or was not asked
	// (--root, tests).
	DNSBind *DNSBindState `json:"dns_bind,omitempty"`
	// Units named by --service, and those still carrying our drop-in
	// (services.go); nil when systemd was not asked (--root, fakes).
	Units map[string]UnitState `json:"units,omitempty"`
	// SystemdVersion: 252 for systemd 252; 0 when not asked.
	SystemdVersion int `json:"systemd_version,omitempty"`
	// Interrupted: an apply died after writing ApplyMarker (SIGKILL, crash):
	// the service kinds it meant to reload/restart ("unit", "ssh",
	// "networkd", "resolved"). The files may already be in place, so only
	// the marker tells the next apply that the daemons have not seen them.
	Interrupted []string `json:"interrupted,omitempty"`
}

// Link is one network device.
type Link struct {
	Name   string `json:"name"`
	Index  int    `json:"index"`
	Kind   string `json:"kind"`            // "vrf", "veth", "device", ...
	Table  uint32 `json:"table,omitempty"` // VRF table
	Master int    `json:"master,omitempty"`
	Up     bool   `json:"up"`
}

// Addr is one interface address.
type Addr struct {
	CIDR  string `json:"cidr"` // "192.0.2.10/24"
	Scope int    `json:"scope"`
	// Dynamic: has a finite lifetime (DHCP/SLAAC); the owner re-adds it, we don't.
	Dynamic bool `json:"dynamic,omitempty"`
	// The rest is what a re-add needs to give the address back as it was;
	// states saved before these fields lack them (see readdAddrs).
	// Flags: the IFA_F_* flags an RTM_NEWADDR may set (addrSettableFlags).
	Flags uint32 `json:"flags,omitempty"`
	// Label: IPv4 label when it is not the device name ("eth0:mgmt").
	Label string `json:"label,omitempty"`
	// Broadcast (IPv4): "0.0.0.0" for none. "" only in older states: the
	// re-add then derives one from the prefix, as it always did.
	Broadcast string `json:"broadcast,omitempty"`
	// Peer: the point-to-point peer prefix (CIDR is then the local /32).
	Peer string `json:"peer,omitempty"`
	// ValidUntil/PreferredUntil: when the finite lifetimes run out
	// (wall clock, so a saved state still means something at revert);
	// nil = forever.
	ValidUntil     *time.Time `json:"valid_until,omitempty"`
	PreferredUntil *time.Time `json:"preferred_until,omitempty"`
}

// Route is one route we may move or create.
type Route struct {
	Family   int    `json:"family"`
	Table    uint32 `json:"table"`
	Dst      string `json:"dst"` // "default" or a prefix
	Gw       string `json:"gw,omitempty"`
	Dev      string `json:"dev,omitempty"`
	Metric   uint32 `json:"metric,omitempty"`
	Type     uint8  `json:"type"`     // unix.RTN_UNICAST / RTN_UNREACHABLE
	Protocol uint8  `json:"protocol"` // RTPROT_KERNEL routes are "connected" and follow the device
	Scope    uint8  `json:"scope"`
	Onlink   bool   `json:"onlink,omitempty"`
	// The rest is everything else the kernel takes back on RTM_NEWROUTE,
	// so a moved or restored route is the route that was there. States
	// saved before these fields restore routes as they always did.
	Tos   uint8  `json:"tos,omitempty"`
	Realm uint32 `json:"realm,omitempty"`
	Src   string `json:"src,omitempty"` // RTA_PREFSRC
	// Metrics: RTA_METRICS (mtu, advmss, hoplimit, ...); nil when none.
	Metrics *RouteMetrics `json:"metrics,omitempty"`
	// Pref: IPv6 router preference (RTA_PREF): 0 medium, 1 high, 3 low.
	Pref uint8 `json:"pref,omitempty"`
	// Expires: when an expiring IPv6 route (RA) runs out; nil = never.
	Expires *time.Time `json:"expires,omitempty"`
	// MultiPath: the hops of a multipath route (Gw and Dev are then empty).
	MultiPath []Hop `json:"multipath,omitempty"`
	// NHID: the route uses nexthop object NHID (RTA_NH_ID); NHDevs are
	// the devices of that object (of its members for a group).
	NHID   uint32   `json:"nhid,omitempty"`
	NHDevs []string `json:"nh_devs,omitempty"`
}

// Hop is one nexthop of a multipath route.
type Hop struct {
	Gw  string `json:"gw,omitempty"`
	Dev string `json:"dev,omitempty"`
	// Weight as ip-route shows it (rtnh_hops + 1).
	Weight int `json:"weight,omitempty"`
	// Onlink: RTNH_F_ONLINK, the one hop flag a user sets; the others
	// (dead, linkdown, offload) are the kernel's to report.
	Onlink bool `json:"onlink,omitempty"`
}

// RouteMetrics are a route's RTA_METRICS, as netlink.Route has them.
type RouteMetrics struct {
	MTU              int    `json:"mtu,omitempty"`
	MTULock          bool   `json:"mtu_lock,omitempty"`
	Window           int    `json:"window,omitempty"`
	Rtt              int    `json:"rtt,omitempty"`
	RttVar           int    `json:"rttvar,omitempty"`
	Ssthresh         int    `json:"ssthresh,omitempty"`
	Cwnd             int    `json:"cwnd,omitempty"`
	AdvMSS           int    `json:"advmss,omitempty"`
	Reordering       int    `json:"reordering,omitempty"`
	Hoplimit         int    `json:"hoplimit,omitempty"`
	InitCwnd         int    `json:"initcwnd,omitempty"`
	Features         int    `json:"features,omitempty"`
	RtoMin           int    `json:"rto_min,omitempty"`
	RtoMinLock       bool   `json:"rto_min_lock,omitempty"`
	InitRwnd         int    `json:"initrwnd,omitempty"`
	QuickACK         int    `json:"quickack,omitempty"`
	Congctl          string `json:"congctl,omitempty"`
	FastOpenNoCookie int    `json:"fastopen_no_cookie,omitempty"`
}

// via: the route leaves through dev (directly, by one of its hops, or by
// its nexthop object).
func (r Route) via(dev string) bool {
	if r.Dev == dev {
		return true
	}
	for _, h := range r.MultiPath {
		if h.Dev == dev {
			return true
		}
	}
	for _, d := range r.NHDevs {
		if d == dev {
			return true
		}
	}
	return false
}

// devs: every device the route leaves through.
func (r Route) devs() []string {
	var out []string
	add := func(d string) {
		for _, x := range out {
			if x == d {
				return
			}
		}
		out = append(out, d)
	}
	if r.Dev != "" {
		add(r.Dev)
	}
	for _, h := range r.MultiPath {
		add(h.Dev)
	}
	for _, d := range r.NHDevs {
		add(d)
	}
	return out
}

// ModuleState: is the VRF driver usable?
type ModuleState struct {
	Loaded    bool   `json:"loaded"`    // /sys/module/vrf exists
	Available bool   `json:"available"` // listed in modules.dep / modules.builtin
	Release   string `json:"release"`   // uname -r
}

// Link lookup helpers.
func (s *State) link(name string) (Link, bool) {
	l, ok := s.Links[name]
	return l, ok
}

func (s *State) linkByIndex(idx int) (Link, bool) {
	for _, l := range s.Links {
		if l.Index == idx {
			return l, true
		}
	}
	return Link{}, false
}

func (s *State) hasAddr(link, cidr string) bool {
	for _, a := range s.Addrs[link] {
		if a.CIDR == cidr {
			return true
		}
	}
	return false
}

func (s *State) file(path string) FileState { return s.Files[path] }
