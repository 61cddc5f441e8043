package netsetup

import (
	"strings"
	"testing"
	"time"
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

// The whole Runner with --dns-only on a host where the VRF is absent:
// nothing changes (not even the steering rules, which would send the
// default VRF's DNS into a table nothing routes), the interrupted-apply
// marker stays for the next full apply, and the output says why.
func TestRunnerDNSOnlyWithoutVRFChangesNothing(t *testing.T) {
	h := newFaultHost(t)
	fs := FS{Root: h.root}
	if err := fs.WriteAtomic(ApplyMarker, []byte("ssh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockApply(fs) // the lock file, as apply leaves it
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	before := h.snapshot(t)
	r := h.runner()
	var out strings.Builder
	r.Out, r.DNSOnly = &out, true
	if err := r.ApplyChanged(faultCfg()); err != ErrNothingToDo {
		t.Fatalf("apply --dns-only: %v, want nothing to do\n%s", err, out.String())
	}
	if after := h.snapshot(t); after != before {
		t.Fatalf("apply --dns-only changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if !strings.Contains(out.String(), "VRF mgmt is not up; the nameserver steps wait for it") {
		t.Fatalf("no note saying why:\n%s", out.String())
	}
	if st, _ := fs.Stat(ApplyMarker); !st.Exists {
		t.Fatal("apply --dns-only removed the interrupted-apply marker")
	}
}

// --dns-only does not wait for the apply lock: the apply or revert that
// holds it steers the nameservers itself, or removes the steering.
func TestRunnerDNSOnlyDoesNotWaitForTheLock(t *testing.T) {
	h := newFaultHost(t)
	held, err := flockPath(FS{Root: h.root}.P(ApplyLockPath), 0o755, lockWait) // another process's
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	r := h.runner()
	var out strings.Builder
	r.Out, r.DNSOnly = &out, true
	start := time.Now()
	if err := r.ApplyChanged(faultCfg()); err != ErrNothingToDo {
		t.Fatalf("apply --dns-only with the lock held: %v, want nothing to do\n%s", err, out.String())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("apply --dns-only waited %v for the lock", d)
	}
	if !strings.Contains(out.String(), "another vrf-netsetup holds the apply lock") {
		t.Fatalf("output does not say why:\n%s", out.String())
	}
}
