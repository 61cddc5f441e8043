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
// the leases of iface, after hookLeaseFile, which the exit hook writes:
// dhclient runs the hooks before it writes the lease file (bind_lease:
// script_go, then write_client_lease), so the file still holds the
// previous lease when the hook's apply reads it.
func dhclientLeaseFiles(iface string) []string {
	return []string{hookLeaseFile(iface), "/var/lib/dhcp/dhclient." + iface + ".leases", "/var/lib/dhcp/dhclient.leases"}
}

func hookLeaseFile(iface string) string { return "/run/pam-vrf/dhclient-" + iface + ".lease" }

// parseHookLease reads hookLeaseFile: "server A" and "nameservers A B".
func parseHookLease(content string) dhclientLease {
	var l dhclientLease
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		for _, v := range f[1:] {
			a, err := netip.ParseAddr(v)
			if err != nil || !a.Is4() {
				continue
			}
			switch f[0] {
			case "server":
				l.Server = a.String()
			case "nameservers":
				l.Nameserver = append(l.Nameserver, a.String())
			}
		}
	}
	return l
}

// dhclientLease is what the steering needs of a lease.
type dhclientLease struct {
	Server     string   // dhcp-server-identifier
	Nameserver []string // domain-name-servers
}

// lastLease returns the last lease in a dhclient lease file that is for
// iface (zero when there is none).
func lastLease(content, iface string) dhclientLease {
	var last, cur dhclientLease
	inIface := false
	v4 := func(s string) string {
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil && a.Is4() {
			return a.String()
		}
		return ""
	}
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSuffix(strings.TrimSpace(line), ";")
		switch {
		case strings.HasPrefix(line, "lease {"):
			inIface, cur = false, dhclientLease{}
		case line == "}":
			if inIface && cur.Server != "" {
				last = cur
			}
		case strings.HasPrefix(line, "interface "):
			inIface = strings.Trim(strings.TrimPrefix(line, "interface "), `"`) == iface
		case strings.HasPrefix(line, "option dhcp-server-identifier "):
			cur.Server = v4(strings.TrimPrefix(line, "option dhcp-server-identifier "))
		case strings.HasPrefix(line, "option domain-name-servers "):
			for _, s := range strings.Split(strings.TrimPrefix(line, "option domain-name-servers "), ",") {
				if a := v4(s); a != "" {
					cur.Nameserver = append(cur.Nameserver, a)
				}
			}
		}
	}
	return last
}

// dhcpRuleServers: on hosts where dhclient serves the iface (ifupdown with
// DHCP), the server of its current lease and the nameservers the lease
// gave: all learned on the management network, so all steered into the
// VRF (dhclient writes them into /etc/resolv.conf, see EffectiveDNS).
func dhcpRuleServers(cfg Config, st *State) []string {
	if st.Manager.Kind != "ifupdown" || !st.Manager.DHCP {
		return nil
	}
	for _, p := range dhclientLeaseFiles(cfg.Iface) {
		l := lastLease(st.file(p).Content, cfg.Iface)
		if p == hookLeaseFile(cfg.Iface) {
			l = parseHookLease(st.file(p).Content)
		}
		if l.Server != "" {
			return append([]string{l.Server}, l.Nameserver...)
		}
	}
	return nil
}
