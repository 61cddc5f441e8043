package netsetup

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pam-vrf/pam-vrf/cgroup"
)

// A process named dhcpcd in a VRF cgroup laid out as `ip vrf exec` does
// (BASE/vrf/VRF) goes back to BASE; one in another VRF's cgroup stays.
// Real cgroups (v2, as root), real processes.
func TestClientOutOfVRF(t *testing.T) {
	mount, err := cgroup.Mount()
	if err != nil || os.Geteuid() != 0 {
		t.Skipf("needs root and cgroup v2 (%v)", err)
	}
	base := "/pamvrf-test-" + strconv.Itoa(os.Getpid())
	mine := filepath.Join(mount, base, "vrf", "mgmtx")
	other := filepath.Join(mount, base, "vrf", "blue")
	t.Cleanup(func() {
		for _, d := range []string{mine, other, filepath.Join(mount, base, "vrf"), filepath.Join(mount, base)} {
			syscall.Rmdir(d)
		}
	})
	a := fakeClient(t, "dhcpcd", "eth0")
	b := fakeClient(t, "dhcpcd", "eth1")
	for pid, dir := range map[int]string{a: mine, b: other} {
		if err := cgroup.Move(dir, pid); err != nil {
			t.Skipf("cannot make test cgroups here: %v", err)
		}
	}
	t.Cleanup(func() { // out of the test cgroups, so they can go
		cgroup.Move(mount, a)
		cgroup.Move(mount, b)
	})
	cfg := testCfg()
	cfg.VRF = "mgmtx"
	st := &State{DHCPClients: []DHCPClient{{Name: "dhcpcd", PID: a}}}
	if r, ok := checkClientInVRF(cfg, st, "dhcpcd"); !ok || !r.OK {
		t.Errorf("check, dhcpcd in the VRF: %+v %v", r, ok)
	}
	if err := clientOutOfVRF("dhcpcd", "mgmtx"); err != nil {
		t.Fatal(err)
	}
	if p, _ := cgroup.ProcPath(a); p != base {
		t.Errorf("dhcpcd in VRF mgmtx is in %s, want %s", p, base)
	}
	if p, _ := cgroup.ProcPath(b); p != base+"/vrf/blue" {
		t.Errorf("dhcpcd in VRF blue moved to %s", p)
	}
	if r, ok := checkClientInVRF(cfg, st, "dhcpcd"); !ok || r.OK || !strings.Contains(r.Detail, "runs outside VRF mgmtx") {
		t.Errorf("check, dhcpcd out of the VRF: %+v %v", r, ok)
	}
}
