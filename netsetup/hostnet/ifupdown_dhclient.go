package hostnet

import (
	"fmt"
	"net/netip"
	"strings"
)

// ifupdown: /etc/network/interfaces configures the iface, and with DHCP
// isc-dhcp-client's dhclient serves it. The engine enslaves the iface and
// moves its routes; dhclient puts the default route back into main at
// every lease, so its exit hook (DhclientHook) runs apply again.
type ifupdown struct{}

const kindIfupdown = "ifupdown"

const (
	// DhclientHook runs after every lease; "zz-" so it comes after
	// rfc3442-classless-routes (run-parts order), which with DHCP option
	// 121 adds the default route into main after any hook sorted before it.
	DhclientHook = "/etc/dhcp/dhclient-exit-hooks.d/zz-pam-vrf"
	// DhclientHookLegacy: the name earlier versions used (removed by apply).
	DhclientHookLegacy = "/etc/dhcp/dhclient-exit-hooks.d/pam-vrf"
)

func (ifupdown) Kind() string { return kindIfupdown }

func (ifupdown) Detect(h Host, iface string) (Manager, bool) {
	dhcp, static, ok := ifupdownStanza(h, iface)
	return Manager{Kind: kindIfupdown, DHCP: dhcp, Static: static, Detail: "ifupdown: /etc/network/interfaces"}, ok
}

// Refusals: only dhclient has our hook; ifup picks another client (dhcpcd
// on Debian 13) when isc-dhcp-client is not installed.
func (ifupdown) Refusals(m Manager, f Facts) []string {
	var why []string
	if m.DHCP && !f.DhclientInstalled {
		why = append(why, fmt.Sprintf("ifupdown runs DHCP on %s but neither isc-dhcp-client (dhclient) nor dhcpcd is installed, so ifup uses another client, for which there is no hook: every lease puts the default route back into main", f.Iface))
	}
	return append(why, unhooked(f, func(c DHCPClient) bool {
		return c.Name == "dhclient" && m.DHCP // its exit hook is ours (DhclientHook)
	})...)
}

// Files: the exit hook on DHCP hosts, and the lease files the steering
// reads (DHCP); the if-up.d hook of static stanzas (ifupdown_static.go).
func (ifupdown) Files(m Manager, t Target, _ func(string) string) []File {
	fs := ifupFiles(m, t)
	if m.Kind == kindIfupdown && m.DHCP {
		fs = append(fs, File{Path: DhclientHook, Content: renderDhclientHook(t), Mode: 0o644})
		for _, p := range dhclientLeaseFiles(t.Iface) {
			fs = append(fs, File{Path: p, Read: true})
		}
	} else {
		fs = append(fs, File{Path: DhclientHook, Remove: true})
	}
	return append(fs, File{Path: DhclientHookLegacy, Remove: true})
}

// renderDhclientHook: dhclient-script sources exit hooks; after a new lease
// it has put the default route into main, and apply moves it again.
func renderDhclientHook(t Target) string {
	return fmt.Sprintf(`# Written by vrf-netsetup (pam-vrf); sourced by dhclient-script.
# A new/renewed lease re-adds the default route of %[1]s to the main table;
# move it into VRF %[2]s again.
case "$reason" in
BOUND|RENEW|REBIND|REBOOT|BOUND6|RENEW6|REBIND6)
	if [ "$interface" = "%[1]s" ] && [ -x /usr/sbin/vrf-netsetup ]; then
		# dhclient writes its lease file after the hooks: hand apply the
		# new lease's server and nameservers, which it steers into the VRF
		if [ -n "${new_dhcp_server_identifier:-}" ]; then
			mkdir -p /run/pam-vrf
			printf 'server %%s\nnameservers %%s\n' "$new_dhcp_server_identifier" "${new_domain_name_servers:-}" > %[4]s
		fi
		/usr/sbin/vrf-netsetup apply --config %[3]s --quiet || true
	fi
	;;
esac
`, t.Iface, t.VRF, t.ConfigPath, HookLeaseFile(t.Iface))
}

func (ifupdown) Notes(m Manager, t Target) []string {
	notes := ifupNotes(m, t)
	if m.DHCP {
		notes = append(notes, "ifupdown+dhclient: "+DhclientHook+" moves the default route into table "+fmt.Sprint(t.Table)+" after every lease")
	}
	return notes
}

// DHCP renewals through the VRF. dhclient sends its unicast RENEW to the
// server from an unbound socket, so in the default VRF, whose main table
// has no route to the management network once the NIC is enslaved:
// "Network is unreachable" at every T1, and only the broadcast REBIND at T2
// (sent on the raw socket) keeps the lease, if the server or relay answers
// broadcasts at all. The server's address gets the steering rule the DNS
// servers get (`to SERVER iif lo lookup TABLE`), so the unicast leaves
// through the VRF; the answer comes back on the raw socket, which no VRF
// affects. The lease's nameservers are steered too: without resolved,
// dhclient-script rewrites /etc/resolv.conf from every lease, so a static
// file of ours would be overwritten at the next renewal.
func (ifupdown) DHCP(m Manager, iface string, read func(string) string) DHCP {
	if !m.DHCP {
		return DHCP{}
	}
	d := DHCP{WritesResolvConf: true, Client: "dhclient"}
	for _, p := range dhclientLeaseFiles(iface) {
		l := LastLease(read(p), iface)
		if p == HookLeaseFile(iface) {
			l = parseHookLease(read(p))
		}
		if l.Server != "" {
			d.Servers = append([]string{l.Server}, l.Nameserver...)
			break
		}
	}
	return d
}

func (ifupdown) Takeover(Manager, Target) *Takeover { return nil }

// dhclientLeaseFiles: where Debian's ifupdown (and a plain dhclient) keep
// the leases of iface, after HookLeaseFile, which the exit hook writes:
// dhclient runs the hooks before it writes the lease file (bind_lease:
// script_go, then write_client_lease), so the file still holds the
// previous lease when the hook's apply reads it.
func dhclientLeaseFiles(iface string) []string {
	return []string{HookLeaseFile(iface), "/var/lib/dhcp/dhclient." + iface + ".leases", "/var/lib/dhcp/dhclient.leases"}
}

// HookLeaseFile is where the exit hook hands apply the new lease.
func HookLeaseFile(iface string) string { return "/run/pam-vrf/dhclient-" + iface + ".lease" }

// ReadOnly: a file read for facts that no apply or revert writes
// (dhclient owns its leases), whichever manager the state was read with.
func ReadOnly(path string) bool {
	return strings.HasPrefix(path, "/var/lib/dhcp/") || strings.HasPrefix(path, "/run/pam-vrf/dhclient-") || dhcpcdReadOnly(path) ||
		strings.HasPrefix(path, "/run/pam-vrf/nm-") || path == nmResolvConf
}

// parseHookLease reads HookLeaseFile: "server A" and "nameservers A B".
func parseHookLease(content string) Lease {
	var l Lease
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

// Lease is what the steering needs of a dhclient lease.
type Lease struct {
	Server     string   // dhcp-server-identifier
	Nameserver []string // domain-name-servers
}

// LastLease returns the last lease in a dhclient lease file that is for
// iface (zero when there is none).
func LastLease(content, iface string) Lease {
	var last, cur Lease
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
			inIface, cur = false, Lease{}
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
