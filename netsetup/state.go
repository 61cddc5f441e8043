package netsetup

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
	// Manager is how the host configures the iface (persist.go).
	Manager Manager `json:"manager"`
	// ResolvedActive: systemd-resolved is running (DNS mode auto picks "resolved").
	ResolvedActive bool `json:"resolved_active"`
	// SSHSocket: sshd is socket-activated (ssh.socket active, or enabled
	// while ssh.service is not running); SSHService: ssh.service is active.
	SSHSocket  bool `json:"ssh_socket,omitempty"`
	SSHService bool `json:"ssh_service,omitempty"`
	// DHCPClients serving the iface, NetworkManagerActive, and whether
	// dhclient is installed: what decides if apply can keep the host
	// configured (hostshape.go).
	DHCPClients          []DHCPClient `json:"dhcp_clients,omitempty"`
	NetworkManagerActive bool         `json:"networkmanager_active,omitempty"`
	DhclientInstalled    bool         `json:"dhclient_installed,omitempty"`
	// Upstream nameservers harvested from resolved/networkd/resolv.conf.
	Upstream []string `json:"upstream,omitempty"`
	// SSHPin: the pinned program for sshd mode vrf-only.
	SSHPin SSHPin `json:"ssh_pin"`
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
