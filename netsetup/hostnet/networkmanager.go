package hostnet

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"strings"
)

// networkManager: a NetworkManager keyfile connection (in
// /etc/NetworkManager/system-connections) is bound to the iface by
// interface-name. NetworkManager owns the iface's addresses and routes and
// renews its leases itself, so, as with networkd, it creates the VRF and
// enslaves the iface: a vrf connection of ours (VRF's keyfile) and the
// admin's connection made its port (master=, slave-type=vrf). NetworkManager
// then puts the DHCP and RA routes of a VRF port into the VRF's table
// itself (1.24 and later), its internal DHCP client sends renewals on a
// socket bound to the iface (so through the VRF), and a reconnect or a
// reboot brings the same setup back. Enslaving behind its back instead
// lasts until the next reconnect.
//
// The admin's keyfile is edited in place (two keys added to [connection]),
// not shadowed by a copy: NetworkManager would otherwise pick between two
// profiles for the iface by autoconnect priority and timestamp, and `nmcli
// con up <theirs>` would silently take the iface out of the VRF. The engine
// backs the file up before it writes it and revert restores it byte for
// byte.
//
// Connections netplan renders (/run/NetworkManager/system-connections) and
// default connections NetworkManager keeps in memory are not claimed: the
// former are rewritten by `netplan apply`, the latter have no file to edit
// (none's refusal names NetworkManager then).
type networkManager struct{}

const kindNetworkManager = "networkmanager"

const (
	nmConnDir = "/etc/NetworkManager/system-connections/"
	// NMDispatcher runs after NetworkManager's events (dhcp4-change, up):
	// it hands apply the lease's nameservers, which it steers into the VRF.
	NMDispatcher = "/etc/NetworkManager/dispatcher.d/90-pam-vrf"
	// nmResolvConf: the resolv.conf NetworkManager renders whatever it
	// does with /etc/resolv.conf (nameservers of all its connections).
	nmResolvConf = "/run/NetworkManager/resolv.conf"
)

func (networkManager) Kind() string { return kindNetworkManager }

// Detect: an ethernet keyfile names the iface (interface-name=) and
// NetworkManager runs (or is enabled; offline: the file is enough).
func (networkManager) Detect(h Host, iface string) (Manager, bool) {
	for _, f := range h.Glob(nmConnDir + "*") {
		content, _, _ := h.Read(f)
		kf := parseKeyfile(content)
		if kf.get("connection", "interface-name") != iface || strings.HasPrefix(kf.get("connection", "id"), "pam-vrf-") {
			continue
		}
		active := h.Offline || h.Units == nil || h.Units.IsActive("NetworkManager.service") || h.Units.IsEnabled("NetworkManager.service")
		if !active {
			return Manager{}, false
		}
		return Manager{Kind: kindNetworkManager, NetworkFile: f, Connection: kf.get("connection", "uuid"),
			Master: kf.master(), Detail: "NetworkManager: " + f}, true
	}
	return Manager{}, false
}

// Refusals: a connection without a UUID cannot be activated by name here;
// one that is already another device's port is the admin's to change; a
// DHCP client process (NetworkManager's dhcp=dhclient) sends its renewals
// unbound, from the default VRF, and has no hook of ours.
func (networkManager) Refusals(m Manager, f Facts) []string {
	var why []string
	if m.Connection == "" {
		why = append(why, fmt.Sprintf("NetworkManager's connection for %s (%s) has no uuid", f.Iface, m.NetworkFile))
	}
	if m.Master != "" && m.Master != f.VRF {
		why = append(why, fmt.Sprintf("NetworkManager's connection for %s (%s) makes it a port of %s", f.Iface, m.NetworkFile, m.Master))
	}
	return append(why, unhooked(f, nil)...)
}

// nmVRFPath: the vrf connection's keyfile.
func nmVRFPath(t Target) string { return nmConnDir + "pam-vrf-" + t.VRF + ".nmconnection" }

// Files: the vrf connection, the admin's connection as a port of it, and
// the dispatcher script. NetworkManager ignores keyfiles that others can
// read (0600), and dispatcher scripts others can write.
func (networkManager) Files(m Manager, t Target, read func(string) string) []File {
	if m.Kind != kindNetworkManager {
		return []File{{Path: nmVRFPath(t), Remove: true}, {Path: NMDispatcher, Remove: true}}
	}
	fs := []File{
		{Path: nmVRFPath(t), Content: renderNMVRF(t), Mode: 0o600, Kind: kindNetworkManager},
		{Path: NMDispatcher, Content: renderNMDispatcher(t), Mode: 0o755},
		{Path: NMLeaseFile(t.Iface), Read: true},
		{Path: nmResolvConf, Read: true},
	}
	if m.NetworkFile != "" {
		content := ""
		if read != nil {
			content = read(m.NetworkFile)
		}
		fs = append(fs, File{Path: m.NetworkFile, Content: nmAsPort(content, t.VRF), Mode: 0o600, Kind: kindNetworkManager})
	}
	return fs
}

// nmVRFUUID: a fixed UUID per VRF name, so every apply writes the same file.
func nmVRFUUID(vrf string) string {
	s := sha256.Sum256([]byte("pam-vrf vrf connection " + vrf))
	s[6] = s[6]&0x0f | 0x50 // version 5 layout (name-based)
	s[8] = s[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

// renderNMVRF: the VRF device as a NetworkManager connection. Its IP
// configuration is the engine's (loopback addresses, catch-all routes,
// DNS steering rules): ipv4 "disabled" and ipv6 "ignore" leave them alone
// (ipv6 "disabled" would set disable_ipv6 on the device and lose ::1).
func renderNMVRF(t Target) string {
	return fmt.Sprintf(`# Written by vrf-netsetup (pam-vrf): VRF %[1]s, created by NetworkManager;
# %[3]s's connection names it as its master.
[connection]
id=pam-vrf-%[1]s
uuid=%[4]s
type=vrf
interface-name=%[1]s
autoconnect=true

[vrf]
table=%[2]d

[ipv4]
method=disabled

[ipv6]
method=ignore
`, t.VRF, t.Table, t.Iface, nmVRFUUID(t.VRF))
}

// nmAsPort adds master=VRF and slave-type=vrf to [connection] (the names
// every NetworkManager since 1.0 reads; 1.46 also knows them as
// controller= and port-type=). A file that has them is returned as is.
func nmAsPort(content, vrf string) string {
	kf := parseKeyfile(content)
	if m := kf.master(); m != "" {
		return content
	}
	lines := strings.SplitAfter(content, "\n")
	var b strings.Builder
	done := false
	for _, l := range lines {
		b.WriteString(l)
		if !done && strings.TrimSpace(l) == "[connection]" {
			if !strings.HasSuffix(l, "\n") {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "master=%s\nslave-type=vrf\n", vrf)
			done = true
		}
	}
	if !done {
		fmt.Fprintf(&b, "\n[connection]\nmaster=%s\nslave-type=vrf\n", vrf)
	}
	return b.String()
}

// renderNMDispatcher: NetworkManager runs it with the action and the
// lease's options in the environment (NetworkManager-dispatcher(8)).
// dns-change is no use here: NetworkManager raises it only for caching
// DNS plugins, not when it writes resolv.conf itself (seen in the VM).
func renderNMDispatcher(t Target) string {
	return fmt.Sprintf(`#!/bin/sh
# Written by vrf-netsetup (pam-vrf); run by NetworkManager-dispatcher.
# %[1]s is a port of VRF %[2]s, and NetworkManager keeps its routes in the
# VRF table itself; apply steers the connection's nameservers into the VRF,
# so hand it those of a new lease or RA.
[ "$1" = %[1]s ] || exit 0
case "$2" in
up|dhcp4-change|dhcp6-change)
	mkdir -p /run/pam-vrf
	printf 'nameservers %%s %%s\n' "${IP4_NAMESERVERS:-}" "${IP6_NAMESERVERS:-}" >%[4]s.new &&
		mv %[4]s.new %[4]s
	[ -x /usr/sbin/vrf-netsetup ] && setsid /usr/sbin/vrf-netsetup apply --config %[3]s --quiet </dev/null >/dev/null 2>&1 &
	;;
esac
exit 0
`, t.Iface, t.VRF, t.ConfigPath, NMLeaseFile(t.Iface))
}

// NMLeaseFile is where the dispatcher hands apply the lease.
func NMLeaseFile(iface string) string { return "/run/pam-vrf/nm-" + iface + ".lease" }

func (networkManager) Notes(m Manager, t Target) []string {
	return []string{fmt.Sprintf("NetworkManager: %s becomes a port of VRF %s (%s), and NetworkManager keeps its DHCP/RA routes in table %d", t.Iface, t.VRF, nmVRFPath(t), t.Table)}
}

// DHCP: NetworkManager's own client binds its sockets to the iface, so its
// renewals leave through the VRF unsteered. Without systemd-resolved it
// writes /etc/resolv.conf from the connection: its nameservers (IPv4 and
// IPv6, as the dispatcher last handed them over; before it first ran, or
// without it, all NetworkManager knows) are steered.
func (networkManager) DHCP(m Manager, iface string, read func(string) string) DHCP {
	d := DHCP{WritesResolvConf: true, Client: "NetworkManager"}
	// The hand-over only while our dispatcher is installed: one left in
	// /run by an apply that was rolled back (or reverted) is stale.
	if read(NMDispatcher) != "" {
		d.Servers = nmNameservers(read(NMLeaseFile(iface)), "nameservers")
	}
	if len(d.Servers) == 0 {
		d.Servers = nmNameservers(read(nmResolvConf), "nameserver")
	}
	return d
}

// nmNameservers: the addresses on the lines starting with key (loopback
// stubs left out, each once).
func nmNameservers(content, key string) []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != key {
			continue
		}
		for _, v := range f[1:] {
			a, err := netip.ParseAddr(v)
			if err != nil || a.IsLoopback() || a.IsUnspecified() || a.Zone() != "" || seen[a.String()] {
				continue
			}
			seen[a.String()] = true
			out = append(out, a.String())
		}
	}
	return out
}

// Takeover: `nmcli connection up` of the vrf connection creates the VRF
// (CreateVRF), then that of the admin's connection, now a port, enslaves
// the iface (a new DHCP exchange, like networkd's reconfigure). On revert
// the restored files are reloaded (the vrf connection is gone:
// NetworkManager deletes the device) and the connection activated again
// outside any VRF.
func (networkManager) Takeover(m Manager, t Target) *Takeover {
	reload := []string{"nmcli", "connection", "reload"}
	upVRF := []string{"nmcli", "connection", "up", "uuid", nmVRFUUID(t.VRF)}
	up := []string{"nmcli", "connection", "up", "uuid", m.Connection}
	return &Takeover{
		Who:      "NetworkManager",
		FileKind: kindNetworkManager,
		VRFFile:  nmVRFPath(t),
		Arm: Cmd{ID: "nm-arm", Desc: "(on failure: nmcli connection reload, and up " + t.Iface + "'s connection with the restored files)",
			Run: [][]string{reload, up}},
		Reload: Cmd{ID: "svc-nm-reload", Desc: "nmcli connection reload (NetworkManager reads the vrf connection and " + t.Iface + " as its port)", Run: [][]string{reload}},
		CreateVRF: Cmd{ID: "nm-up-vrf", Desc: fmt.Sprintf("nmcli connection up pam-vrf-%s (NetworkManager creates VRF %s)", t.VRF, t.VRF),
			Run: [][]string{upVRF}},
		// activating a port activates its controller first when it is
		// not; activating the vrf connection again would re-create the
		// device and lose what the engine put on it
		Enslave: Cmd{ID: "nm-up", Desc: fmt.Sprintf("nmcli connection up %s's connection (NetworkManager enslaves it to VRF %s and puts its DHCP/RA routes into table %d), wait until settled", t.Iface, t.VRF, t.Table),
			Run: [][]string{up}},
		Recreate: Cmd{ID: "nm-up", Desc: fmt.Sprintf("nmcli connection up %s's connection (NetworkManager enslaves it to the re-created VRF %s), wait until settled", t.Iface, t.VRF),
			Run: [][]string{up}},
		RevertReload: Cmd{ID: "svc-revert-nm-reload", Desc: "nmcli connection reload (restored connections)", Run: [][]string{reload}},
		Release: Cmd{ID: "revert-nm-up", Desc: "nmcli connection up " + t.Iface + "'s connection (out of the VRF, routes back into main), wait until settled",
			Run: [][]string{up}},
		ReleaseAny: Cmd{ID: "revert-nm-up", Desc: "nmcli connection up " + t.Iface + "'s connection with the restored files, wait until settled",
			Run: [][]string{up}},
		// NetworkManager.service is up once it has its D-Bus name, long
		// before it has activated its connections
		Idle: Cmd{ID: "nm-online", Desc: "wait until NetworkManager has started its connections",
			Run: [][]string{{"nm-online", "-s", "-q", "--timeout=60"}}},
	}
}

// keyfile is a NetworkManager keyfile (GKeyFile syntax), section -> key -> value.
type keyfile map[string]map[string]string

func parseKeyfile(content string) keyfile {
	kf := keyfile{}
	section := ""
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if kf[section] == nil {
			kf[section] = map[string]string{}
		}
		kf[section][strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return kf
}

func (kf keyfile) get(section, key string) string { return kf[section][key] }

// master: the controller the connection is a port of ("": none).
func (kf keyfile) master() string {
	if m := kf.get("connection", "controller"); m != "" {
		return m
	}
	return kf.get("connection", "master")
}
