//go:build vm

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pam-vrf/pam-vrf/tests/vm"
)

// vrfOnlyShell is sourced after netsetupShell by TestE2ESSHDVRFOnly's
// scripts: after a failed apply's rollback ssh.service runs and listens
// unbound.
const vrfOnlyShell = `
A="$A --sshd vrf-only"
after_fault() {
	unbound22
	echo "$o" | grep -q sshd && ! echo "$o" | grep -q '%' && systemctl is-active --quiet ssh.service
	res $? "$1: ssh.service runs, listening unbound"
	[ ! -e /etc/systemd/system/ssh.service.d/pam-vrf.conf ] && [ -z "$(systemctl show -p BPFProgram --value ssh.service)" ]
	res $? "$1: no drop-in or BPFProgram= left on ssh.service"
}
`

// TestE2ESSHDVRFOnly: with `--sshd vrf-only`, the l3mdev accept sysctl
// stays off and sshd itself runs bound to the VRF, so management logins
// are possible through the management network only, also after a reboot.
func TestE2ESSHDVRFOnly(t *testing.T) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), faultTime(20*time.Minute))
	defer cancel()
	s := guestScenario(ctx, t, "sshd vrf-only")
	s.R.Step("sshd bound to the VRF (--sshd vrf-only)", "no l3mdev accept sysctl; sshd's sockets are bound to mgmt")
	s.WaitOnline(ctx, "vrf-only")
	// Issue 16 on this shape: a failure once sshd's program is pinned
	// (before ssh.service is restarted with it) rolls back to an sshd
	// that listens unbound.
	pushFaultBuild(ctx, t, s.VM)
	run := guestScripts(ctx, t, s.VM, s.R.(*testReporter), netsetupShell+vrfOnlyShell)
	run("before apply", `online; res $? "before/eth0 online"; snap > /root/s0`, 2*time.Minute)
	run("a step that fails rolls everything back (fault build: fail-at-step)",
		failAtStepScript("pin the sock_create program"), faultTime(5*time.Minute))
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
		// DNS over TCP from the default VRF with tcp_l3mdev_accept 0: the
		// connect hooks bind the resolver's socket to mgmt
		out, _, _ = s.run(ctx, "vrf-netsetup check --vrf mgmt --iface eth0 --query-name "+vm.MirrorName+" | grep -E '^(ok|FAIL) +dns paths'")
		s.check(stage+"/check: DNS over TCP answers from the VRF and from the default VRF", strings.HasPrefix(out, "ok   dns paths: 192.0.2.1") && strings.Contains(out, "over UDP and TCP, from VRF mgmt and from the default VRF"), "output %q", out)
	}
	verify("vrf-only")
	// The control: without the hooks the same TCP query from the default
	// VRF gets no answer (the SYN leaves through eth0 by the steering
	// rule; the answer arrives through mgmt, and no unbound socket takes
	// it while tcp_l3mdev_accept is 0); apply puts them back.
	out, _, _ = s.run(ctx, "ls /sys/fs/bpf/pam-vrf/; rm /sys/fs/bpf/pam-vrf/dns4-mgmt; vrf-netsetup check --vrf mgmt --iface eth0 --query-name "+vm.MirrorName+" | grep -E '^(ok|FAIL) +dns paths'")
	// (resolved's per-link server: no steering rule, so UDP fails as well
	// from a socket without resolved's IP_UNICAST_IF)
	s.check("no hooks/check: the default VRF gets no TCP answer, and check names apply as the fix", strings.Contains(out, "dns4-mgmt") && strings.Contains(out, "FAIL dns paths: the default VRF gets no answer from a management nameserver") && strings.Contains(out, "tcp to 192.0.2.1:53 from the default VRF") && strings.Contains(out, "vrf-netsetup apply"), "output %q", out)
	out, errOut, code = s.run(ctx, "vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0 --sshd vrf-only")
	s.check("no hooks/apply attaches them again", code == 0 && strings.Contains(out, "bind sockets connecting to 192.0.2.1"), "exit %d\n%s%s", code, out, errOut)
	verify("hooks back")
	if !s.Reboot(ctx) {
		return
	}
	s.WaitOnline(ctx, "vrf-only after reboot")
	verify("vrf-only after reboot")

	// revert must hand sshd an unbound listener again: one left bound to
	// the VRF revert deletes accepts nothing at all.
	unbound := func(stage string) {
		// revert queues sshd's restart (--no-block): wait for a listener
		// that is there and unbound, not merely for the bound one to go
		out, _, _ := s.run(ctx, "for i in $(seq 60); do o=$(ss -Htln 'sport = :22'); [ -n \"$o\" ] && ! echo \"$o\" | grep -q '%mgmt' && break; sleep 0.5; done; ss -Htln 'sport = :22'")
		s.check(stage+"/sshd listens unbound again", strings.Contains(out, ":22") && !strings.Contains(out, "%mgmt"), "ss: %q", out)
		// eth0 leaves the VRF and runs DHCP again: under CI load networkd
		// can still be "configuring" it when revert's settle wait (60 s)
		// gives up (revert warns); ssh needs the lease back
		s.WaitOnline(ctx, stage)
		out, _, code := s.run(ctx, "for i in 1 2 3; do "+sshCmd("alice", "echo reached")+" && break; sleep 2; done")
		s.check(stage+"/ssh through eth0 works", code == 0 && strings.Contains(out, "reached"), "exit %d, output %q", code, out)
		out, errOut, code := s.run(ctx, "ssh -i "+vm.GuestSSHKey+" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 alice@127.0.0.1 echo reached")
		s.check(stage+"/ssh from the default VRF works", code == 0 && strings.Contains(out, "reached"), "exit %d, output %q %q", code, out, errOut)
	}
	out, errOut, code = s.run(ctx, "vrf-netsetup revert")
	s.check("revert/revert succeeds", code == 0, "exit %d\n%s%s", code, out, errOut)
	unbound("revert")
	out, _, _ = s.run(ctx, "ls /sys/fs/bpf/pam-vrf/")
	s.check("revert/the nameserver connect hooks are gone", !strings.Contains(out, "dns4-") && !strings.Contains(out, "dns6-"), "ls: %q", out)

	s.R.Step("Socket-activated sshd (ssh.socket)", "apply leaves the socket in charge: its listener is bound, ssh.service is not started next to it, open sessions stay")
	out, errOut, code = s.run(ctx, "systemctl disable --now ssh.service && systemctl enable --now ssh.socket && systemctl is-active ssh.socket")
	s.check("socket/ssh.socket replaces ssh.service", code == 0, "exit %d\n%s%s", code, out, errOut)
	s.WaitOnline(ctx, "socket")
	s.run(ctx, sshCmd("alice", "exec sleep 300")+" >/dev/null 2>&1 & for i in $(seq 40); do pgrep -u alice -x sleep && break; sleep 0.5; done")
	out, errOut, code = s.run(ctx, "vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0 --sshd vrf-only --force")
	s.check("socket/apply succeeds (--force: alice's session comes in through eth0)", code == 0, "exit %d\n%s%s", code, out, errOut)
	s.check("socket/apply restarts ssh.socket, not ssh.service", strings.Contains(out, "restart ssh.socket") && !strings.Contains(out, "restart ssh.service"), "output %q", out)
	out, _, _ = s.run(ctx, "systemctl is-active ssh.service; systemctl is-active ssh.socket; cat /run/systemd/system/ssh.socket.d/pam-vrf.conf")
	s.check("socket/ssh.service stays inactive, ssh.socket active with BindToDevice=mgmt", strings.HasPrefix(out, "inactive\nactive\n") && strings.Contains(out, "BindToDevice=mgmt"), "output %q", out)
	out, _, _ = s.run(ctx, "ss -Htlnp 'sport = :22'")
	s.check("socket/the socket's listener is bound to mgmt", strings.Contains(out, "%mgmt:22") && strings.Contains(out, "systemd") && !strings.Contains(out, "0.0.0.0:22 "), "ss: %q", out)
	out, _, code = s.run(ctx, sshCmd("alice", "echo reached"))
	s.check("socket/ssh through eth0 works", code == 0 && strings.Contains(out, "reached"), "exit %d, output %q", code, out)
	out, errOut, code = s.run(ctx, "ssh -i "+vm.GuestSSHKey+" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 alice@127.0.0.1 echo reached")
	s.check("socket/ssh from the default VRF is refused", code != 0 && !strings.Contains(out, "reached"), "exit %d, output %q %q", code, out, errOut)
	out, _, code = s.run(ctx, "pgrep -u alice -x sleep")
	s.check("socket/alice's open session survived apply", code == 0, "exit %d, output %q", code, out)
	out, _, code = s.run(ctx, "vrf-netsetup check --vrf mgmt --iface eth0 --query-name "+vm.MirrorName+" | grep -E '^(ok|FAIL) +sshd'")
	s.check("socket/check's sshd line names the socket", strings.HasPrefix(out, "ok   sshd:") && strings.Contains(out, "ssh.socket listener"), "exit %d, output %q", code, out)
	// (the pid is whichever holder of the listening socket check meets
	// first: systemd, or a per-connection sshd that inherited it)
	s.check("socket/check's sshd listen line finds the socket's listener bound to mgmt", strings.Contains(out, "ok   sshd listen:") && strings.Contains(out, ":22%mgmt (pid "), "exit %d, output %q", code, out)

	// The socket's binding is a runtime drop-in: every boot starts the
	// stock socket and the boot unit binds it once mgmt is up; when the
	// boot unit fails, sshd must still answer (unbound, default VRF).
	listener := func(stage string, bound bool) {
		want := "%mgmt:22"
		if !bound {
			want = ":22"
		}
		out, _, _ := s.run(ctx, "for i in $(seq 120); do o=$(ss -Htlnp 'sport = :22'); echo \"$o\" | grep -q '"+want+"' && { [ "+map[bool]string{true: "1", false: "0"}[bound]+" = 1 ] || ! echo \"$o\" | grep -q '%mgmt'; } && break; sleep 0.5; done; ss -Htlnp 'sport = :22'")
		ok := strings.Contains(out, want) && strings.Contains(out, "systemd") && (bound || !strings.Contains(out, "%mgmt"))
		s.check(stage+"/the ssh.socket listener is "+map[bool]string{true: "bound to mgmt", false: "unbound"}[bound], ok, "ss: %q", out)
	}
	sshWorks := func(stage, from string, works bool) {
		cmd := sshCmd("alice", "echo reached")
		if from == "default VRF" {
			cmd = "ssh -i " + vm.GuestSSHKey + " -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 alice@127.0.0.1 echo reached"
		}
		out, _, code := s.run(ctx, cmd)
		verdict := map[bool]string{true: "works", false: "is refused"}[works]
		s.check(stage+"/ssh from "+from+" "+verdict, (code == 0 && strings.Contains(out, "reached")) == works, "exit %d, output %q", code, out)
	}
	if !s.Reboot(ctx) {
		return
	}
	s.WaitOnline(ctx, "socket after reboot")
	listener("socket after reboot", true)
	sshWorks("socket after reboot", "eth0", true)
	sshWorks("socket after reboot", "default VRF", false)
	out, _, _ = s.run(ctx, "systemctl is-active ssh.socket pam-vrf-netsetup.service; systemctl is-failed ssh.socket")
	s.check("socket after reboot/ssh.socket and the boot unit active, ssh.socket never failed", strings.HasPrefix(out, "active\nactive\nactive\n"), "output %q", out)

	s.R.Step("The boot unit fails (socket-activated sshd)", "sshd must still start and answer from the default VRF; check names the problem")
	out, errOut, code = s.run(ctx, "mkdir -p /etc/systemd/system/pam-vrf-netsetup.service.d && printf '[Service]\\nExecStart=\\nExecStart=/bin/false\\n' > /etc/systemd/system/pam-vrf-netsetup.service.d/zz-broken.conf && systemctl daemon-reload")
	s.check("boot unit fails/break the boot unit", code == 0, "exit %d\n%s%s", code, out, errOut)
	if !s.Reboot(ctx) {
		return
	}
	out, _, _ = s.run(ctx, "systemctl is-system-running --wait >/dev/null; systemctl is-failed pam-vrf-netsetup.service; systemctl is-active ssh.socket")
	s.check("boot unit fails/the boot unit failed, ssh.socket is active", strings.HasPrefix(out, "failed\nactive\n"), "output %q", out)
	listener("boot unit fails", false)
	sshWorks("boot unit fails", "default VRF", true)
	// the failsafe (ExecStopPost=): the unbound listener answers through
	// the VRF's eth0 too, or this would be a lock-out on a one-NIC box
	out, _, _ = s.run(ctx, "sysctl -n net.ipv4.tcp_l3mdev_accept; journalctl -b -u pam-vrf-netsetup.service -o cat | grep -c 'answers through the VRF'")
	f := strings.Fields(out) // the sysctl, then how many journal lines say why
	s.check("boot unit fails/the failsafe set tcp_l3mdev_accept=1 and said why in the journal", len(f) == 2 && f[0] == "1" && f[1] != "0", "output %q", out)
	sshWorks("boot unit fails", "eth0", true)
	out, _, code = s.run(ctx, "vrf-netsetup check --vrf mgmt --iface eth0 --query-name "+vm.MirrorName+" | grep -E '^FAIL +(sshd|boot unit)'")
	s.check("boot unit fails/check fails on sshd and names the fix", strings.Contains(out, "FAIL sshd:") && strings.Contains(out, "--sshd vrf-only"), "exit %d, output %q", code, out)
	s.check("boot unit fails/check sees the unbound ssh.socket listener itself", strings.Contains(out, "FAIL sshd listen:") && strings.Contains(out, "restart ssh.socket"), "exit %d, output %q", code, out)
	s.check("boot unit fails/check names the failed boot unit and where to look", strings.Contains(out, "FAIL boot unit: pam-vrf-netsetup.service failed") && strings.Contains(out, "journalctl -b -u pam-vrf-netsetup.service"), "exit %d, output %q", code, out)
	out, errOut, code = s.run(ctx, "rm -r /etc/systemd/system/pam-vrf-netsetup.service.d && systemctl daemon-reload && systemctl restart pam-vrf-netsetup.service")
	s.check("boot unit fails/mended, the boot unit runs", code == 0, "exit %d\n%s%s", code, out, errOut)
	listener("mended", true)
	sshWorks("mended", "eth0", true)
	out, _, _ = s.run(ctx, "sysctl -n net.ipv4.tcp_l3mdev_accept")
	s.check("mended/apply set tcp_l3mdev_accept back to 0", strings.TrimSpace(out) == "0", "got %q", out)
	sshWorks("mended", "default VRF", false)

	out, errOut, code = s.run(ctx, "vrf-netsetup revert")
	s.check("socket/revert succeeds", code == 0, "exit %d\n%s%s", code, out, errOut)
	out, _, _ = s.run(ctx, "systemctl is-active ssh.service; systemctl is-active ssh.socket; ls /run/systemd/system/ssh.socket.d/ /etc/systemd/system/ssh.socket.d/ 2>&1")
	s.check("socket/after revert: ssh.socket still in charge, drop-in gone", strings.HasPrefix(out, "inactive\nactive\n") && !strings.Contains(out, "pam-vrf.conf"), "output %q", out)
	unbound("socket revert")
}
