package netsetup

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The fixtures in testdata/firewall were recorded from the real tools
// (nftables 1.0.6, iptables 1.8.9) in a throw-away netns with a veth named
// eth0: `nft -j list ruleset`, iptables-legacy-save, iptables-nft-save.

// fakeFW answers like the tools would: out["tool args"] for each installed
// tool; procfs files from files.
type fakeFW struct {
	out   map[string]string
	files map[string]string
}

func (f fakeFW) host() *fwHost {
	return &fwHost{
		look: func(tool string) bool {
			for k := range f.out {
				if k == tool || strings.HasPrefix(k, tool+" ") {
					return true
				}
			}
			return false
		},
		run: func(tool string, args ...string) ([]byte, error) {
			k := strings.TrimSpace(tool + " " + strings.Join(args, " "))
			o, ok := f.out[k]
			if !ok {
				return nil, fmt.Errorf("%s: not recorded", k)
			}
			return []byte(o), nil
		},
		read: func(p string) ([]byte, error) {
			if s, ok := f.files[p]; ok {
				return []byte(s), nil
			}
			return nil, os.ErrNotExist
		},
	}
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/firewall/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fwCheck(f fakeFW) CheckResult {
	cfg := testCfg()
	cfg.VRF = "mgmt"
	return (&Checker{firewall: f.host()}).checkFirewall(cfg, &State{})
}

// wantParts: every part appears in s.
func wantParts(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s lacks %q:\n%s", what, p, s)
		}
	}
}

// TestFirewallNFTLockout: the usual nftables.conf, ssh and ping accepted
// on eth0 ahead of policy drop: both accepts die once input sees mgmt.
func TestFirewallNFTLockout(t *testing.T) {
	r := fwCheck(fakeFW{out: map[string]string{"nft -j list ruleset": fixture(t, "nft-ssh-on-eth0.json")}})
	if r.OK || r.Name != "firewall" {
		t.Fatalf("want FAIL firewall, got %s", r)
	}
	wantParts(t, "detail", r.Detail,
		`2 rule(s) naming eth0 change meaning once it is in mgmt: `,
		`nft inet filter input handle 6 [iifname "eth0" tcp dport 22 accept comment "ssh from the management LAN"] (input sees mgmt, not eth0: it no longer matches)`,
		`nft inet filter input handle 7 [iifname "eth0" icmp type echo-request accept]`)
	wantParts(t, "fix", r.Fix,
		`nft 'replace rule inet filter input handle 6 iifname "mgmt" tcp dport 22 accept comment "ssh from the management LAN"' (or, for eth0 alone: meta sdifname "eth0" tcp dport 22 accept comment "ssh from the management LAN")`,
		`nft 'replace rule inet filter input handle 7 iifname "mgmt" icmp type echo-request accept'`)
	if strings.Contains(r.Detail, "handle 5") || strings.Contains(r.Detail, "handle 8") {
		t.Errorf("names rules that do not match eth0: %s", r.Detail)
	}
}

// TestFirewallVRFReadyPasses: rules written against mgmt, sdifname, and
// eth0 only where it is still seen (prerouting's first pass; output's
// second, with mgmt accepted too).
func TestFirewallVRFReadyPasses(t *testing.T) {
	r := fwCheck(fakeFW{out: map[string]string{"nft -j list ruleset": fixture(t, "nft-vrf-ready.json")}})
	want := "ok   firewall: 2 rule(s) name eth0, none where netfilter sees mgmt instead (read: nft, iptables not installed)"
	if r.String() != want {
		t.Fatalf("got  %s\nwant %s", r, want)
	}
}

// TestFirewallEgressAcceptBeforeDrop: output sees mgmt before eth0, so an
// accept for eth0 alone lets the first pass fall to the policy drop.
func TestFirewallEgressAcceptBeforeDrop(t *testing.T) {
	r := fwCheck(fakeFW{out: map[string]string{"nft -j list ruleset": fixture(t, "nft-egress-eth0.json")}})
	if r.OK {
		t.Fatalf("want FAIL, got %s", r)
	}
	wantParts(t, "detail", r.Detail,
		`nft inet egress output handle 5 [oifname "eth0" udp dport { 53, 123 } accept] (packets to eth0 pass output first as mgmt and meet the chain's drop)`,
		`nft inet egress output handle 6 [oifname "eth0" tcp dport 443 accept]`)
	wantParts(t, "fix", r.Fix,
		`nft 'insert rule inet egress output handle 5 oifname "mgmt" udp dport { 53, 123 } accept'`,
		`nft 'insert rule inet egress output handle 6 oifname "mgmt" tcp dport 443 accept'`)
}

// TestFirewallIptablesLegacy: iptables-persistent rules in legacy tables,
// both families, with no nft installed; the iptables-nft tables are empty.
func TestFirewallIptablesLegacy(t *testing.T) {
	r := fwCheck(fakeFW{
		out: map[string]string{
			"iptables-save --version": "iptables-save v1.8.9 (nf_tables)\n",
			"iptables-nft-save":       "",
			"ip6tables-nft-save":      "",
			"iptables-legacy-save":    fixture(t, "iptables-legacy-save.txt"),
			"ip6tables-legacy-save":   fixture(t, "ip6tables-legacy-save.txt"),
		},
		files: map[string]string{"/proc/net/ip_tables_names": "filter\n", "/proc/net/ip6_tables_names": "filter\n"},
	})
	if r.OK {
		t.Fatalf("want FAIL, got %s", r)
	}
	wantParts(t, "detail", r.Detail,
		`2 rule(s) naming eth0`,
		`iptables-legacy-save filter INPUT rule 3 [-i eth0 -p tcp -m tcp --dport 22 -m comment --comment "ssh from the management LAN" -j ACCEPT] (input sees mgmt, not eth0: it no longer matches)`,
		`ip6tables-legacy-save filter INPUT rule 4 [-i eth0 -p tcp -m tcp --dport 22 -j ACCEPT]`)
	wantParts(t, "fix", r.Fix,
		`iptables-legacy -t filter -R INPUT 3 -i mgmt -p tcp -m tcp --dport 22 -m comment --comment "ssh from the management LAN" -j ACCEPT`,
		`ip6tables-legacy -t filter -R INPUT 4 -i mgmt -p tcp -m tcp --dport 22 -j ACCEPT`)
}

// TestFirewallIptablesNFTOnce: iptables-nft's table shows in nft's JSON and
// in iptables-nft-save; it is reported once, in iptables terms, unless
// iptables-nft-save is missing (then nft is the tool left to change it).
func TestFirewallIptablesNFTOnce(t *testing.T) {
	out := map[string]string{
		"nft -j list ruleset": fixture(t, "nft-with-iptables-nft.json"),
		"iptables-nft-save":   fixture(t, "iptables-nft-save.txt"),
	}
	r := fwCheck(fakeFW{out: out})
	if r.OK || !strings.HasPrefix(r.Detail, "1 rule(s)") {
		t.Fatalf("want one rule, got %s", r)
	}
	wantParts(t, "detail", r.Detail, `iptables-nft-save filter INPUT rule 2 [-i eth0 -p tcp -m tcp --dport 22 -j ACCEPT]`)
	wantParts(t, "fix", r.Fix, `iptables-nft -t filter -R INPUT 2 -i mgmt -p tcp -m tcp --dport 22 -j ACCEPT`)

	delete(out, "iptables-nft-save")
	r = fwCheck(fakeFW{out: out})
	if r.OK || !strings.HasPrefix(r.Detail, "1 rule(s)") {
		t.Fatalf("want one rule, got %s", r)
	}
	wantParts(t, "detail", r.Detail, `nft ip filter INPUT handle 3 [iifname "eth0" tcp dport 22 counter accept]`)
	wantParts(t, "fix", r.Fix, `nft 'replace rule ip filter INPUT handle 3 iifname "mgmt" tcp dport 22 counter accept'`)
}

// TestFirewallNoTools: nothing to read is no failure.
func TestFirewallNoTools(t *testing.T) {
	r := fwCheck(fakeFW{})
	want := "ok   firewall: no nftables/iptables rules name eth0 (read: nft not installed, iptables not installed)"
	if r.String() != want {
		t.Fatalf("got  %s\nwant %s", r, want)
	}
}

// TestFirewallCheckNetns: a real ruleset in a throw-away netns, read by
// the tools check runs (nft, iptables-legacy-save) from inside it; then the
// fixes check names are applied and the line passes.
func TestFirewallCheckNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (netns)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed (scripts/install-deps.sh test)")
	}
	name := fmt.Sprintf("pamvrf-fw-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	in := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command("ip", append([]string{"netns", "exec", name}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	in("", "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	in(`table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iif "lo" accept
		iifname "eth0" tcp dport 22 accept
	}
}
`, "nft", "-f", "-")
	_, legacy := exec.LookPath("iptables-legacy")
	if legacy == nil {
		in("", "iptables-legacy", "-A", "INPUT", "-i", "eth0", "-p", "tcp", "--dport", "2222", "-j", "ACCEPT")
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNet(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); h.Close() })
	c := &Checker{Reader: &Reader{Net: n}}
	cfg := testCfg()
	cfg.VRF = "mgmt"

	r := c.checkFirewall(cfg, &State{})
	if r.OK {
		t.Fatalf("want FAIL, got %s", r)
	}
	wantParts(t, "detail", r.Detail, `nft inet filter input handle 4 [iifname "eth0" tcp dport 22 accept] (input sees mgmt, not eth0: it no longer matches)`)
	wantParts(t, "fix", r.Fix, `nft 'replace rule inet filter input handle 4 iifname "mgmt" tcp dport 22 accept'`)
	if legacy == nil {
		wantParts(t, "detail", r.Detail, `iptables-legacy-save filter INPUT rule 1 [-i eth0 -p tcp -m tcp --dport 2222 -j ACCEPT]`)
		wantParts(t, "fix", r.Fix, `iptables-legacy -t filter -R INPUT 1 -i mgmt -p tcp -m tcp --dport 2222 -j ACCEPT`)
	}

	// the fixes, as printed, are commands that work
	cmds := regexp.MustCompile(`nft '[^']*'|iptables-legacy -t [^;]*`).FindAllString(r.Fix, -1)
	if len(cmds) == 0 {
		t.Fatalf("no command in the fix: %s", r.Fix)
	}
	for _, cmd := range cmds {
		in("", "sh", "-c", cmd)
	}
	r = c.checkFirewall(cfg, &State{})
	if !r.OK || !strings.HasPrefix(r.Detail, "no nftables/iptables rules name eth0 (read: nft") {
		t.Fatalf("after the fixes %q: %s", cmds, r)
	}
	if legacy == nil && !slices.ContainsFunc(strings.Split(r.Detail, ", "), func(s string) bool { return strings.Contains(s, "iptables-legacy-save") }) {
		t.Errorf("legacy tables not read: %s", r)
	}
}

// TestFirewallNoNFTablesModule: with nf_tables neither loaded nor built in
// there are no nft rules, and check must not run nft (it would load the
// module); with it loaded, or built in, the same recorded ruleset is read.
func TestFirewallNoNFTablesModule(t *testing.T) {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	builtin := "/lib/modules/" + unix.ByteSliceToString(uts.Release[:]) + "/modules.builtin"
	out := map[string]string{"nft -j list ruleset": fixture(t, "nft-ssh-on-eth0.json")}
	for _, c := range []struct {
		name, modules, builtin string
		read                   bool
	}{
		{"absent", "veth 40960 0 - Live 0x0\n", "kernel/fs/ext4/ext4.ko\n", false},
		{"loaded", "veth 40960 0 - Live 0x0\nnf_tables 372736 0 - Live 0x0\n", "kernel/fs/ext4/ext4.ko\n", true},
		{"built in", "veth 40960 0 - Live 0x0\n", "kernel/net/netfilter/nf_tables.ko\n", true},
	} {
		r := fwCheck(fakeFW{out: out, files: map[string]string{"/proc/modules": c.modules, builtin: c.builtin}})
		if read := !r.OK && strings.Contains(r.Detail, "handle 6"); read != c.read {
			t.Errorf("%s: ruleset read %v, want %v: %s", c.name, read, c.read, r)
		}
		if !c.read && !strings.Contains(r.Detail, "nf_tables not loaded") {
			t.Errorf("%s: does not say why nft was not read: %s", c.name, r)
		}
	}
}
