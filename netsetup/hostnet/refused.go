package hostnet

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Hosts apply refuses (unless --force): a manager or DHCP client without a
// hook of ours undoes apply at its next lease, reconnect or reload, and on
// a NetworkManager host a failed apply could not even be rolled back
// completely. Here are NetworkManager, found by its
// keyfile or its running service, and the DHCP clients found by their
// processes (udhcpc; dhclient and dhcpcd where ifupdown did not start them).

// networkManager: a NetworkManager keyfile names the iface.
type networkManager struct{}

const kindNetworkManager = "networkmanager"

func (networkManager) Kind() string { return kindNetworkManager }

func (networkManager) Detect(h Host, iface string) (Manager, bool) {
	for _, f := range h.Glob("/etc/NetworkManager/system-connections/*") {
		if content, _, _ := h.Read(f); strings.Contains(content, "interface-name="+iface+"\n") {
			return Manager{Kind: kindNetworkManager, Detail: "NetworkManager: " + f}, true
		}
	}
	return Manager{}, false
}

func (networkManager) Refusals(m Manager, f Facts) []string {
	why := []string{fmt.Sprintf("NetworkManager manages %s (%s): it takes the interface back out of the VRF and puts its default route into main at the next renewal or reconnect", f.Iface, strings.TrimPrefix(m.Detail, "NetworkManager: "))}
	return append(why, unhooked(f, nil)...)
}

// Files: none of ours; apply (with --force) handles the iface by hand.
func (networkManager) Files(Manager, Target) []File { return nil }

func (networkManager) Notes(_ Manager, t Target) []string {
	return []string{"NetworkManager manages " + t.Iface + ": make it a VRF port there too, or a lease renewal puts the default route back into main: nmcli con add type vrf ifname " + t.VRF + " table " + fmt.Sprint(t.Table) + " && nmcli con mod <conn of " + t.Iface + "> connection.master " + t.VRF + " connection.slave-type vrf"}
}

func (networkManager) DHCP(Manager, string, func(string) string) DHCP { return DHCP{} }

func (networkManager) Takeover(Target) *Takeover { return nil }

// DHCPClient is a DHCP client process that serves the management NIC.
type DHCPClient struct {
	Name string `json:"name"` // dhclient, dhcpcd, udhcpc
	PID  int    `json:"pid"`
}

var dhcpClientNames = []string{"dhclient", "dhcpcd", "udhcpc"}

// ReadDHCPClients: DHCP client processes whose command line names iface,
// and dhcpcd in manager mode (no interface named: it serves them all).
// pidsOf lists the processes under procRoot with that comm.
func ReadDHCPClients(procRoot, iface string, pidsOf func(comm string) []int) []DHCPClient {
	var out []DHCPClient
	for _, name := range dhcpClientNames {
		for _, pid := range pidsOf(name) {
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
			if len(args) == 0 {
				continue // exiting (a zombie's cmdline is empty)
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

// unhooked: a refusal for each DHCP client serving the iface that has no
// hook of ours, except those hooked (nil: none is).
func unhooked(f Facts, hooked func(DHCPClient) bool) []string {
	var why []string
	for _, c := range f.DHCPClients {
		if hooked != nil && hooked(c) {
			continue
		}
		why = append(why, fmt.Sprintf("%s (pid %d) serves %s and pam-vrf has no hook for it: every lease puts the default route back into main", c.Name, c.PID, f.Iface))
	}
	return why
}
