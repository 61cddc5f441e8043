//go:build vm

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pam-vrf/pam-vrf/tests/vm"
)

// TestE2ESSHDVRFOnly: with `--sshd vrf-only`, the l3mdev accept sysctl
// stays off and sshd itself runs bound to the VRF, so management logins
// are possible through the management network only, also after a reboot.
func TestE2ESSHDVRFOnly(t *testing.T) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	s := guestScenario(ctx, t, "sshd vrf-only")
	s.R.Step("sshd bound to the VRF (--sshd vrf-only)", "no l3mdev accept sysctl; sshd's sockets are bound to mgmt")
	s.WaitOnline(ctx, "vrf-only")
	out, errOut, code := s.run(ctx, "vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0 --sshd vrf-only")
	s.check("vrf-only/apply succeeds", code == 0, "exit %d\n%s%s", code, out, errOut)

	verify := func(stage string) {
		out, _, _ := s.run(ctx, "sysctl -n net.ipv4.tcp_l3mdev_accept")
		s.check(stage+"/tcp_l3mdev_accept stays 0", strings.TrimSpace(out) == "0", "got %q", out)
		// apply queues sshd's restart (--no-block) rather than waiting for it.
		out, _, _ = s.run(ctx, "for i in $(seq 60); do ss -Htln 'sport = :22' | grep -q '%mgmt:22' && break; sleep 0.5; done; ss -Htln 'sport = :22'")
		s.check(stage+"/sshd listens bound to mgmt", strings.Contains(out, "%mgmt:22"), "ss: %q", out)
		out, _, code := s.run(ctx, sshCmd("alice", "echo reached"))
		s.check(stage+"/ssh through eth0 (the management network) works", code == 0 && strings.Contains(out, "reached"), "exit %d, output %q", code, out)
		out, errOut, code = s.run(ctx, "ssh -i "+vm.GuestSSHKey+" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 alice@127.0.0.1 echo reached")
		s.check(stage+"/ssh from the default VRF is refused", code != 0 && !strings.Contains(out, "reached"), "exit %d, output %q %q", code, out, errOut)
		out, _, code = s.run(ctx, "vrf-netsetup check --vrf mgmt --iface eth0 --query-name "+vm.MirrorName+" | grep -v '^ok' ; exit ${PIPESTATUS[0]}")
		s.check(stage+"/vrf-netsetup check passes (pam and policy aside)", !strings.Contains(strings.ReplaceAll(strings.ReplaceAll(out, "FAIL pam:", ""), "FAIL policy:", ""), "FAIL"), "exit %d, output %q", code, out)
	}
	verify("vrf-only")
	if s.Reboot(ctx) {
		s.WaitOnline(ctx, "vrf-only after reboot")
		verify("vrf-only after reboot")
	}
}
