package netsetup

import (
	"strings"
	"testing"
)

// apply --dns-only (the nameserver watch) takes the Follow steps only, and
// none while the VRF is down or the iface is not in it; it names the rest.
func TestDNSOnlyPlan(t *testing.T) {
	cfg := Config{VRF: "mgmt", Table: 1000, Iface: "eth0"}
	full := []Step{
		{ID: "backup", Desc: "save the state"},
		{ID: "ssh-restart", Desc: "restart ssh.service"},
		{ID: "dns-rule-v4-192.0.2.1", Desc: "add rule ipv4 1002", Follow: true},
		{ID: "dns-bind", Desc: "bind sockets", Follow: true},
	}
	plan := func(Config, *State) ([]Step, error) { return full, nil }
	up := &State{Links: map[string]Link{
		"mgmt": {Name: "mgmt", Index: 5, Kind: "vrf", Table: 1000, Up: true},
		"eth0": {Name: "eth0", Index: 2, Master: 5, Up: true},
	}}
	var out strings.Builder
	steps, err := dnsOnlyPlan(plan, &out)(cfg, up)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 || steps[0].ID != "dns-rule-v4-192.0.2.1" || steps[1].ID != "dns-bind" {
		t.Fatalf("steps %v, want the two Follow steps", steps)
	}
	if !strings.Contains(out.String(), "1 other step(s) pending, not taken here") {
		t.Fatalf("the skipped step is not named:\n%s", out.String())
	}
	for name, st := range map[string]*State{
		"VRF missing": {Links: map[string]Link{"eth0": {Name: "eth0", Index: 2, Up: true}}},
		"VRF down": {Links: map[string]Link{
			"mgmt": {Name: "mgmt", Index: 5, Kind: "vrf", Table: 1000},
			"eth0": {Name: "eth0", Index: 2, Master: 5, Up: true}}},
		"eth0 not enslaved": {Links: map[string]Link{
			"mgmt": {Name: "mgmt", Index: 5, Kind: "vrf", Table: 1000, Up: true},
			"eth0": {Name: "eth0", Index: 2, Up: true}}},
	} {
		out.Reset()
		steps, err := dnsOnlyPlan(plan, &out)(cfg, st)
		if err != nil || len(steps) != 0 {
			t.Errorf("%s: steps %v, err %v; want none", name, steps, err)
		}
		if !strings.Contains(out.String(), "the nameserver steps wait for it") {
			t.Errorf("%s: no note saying why:\n%s", name, out.String())
		}
	}
}
