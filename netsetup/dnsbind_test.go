package netsetup

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pam-vrf/pam-vrf/bpf/dnsbind"
)

// tagOf is the tag the kernel would report for the hook of fam.
func tagOf(t *testing.T, fam int, dev string, servers ...string) string {
	t.Helper()
	var a []netip.Addr
	for _, s := range servers {
		a = append(a, netip.MustParseAddr(s))
	}
	insns, err := dnsbind.Instructions(fam, dev, a, 0)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := insns.Tag(binary.LittleEndian) //nolint:staticcheck // SHA-1 tag: HasTag accepts it
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// The hooks follow the steered nameservers: attached when missing,
// replaced when the servers change, removed when none is left, left alone
// when they match, not planned where the kernel was not asked.
func TestPlanDNSBind(t *testing.T) {
	cfg := testCfg()
	cfg.Nameservers = []string{"192.0.2.53", "2001:db8::53"}
	st := freshState()
	if s := planDNSBind(cfg, DNSStatic, st); len(s) != 0 {
		t.Fatalf("not asked (DNSBind nil): plan %v", ids(s))
	}
	st.DNSBind = &DNSBindState{Tags: map[string]string{"4": "", "6": ""}}
	s := planDNSBind(cfg, DNSStatic, st)
	if len(s) != 1 || s[0].ID != "dns-bind" || !s[0].Follow || !strings.Contains(s[0].Desc, "192.0.2.53, 2001:db8::53 port 53/853 bound to mgmt") {
		t.Fatalf("nothing attached: plan %+v", s)
	}
	st.DNSBind = &DNSBindState{Tags: map[string]string{"4": tagOf(t, unix.AF_INET, "mgmt", "192.0.2.53", "2001:db8::53"), "6": tagOf(t, unix.AF_INET6, "mgmt", "2001:db8::53")}}
	if s := planDNSBind(cfg, DNSStatic, st); len(s) != 0 {
		t.Fatalf("attached and matching: plan %v", ids(s))
	}
	st.DNSBind.Netns = 4097 // a program for another netns (or none) is not the one
	if s := planDNSBind(cfg, DNSStatic, st); len(s) != 1 {
		t.Fatalf("other netns cookie: plan %v", ids(s))
	}
	st.DNSBind.Netns = 0
	cfg.Nameservers = []string{"192.0.2.54", "2001:db8::53"}
	if s := planDNSBind(cfg, DNSStatic, st); len(s) != 1 {
		t.Fatalf("other IPv4 server: plan %v", ids(s))
	}
	cfg.Nameservers = []string{"192.0.2.53"}
	if s := planDNSBind(cfg, DNSStatic, st); len(s) != 1 {
		t.Fatalf("IPv6 server gone, its hook still pinned: plan %v", ids(s))
	}
	// a lease's DHCP server is steered, but no nameserver: not bound
	st.Manager = Manager{Kind: "ifupdown", DHCP: true}
	st.Files[hookLeaseFile("eth0")] = FileState{Exists: true, Content: "server 192.0.2.67\nnameservers 192.0.2.53\n"}
	if !slices.Contains(steeredServers(cfg, DNSStatic, st), "192.0.2.67") {
		t.Fatalf("the lease's server is not steered: %v", steeredServers(cfg, DNSStatic, st))
	}
	if got := dnsBindServers(cfg, DNSStatic, st); len(got) != 1 || got[0].String() != "192.0.2.53" {
		t.Errorf("servers %v, want only the nameserver", got)
	}
	st.Manager = Manager{}
	delete(st.Files, hookLeaseFile("eth0"))
	cfg.Nameservers = nil
	st.Upstream = nil
	if s := planDNSBind(cfg, DNSStatic, st); len(s) != 1 || !strings.Contains(s[0].Desc, "remove the nameserver connect hooks") {
		t.Fatalf("no server left: plan %+v", s)
	}
	// revert removes what apply attached, only that
	old := freshState()
	if s := planRevertDNSBind(cfg, old, st); len(s) != 1 || s[0].ID != "revert-dns-bind" {
		t.Fatalf("revert: %v", ids(s))
	}
	if s := planRevertDNSBind(cfg, old, freshState()); len(s) != 0 {
		t.Fatalf("revert with nothing attached: %v", ids(s))
	}
}

func TestKernelAtLeast(t *testing.T) {
	for rel, want := range map[string]bool{"6.1.0-28-cloud-amd64": true, "5.9.0": true, "5.8.18": false, "4.19.0-27-amd64": false, "5.10": true, "junk": false} {
		if got := kernelAtLeast(rel, 5, 9); got != want {
			t.Errorf("%s: %v", rel, got)
		}
	}
}

// The nameserver watch: apply writes and (re)starts it, a converged host
// plans nothing, revert stops it before its files go.
func TestDNSWatch(t *testing.T) {
	cfg := testCfg()
	cfg.Nameservers = []string{"192.0.2.53"}
	st := freshState()
	got := ids(mustPlan(t, cfg, st))
	wantOrder(t, got, "file-write:"+DNSWatchPath+":"+kindDNSWatch, "svc-daemon-reload", "svc-dns-watch")
	for _, f := range dnsWatchFiles(cfg) {
		if f.Path == DNSWatchPath && (!strings.Contains(f.Content, "PathChanged=/run/systemd/resolve/resolv.conf") || !strings.Contains(f.Content, "Unit=pam-vrf-dns.service")) {
			t.Errorf("path unit:\n%s", f.Content)
		}
		// ordered after the boot unit, the path unit made a cycle at boot
		// (path units come before paths.target, the boot unit after
		// basic.target) and systemd deleted the boot unit's job (VM)
		if f.Path == DNSWatchPath && strings.Contains(f.Content, "After=") {
			t.Errorf("path unit has an ordering:\n%s", f.Content)
		}
		if f.Path == DNSWatchService && (!strings.Contains(f.Content, "After="+UnitName) || !strings.Contains(f.Content, "StartLimitIntervalSec=0")) {
			t.Errorf("service: not after the boot unit, or with a start limit:\n%s", f.Content)
		}
		// ExecStart's binary: a removed (not purged) package skips, not fails
		if f.Path == DNSWatchService && (!strings.Contains(f.Content, "ExecStart=/usr/sbin/vrf-netsetup apply --config "+ConfigPath+" --dns-only --quiet") ||
			!strings.Contains(f.Content, "ConditionPathExists=/usr/sbin/vrf-netsetup\n")) {
			t.Errorf("service:\n%s", f.Content)
		}
	}
	old := freshState()
	for _, p := range []string{ConfigPath, DNSWatchPath, DNSWatchService, DNSWatchWants} {
		old.Files[p] = FileState{} // the backup records every candidate path
	}
	live := converge(t, cfg, st)
	if s := mustPlan(t, cfg, live); len(s) != 0 {
		t.Fatalf("converged host: plan %v", ids(s))
	}
	rv := ids(PlanRevert(cfg, old, live))
	wantOrder(t, rv, "svc-revert-dns-watch", "revert-file:"+DNSWatchPath)
}
