package hostnet

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DHCP clients apply refuses (unless --force), found by their processes:
// udhcpc, and dhclient and dhcpcd where ifupdown did not start them. A
// client without a hook of ours puts the default route back into main at
// its next lease.

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
