package netsetup

import (
	"slices"
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
	// the host's stanza became DHCP: the hook goes
	live.Manager = Manager{Kind: "ifupdown", DHCP: true}
	if got := ids(mustPlan(t, cfg, live)); !slices.Contains(got, "file-remove:"+hostnet.IfupHook+":") {
		t.Errorf("hook kept without a static stanza: %v", got)
	}
}
