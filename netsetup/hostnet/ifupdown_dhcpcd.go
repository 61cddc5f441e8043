package hostnet

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// ifupdownDhcpcd: /etc/network/interfaces runs DHCP on the iface and ifup
// starts dhcpcd for it, as on Debian 13, where isc-dhcp-client is gone.
//
// dhcpcd differs from dhclient in two ways that matter here (seen in the
// Debian 13 VM, dhcpcd 10.1):
//   - Enslaving the iface cycles it down and up; dhcpcd takes that as a
//     lost carrier, drops the lease (address and routes) and binds it
//     again a few seconds later.
//   - It adds its routes only to main (if-linux.c: rtm_table =
//     RT_TABLE_MAIN), which fails once the iface is a VRF port: the lease's
//     address is local in the VRF table, not in main, so the prefix route
//     (with src) is EINVAL and the gateway routes "Network is unreachable".
//     dhcpcd logs that at each lease and carries on.
//
// So its hook (DhcpcdHook, run after every lease) puts the lease's routes
// into the VRF table itself, and the engine, after enslaving, waits for
// that instead of moving routes dhcpcd is about to drop (DHCP.RoutesByHook).
// IPv6 routes (dhcpcd handles RAs itself) it can add to main: the hook
// moves them into the VRF table.
type ifupdownDhcpcd struct{}

const kindIfupdownDhcpcd = "ifupdown-dhcpcd"

const (
	// DhcpcdHook is sourced by dhcpcd-run-hooks after every event. The hook
	// directory, not /etc/dhcpcd.exit-hook: that is one file, the admin's.
	DhcpcdHook = "/usr/lib/dhcpcd/dhcpcd-hooks/99-pam-vrf"
	// dhcpcdLeaseDir: where Debian's dhcpcd keeps leases (DBDIR).
	dhcpcdLeaseDir = "/var/lib/dhcpcd/"
)

func (ifupdownDhcpcd) Kind() string { return kindIfupdownDhcpcd }

// Detect: an ifupdown DHCP stanza, no dhclient (ifup would prefer it) and
// dhcpcd installed.
func (ifupdownDhcpcd) Detect(h Host, iface string) (Manager, bool) {
	dhcp, static, ok := ifupdownStanza(h, iface)
	if !ok || !dhcp || installed(h, "dhclient") || !installed(h, "dhcpcd") {
		return Manager{}, false
	}
	return Manager{Kind: kindIfupdownDhcpcd, DHCP: true, Static: static, Detail: "ifupdown: /etc/network/interfaces, DHCP by dhcpcd"}, true
}

func installed(h Host, prog string) bool {
	for _, dir := range []string{"/usr/sbin/", "/sbin/"} {
		if len(h.Glob(dir+prog)) > 0 {
			return true
		}
	}
	return false
}

// Refusals: other DHCP clients serving the iface have no hook of ours.
func (ifupdownDhcpcd) Refusals(_ Manager, f Facts) []string {
	return unhooked(f, func(c DHCPClient) bool { return c.Name == "dhcpcd" })
}

func (ifupdownDhcpcd) Files(m Manager, t Target, _ func(string) string) []File {
	if m.Kind != kindIfupdownDhcpcd {
		return []File{{Path: DhcpcdHook, Remove: true}}
	}
	fs := []File{{Path: DhcpcdHook, Content: renderDhcpcdHook(t), Mode: 0o644, BeforeNet: true}}
	for _, p := range dhcpcdLeaseFiles(t.Iface) {
		fs = append(fs, File{Path: p, Read: true})
	}
	return fs
}

// renderDhcpcdHook: see ifupdownDhcpcd. The routes go in with `replace`,
// so a renewal that changes nothing changes nothing; a lease that changes
// the router replaces the default route (same destination and metric).
// apply runs in the background (it takes apply's lock, and an apply that
// enslaved the iface is waiting for this very lease) to steer a changed
// server or nameserver into the VRF.
func renderDhcpcdHook(t Target) string {
	return fmt.Sprintf(`# Written by vrf-netsetup (pam-vrf); sourced by dhcpcd-run-hooks.
# %[1]s is a port of VRF %[2]s: dhcpcd cannot add the lease's routes to main
# (the address is local in table %[3]d only), so they go into table %[3]d here.
pamvrf_route() { ip "$@" dev %[1]s table %[3]d ${ifmetric:+metric $ifmetric}; }
# pamvrf_cgroup DIR: move this dhcpcd's processes (their titles name
# %[1]s; the per-address proxies are forked later and inherit it) into
# cgroup DIR, below /sys/fs/cgroup
pamvrf_cgroup() {
	for pamvrf_p in $(pgrep -x dhcpcd); do
		case " $(tr '\0' ' ' </proc/$pamvrf_p/cmdline 2>/dev/null) " in
		*" %[1]s "*) [ "$(sed -n 's/^0:://p' /proc/$pamvrf_p/cgroup 2>/dev/null)" = "$1" ] ||
			echo "$pamvrf_p" >"/sys/fs/cgroup$1/cgroup.procs" 2>/dev/null || true ;;
		esac
	done
}
pamvrf_enslaved() { [ "$(readlink /sys/class/net/%[1]s/master 2>/dev/null)" = "../%[2]s" ]; }
case "$interface $reason" in
"%[1]s PREINIT"|"%[1]s CARRIER"|"%[1]s NOCARRIER"|"%[1]s BOUND"|"%[1]s REBOOT"|"%[1]s REBIND"|"%[1]s RENEW"|"%[1]s STOPPED")
	# dhcpcd runs in the VRF while %[1]s is its port, as under
	# ip vrf exec %[2]s (same cgroup, same program): the socket on which
	# it waits for the server's unicast reply binds the lease's address,
	# which is local only in the VRF, and fails outside it (EADDRNOTAVAIL),
	# so every renewal would end in the broadcast rebind. Out again when
	# it is released, before it binds a lease in the default VRF.
	pamvrf_cg=$(sed -n 's/^0:://p' /proc/$$/cgroup 2>/dev/null)
	pamvrf_base=${pamvrf_cg%%%%/vrf*}
	if pamvrf_enslaved; then
		pamvrf_vrfcg=$(ip vrf exec %[2]s sed -n 's/^0:://p' /proc/self/cgroup 2>/dev/null)
		[ -n "$pamvrf_vrfcg" ] && pamvrf_cgroup "$pamvrf_vrfcg"
	elif [ "$pamvrf_base" != "$pamvrf_cg" ]; then
		pamvrf_cgroup "$pamvrf_base"
	fi
	;;
esac
if [ "$interface" = "%[1]s" ] && pamvrf_enslaved; then
	case "$reason" in
	BOUND|RENEW|REBIND|REBOOT|STATIC)
		if [ -n "${new_ip_address:-}" ] && [ -n "${new_subnet_cidr:-}" ] && [ -n "${new_network_number:-}" ]; then
			pamvrf_route -4 route replace "$new_network_number/$new_subnet_cidr" proto dhcp scope link src "$new_ip_address"
			if [ -n "${new_classless_static_routes:-}" ]; then
				# RFC 3442: with classless routes the router option is ignored
				set -- $new_classless_static_routes
				while [ $# -ge 2 ]; do
					if [ "$2" = 0.0.0.0 ]; then
						pamvrf_route -4 route replace "$1" proto dhcp scope link src "$new_ip_address"
					else
						pamvrf_route -4 route replace "$1" via "$2" proto dhcp src "$new_ip_address"
					fi
					shift 2
				done
			else
				for pamvrf_r in ${new_routers:-}; do
					pamvrf_route -4 route replace default via "$pamvrf_r" proto dhcp src "$new_ip_address"
					break
				done
			fi
		fi
		mkdir -p /run/pam-vrf
		printf 'server %%s\nnameservers %%s\n' "${new_dhcp_server_identifier:-}" "${new_domain_name_servers:-}" > %[5]s
		[ -x /usr/sbin/vrf-netsetup ] && setsid /usr/sbin/vrf-netsetup apply --config %[4]s --quiet </dev/null >/dev/null 2>&1 &
		;;
	esac
	# RA and DHCPv6 routes dhcpcd added to main: into the VRF table. Also
	# at the IPv4 lease's events: after a carrier cycle (the enslave)
	# dhcpcd re-adds the routes of the RA it has cached when it rebuilds
	# its routes for the lease, with no IPv6 event until the next RA. Not
	# at carrier events, when a rollback may be releasing %[1]s: a route
	# put into table %[3]d then would outlive the VRF.
	case "$reason" in
	BOUND|RENEW|REBIND|REBOOT|STATIC|ROUTERADVERT|BOUND6|RENEW6|REBIND6|REBOOT6|INFORM6)
		ip -6 route show table main dev %[1]s | grep -v -e '^fe80::/64' -e 'proto kernel' -e '^multicast' |
			sed -E 's/ expires ([0-9]+)sec/ expires \1/' | while read -r pamvrf_r; do
				pamvrf_enslaved || break
				ip -6 route replace $pamvrf_r dev %[1]s table %[3]d && ip -6 route del $pamvrf_r dev %[1]s table main
			done
		;;
	esac
fi
`, t.Iface, t.VRF, t.Table, t.ConfigPath, DhcpcdHookLeaseFile(t.Iface))
}

func (ifupdownDhcpcd) Notes(m Manager, t Target) []string {
	return append(ifupNotes(m, t), "ifupdown+dhcpcd: "+DhcpcdHook+" puts each lease's routes into table "+fmt.Sprint(t.Table)+" (dhcpcd itself can only add them to main, and logs that it failed to)")
}

// DHCP: the server and nameservers of the current lease, steered into the
// VRF as for dhclient (dhcpcd's unicast RENEW leaves from the default VRF,
// and its resolv.conf hook rewrites /etc/resolv.conf from every lease).
func (ifupdownDhcpcd) DHCP(m Manager, iface string, read func(string) string) DHCP {
	d := DHCP{WritesResolvConf: true, Client: "dhcpcd", RoutesByHook: true, RunsInVRF: true}
	l := parseHookLease(read(DhcpcdHookLeaseFile(iface)))
	if l.Server == "" {
		l = ParseDHCPPacket([]byte(read(dhcpcdLeaseDir + iface + ".lease")))
	}
	if l.Server != "" {
		d.Servers = append([]string{l.Server}, l.Nameserver...)
	}
	return d
}

func (ifupdownDhcpcd) Takeover(Manager, Target) *Takeover { return nil }

// DhcpcdHookLeaseFile is where the hook hands apply the new lease.
func DhcpcdHookLeaseFile(iface string) string { return "/run/pam-vrf/dhcpcd-" + iface + ".lease" }

func dhcpcdLeaseFiles(iface string) []string {
	return []string{DhcpcdHookLeaseFile(iface), dhcpcdLeaseDir + iface + ".lease"}
}

// ParseDHCPPacket reads the server identifier (option 54) and the name
// servers (option 6) of a DHCP message, as dhcpcd stores a lease: the
// server's ACK as received (RFC 2131 layout, options after the magic
// cookie at offset 236). Anything malformed yields what was read so far.
func ParseDHCPPacket(b []byte) Lease {
	var l Lease
	const opts = 240
	if len(b) < opts || binary.BigEndian.Uint32(b[236:240]) != 0x63825363 {
		return l
	}
	for i := opts; i < len(b); {
		code := b[i]
		if code == 255 {
			break
		}
		if code == 0 {
			i++
			continue
		}
		if i+1 >= len(b) || i+2+int(b[i+1]) > len(b) {
			break
		}
		v := b[i+2 : i+2+int(b[i+1])]
		switch code {
		case 54:
			if a, ok := netip.AddrFromSlice(v); ok && len(v) == 4 {
				l.Server = a.String()
			}
		case 6:
			for j := 0; j+4 <= len(v); j += 4 {
				a, _ := netip.AddrFromSlice(v[j : j+4])
				l.Nameserver = append(l.Nameserver, a.String())
			}
		}
		i += 2 + len(v)
	}
	return l
}

// dhcpcdReadOnly: dhcpcd's own files and the hook's lease hand-over.
func dhcpcdReadOnly(path string) bool {
	return strings.HasPrefix(path, dhcpcdLeaseDir) || strings.HasPrefix(path, "/run/pam-vrf/dhcpcd-")
}
