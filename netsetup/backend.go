package netsetup

import (
	"strings"

	"github.com/pam-vrf/pam-vrf/netsetup/hostnet"
)

// The engine's side of hostnet: what it hands the host's backend and the
// steps it builds from what the backend returns. Whatever differs between
// kinds of host (networkd, ifupdown, NetworkManager, ...) is in hostnet,
// one file a kind.

// Manager says which tool configures the management interface (hostnet).
type Manager = hostnet.Manager

// DHCPClient is a DHCP client process that serves the management NIC.
type DHCPClient = hostnet.DHCPClient

// DetectManager inspects the files under fs (and the unit state) for iface.
func DetectManager(fs FS, svc ServiceManager, iface string) Manager {
	_, offline := svc.(Offline)
	return hostnet.Detect(hostnet.Host{Glob: fs.Glob, Units: svc, Offline: offline,
		Read: func(p string) (string, string, bool) {
			st, err := fs.Stat(p)
			return st.Content, st.Symlink, err == nil
		}}, iface)
}

// readDHCPClients: the DHCP client processes under procRoot serving iface.
func readDHCPClients(procRoot, iface string) []DHCPClient {
	return hostnet.ReadDHCPClients(procRoot, iface, func(comm string) []int { return commPIDs(procRoot, comm) })
}

// backend is the host's kind of manager.
func backend(st *State) hostnet.Backend { return hostnet.For(st.Manager) }

// Unsupported says why apply's changes would not last on this host ("":
// they do): a manager or DHCP client that would undo them.
func Unsupported(cfg Config, st *State) string {
	why := backend(st).Refusals(st.Manager, hostnet.Facts{Iface: cfg.Iface, DHCPClients: st.DHCPClients,
		NetworkManagerActive: st.NetworkManagerActive, DhclientInstalled: st.DhclientInstalled})
	return strings.Join(why, "; ")
}

// unsupportedError is apply's refusal; the fix names what is supported.
func unsupportedError(cfg Config, why string) error {
	return &PlanError{
		Msg: "this host's network setup is not one apply can keep configured: " + why,
		Fix: "let systemd-networkd (netplan included) or ifupdown with isc-dhcp-client manage " + cfg.Iface + ", or give it a static address; or pass --force to apply anyway, knowing the change lasts until that tool next touches " + cfg.Iface,
	}
}
