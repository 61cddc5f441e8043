package netsetup

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func testCfg() Config {
	c := Defaults()
	c.Iface = "eth0"
	c.DNS = DNSStatic
	return c
}

func baseRules() []Rule {
	var rs []Rule
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		rs = append(rs, localRule(f, 0), Rule{Family: f, Pref: 32766, Table: unix.RT_TABLE_MAIN, Action: 1})
	}
	return rs
}

// freshState: a single-NIC host, eth0 with a DHCP default route, no VRF.
func freshState() *State {
	return &State{
		Links: map[string]Link{"lo": {Name: "lo", Index: 1, Kind: "device", Up: true}, "eth0": {Name: "eth0", Index: 2, Kind: "device", Up: true}},
		Addrs: map[string][]Addr{"eth0": {{CIDR: "192.0.2.10/24"}, {CIDR: "2001:db8::10/64"}, {CIDR: "fe80::1/64", Scope: 253}}},
		Routes: []Route{
			{Family: unix.AF_INET, Table: 254, Dst: "default", Gw: "192.0.2.1", Dev: "eth0", Metric: 100, Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_DHCP},
			{Family: unix.AF_INET, Table: 254, Dst: "192.0.2.0/24", Dev: "eth0", Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_KERNEL, Scope: 253},
			{Family: unix.AF_INET6, Table: 254, Dst: "default", Gw: "fe80::1", Dev: "eth0", Metric: 1024, Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_RA},
			{Family: unix.AF_INET6, Table: 254, Dst: "fe80::/64", Dev: "eth0", Metric: 256, Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_KERNEL},
		},
		Rules:    baseRules(),
		Sysctls:  map[string]string{l3mdevSysctls[0]: "0", l3mdevSysctls[1]: "0"},
		Files:    map[string]FileState{ResolvConf: {Exists: true, Symlink: "../run/systemd/resolve/stub-resolv.conf", Content: "nameserver 127.0.0.53\nsearch example.net\n"}},
		Module:   ModuleState{Loaded: false, Available: true, Release: "6.1.0-test"},
		Manager:  Manager{Kind: "none", Detail: "none"},
		Upstream: []string{"192.0.2.53"},
	}
}

// converge turns a state into what a successful apply leaves behind.
func converge(t *testing.T, cfg Config, st *State) *State {
	t.Helper()
	st.Links["mgmt"] = Link{Name: "mgmt", Index: 3, Kind: "vrf", Table: cfg.Table, Up: true}
	e := st.Links["eth0"]
	e.Master = 3
	st.Links["eth0"] = e
	for _, a := range vrfAddrs(cfg, EffectiveDNS(cfg, st)) {
		st.Addrs["mgmt"] = append(st.Addrs["mgmt"], Addr{CIDR: a})
	}
	var routes []Route
	for _, r := range st.Routes {
		if r.Table == 254 && r.Protocol != unix.RTPROT_KERNEL {
			r.Table = cfg.Table
		}
		routes = append(routes, r)
	}
	st.Routes = routes
	var rules []Rule
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		rules = append(rules, Rule{Family: f, Pref: 1000, L3mdev: true, Action: 1}, localRule(f, 32765), Rule{Family: f, Pref: 32766, Table: 254, Action: 1})
		rules = append(rules, guardRules(cfg.VRF, f)...)
		st.Routes = append(st.Routes, Route{Family: f, Table: cfg.Table, Dst: "default", Dev: cfg.VRF, Metric: UnreachableMetric, Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_STATIC})
	}
	dns := EffectiveDNS(cfg, st)
	for _, s := range append(dnsRuleServers(cfg, dns, st), dhcpRuleServers(cfg, st)...) {
		rules = append(rules, dnsRule(cfg, s))
	}
	st.Rules = rules
	tcp, udp := desiredSysctls(cfg, dns, st)
	st.Sysctls = map[string]string{l3mdevSysctls[0]: tcp, l3mdevSysctls[1]: udp}
	specs, err := desiredFiles(cfg, dns, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range specs {
		switch {
		case f.Remove:
			delete(st.Files, f.Path)
		case f.Symlink != "":
			st.Files[f.Path] = FileState{Exists: true, Symlink: f.Symlink}
		default:
			st.Files[f.Path] = FileState{Exists: true, Content: f.Content}
		}
	}
	st.Files[BackupPath] = FileState{Exists: true, Content: "{}"}
	st.ResolvedActive = dns == DNSResolved
	st.SSHPin = SSHPin{Exists: true, Ifindex: 3}
	return st
}

func ids(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.ID)
	}
	return out
}

func mustPlan(t *testing.T, cfg Config, st *State) []Step {
	t.Helper()
	steps, err := Plan(cfg, st)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return steps
}

func wantOrder(t *testing.T, got []string, want ...string) {
	t.Helper()
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	if i != len(want) {
		t.Fatalf("steps %v\ndo not contain in order %v (missing %q)", got, want, want[i])
	}
}

func TestPlanFreshHost(t *testing.T) {
	cfg := testCfg()
	got := ids(mustPlan(t, cfg, freshState()))
	wantOrder(t, got, "backup", "module-vrf", "vrf-create", "link-up-mgmt",
		"rule-guard-iif-v4", "rule-guard-oif-v4", "rule-guard-iif-v6", "rule-guard-oif-v6",
		"rule-l3mdev-v4", "rule-local-add-v4", "rule-local-del0-v4",
		"rule-l3mdev-v6", "rule-local-add-v6", "rule-local-del0-v6",
		"addr-mgmt-127.0.0.1/8", "addr-mgmt-::1/128",
		"enslave", "readd-addrs", "route-move-v4-default", "route-move-v6-default",
		"sysctl-net.ipv4.tcp_l3mdev_accept", "sysctl-net.ipv4.udp_l3mdev_accept",
		"file-write:"+ConfigPath+":", "file-write:"+SysctlConf+":", "file-write:"+UnitPath+":unit", "file-link:"+UnitWants+":unit",
		"file-write:"+ResolvConf+":", "svc-daemon-reload")
	for _, id := range got {
		if strings.Contains(id, "fe80") || strings.Contains(id, "192.0.2.0") {
			t.Errorf("connected/link-local route must not be moved: %s", id)
		}
		if strings.Contains(id, "networkd") || strings.Contains(id, DhclientHook) {
			t.Errorf("no networkd/dhclient persistence on a host without a manager: %s", id)
		}
	}
}

// With the vrf-netsetup package installed, apply enables the packaged unit
// rather than shadowing it with its own copy in /etc.
func TestPlanUsesPackagedUnit(t *testing.T) {
	st := freshState()
	st.Files[PackagedUnit] = FileState{Exists: true, Content: "[Unit]\n"}
	got := ids(mustPlan(t, testCfg(), st))
	wantOrder(t, got, "file-link:"+UnitWants+":unit")
	for _, id := range got {
		if strings.HasPrefix(id, "file-write:"+UnitPath) {
			t.Errorf("apply writes %s although the package ships %s", UnitPath, PackagedUnit)
		}
	}
	steps := mustPlan(t, testCfg(), st)
	for _, s := range steps {
		if s.ID == "file-link:"+UnitWants+":unit" && !strings.Contains(s.Desc, PackagedUnit) {
			t.Errorf("wants link does not point at the packaged unit: %s", s.Desc)
		}
	}
}

func TestPlanConvergedIsEmpty(t *testing.T) {
	for _, mode := range []string{DNSStatic, DNSResolved, DNSNone} {
		cfg := testCfg()
		cfg.DNS = mode
		st := converge(t, cfg, freshState())
		if steps := mustPlan(t, cfg, st); len(steps) != 0 {
			t.Errorf("dns %s: converged host got plan %v", mode, ids(steps))
		}
	}
	cfg := testCfg()
	cfg.SSHD = SSHDVRFOnly
	if steps := mustPlan(t, cfg, converge(t, cfg, freshState())); len(steps) != 0 {
		t.Errorf("vrf-only: converged host got plan %v", ids(steps))
	}
}

func TestPlanHalfApplied(t *testing.T) {
	cfg := testCfg()
	st := converge(t, cfg, freshState())
	// VRF exists but eth0 was released (e.g. someone ran ip link set eth0 nomaster)
	e := st.Links["eth0"]
	e.Master = 0
	st.Links["eth0"] = e
	// v4 local rule already moved, v6 not yet
	st.Rules = append(st.Rules, localRule(unix.AF_INET6, 0))
	// default route back in main
	st.Routes = append(st.Routes, Route{Family: unix.AF_INET, Table: 254, Dst: "default", Gw: "192.0.2.1", Dev: "eth0", Metric: 100, Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_DHCP})
	got := ids(mustPlan(t, cfg, st))
	want := []string{"rule-local-del0-v6", "enslave", "readd-addrs", "route-move-v4-default"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("half-applied plan = %v, want %v", got, want)
	}
	// the default route already exists in the VRF table: only the main copy goes
	steps := mustPlan(t, cfg, st)
	if !strings.Contains(steps[3].Desc, "from main to table 1000") {
		t.Errorf("desc %q", steps[3].Desc)
	}
}

func TestPlanRefusesWrongDevice(t *testing.T) {
	cfg := testCfg()
	st := freshState()
	st.Links["mgmt"] = Link{Name: "mgmt", Index: 5, Kind: "bridge"}
	if _, err := Plan(cfg, st); err == nil || !strings.Contains(err.Error(), "not a VRF") {
		t.Fatalf("err = %v", err)
	}
	st.Links["mgmt"] = Link{Name: "mgmt", Index: 5, Kind: "vrf", Table: 2000}
	if _, err := Plan(cfg, st); err == nil || !strings.Contains(err.Error(), "--table 2000") {
		t.Fatalf("err = %v", err)
	}
	delete(st.Links, "eth0")
	if _, err := Plan(cfg, st); err == nil || !strings.Contains(err.Error(), "eth0 does not exist") {
		t.Fatalf("err = %v", err)
	}
}

func TestPlanNetworkdHost(t *testing.T) {
	cfg := testCfg()
	st := freshState()
	st.Manager = Manager{Kind: "networkd", NetworkFile: "/run/systemd/network/10-netplan-eth0.network", Netplan: true}
	steps := mustPlan(t, cfg, st)
	got := ids(steps)
	wantOrder(t, got, "networkd-arm", "module-vrf",
		"file-write:/etc/systemd/network/mgmt.netdev:networkd", "file-write:/etc/systemd/network/mgmt.network:networkd",
		"file-write:/etc/systemd/network/10-netplan-eth0.network.d/pam-vrf.conf:networkd", "svc-daemon-reload", "svc-networkd-reload",
		"networkd-reconfigure", "rule-guard-iif-v4", "addr-mgmt-127.0.0.1/8")
	for _, s := range steps {
		if s.ID == "networkd-reconfigure" && (!s.Disruptive || strings.Contains(s.Desc, "restart")) {
			t.Errorf("first apply: reconfigure must be disruptive, no restart: %q", s.Desc)
		}
		if s.ID == "vrf-create" || s.ID == "link-up-mgmt" {
			t.Errorf("networkd creates the VRF from the .netdev: %s", s.ID)
		}
	}
	for _, id := range got {
		// networkd enslaves eth0 and installs its DHCP/RA routes in the
		// VRF table; doing it behind its back fails the link.
		if id == "enslave" || id == "readd-addrs" || strings.HasPrefix(id, "route-move-") {
			t.Errorf("manual %s on a networkd host", id)
		}
	}
	if fams := defaultFamilies(st, "eth0", 1000); len(fams) != 2 {
		t.Errorf("reconfigure waits for default routes of %v, want v4+v6", fams)
	}
	// converged: nothing to do; eth0 released by someone: reconfigure only
	conv := converge(t, cfg, st)
	if steps := mustPlan(t, cfg, conv); len(steps) != 0 {
		t.Errorf("converged networkd host got plan %v", ids(steps))
	}
	e := conv.Links["eth0"]
	e.Master = 0
	conv.Links["eth0"] = e
	if got := ids(mustPlan(t, cfg, conv)); strings.Join(got, ",") != "networkd-arm,networkd-reconfigure" {
		t.Errorf("released eth0 on a networkd host: plan %v", got)
	}
	// `ip link del mgmt` with the .netdev in place: networkd must restart
	delete(conv.Links, "mgmt")
	steps = mustPlan(t, cfg, conv)
	found := false
	for _, s := range steps {
		found = found || (s.ID == "networkd-reconfigure" && strings.Contains(s.Desc, "restart systemd-networkd"))
	}
	if !found {
		t.Errorf("deleted VRF on a networkd host: no networkd restart in %v", ids(steps))
	}
	files, _ := desiredFiles(cfg, DNSStatic, st)
	for _, f := range files {
		switch f.Path {
		case "/etc/systemd/network/mgmt.netdev":
			if !strings.Contains(f.Content, "Kind=vrf") || !strings.Contains(f.Content, "Table=1000") {
				t.Errorf("netdev:\n%s", f.Content)
			}
		case "/etc/systemd/network/10-netplan-eth0.network.d/pam-vrf.conf":
			if !strings.Contains(f.Content, "[Network]\nVRF=mgmt\n") {
				t.Errorf("drop-in:\n%s", f.Content)
			}
		case "/etc/systemd/network/mgmt.network":
			for _, w := range []string{"Name=mgmt", "Address=127.0.0.1/8", "Address=::1/128"} {
				if !strings.Contains(f.Content, w) {
					t.Errorf("vrf network lacks %q:\n%s", w, f.Content)
				}
			}
			// No route a VRF table would keep after the VRF is gone (the
			// guard rules do the unreachable default's job).
			if strings.Contains(f.Content, "Type=unreachable") {
				t.Errorf("vrf network declares an unreachable route:\n%s", f.Content)
			}
			// The local rule must outlive the VRF device: networkd drops a
			// link's declared rules with the link.
			if strings.Contains(f.Content, "Table=local") {
				t.Errorf("vrf network declares the local rule (it would go with the VRF):\n%s", f.Content)
			}
		case DhclientHook:
			if !f.Remove {
				t.Errorf("dhclient hook on a networkd host")
			}
		}
	}
	// ifupdown + DHCP: dhclient hook instead
	st = freshState()
	st.Manager = Manager{Kind: "ifupdown", DHCP: true}
	wantOrder(t, ids(mustPlan(t, cfg, st)), "file-write:"+DhclientHook+":")
}

func TestPlanDNSModes(t *testing.T) {
	cfg := testCfg()
	cfg.DNS = DNSAuto
	st := freshState()
	st.ResolvedActive = true
	if EffectiveDNS(cfg, st) != DNSResolved {
		t.Fatal("auto with resolved active must pick resolved")
	}
	got := ids(mustPlan(t, cfg, st))
	wantOrder(t, got, "file-write:"+ResolvedDropIn+":resolved", "file-write:"+ResolvConf+":", "svc-resolved-restart")
	st.ResolvedActive = false
	cfg.DNS = DNSStatic
	cfg.Nameservers = []string{"198.51.100.53"}
	steps := mustPlan(t, cfg, st)
	wantOrder(t, ids(steps), "rule-dns-198.51.100.53/32")
	st.Upstream = nil
	cfg.Nameservers = nil
	if _, err := Plan(cfg, st); err == nil || !strings.Contains(err.Error(), "--nameserver") {
		t.Fatalf("static without servers: %v", err)
	}
	cfg.DNS = DNSNone
	for _, id := range ids(mustPlan(t, cfg, st)) {
		if strings.Contains(id, "resolv") {
			t.Errorf("dns none touched %s", id)
		}
	}
}

func TestResolvedDropIn(t *testing.T) {
	cfg := testCfg()
	st := freshState()
	st.Files[ResolvedConf] = FileState{Exists: true, Content: "[Resolve]\nDNS=9.9.9.9\n"}
	d := renderResolvedDropIn(cfg, st)
	for _, w := range []string{"DNSStubListenerExtra=127.0.0.153\n", "\nDNS=\n", "DNS=9.9.9.9\n"} {
		if !strings.Contains(d, w) {
			t.Errorf("drop-in lacks %q:\n%s", w, d)
		}
	}
	if a := vrfAddrs(cfg, DNSResolved); a[len(a)-1] != "127.0.0.153/32" {
		t.Errorf("resolved mode: the listener must be local in the VRF table: %v", a)
	}
	if n := renderVRFNetwork(cfg, vrfAddrs(cfg, DNSResolved), nil); !strings.Contains(n, "Address=127.0.0.153/32\n") {
		t.Errorf("mgmt.network lacks the listener address:\n%s", n)
	}
	if a := vrfAddrs(cfg, DNSStatic); len(a) != 2 {
		t.Errorf("static mode addrs %v", a)
	}
	rc := renderResolvedResolvConf(cfg, []string{"example.net"})
	if !strings.Contains(rc, "nameserver 127.0.0.153\n") || strings.Contains(rc, "127.0.0.53\n") {
		t.Errorf("resolv.conf:\n%s", rc)
	}
	cfg.Nameservers = []string{"192.0.2.53"}
	if r := dnsRuleServers(cfg, DNSResolved, st); len(r) != 1 || r[0] != "192.0.2.53" {
		t.Errorf("rule servers %v", r)
	}
}

func TestValidate(t *testing.T) {
	for flag, mut := range map[string]func(*Config){
		"vrf":               func(c *Config) { c.VRF = "way-too-long-name-x" },
		"table":             func(c *Config) { c.Table = 254 },
		"iface":             func(c *Config) { c.Iface = "" },
		"dns":               func(c *Config) { c.DNS = "dnsmasq" },
		"sshd":              func(c *Config) { c.SSHD = "both" },
		"nameserver":        func(c *Config) { c.Nameservers = []string{"ns1"} },
		"resolved-listener": func(c *Config) { c.ResolvedListener = "127.0.0.53" },
	} {
		c := testCfg()
		mut(&c)
		err := c.Validate()
		fe, ok := err.(*FlagError)
		if !ok || fe.Flag != flag {
			t.Errorf("%s: got %v", flag, err)
		}
	}
}

func TestPlanSSHDVRFOnly(t *testing.T) {
	cfg := testCfg()
	cfg.SSHD = SSHDVRFOnly
	got := ids(mustPlan(t, cfg, freshState()))
	wantOrder(t, got, "sysctl-net.ipv4.udp_l3mdev_accept", "file-write:"+SSHDropIn+":ssh", "ssh-pin", "svc-daemon-reload", "svc-ssh-restart")
	if d := renderSSHDropIn(cfg); !strings.Contains(d, "BPFProgram=sock_create:/sys/fs/bpf/pam-vrf/mgmt") || !strings.Contains(d, "Wants="+UnitName) || strings.Contains(d, "\nRequires=") {
		t.Errorf("drop-in:\n%s", d)
	}
	// a recreated VRF (new ifindex) needs a re-pin
	st := converge(t, cfg, freshState())
	st.SSHPin.Ifindex = 9
	wantOrder(t, ids(mustPlan(t, cfg, st)), "ssh-pin", "svc-ssh-restart")
}

// On a networkd host the VRF appears only when networkd has taken over, so
// the program pin for ssh.service and sshd's restart come after that (the
// VM caught "pin ...: find mgmt: Link not found").
func TestPlanSSHDVRFOnlyNetworkd(t *testing.T) {
	cfg := testCfg()
	cfg.SSHD = SSHDVRFOnly
	st := freshState()
	st.Manager = Manager{Kind: "networkd", NetworkFile: "/etc/systemd/network/20-eth0.network"}
	wantOrder(t, ids(mustPlan(t, cfg, st)), "svc-daemon-reload", "svc-networkd-reload", "networkd-reconfigure",
		"addr-mgmt-127.0.0.1/8", "ssh-pin", "svc-ssh-restart")
	// with ssh.socket, whose BindToDevice= makes systemd bind it to the
	// device unit: restarted before networkd made mgmt it fails with
	// "dependency" (seen in the VM)
	st.SSHSocket, st.SSHService = true, true
	wantOrder(t, ids(mustPlan(t, cfg, st)), "svc-daemon-reload", "svc-networkd-reload", "networkd-reconfigure",
		"ssh-pin", "svc-ssh-socket-restart")
}

func TestPlanRevert(t *testing.T) {
	cfg := testCfg()
	old := freshState()
	old.Files[ConfigPath] = FileState{}
	live := converge(t, cfg, freshState())
	got := ids(PlanRevert(cfg, old, live))
	wantOrder(t, got, "revert-release", "revert-local0-v4", "revert-l3mdev-del-v4", "revert-local-del-v4", "revert-guard-mgmt-v4", "revert-local0-v6", "revert-l3mdev-del-v6", "revert-local-del-v6", "revert-guard-mgmt-v6",
		"revert-vrf-delete", "revert-net.ipv4.tcp_l3mdev_accept", "revert-file:"+ConfigPath, "revert-file:"+ResolvConf, "svc-revert-reload", "revert-backup")
}

func TestPlanRevertNetworkd(t *testing.T) {
	cfg := testCfg()
	cfg.DNS = DNSResolved
	old := freshState()
	old.Manager = Manager{Kind: "networkd", NetworkFile: "/etc/systemd/network/20-eth0.network"}
	old.ResolvedActive = true
	old.Files[ConfigPath] = FileState{}
	live := converge(t, cfg, freshState())
	live.Manager = old.Manager
	got := ids(PlanRevert(cfg, old, live))
	// the VRF goes once networkd has moved eth0 out of it (deleted while
	// networkd moved eth0, it cost networkd the lease in the VM)
	wantOrder(t, got, "revert-file:"+ResolvConf, "svc-revert-networkd-reload", "revert-networkd-reconfigure", "revert-vrf-delete",
		"svc-revert-resolved-restart", "svc-revert-reload", "revert-backup")
	for _, id := range got {
		if id == "revert-release" {
			t.Errorf("manual release on a networkd host: %v", got)
		}
	}
}

// TestPlanMigratesUnreachableDefault: a host applied by a release that put
// unreachable defaults into the VRF table gets the guard rules first, then
// loses the routes (no moment where VRF lookups fall through to main), and
// nothing else changes.
func TestPlanMigratesUnreachableDefault(t *testing.T) {
	cfg := testCfg()
	st := converge(t, cfg, freshState())
	var rules []Rule
	for _, r := range st.Rules {
		if r.Action != frActUnreachable {
			rules = append(rules, r)
		}
	}
	st.Rules = rules
	var routes []Route
	for _, r := range st.Routes {
		if !isCatchAll(r, cfg) {
			routes = append(routes, r)
		}
	}
	st.Routes = routes
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		st.Routes = append(st.Routes, Route{Family: f, Table: cfg.Table, Dst: "default", Type: unix.RTN_UNREACHABLE, Metric: UnreachableMetric})
	}
	got := ids(mustPlan(t, cfg, st))
	want := []string{"route-catchall-v4", "route-catchall-v6", "rule-guard-iif-v4", "rule-guard-oif-v4", "rule-guard-iif-v6", "rule-guard-oif-v6", "route-unreachable-del-v4", "route-unreachable-del-v6"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("plan %v, want %v", got, want)
	}
}

// TestRevertCatchAllOfAnExistingVRF: a VRF that was there before apply
// stays, without the catch-all routes apply gave it; one apply made goes
// with them.
func TestRevertCatchAllOfAnExistingVRF(t *testing.T) {
	cfg := testCfg()
	old := freshState()
	old.Files[ConfigPath] = FileState{}
	old.Links["mgmt"] = Link{Name: "mgmt", Index: 3, Kind: "vrf", Table: cfg.Table, Up: true}
	got := ids(PlanRevert(cfg, old, converge(t, cfg, freshState())))
	if !slices.Contains(got, "revert-catchall-v4") || !slices.Contains(got, "revert-catchall-v6") || slices.Contains(got, "revert-vrf-delete") {
		t.Errorf("existing VRF: %v", got)
	}
	old = freshState()
	old.Files[ConfigPath] = FileState{}
	got = ids(PlanRevert(cfg, old, converge(t, cfg, freshState())))
	if slices.Contains(got, "revert-catchall-v4") || !slices.Contains(got, "revert-vrf-delete") {
		t.Errorf("VRF apply made: %v", got)
	}
}

// TestPlanSSHDSocketActivated: with ssh.socket active, vrf-only binds the
// socket's listener (BindToDevice=) and restarts the socket, never starting
// ssh.service next to it; a socket-triggered ssh.service that holds the
// listening fd is stopped first, also one a login started after the plan.
// Revert restarts whichever owns the listener, which must not stay bound
// to a VRF revert deletes.
func TestPlanSSHDSocketActivated(t *testing.T) {
	cfg := testCfg()
	cfg.SSHD = SSHDVRFOnly
	st := freshState()
	st.SSHSocket = true
	steps := mustPlan(t, cfg, st)
	got := ids(steps)
	wantOrder(t, got, "file-write:"+SSHDropIn+":ssh", "file-write:"+SSHSocketDropIn+":ssh", "ssh-pin", "svc-daemon-reload", "svc-ssh-socket-restart")
	for _, id := range got {
		if id == "svc-ssh-restart" {
			t.Errorf("socket-activated sshd: %s in %v", id, got)
		}
	}
	if d := renderSSHSocketDropIn(cfg); !strings.Contains(d, "[Socket]\nBindToDevice=mgmt\n") || strings.Contains(d, "[Unit]") {
		t.Errorf("socket drop-in:\n%s", d)
	}
	// ssh.service not running at plan time, started by a login before
	// the restart: the restart stops it first all the same
	for _, s := range steps {
		if s.ID != "svc-ssh-socket-restart" {
			continue
		}
		svc := &recSvc{}
		if err := s.Do(&Env{Svc: svc}); err != nil {
			t.Fatal(err)
		}
		if want := []string{"stop ssh.service", "restart-bound-socket ssh.socket mgmt"}; !slices.Equal(svc.log, want) {
			t.Errorf("socket restart ran %q, want %q", svc.log, want)
		}
	}

	// any-vrf on a socket host: no socket drop-in is written.
	cfg.SSHD = SSHDAnyVRF
	for _, id := range ids(mustPlan(t, cfg, st)) {
		if strings.Contains(id, "ssh") {
			t.Errorf("any-vrf touches ssh: %s", id)
		}
	}

	// a reboot empties /run: the boot unit's apply binds the stock socket
	// again, and only the socket's part is redone
	cfg.SSHD = SSHDVRFOnly
	st.SSHService = false
	booted := converge(t, cfg, st)
	booted.Files[SSHSocketDropIn] = FileState{}
	got = ids(mustPlan(t, cfg, booted))
	wantOrder(t, got, "file-write:"+SSHSocketDropIn+":ssh", "svc-daemon-reload", "svc-ssh-socket-restart")
	for _, id := range got {
		if strings.HasPrefix(id, "file-write:") && id != "file-write:"+SSHSocketDropIn+":ssh" {
			t.Errorf("after a reboot the plan rewrites more than the socket drop-in: %v", got)
		}
	}

	// revert of vrf-only, plain and socket-activated
	old := freshState()
	old.Files[ConfigPath] = FileState{}
	old.Files[SSHDropIn] = FileState{}
	old.Files[SSHSocketDropIn] = FileState{}
	live := converge(t, cfg, freshState())
	live.Files[SSHDropIn] = FileState{Exists: true, Content: renderSSHDropIn(cfg)}
	wantOrder(t, ids(PlanRevert(cfg, old, live)), "revert-file:"+SSHDropIn, "svc-revert-reload", "svc-revert-ssh-restart")
	live.SSHSocket = true
	live.Files[SSHSocketDropIn] = FileState{Exists: true, Content: renderSSHSocketDropIn(cfg)}
	got = ids(PlanRevert(cfg, old, live))
	wantOrder(t, got, "revert-file:"+SSHDropIn, "revert-file:"+SSHSocketDropIn, "svc-revert-reload", "svc-revert-ssh-socket-restart")
	for _, id := range got {
		if id == "svc-revert-ssh-restart" {
			t.Errorf("revert on a socket host restarts ssh.service: %v", got)
		}
	}
}

func TestUnitEscape(t *testing.T) {
	for in, want := range map[string]string{"mgmt": "mgmt", "mgmt-vrf": `mgmt\x2dvrf`, ".x": `\x2ex`, "a.b_c:1": "a.b_c:1"} {
		if got := unitEscape(in); got != want {
			t.Errorf("unitEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

// planOnly: the steps of the plan whose IDs keep accepts, in plan order.
func planOnly(t *testing.T, cfg Config, st *State, keep func(id string) bool) []Step {
	t.Helper()
	var steps []Step
	for _, s := range mustPlan(t, cfg, st) {
		if keep(s.ID) {
			steps = append(steps, s)
		}
	}
	return steps
}

// recSvc records systemctl verbs with their units and fails one verb.
type recSvc struct {
	fakeSvc
	fail string
	log  []string
}

func (r *recSvc) Run(verb string, units ...string) error {
	r.log = append(r.log, strings.TrimSpace(verb+" "+strings.Join(units, " ")))
	if verb == r.fail {
		return errors.New("A dependency job for ssh.socket failed")
	}
	return nil
}

// A socket restart that fails (the device unit never came) must not leave
// sshd without a listener: the rollback restores the drop-ins, then
// reloads systemd and restarts ssh.socket, unbound.
func TestSSHArmRestartsTheListenerAfterRollback(t *testing.T) {
	cfg := testCfg()
	cfg.SSHD = SSHDVRFOnly
	st := freshState()
	st.SSHSocket = true
	steps := planOnly(t, cfg, st, func(id string) bool {
		return id == "ssh-arm" || strings.HasSuffix(id, ":ssh") || id == "svc-daemon-reload" || id == "svc-ssh-socket-restart"
	})
	wantOrder(t, ids(steps), "ssh-arm", "file-write:"+SSHSocketDropIn+":ssh", "svc-daemon-reload", "svc-ssh-socket-restart")
	root := t.TempDir()
	svc := &recSvc{fail: "restart-bound-socket"}
	err := Apply(&Env{FS: FS{Root: root}, Svc: svc}, steps)
	if err == nil {
		t.Fatal("the failing socket restart did not fail the apply")
	}
	if _, serr := os.Stat(root + SSHSocketDropIn); !os.IsNotExist(serr) {
		t.Errorf("the socket drop-in survived the rollback: %v", serr)
	}
	// ssh.service first: one the socket started holds the listening fd
	if n := len(svc.log); n < 3 || svc.log[n-3] != "daemon-reload" || svc.log[n-2] != "stop ssh.service" || svc.log[n-1] != "restart ssh.socket" {
		t.Errorf("systemctl after the rollback: %q, want it to end with daemon-reload, stop ssh.service, restart ssh.socket", svc.log)
	}
}

// A dhcpcd host: dhcpcd drops its lease when eth0 is enslaved and its hook
// puts the new lease's routes into the VRF table, so the plan waits for
// that after the enslave instead of moving the IPv4 routes dhcpcd drops;
// IPv6 routes are still moved. Once enslaved, stray IPv4 routes in main
// are moved as on any host.
func TestPlanDhcpcdWaitsForRebind(t *testing.T) {
	cfg := testCfg()
	st := converge(t, cfg, freshState())
	e := st.Links["eth0"]
	e.Master = 0
	st.Links["eth0"] = e
	st.Manager = Manager{Kind: "ifupdown-dhcpcd", DHCP: true}
	st.Routes = append(st.Routes,
		Route{Family: unix.AF_INET, Table: 254, Dst: "default", Gw: "192.0.2.1", Dev: "eth0", Metric: 1002, Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_DHCP},
		Route{Family: unix.AF_INET6, Table: 254, Dst: "default", Gw: "fe80::1", Dev: "eth0", Metric: 1002, Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_RA})
	got := strings.Join(ids(mustPlan(t, cfg, st)), ",")
	if want := "enslave,readd-addrs,dhcp-rebind,route-move-v6-default"; !strings.Contains(got, want) ||
		strings.Index(got, "file-write:/usr/lib/dhcpcd/dhcpcd-hooks/99-pam-vrf:") > strings.Index(got, "enslave") {
		t.Errorf("dhcpcd plan = %v, want the hook written before %v", got, want)
	}
	e.Master = st.Links["mgmt"].Index
	st.Links["eth0"] = e
	got = strings.Join(ids(mustPlan(t, cfg, st)), ",")
	if want := "file-write:/usr/lib/dhcpcd/dhcpcd-hooks/99-pam-vrf:,route-move-v4-default,route-move-v6-default"; got != want {
		t.Errorf("dhcpcd plan, enslaved = %v, want %v", got, want)
	}
}

// While resolv.conf is ours, resolved (with no DNS= of its own) imports its
// nameservers and keeps them after the stub symlink is back. A rollback
// that restored resolv.conf or the drop-in ends with a resolved restart,
// after both are restored (VM: a fault before the resolved restart left
// "Global: 127.0.0.153"). Not armed when resolved does not run.
func TestResolvedArmRestartsResolvedAfterRollback(t *testing.T) {
	for _, dns := range []string{DNSResolved, DNSStatic} {
		cfg := testCfg()
		cfg.DNS = dns
		st := freshState()
		st.ResolvedActive = true
		steps := planOnly(t, cfg, st, func(id string) bool {
			return id == "resolved-arm" || id == "file-write:"+ResolvConf+":" || id == "file-write:"+ResolvedDropIn+":resolved"
		})
		want := []string{"resolved-arm", "file-write:" + ResolvConf + ":"}
		if dns == DNSResolved {
			want = []string{"resolved-arm", "file-write:" + ResolvedDropIn + ":resolved", "file-write:" + ResolvConf + ":"}
		}
		wantOrder(t, ids(steps), want...)
		root := t.TempDir()
		if err := os.MkdirAll(root+"/etc", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", root+ResolvConf); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, Step{ID: "boom", Do: func(*Env) error { return errors.New("boom") }})
		svc := &recSvc{}
		if err := Apply(&Env{FS: FS{Root: root}, Svc: svc}, steps); err == nil {
			t.Fatalf("%s: the failing step did not fail the apply", dns)
		}
		if l, err := os.Readlink(root + ResolvConf); err != nil || l != "../run/systemd/resolve/stub-resolv.conf" {
			t.Errorf("%s: resolv.conf after the rollback: %q %v", dns, l, err)
		}
		if _, err := os.Stat(root + ResolvedDropIn); !os.IsNotExist(err) {
			t.Errorf("%s: the drop-in survived the rollback: %v", dns, err)
		}
		if n := len(svc.log); n == 0 || svc.log[n-1] != "restart systemd-resolved.service" {
			t.Errorf("%s: systemctl in the rollback: %q, want it to end with a resolved restart", dns, svc.log)
		}

		st.ResolvedActive = false
		for _, s := range mustPlan(t, cfg, st) {
			if s.ID == "resolved-arm" {
				t.Errorf("%s: armed a resolved restart with resolved not running", dns)
			}
		}
	}
}
