package netsetup

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestResolvedServerSyntax: resolved's DNS= takes a port, an interface and
// a TLS server name with each address (resolved.conf(5)); the address is
// what the steering rule needs.
func TestResolvedServerSyntax(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.53":                          "192.0.2.53",
		"192.0.2.53:5353":                     "192.0.2.53",
		"192.0.2.53:5353%eth0#dns.example":    "192.0.2.53",
		"192.0.2.53#dns.example":              "192.0.2.53",
		"2001:db8::53":                        "2001:db8::53",
		"2001:db8::53%eth0":                   "2001:db8::53",
		"[2001:db8::53]:53":                   "2001:db8::53",
		"[2001:db8::53]:853%eth0#dns.example": "2001:db8::53",
		"2001:db8::53#dns.example":            "2001:db8::53",
		"dns.example":                         "",
		"127.0.0.1:5353":                      "",
		"[::1]:53":                            "",
	} {
		st := freshState()
		st.Files[ResolvedConf] = FileState{Exists: true, Content: "[Resolve]\nDNS=" + in + "\n"}
		got := strings.Join(dnsRuleServers(testCfg(), DNSResolved, st), " ")
		if got != want {
			t.Errorf("DNS=%s: steered %q, want %q", in, got, want)
		}
	}
}

// TestResolvedIPv6ServerSteeredInNetns: an IPv6 global server written as
// [ADDR]:PORT#NAME in a resolved.conf.d drop-in gets its rule (ip -6 rule
// 1002 to ADDR iif lo lookup 1000) in a live kernel, and a default-VRF
// lookup for it then answers from the VRF table.
func TestResolvedIPv6ServerSteeredInNetns(t *testing.T) {
	ns, n := newNS(t)
	cfg := testCfg()
	cfg.DNS = DNSResolved
	root := t.TempDir()
	dir := filepath.Join(root, "etc/systemd/resolved.conf.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "90-admin.conf"), []byte("[Resolve]\nDNS=[2001:db8::53]:53#dns.example 192.0.2.53:5353\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vethPair(t, n, "vrfside", "vrfpeer", netns.None())
	addAddr(t, n, "vrfside", "2001:db8:9::10/64")
	side, _ := n.H.LinkByName("vrfside")
	dst := &net.IPNet{IP: net.ParseIP("2001:db8::53"), Mask: net.CIDRMask(128, 128)}
	if err := n.H.RouteAdd(&netlink.Route{Dst: dst, LinkIndex: side.Attrs().Index, Table: int(cfg.Table)}); err != nil {
		t.Fatal(err)
	}
	rd := testReader(ns, n, root)
	st, err := rd.Read(cfg)
	if err != nil {
		t.Fatal(err)
	}
	steps := planDNSRules(cfg, DNSResolved, st)
	if got := strings.Join(ids(steps), " "); got != "rule-dns-192.0.2.53/32 rule-dns-2001:db8::53/128" {
		t.Fatalf("plan %q, want a rule for each server", got)
	}
	if nw := renderVRFNetwork(cfg, nil, dnsRuleServers(cfg, DNSResolved, st)); !strings.Contains(nw, "To=2001:db8::53/128\n") {
		t.Errorf("mgmt.network does not declare the IPv6 rule:\n%s", nw)
	}
	if err := Apply(testEnv(ns, n, root), steps); err != nil {
		t.Fatal(err)
	}
	rules, err := n.RuleList(unix.AF_INET6)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rules {
		got = append(got, r.String())
	}
	if !strings.Contains(strings.Join(got, "\n"), "ipv6 1002: from all to 2001:db8::53/128 iif lo lookup 1000") {
		t.Fatalf("ipv6 rules:\n%s", strings.Join(got, "\n"))
	}
	rts, err := n.H.RouteGet(net.ParseIP("2001:db8::53"))
	if err != nil || len(rts) == 0 || rts[0].Table != int(cfg.Table) || rts[0].LinkIndex != side.Attrs().Index {
		t.Errorf("default VRF to the IPv6 server: %v %v, want vrfside in table %d", rts, err, cfg.Table)
	}
	if st, _ = rd.Read(cfg); len(planDNSRules(cfg, DNSResolved, st)) != 0 {
		t.Errorf("second run plans again")
	}
}
