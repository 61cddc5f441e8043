package netsetup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The boot unit's failsafe turns tcp_l3mdev_accept on, in a netns of its
// own, only when the unit failed and sshd was to be bound to the VRF.
func TestBootFailsafe(t *testing.T) {
	ns, _ := newNS(t)
	sc := Sysctl{NS: ns}
	dir := t.TempDir()
	vrfOnly := filepath.Join(dir, "vrf-only.toml")
	anyVRF := filepath.Join(dir, "any-vrf.toml")
	c := testCfg()
	c.SSHD = SSHDVRFOnly
	os.WriteFile(vrfOnly, EncodeConfig(c), 0o644)
	c.SSHD = SSHDAnyVRF
	os.WriteFile(anyVRF, EncodeConfig(c), 0o644)
	get := func() string { v, _ := sc.Get(l3mdevSysctls[0]); return v }
	if err := sc.Set(l3mdevSysctls[0], "0"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ result, config, want string }{
		{"success", vrfOnly, "0"},   // the unit merely stopped
		{"exit-code", anyVRF, "0"},  // any-vrf persists 1 itself
		{"exit-code", vrfOnly, "1"}, // the lock-out it exists for
	} {
		msg, err := BootFailsafe(tc.result, sc, tc.config)
		if err != nil || get() != tc.want || (tc.want == "1") != strings.Contains(msg, "answers through the VRF") {
			t.Errorf("%s, %s: sysctl %s, message %q, err %v", tc.result, filepath.Base(tc.config), get(), msg, err)
		}
	}
	if r := renderUnit(testCfg()); !strings.Contains(r, "ExecStopPost=-/usr/sbin/vrf-netsetup __boot-failsafe") {
		t.Errorf("unit:\n%s", r)
	}
	pkg, err := os.ReadFile("../debian/vrf-netsetup.pam-vrf-netsetup.service")
	if err != nil || !strings.Contains(string(pkg), "ExecStopPost=-/usr/sbin/vrf-netsetup __boot-failsafe") {
		t.Errorf("packaged unit lacks the failsafe: %v", err)
	}
}
