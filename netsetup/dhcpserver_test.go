package netsetup

import (
	"slices"
	"strings"
	"testing"
)

// A dhclient lease file as Debian's ifupdown leaves it: older leases first,
// the current one last, another interface's in between.
const dhclientLeases = `lease {
  interface "eth0";
  fixed-address 192.0.2.10;
  option dhcp-server-identifier 192.0.2.9;
  renew 6 2026/12/05 10:00:00;
}
lease {
  interface "eth1";
  fixed-address 10.0.0.5;
  option dhcp-server-identifier 10.0.0.1;
}
lease {
  interface "eth0";
  fixed-address 192.0.2.10;
  option subnet-mask 255.255.255.0;
  option routers 192.0.2.1;
  option dhcp-server-identifier 192.0.2.2;
  option domain-name-servers 192.0.2.53,192.0.2.54;
  option rfc3442-classless-static-routes 0,192,0,2,1;
  renew 6 2026/12/05 17:00:00;
}
`

func TestLastLease(t *testing.T) {
	if got := lastLease(dhclientLeases, "eth0"); got.Server != "192.0.2.2" || strings.Join(got.Nameserver, " ") != "192.0.2.53 192.0.2.54" {
		t.Errorf("eth0: %+v, want the last lease's server 192.0.2.2 and nameservers", got)
	}
	if got := lastLease(dhclientLeases, "eth1"); got.Server != "10.0.0.1" {
		t.Errorf("eth1: %+v", got)
	}
	if got := lastLease("", "eth0"); got.Server != "" {
		t.Errorf("no lease: %+v", got)
	}
}

// On an ifupdown DHCP host the lease's server gets a steering rule, so
// dhclient's unicast RENEW from the default VRF leaves through the VRF;
// on networkd hosts (its client is bound to the interface) it does not.
func TestPlanSteersTheDHCPServer(t *testing.T) {
	cfg := testCfg()
	st := freshState()
	st.Manager = Manager{Kind: "ifupdown", DHCP: true}
	st.DhclientInstalled = true
	st.Files["/var/lib/dhcp/dhclient.eth0.leases"] = FileState{Exists: true, Content: dhclientLeases}
	// an earlier version's hook, which ran before rfc3442-classless-routes
	st.Files[dhclientHookLegacy] = FileState{Exists: true, Content: "# Written by vrf-netsetup (pam-vrf)\n"}
	got := ids(mustPlan(t, cfg, st))
	for _, want := range []string{"rule-dns-192.0.2.2/32", "rule-dns-192.0.2.53/32", "rule-dns-192.0.2.54/32"} {
		if !slices.Contains(got, want) {
			t.Errorf("no steering rule %s for the lease's server and nameservers: %v", want, got)
		}
	}
	// the steered replies reach unbound sockets only with udp_l3mdev_accept,
	// in sshd mode vrf-only too
	vo := cfg
	vo.SSHD = SSHDVRFOnly
	if _, udp := desiredSysctls(vo, DNSNone, st); udp != "1" {
		t.Errorf("vrf-only, dns none, lease servers steered: udp_l3mdev_accept=%s", udp)
	}
	// dhclient owns resolv.conf here: --dns auto leaves it alone
	auto := cfg
	auto.DNS, auto.Nameservers = DNSAuto, nil
	if got := ids(mustPlan(t, auto, st)); EffectiveDNS(auto, st) != DNSNone || slices.Contains(got, "file-write:"+ResolvConf+":") || !slices.Contains(got, "rule-dns-192.0.2.53/32") {
		t.Errorf("--dns auto on an ifupdown DHCP host without resolved: %s, plan %v", EffectiveDNS(auto, st), got)
	}
	if !slices.Contains(got, "file-remove:"+dhclientHookLegacy+":") || !slices.Contains(got, "file-write:"+DhclientHook+":") {
		t.Errorf("the hook is not renamed: %v", got)
	}
	st.Manager = Manager{Kind: "networkd", NetworkFile: "/etc/systemd/network/20-eth0.network"}
	if got := ids(mustPlan(t, cfg, st)); slices.Contains(got, "rule-dns-192.0.2.2/32") {
		t.Errorf("networkd host steers the DHCP server: %v", got)
	}
	// revert never writes dhclient's lease file back (it is read, not ours)
	st.Manager = Manager{Kind: "ifupdown", DHCP: true}
	old := freshState()
	old.Files[ConfigPath] = FileState{}
	old.Files["/var/lib/dhcp/dhclient.eth0.leases"] = FileState{Exists: true, Content: "lease {\n}\n"}
	live := converge(t, cfg, st)
	for _, id := range ids(PlanRevert(cfg, old, live)) {
		if id == "revert-file:/var/lib/dhcp/dhclient.eth0.leases" {
			t.Errorf("revert rewrites dhclient's lease file")
		}
	}
}

// The exit hook runs before dhclient writes its lease file: the new lease
// the hook hands over wins over the file's last one.
func TestHookLeaseWins(t *testing.T) {
	cfg := testCfg()
	st := freshState()
	st.Manager = Manager{Kind: "ifupdown", DHCP: true}
	st.Files["/var/lib/dhcp/dhclient.eth0.leases"] = FileState{Exists: true, Content: dhclientLeases}
	st.Files[hookLeaseFile("eth0")] = FileState{Exists: true, Content: "server 192.0.2.7\nnameservers 192.0.2.8 192.0.2.9\n"}
	if got := strings.Join(dhcpRuleServers(cfg, st), " "); got != "192.0.2.7 192.0.2.8 192.0.2.9" {
		t.Errorf("steered %q, want the hook's new lease", got)
	}
	if h := renderDhclientHook(cfg); !strings.Contains(h, "> "+hookLeaseFile("eth0")) || !strings.Contains(h, "$new_dhcp_server_identifier") {
		t.Errorf("hook:\n%s", h)
	}
}
