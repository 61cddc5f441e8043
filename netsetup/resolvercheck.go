package netsetup

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// DNS query types check uses.
const (
	qtypeA   = 1
	qtypeSOA = 6
)

// dnsProbe is one name check asks about, and how.
type dnsProbe struct {
	name  string
	qtype uint16
	why   string // where the name comes from, for the report
}

// dnsProbes: the names a VRF process's resolver must resolve. --query-name
// (query_name) when given, as an address lookup. Otherwise the root zone's
// SOA (a recursive resolver answers it) and then the resolv.conf search
// domains' SOA: a forwarder or split-horizon server that refuses recursion
// for the root may still serve the host's own domains, which is all such a
// host needs.
func dnsProbes(cfg Config, search []string) []dnsProbe {
	if q := strings.TrimSuffix(cfg.QueryName, "."); q != "" {
		return []dnsProbe{{name: q, qtype: qtypeA, why: "--query-name"}}
	}
	ps := []dnsProbe{{name: ".", qtype: qtypeSOA, why: "root zone"}}
	for _, d := range search {
		if d = strings.TrimSuffix(d, "."); d != "" {
			ps = append(ps, dnsProbe{name: d, qtype: qtypeSOA, why: "search domain"})
		}
	}
	return ps
}

func (p dnsProbe) String() string {
	t := "A"
	if p.qtype == qtypeSOA {
		t = "SOA"
	}
	return p.name + " " + t
}

// checkDNS asks two questions separately, from a socket bound to the VRF
// device, the way a resolver in a VRF process does:
//
//	resolver:   does any nameserver of /etc/resolv.conf answer at all
//	            (any response code: an answer proves the path works);
//	resolution: does a real name resolve through the servers that answer.
//
// A server that answers REFUSED is reachable; its refusal is a resolution
// problem with its own fix, not "no nameserver reachable".
func (c *Checker) checkDNS(cfg Config, st *State, hasVRF bool) []CheckResult {
	servers, search := resolvConfServers(st.file(ResolvConf).Content)
	staticFix := "vrf-netsetup apply ... --dns static --nameserver IP (a server reachable through " + cfg.Iface + ")"
	switch {
	case len(servers) == 0:
		return []CheckResult{
			fail("resolver", "vrf-netsetup apply ... --dns static --nameserver IP", "%s lists no nameserver", ResolvConf),
			fail("resolution", "vrf-netsetup apply ... --dns static --nameserver IP", "not tried: %s lists no nameserver", ResolvConf),
		}
	case !hasVRF:
		return []CheckResult{
			fail("resolver", "create the VRF first", "cannot query from VRF %s: it does not exist", cfg.VRF),
			fail("resolution", "create the VRF first", "not tried: VRF %s does not exist", cfg.VRF),
		}
	}
	timeout := c.dnsTimeout()
	probes := dnsProbes(cfg, search)

	// Reachability, with the first probe's query; the servers that answer
	// are asked about the remaining names.
	type answered struct {
		server string
		addr   netip.AddrPort
		first  DNSAnswer
	}
	var up []answered
	var silent, seen []string
	for _, s := range servers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			silent = append(silent, s+": not an address")
			continue
		}
		ap := netip.AddrPortFrom(a, 53)
		ans, err := Query(c.Reader.Net.NS, cfg.VRF, ap, probes[0].name, probes[0].qtype, timeout)
		if err != nil {
			silent = append(silent, err.Error())
			continue
		}
		up = append(up, answered{s, ap, ans})
		seen = append(seen, fmt.Sprintf("%s answered %s for %s", s, RcodeName(ans.Rcode), probes[0]))
	}
	if len(up) == 0 {
		msg := fmt.Sprintf("no nameserver answers from VRF %s: %s", cfg.VRF, strings.Join(silent, "; "))
		return []CheckResult{
			fail("resolver", staticFix, "%s", msg),
			fail("resolution", staticFix, "not tried: %s", msg),
		}
	}
	detail := fmt.Sprintf("from VRF %s: %s", cfg.VRF, strings.Join(seen, "; "))
	if len(silent) > 0 {
		detail += " (no answer: " + strings.Join(silent, "; ") + ")"
	}
	resolver := ok("resolver", "%s", detail)

	// Resolution: the first name some answering server resolves.
	var why []string
	refused, servfail, nxdomain := false, false, false
	for i, p := range probes {
		for _, u := range up {
			ans := u.first
			if i > 0 {
				var err error
				if ans, err = Query(c.Reader.Net.NS, cfg.VRF, u.addr, p.name, p.qtype, timeout); err != nil {
					why = append(why, fmt.Sprintf("%s: %v", p, err))
					continue
				}
			}
			// An authoritative "no such name" for a zone still shows a
			// working resolver (servers authoritative only for their own
			// zones say NXDOMAIN for the root); for the name the admin
			// chose it means the name is wrong.
			if ans.Rcode == 0 || ans.Rcode == 3 && p.qtype == qtypeSOA {
				res := ok("resolution", "%s (%s) resolved by %s (%s, %d answer records)", p, p.why, u.server, RcodeName(ans.Rcode), ans.Answers)
				if len(why) > 0 {
					res.Detail += "; before that: " + strings.Join(why, "; ")
				}
				return []CheckResult{resolver, res}
			}
			switch ans.Rcode {
			case 2:
				servfail = true
			case 3:
				nxdomain = true
			case 5:
				refused = true
			}
			why = append(why, fmt.Sprintf("%s answered %s for %s", u.server, RcodeName(ans.Rcode), p))
		}
	}
	var fix string
	switch {
	case refused:
		fix = "the server answers but refuses these queries: if it serves only some names (a forwarder or split-horizon server), name one: vrf-netsetup check --query-name NAME (query_name in " + DefaultConfigPath + "); otherwise let it recurse for this host, or use another: --dns static --nameserver IP"
	case servfail:
		fix = "the server cannot resolve (SERVFAIL): check its own upstream/forwarders, or use another: --dns static --nameserver IP"
	case nxdomain:
		fix = "the name does not exist: --query-name NAME with a name that does"
	default:
		fix = staticFix
	}
	return []CheckResult{resolver, fail("resolution", fix, "no name resolved from VRF %s: %s", cfg.VRF, strings.Join(why, "; "))}
}

// checkDNSPaths asks every management nameserver (dnsBindServers) over
// UDP and TCP, from the VRF and from the default VRF (a socket bound to no
// device, the way systemd-resolved and glibc reach their upstream
// servers). The resolver check above asks over UDP from the VRF only. A
// resolver falls back to TCP for every answer too big for UDP, and DNS
// over TLS uses nothing else; in `--sshd vrf-only` mode
// (tcp_l3mdev_accept 0) only the connect hooks apply attaches let the
// default VRF's TCP answers in.
func (c *Checker) checkDNSPaths(cfg Config, st *State, dns string, hasVRF bool) (CheckResult, bool) {
	servers := dnsBindServers(cfg, dns, st)
	if len(servers) == 0 || !hasVRF {
		return CheckResult{}, false
	}
	timeout := c.dnsTimeout()
	_, search := resolvConfServers(st.file(ResolvConf).Content)
	p := dnsProbes(cfg, search)[0]
	var good, tcpBad, defBad []string
	for _, s := range servers {
		ap := netip.AddrPortFrom(s, 53)
		var errs [4]error
		for i, path := range []struct{ network, dev string }{{"udp", cfg.VRF}, {"tcp", cfg.VRF}, {"udp", ""}, {"tcp", ""}} {
			_, errs[i] = QueryOver(c.Reader.Net.NS, path.network, path.dev, ap, p.name, p.qtype, timeout)
		}
		switch {
		case errs[0] != nil:
			// no UDP answer from the VRF: the resolver line says it
		case errs[1] != nil:
			tcpBad = append(tcpBad, errs[1].Error())
		case errs[2] != nil || errs[3] != nil:
			for _, e := range errs[2:] {
				if e != nil {
					defBad = append(defBad, e.Error())
				}
			}
		default:
			good = append(good, s.String())
		}
	}
	switch {
	case len(tcpBad) > 0:
		return fail("dns paths", "the nameserver must answer DNS over TCP (port 53) too: resolvers retry every truncated answer over TCP; or name one that does: --dns static --nameserver IP",
			"no TCP answer from VRF %s: %s", cfg.VRF, strings.Join(tcpBad, "; ")), true
	case len(defBad) > 0:
		fix := "vrf-netsetup apply (steers the management nameservers into the VRF and attaches the nameserver connect hooks in " + BPFPinDir + "; kernel 5.9 or later)"
		if st.DNSBind == nil {
			fix = "vrf-netsetup apply (steers the management nameservers into the VRF); TCP: this kernel cannot run the nameserver connect hooks (5.9 or later), with --sshd any-vrf net.ipv4.tcp_l3mdev_accept=1 lets the answers in"
		}
		return fail("dns paths", fix, "the default VRF gets no answer from a management nameserver: %s", strings.Join(defBad, "; ")), true
	case len(good) == 0:
		return CheckResult{}, false
	}
	return ok("dns paths", "%s answered %s over UDP and TCP, from VRF %s and from the default VRF", strings.Join(good, ", "), p, cfg.VRF), true
}

// dnsTimeout bounds each query check makes (UDP resends it every second
// meanwhile): a loaded host's resolver can take a few seconds.
func (c *Checker) dnsTimeout() time.Duration {
	if c.DNSTimeout == 0 {
		return 4 * time.Second
	}
	return c.DNSTimeout
}
