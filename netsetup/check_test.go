package netsetup

import (
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCheckOutputInNetns: check against a netns without a VRF fails the VRF
// checks with the documented line format, passes the rest it can.
func TestCheckOutputInNetns(t *testing.T) {
	ns, n := newNS(t)
	vethPair(t, n, "eth0", "peer0", 0)
	root := t.TempDir()
	writeRoot(t, root, map[string]string{
		"/etc/resolv.conf":           "nameserver 127.0.0.53\n",
		"/etc/pam.d/sshd":            "@include common-session\n",
		"/etc/pam.d/common-session":  "session optional pam_systemd.so\nsession [success=ok default=ignore] pam_vrf.so\n",
		"/etc/security/pam_vrf.toml": "default = \"mgmt\"\n",
		"/proc/self/mountinfo":       "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
	})
	c := &Checker{Reader: testReader(ns, n, root), ProcRoot: root + "/proc", KernelRelease: "6.1.0"}
	res, err := c.Run(testCfg())
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^(ok   [^:]+: .+|FAIL [^:]+: .+ \(fix: .+\))$`)
	byName := map[string]CheckResult{}
	for _, r := range res {
		if !line.MatchString(r.String()) {
			t.Errorf("bad line %q", r.String())
		}
		byName[r.Name] = r
		t.Log(r.String())
	}
	for _, name := range []string{"device", "enslaved", "loopback", "rules ipv4", "default route ipv4", "resolver"} {
		if byName[name].OK {
			t.Errorf("%s must fail without a VRF", name)
		}
	}
	if byName["cgroup2"].OK != true || byName["pam"].OK != true {
		t.Errorf("cgroup2/pam: %+v %+v", byName["cgroup2"], byName["pam"])
	}
	if r := byName["policy"]; !r.OK && !strings.Contains(r.Detail, "pam_vrf.toml") {
		t.Errorf("policy: %+v", r)
	}
	// the stub trap only fires when the VRF exists; here it must not
	if !byName["dns stub trap"].OK {
		t.Errorf("stub trap without VRF: %+v", byName["dns stub trap"])
	}
}

func TestCheckCgroupV1Trap(t *testing.T) {
	root := t.TempDir()
	writeRoot(t, root, map[string]string{"/proc/self/mountinfo": "30 1 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n" +
		"31 1 0:27 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio\n"})
	c := &Checker{ProcRoot: root + "/proc", KernelRelease: "5.10.0"}
	if r := c.checkCgroup(); r.OK || !strings.Contains(r.Fix, "cgroup_no_v1") {
		t.Fatalf("5.10 with net_cls: %+v", r)
	}
	c.KernelRelease = "6.1.0"
	if r := c.checkCgroup(); !r.OK {
		t.Fatalf("6.1 with net_cls: %+v", r)
	}
}

func TestPAMOrder(t *testing.T) {
	root := t.TempDir()
	writeRoot(t, root, map[string]string{
		"/etc/pam.d/sshd":           "session required pam_vrf.so\n@include common-session\n",
		"/etc/pam.d/common-session": "session optional pam_systemd.so\n",
	})
	c := &Checker{Reader: &Reader{FS: FS{Root: root}}}
	if r := c.checkPAM(); r.OK {
		t.Fatalf("pam_vrf before pam_systemd must fail: %+v", r)
	}
}

// TestCheckRuleOrderWantsTheGuard: rule order right but no guard rule for
// the VRF is a failure naming the leak; with them it passes.
func TestCheckRuleOrderWantsTheGuard(t *testing.T) {
	cfg := testCfg()
	st := converge(t, cfg, freshState())
	if r := checkRuleOrder(cfg, st, unix.AF_INET6, "apply"); !r.OK {
		t.Fatalf("converged: %+v", r)
	}
	var rules []Rule
	for _, r := range st.Rules {
		if r.Oif == "" {
			rules = append(rules, r)
		}
	}
	st.Rules = rules
	r := checkRuleOrder(cfg, st, unix.AF_INET6, "apply")
	if r.OK || !strings.Contains(r.Detail, "oif mgmt unreachable") || !strings.Contains(r.Detail, "fall through to the main table") {
		t.Fatalf("no oif guard: %+v", r)
	}
}

// A failed boot unit is named with where to look; one that did not run yet
// (first apply, this boot) is fine.
func TestCheckBootUnit(t *testing.T) {
	for _, tc := range []struct {
		props map[string]string
		ok    bool
		want  string
	}{
		{map[string]string{"LoadState": "loaded", "ActiveState": "active", "Result": "success"}, true, "active"},
		{map[string]string{"LoadState": "loaded", "ActiveState": "inactive", "Result": "success"}, true, "inactive"},
		{map[string]string{"LoadState": "loaded", "ActiveState": "failed", "Result": "exit-code"}, false, "failed at this boot (result exit-code)"},
		{map[string]string{"LoadState": "not-found", "ActiveState": "inactive"}, false, "is not-found"},
	} {
		r := bootUnitResult(tc.props)
		if r.OK != tc.ok || !strings.Contains(r.Detail, tc.want) || (!r.OK && r.Fix == "") {
			t.Errorf("%v: got %s", tc.props, r)
		}
	}
}

// An IPv6-only management network is checked for what it has: no "default
// route ipv4" line that could never pass, the IPv6 one instead.
func TestCheckDefaultRoutePerFamily(t *testing.T) {
	for _, tc := range []struct {
		addrs  []string
		v4, v6 bool
	}{
		{[]string{"2001:db8::10/64"}, false, true},
		{[]string{"192.0.2.10/24", "2001:db8::10/64"}, true, true},
		{[]string{"192.0.2.10/24"}, true, false},
		{nil, true, false}, // nothing yet (DHCP pending): IPv4 is asked for
	} {
		ns, n := newNS(t)
		vethPair(t, n, "eth0", "peer0", 0)
		for _, a := range tc.addrs {
			addAddr(t, n, "eth0", a)
		}
		root := t.TempDir()
		writeRoot(t, root, map[string]string{"/etc/resolv.conf": "nameserver 127.0.0.53\n"})
		res, err := (&Checker{Reader: testReader(ns, n, root), ProcRoot: root + "/proc", KernelRelease: "6.1.0", DNSTimeout: 1}).Run(testCfg())
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, r := range res {
			got[r.Name] = true
		}
		if got["default route ipv4"] != tc.v4 || got["default route ipv6"] != tc.v6 {
			t.Errorf("addresses %v: ipv4 line %v, ipv6 line %v; want %v, %v", tc.addrs, got["default route ipv4"], got["default route ipv6"], tc.v4, tc.v6)
		}
	}
}
