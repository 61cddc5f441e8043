package netsetup

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pam-vrf/pam-vrf/netsetup/hostnet"
)

// ifupdown static: apply installs the if-up.d hook; after an ifup re-added
// the gateway to main, the hook's apply has only that route to move.
func TestIfupdownStaticPlan(t *testing.T) {
	cfg := testCfg()
	st := freshState()
	st.Manager = Manager{Kind: "ifupdown", Static: true, Detail: "ifupdown: /etc/network/interfaces"}
	st.Routes[0].Protocol = unix.RTPROT_BOOT
	got := ids(mustPlan(t, cfg, st))
	if !slices.Contains(got, "file-write:"+hostnet.IfupHook+":") || !slices.Contains(got, "route-move-v4-default") {
		t.Fatalf("plan on a static ifupdown host: %v", got)
	}
	live := converge(t, cfg, st)
	if left := mustPlan(t, cfg, live); len(left) != 0 {
		t.Fatalf("converged host still plans %v", ids(left))
	}
	// ifdown eth0; ifup eth0: the gateway is back in main
	live.Routes = append(live.Routes, Route{Family: unix.AF_INET, Table: 254, Dst: "default", Gw: "192.0.2.1", Dev: "eth0", Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_BOOT})
	left := mustPlan(t, cfg, live)
	if len(left) != 1 || !left[0].RouteMove || left[0].File != nil {
		t.Errorf("after ifup: %v, want the one route move", ids(left))
	}
	// the hook lost its x bit (it would never run): apply writes it again,
	// and the plan says why
	hook := live.Files[hostnet.IfupHook]
	hook.Mode = 0o644
	live.Files[hostnet.IfupHook] = hook
	var descs []string
	for _, s := range mustPlan(t, cfg, live) {
		descs = append(descs, s.Desc)
	}
	if !slices.Contains(descs, "write "+hostnet.IfupHook+" (mode 0644, want 0755)") {
		t.Errorf("hook without its x bit: plan %q", descs)
	}
	hook.Mode = 0o755
	live.Files[hostnet.IfupHook] = hook
	if left := mustPlan(t, cfg, live); len(left) != 1 {
		t.Errorf("hook mode 0755 again: %v, want the one route move", ids(left))
	}
	// the host's stanza became DHCP: the hook goes
	live.Manager = Manager{Kind: "ifupdown", DHCP: true}
	if got := ids(mustPlan(t, cfg, live)); !slices.Contains(got, "file-remove:"+hostnet.IfupHook+":") {
		t.Errorf("hook kept without a static stanza: %v", got)
	}
}

// Static DNS with harvested servers: a server the host reaches through the
// iface is steered into the VRF (after the enslave the default VRF has no
// route to it); one reached through a data-plane interface is not.
func TestStaticDNSSteersMgmtServers(t *testing.T) {
	cfg := testCfg()
	cfg.DNS, cfg.Nameservers = DNSStatic, nil
	st := freshState()
	st.Links["eth1"] = Link{Name: "eth1", Index: 4, Kind: "device", Up: true}
	st.Routes = append(st.Routes, Route{Family: unix.AF_INET, Table: 254, Dst: "10.0.0.0/8", Dev: "eth1", Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_KERNEL, Scope: 253})
	st.Upstream = []string{"192.0.2.53", "10.1.1.1", "2001:db8::53"}
	if got := dnsRuleServers(cfg, DNSStatic, st); !slices.Equal(got, []string{"192.0.2.53", "2001:db8::53"}) {
		t.Errorf("before apply: steered %v, want the servers behind eth0 only", got)
	}
	live := converge(t, cfg, st)
	if got := dnsRuleServers(cfg, DNSStatic, live); !slices.Equal(got, []string{"192.0.2.53", "2001:db8::53"}) {
		t.Errorf("applied (routes in table %d): steered %v", cfg.Table, got)
	}
	if left := ids(mustPlan(t, cfg, live)); len(left) != 0 {
		t.Errorf("converged host plans %v", left)
	}
	// eth0's routes gone for a moment (lease or RA not back): the
	// catch-all route still says the VRF, the rules stay
	gone := *live
	gone.Routes = slices.DeleteFunc(slices.Clone(live.Routes), func(r Route) bool { return r.Dev == "eth0" })
	if left := ids(mustPlan(t, cfg, &gone)); slices.ContainsFunc(left, func(id string) bool { return strings.HasPrefix(id, "rule-dns") }) {
		t.Errorf("routes of eth0 gone: plan %v touches the DNS rules", left)
	}
	cfg.Nameservers = []string{"10.1.1.1"} // named by the admin: steered as named
	if got := dnsRuleServers(cfg, DNSStatic, st); !slices.Equal(got, []string{"10.1.1.1"}) {
		t.Errorf("--nameserver: steered %v", got)
	}
}
