package netsetup

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Paths read or written by the DNS modes.
const (
	ResolvConf         = "/etc/resolv.conf"
	ResolvedUplink     = "/run/systemd/resolve/resolv.conf"      // resolved's upstream list
	ResolvedStub       = "/run/systemd/resolve/stub-resolv.conf" // 127.0.0.53 + search domains
	ResolvedDropIn     = "/etc/systemd/resolved.conf.d/pam-vrf.conf"
	ResolvedConf       = "/etc/systemd/resolved.conf"
	networkdLeasesGlob = "/run/systemd/netif/leases/*"
	stubAddr           = "127.0.0.53"
)

// EffectiveDNS resolves "auto": resolved when systemd-resolved is running
// (keep the cache/DHCP integration the admin chose), else static.
func EffectiveDNS(cfg Config, st *State) string {
	if cfg.DNS != DNSAuto {
		return cfg.DNS
	}
	if st.ResolvedActive {
		return DNSResolved
	}
	// the DHCP client on ifupdown rewrites it from every lease: a static file of
	// ours would not last; its nameservers are steered instead
	if hostDHCP(cfg, st).WritesResolvConf {
		return DNSNone
	}
	return DNSStatic
}

// DNSReason explains the auto pick (printed with the plan).
func DNSReason(cfg Config, st *State) string {
	mode := EffectiveDNS(cfg, st)
	if cfg.DNS != DNSAuto {
		return "dns mode " + mode + " (from --dns)"
	}
	if mode == DNSResolved {
		return "dns mode resolved (auto: systemd-resolved is active)"
	}
	if mode == DNSNone {
		return "dns mode none (auto: " + hostDHCP(cfg, st).ClientName() + " writes /etc/resolv.conf from the management lease; its nameservers are steered into the VRF)"
	}
	return "dns mode static (auto: systemd-resolved is not active)"
}

// resolvConfServers parses nameserver and search lines.
func resolvConfServers(content string) (servers, search []string) {
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			servers = append(servers, f[1])
		case "search", "domain":
			search = append(search, f[1:]...)
		}
	}
	return servers, search
}

// HarvestNameservers collects real upstream servers (never a local stub),
// in order of trust: resolved's uplink file, networkd DHCP leases, the
// current /etc/resolv.conf.
func HarvestNameservers(fs FS, resolv FileState) []string {
	var out []string
	add := func(s string) {
		a, err := netip.ParseAddr(s)
		if err != nil || a.IsLoopback() || a.IsUnspecified() {
			return
		}
		for _, x := range out {
			if x == a.String() {
				return
			}
		}
		out = append(out, a.String())
	}
	if st, _ := fs.Stat(ResolvedUplink); st.Exists {
		s, _ := resolvConfServers(st.Content)
		for _, x := range s {
			add(x)
		}
	}
	leases := fs.Glob(networkdLeasesGlob)
	sort.Strings(leases)
	for _, l := range leases {
		st, _ := fs.Stat(l)
		for _, line := range strings.Split(st.Content, "\n") {
			if v, ok := strings.CutPrefix(line, "DNS="); ok {
				for _, x := range strings.Fields(v) {
					add(x)
				}
			}
		}
	}
	s, _ := resolvConfServers(resolv.Content)
	for _, x := range s {
		add(x)
	}
	return out
}

// harvestSearch returns the search domains a client currently gets.
func harvestSearch(st *State) []string {
	for _, p := range []string{ResolvedStub, ResolvedUplink, ResolvConf} {
		if _, s := resolvConfServers(st.file(p).Content); len(s) > 0 {
			return s
		}
	}
	return nil
}

// staticServers: --nameserver wins, else harvested upstreams.
func staticServers(cfg Config, st *State) []string {
	if len(cfg.Nameservers) > 0 {
		return cfg.Nameservers
	}
	return st.Upstream
}

// renderStaticResolvConf: plain file with real upstream servers. A process
// in the VRF talks to them directly through the VRF table; no stub on lo.
func renderStaticResolvConf(cfg Config, servers, search []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by vrf-netsetup (pam-vrf, dns mode static): real upstream servers, no\n")
	fmt.Fprintf(&b, "# local stub, so processes in VRF %s and in the default VRF both resolve.\n", cfg.VRF)
	fmt.Fprintf(&b, "# The previous file is saved in %s; `vrf-netsetup revert` restores it.\n", BackupPath)
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	return b.String()
}

// renderResolvedResolvConf points clients at resolved's extra listener,
// which is reachable from both the default VRF (lo has 127/8) and the VRF
// (the VRF device has 127.0.0.1/8), unlike the lo-bound 127.0.0.53.
func renderResolvedResolvConf(cfg Config, search []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by vrf-netsetup (pam-vrf, dns mode resolved): systemd-resolved's extra\n")
	fmt.Fprintf(&b, "# listener %s, reachable from VRF %s and from the default VRF\n", cfg.ResolvedListener, cfg.VRF)
	fmt.Fprintf(&b, "# (127.0.0.53 is bound to lo and unreachable from inside a VRF).\n")
	fmt.Fprintf(&b, "nameserver %s\noptions edns0 trust-ad\n", cfg.ResolvedListener)
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	return b.String()
}

// resolvedAdminDNS returns DNS= servers from resolved.conf and drop-ins other
// than ours, so our drop-in can re-state them (see renderResolvedDropIn).
func resolvedAdminDNS(st *State) []string {
	var out []string
	paths := make([]string, 0, len(st.Files))
	for p := range st.Files {
		if p == ResolvedConf || (strings.HasPrefix(p, "/etc/systemd/resolved.conf.d/") && p != ResolvedDropIn) {
			paths = append(paths, p)
		}
	}
	sort.Slice(paths, func(i, j int) bool { // main file first, then drop-ins by name
		if paths[i] == ResolvedConf {
			return true
		}
		if paths[j] == ResolvedConf {
			return false
		}
		return paths[i] < paths[j]
	})
	for _, p := range paths {
		for _, line := range strings.Split(st.file(p).Content, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "DNS="); ok {
				if strings.TrimSpace(v) == "" {
					out = nil
					continue
				}
				out = append(out, strings.Fields(v)...)
			}
		}
	}
	return out
}

// renderResolvedDropIn: the extra listener, plus a DNS= assignment. Any DNS=
// assignment, even an empty one, stops resolved from importing a foreign
// /etc/resolv.conf (resolved-conf.c: read_resolv_conf = false). That import
// must not happen: our /etc/resolv.conf names the extra listener, which
// resolved would otherwise take as an upstream server and query itself
// (only 127.0.0.53/54 are filtered out by dns_server_address_valid()).
func renderResolvedDropIn(cfg Config, st *State) string {
	servers := cfg.Nameservers
	if len(servers) == 0 {
		servers = resolvedAdminDNS(st)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by vrf-netsetup (pam-vrf, dns mode resolved).\n[Resolve]\n")
	fmt.Fprintf(&b, "# Not bound to lo (unlike 127.0.0.53), so VRF %s clients reach it via the\n# 127.0.0.1/8 on the VRF device and net.ipv4.udp_l3mdev_accept=1.\n", cfg.VRF)
	fmt.Fprintf(&b, "DNSStubListenerExtra=%s\n", cfg.ResolvedListener)
	fmt.Fprintf(&b, "# Any DNS= line stops resolved from importing /etc/resolv.conf (it names the\n# listener above: resolved would forward to itself).\nDNS=\n")
	if len(servers) > 0 {
		fmt.Fprintf(&b, "DNS=%s\n", strings.Join(servers, " "))
	}
	return b.String()
}
