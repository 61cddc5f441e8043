// Package hostnet knows the tools that configure the management NIC on a
// host ("managers"), one file a kind: networkd.go (netplan-generated files
// included), networkmanager.go, ifupdown_dhclient.go, ifupdown_dhcpcd.go,
// none.go, and refused.go (udhcpc and clients started outside ifupdown,
// which apply refuses). apply's changes last only if they
// go through that tool: networkd rewrites routes it owns, dhclient re-adds
// its default route into main at every lease.
//
// The backends return plain data (detected facts, files, service commands,
// reasons to refuse) and netsetup, the plan/apply/verify engine, turns it
// into steps. They do not build netsetup's Steps themselves: those act on
// netsetup's Env (netlink, files, systemd), and moving that into a package
// both could import would move most of netsetup. So hostnet imports nothing
// of netsetup and netsetup calls it through Backend.
package hostnet

// Manager says which tool configures the management interface at boot and
// on DHCP renewals. It is recorded in netsetup's State (and in its backup,
// hence the JSON names).
type Manager struct {
	Kind string `json:"kind"` // "networkd", "networkmanager", "ifupdown", "ifupdown-dhcpcd", "none"
	// NetworkFile is the manager's file for the iface: networkd's .network
	// file, NetworkManager's keyfile.
	NetworkFile string `json:"network_file,omitempty"`
	// Connection and Master: the NetworkManager connection's UUID, and the
	// device its keyfile makes it a port of ("": none).
	Connection string `json:"connection,omitempty"`
	Master     string `json:"master,omitempty"`
	Netplan    bool   `json:"netplan,omitempty"` // the .network file is netplan-generated
	DHCP       bool   `json:"dhcp,omitempty"`    // ifupdown "inet dhcp" stanza
	Static     bool   `json:"static,omitempty"`  // ifupdown "inet static" or "inet6 static" stanza
	Detail     string `json:"detail"`
}

// Backend is what the engine asks of a kind of manager. Refusals, Notes,
// DHCP and Takeover are asked of the host's backend (For); Files of every
// backend.
type Backend interface {
	// Kind is Manager.Kind for this backend.
	Kind() string
	// Detect returns the facts when this kind configures iface (ok false:
	// it does not).
	Detect(h Host, iface string) (m Manager, ok bool)
	// Refusals say why apply's changes would not last with m (none: they do).
	Refusals(m Manager, f Facts) []string
	// Files are the files this kind owns, as the host needs them: written
	// where m is this kind, removed (Remove) where not. Every backend is
	// asked, so a host that changed manager loses the other kind's files.
	// read returns a file's current content (nil: not read yet, only the
	// paths count).
	Files(m Manager, t Target, read func(path string) string) []File
	// Notes are printed with the plan.
	Notes(m Manager, t Target) []string
	// DHCP is what the engine steers into the VRF for the client serving
	// iface; read returns a file's content (from the state).
	DHCP(m Manager, iface string, read func(path string) string) DHCP
	// Takeover: nil when the engine creates the VRF and enslaves the iface
	// itself; else how it has the manager do that, from Files.
	Takeover(m Manager, t Target) *Takeover
}

// backends in detection order: the first that claims the iface wins, and
// none claims every iface.
var backends = []Backend{networkd{}, networkManager{}, ifupdownDhcpcd{}, ifupdown{}, none{}}

// Backends is every kind, in detection order.
func Backends() []Backend { return backends }

// For returns m's backend; kinds it does not know behave as "none".
func For(m Manager) Backend {
	for _, b := range backends {
		if b.Kind() == m.Kind {
			return b
		}
	}
	return none{}
}

// Detect inspects the host for iface: the first backend that claims it.
func Detect(h Host, iface string) Manager {
	var m Manager
	for _, b := range backends {
		var ok bool
		if m, ok = b.Detect(h, iface); ok {
			break
		}
	}
	return m
}

// Host is what detection reads: files under --root and the unit state.
type Host struct {
	Glob func(pattern string) []string
	// Read returns a file's content and, for a symlink, its target; ok
	// is false when it could not be read (a missing file reads empty).
	Read func(path string) (content, symlink string, ok bool)
	// Units is nil when systemd was not asked (it counts as active then).
	Units Units
	// Offline: --root, nothing runs; networkd files count as used.
	Offline bool
}

// Units is the little of systemd detection asks.
type Units interface {
	IsActive(unit string) bool
	IsEnabled(unit string) bool
}

// Facts besides the manager that decide whether apply's changes last.
type Facts struct {
	Iface, VRF           string
	DHCPClients          []DHCPClient
	NetworkManagerActive bool
	DhclientInstalled    bool
}

// Target is the setup a backend's files and commands are for.
type Target struct {
	Iface, VRF string
	Table      uint32
	// ConfigPath is apply's config, which the dhclient hook passes on.
	ConfigPath string
	// What the VRF device carries that a manager creating it must declare,
	// or it removes them as foreign: addresses, the catch-all routes'
	// metric, and the DNS steering rules (host prefixes) at DNSRulePref.
	Addrs          []string
	CatchAllMetric uint32
	DNSRules       []string
	DNSRulePref    uint32
}

// File is one desired file; Remove means "must not exist" (ours, stale).
type File struct {
	Path    string
	Content string
	Mode    uint32
	Remove  bool
	// Kind groups files for the service actions they need (Takeover.FileKind).
	Kind string
	// Read: the file is only read for facts (a lease), never written.
	Read bool
	// BeforeNet: written before the iface is enslaved (a DHCP client's
	// hook that must see the lease the enslave makes it bind again).
	BeforeNet bool
}

// DHCP is what a DHCP client the engine cannot bind to the VRF needs.
type DHCP struct {
	// Servers: its lease's server and nameservers, all learned on the
	// management network, so steered into the VRF.
	Servers []string
	// WritesResolvConf: it rewrites /etc/resolv.conf from every lease.
	WritesResolvConf bool
	// Client names the DHCP client in messages ("" : dhclient).
	Client string
	// RoutesByHook: the client drops its lease when the iface is enslaved
	// and binds it again, and its hook puts the IPv4 routes into the VRF
	// table: after enslaving, the engine waits for them instead of moving
	// the ones it saw.
	RoutesByHook bool
	// RunsInVRF: its hook runs the client in the VRF while the iface is a
	// port (as `ip vrf exec` does); revert takes it out before the release.
	RunsInVRF bool
}

// ClientName is the DHCP client as messages name it.
func (d DHCP) ClientName() string {
	if d.Client == "" {
		return "dhclient"
	}
	return d.Client
}

// Takeover is how a manager that creates the VRF and enslaves the iface
// itself is made to apply its files now, and to give the iface back on
// revert. Commands are netsetup ServiceManager.Run arguments.
type Takeover struct {
	// Who is waited for after its commands ("": systemd-networkd, whose
	// link state is read too).
	Who string
	// FileKind: its files' File.Kind; changes to them need Reload.
	FileKind string
	// VRFFile: the file from which it creates the VRF device.
	VRFFile string
	// Arm does nothing on apply; run when a failed apply is rolled back,
	// after its files are restored.
	Arm Cmd
	// Reload has it read changed files.
	Reload Cmd
	// Enslave: enslave the iface, its DHCP/RA routes into the VRF table;
	// Recreate when the VRF device is gone but the manager still has it.
	// Both are followed by a wait until it settled.
	Enslave, Recreate Cmd
	// On revert: RevertReload the restored files, then Release the iface
	// (ReleaseAny when it had a master before apply); waits follow.
	RevertReload, Release, ReleaseAny Cmd
	// CreateVRF, when the VRF device does not exist, has the manager
	// create it alone, before Enslave: the engine puts its catch-all
	// routes and guard rules in place in between, so no lookup for the
	// VRF falls through to main while the manager enslaves the iface
	// (NetworkManager's DHCP client connects its socket to the server
	// right after the ACK: without the l3mdev rule that failed, "Network
	// is unreachable", and the lease came when it expired).
	// Empty: the device comes with Enslave.
	CreateVRF Cmd
	// Idle waits (bounded) until the manager is done starting, before
	// apply reads the state: at boot the unit runs while it still sets
	// the iface up. Empty: nothing to wait for (networkd's link state is
	// waited for by the engine).
	Idle Cmd
}

// Cmd is one step of service commands, run in order: its ID, and the line
// the plan prints.
type Cmd struct {
	ID, Desc string
	Run      [][]string
}
