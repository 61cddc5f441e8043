package netsetup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Which hosts apply can keep configured. Persistence goes through whatever
// configures the NIC (persist.go): networkd files, ifupdown with dhclient's
// exit hook, or nothing (static, no manager). A manager or DHCP client
// without such a hook undoes apply at its next lease, reconnect or reload,
// and on the Debian 13 dhcpcd and NetworkManager hosts a failed apply
// could not even be rolled back completely. apply refuses those hosts,
// naming what it found, unless --force.

// DHCPClient is a DHCP client process that serves the management NIC.
type DHCPClient struct {
	Name string `json:"name"` // dhclient, dhcpcd, udhcpc
	PID  int    `json:"pid"`
}

var dhcpClientNames = []string{"dhclient", "dhcpcd", "udhcpc"}

// readDHCPClients: DHCP client processes whose command line names iface,
// and dhcpcd in manager mode (no interface named: it serves them all).
func readDHCPClients(procRoot, iface string) []DHCPClient {
	var out []DHCPClient
	for _, name := range dhcpClientNames {
		for _, pid := range commPIDs(procRoot, name) {
			raw, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cmdline"))
			if err != nil {
				continue
			}
			args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
			if len(args) == 1 {
				// a process title (dhcpcd: "dhcpcd: eth0 [ip4]",
				// "dhcpcd: [manager] [ip4] [ip6]")
				args = strings.Fields(args[0])
			}
			names, ifaceless := false, true
			for _, a := range args[1:] {
				if a == iface {
					names = true
				}
				if a != "" && !strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "[") && !strings.Contains(a, "/") {
					ifaceless = false // some other argument, likely an interface
				}
			}
			if names || (name == "dhcpcd" && ifaceless) {
				out = append(out, DHCPClient{Name: name, PID: pid})
			}
		}
	}
	return out
}

// Unsupported says why apply's changes would not last on this host ("":
// they do): a manager or DHCP client that would undo them.
func Unsupported(cfg Config, st *State) string {
	m := st.Manager
	var why []string
	switch {
	case m.Kind == "networkmanager":
		why = append(why, fmt.Sprintf("NetworkManager manages %s (%s): it takes the interface back out of the VRF and puts its default route into main at the next renewal or reconnect", cfg.Iface, strings.TrimPrefix(m.Detail, "NetworkManager: ")))
	case m.Kind == "none" && st.NetworkManagerActive:
		why = append(why, fmt.Sprintf("NetworkManager is running and no other manager configures %s, so NetworkManager likely does (a default connection): it would undo the enslavement", cfg.Iface))
	case m.Kind == "ifupdown" && m.DHCP && !st.DhclientInstalled:
		why = append(why, fmt.Sprintf("ifupdown runs DHCP on %s but isc-dhcp-client (dhclient) is not installed, so ifup uses another client (dhcpcd on Debian 13), for which there is no hook: every lease puts the default route back into main", cfg.Iface))
	}
	for _, c := range st.DHCPClients {
		switch {
		case c.Name == "dhclient" && m.Kind == "ifupdown" && m.DHCP:
			continue // its exit hook is ours (DhclientHook)
		case m.Kind == "networkd":
			why = append(why, fmt.Sprintf("%s (pid %d) serves %s next to systemd-networkd, which already runs DHCP for it: the two fight over its addresses and routes", c.Name, c.PID, cfg.Iface))
		default:
			why = append(why, fmt.Sprintf("%s (pid %d) serves %s and pam-vrf has no hook for it: every lease puts the default route back into main", c.Name, c.PID, cfg.Iface))
		}
	}
	return strings.Join(why, "; ")
}

// unsupportedError is apply's refusal; the fix names what is supported.
func unsupportedError(cfg Config, why string) error {
	return &PlanError{
		Msg: "this host's network setup is not one apply can keep configured: " + why,
		Fix: "let systemd-networkd (netplan included) or ifupdown with isc-dhcp-client manage " + cfg.Iface + ", or give it a static address; or pass --force to apply anyway, knowing the change lasts until that tool next touches " + cfg.Iface,
	}
}
