package netsetup

import (
	"net/netip"
	"strings"
)

// DHCP renewals through the VRF. dhclient sends its unicast RENEW to the
// server from an unbound socket, so in the default VRF, whose main table
// has no route to the management network once the NIC is enslaved:
// "Network is unreachable" at every T1, and only the broadcast REBIND at T2
// (sent on the raw socket) keeps the lease, if the server or relay answers
// broadcasts at all. The server's address gets the steering rule the DNS
// servers get (`to SERVER iif lo lookup TABLE`), so the unicast leaves
// through the VRF; the answer comes back on the raw socket, which no VRF
// affects. networkd's client binds its sockets to the interface and needs
// none of this.

// dhclientLeaseFiles: where Debian's ifupdown (and a plain dhclient) keep
// the leases of iface.
func dhclientLeaseFiles(iface string) []string {
	return []string{"/var/lib/dhcp/dhclient." + iface + ".leases", "/var/lib/dhcp/dhclient.leases"}
}

// dhcpServerOf returns the server identifier of the last lease in a
// dhclient lease file that is for iface ("" when there is none).
func dhcpServerOf(content, iface string) string {
	server, inIface := "", false
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "lease {"):
			inIface = false
		case strings.HasPrefix(line, "interface "):
			inIface = strings.Trim(strings.TrimSuffix(strings.TrimPrefix(line, "interface "), ";"), `"`) == iface
		case strings.HasPrefix(line, "option dhcp-server-identifier ") && inIface:
			v := strings.TrimSuffix(strings.TrimPrefix(line, "option dhcp-server-identifier "), ";")
			if a, err := netip.ParseAddr(v); err == nil && a.Is4() {
				server = a.String()
			}
		}
	}
	return server
}

// dhcpRuleServers: the DHCP server of the iface's current dhclient lease,
// on hosts where dhclient serves it (ifupdown with DHCP).
func dhcpRuleServers(cfg Config, st *State) []string {
	if st.Manager.Kind != "ifupdown" || !st.Manager.DHCP {
		return nil
	}
	for _, p := range dhclientLeaseFiles(cfg.Iface) {
		if s := dhcpServerOf(st.file(p).Content, cfg.Iface); s != "" {
			return []string{s}
		}
	}
	return nil
}
