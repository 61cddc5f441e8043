//go:build vm

// Package e2e is the end-to-end scenario of pam-vrf in a VRF-capable guest
// (tests/vm): the DNS failure of a hand-made management VRF, the fix by
// vrf-netsetup, ssh logins placed by pam_vrf.so, and a reboot. `make e2e`
// runs it as a test; `make demo` runs it as a narrated walk-through.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pam-vrf/pam-vrf/tests/vm"
)

// Reporter receives the scenario's narration and its assertions.
type Reporter interface {
	Step(title, why string)                       // a new stage of the story
	Command(cmd, stdout, stderr string, code int) // a command run in the guest
	Check(name string, ok bool, detail string)    // one assertion
	Note(text string)                             // a figure or remark worth printing
}

// Scenario drives one guest.
type Scenario struct {
	VM    *vm.VM
	Build string // directory holding pam_vrf.so and vrf-netsetup
	Debs  string // directory holding the .debs; when set, Install uses them
	R     Reporter
	// Break deliberately breaks one part of the product, to show which
	// assertions catch it: "no-pam" (module never enabled), "no-dns"
	// (apply with --dns none), "no-l3mdev-accept" (sshd sysctls off).
	Break string
}

// sshCmd logs in from the upstream namespace over the guest's eth0, the way
// an operator reaches a management interface.
func sshCmd(user, remote string) string {
	return fmt.Sprintf("ip netns exec %s ssh -i %s -o BatchMode=yes -o StrictHostKeyChecking=no "+
		"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=20 -o ServerAliveInterval=5 -o ServerAliveCountMax=6 %s@%s %s",
		vm.UpstreamNetns, vm.GuestSSHKey, user, vm.GuestAddr4, shq(remote))
}

// guestPolicy is the pam_vrf policy of the e2e guests.
const guestPolicy = `# alice's and root's logins land in the management VRF; everyone else is left alone.
[user.alice]
vrf = "mgmt"
[user.root]
vrf = "mgmt"
`

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (s *Scenario) run(ctx context.Context, script string) (string, string, int) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, errOut, code, err := s.VM.Run(rctx, script)
	if err != nil {
		errOut += "\n(transport error: " + err.Error() + ")"
		code = -1
	}
	s.R.Command(script, out, errOut, code)
	return out, errOut, code
}

func (s *Scenario) check(name string, ok bool, format string, a ...any) bool {
	s.R.Check(name, ok, fmt.Sprintf(format, a...))
	return ok
}

// whyReporter is a Reporter that keeps, for a failure, a one-line why
// next to the check's name (the e2e summary: CI shows little else).
type whyReporter interface {
	CheckWhy(name string, ok bool, why, detail string)
}

// checkWhy is check with why, a short reason for a failure's summary line.
func (s *Scenario) checkWhy(name string, ok bool, why string, format string, a ...any) bool {
	if w, is := s.R.(whyReporter); is {
		w.CheckWhy(name, ok, why, fmt.Sprintf(format, a...))
		return ok
	}
	return s.check(name, ok, format, a...)
}

// Install puts pam-vrf into the guest the way an admin would: the Debian
// packages when Debs is set (dpkg -i; the module is then enabled in
// Provision with pam-auth-update), else the bare build artifacts.
func (s *Scenario) Install(ctx context.Context) error {
	if s.Debs != "" {
		debs, _ := filepath.Glob(filepath.Join(s.Debs, "*.deb"))
		if len(debs) == 0 {
			return fmt.Errorf("install: no .deb in %s (run make deb)", s.Debs)
		}
		var names []string
		for _, d := range debs {
			dst := "/root/debs/" + filepath.Base(d)
			if err := s.VM.Push(ctx, d, dst, 0o644); err != nil {
				return fmt.Errorf("install %s: %w", d, err)
			}
			names = append(names, dst)
		}
		out, errOut, code := s.run(ctx, "dpkg -i "+strings.Join(names, " "))
		if code != 0 {
			return fmt.Errorf("install: dpkg -i exited %d\n%s%s", code, out, errOut)
		}
		return nil
	}
	for _, f := range []struct {
		src, dst string
		mode     os.FileMode
	}{
		{"pam_vrf.so", vm.GuestPAMModule, 0o644},
		{"pam_vrf/core.so", vm.GuestPAMCore, 0o644},
		{"vrf-netsetup", vm.GuestNetsetup, 0o755},
	} {
		if err := s.VM.Push(ctx, filepath.Join(s.Build, f.src), f.dst, f.mode); err != nil {
			return fmt.Errorf("install %s: %w", f.src, err)
		}
	}
	return nil
}

// Before reproduces the failure: a management VRF made by hand, the way the
// blog post does it, breaks name resolution inside the VRF although routing
// through it works.
func (s *Scenario) Before(ctx context.Context) {
	s.R.Step("Before pam-vrf: a management VRF made by hand",
		"eth0 and its default route go into VRF mgmt; systemd-resolved's stub 127.0.0.53 stays bound to lo in the default VRF")
	s.WaitOnline(ctx, "before")
	_, _, code := s.run(ctx, `set -e
modprobe vrf
gw=$(ip -4 route show default dev eth0 | awk '{print $3; exit}')
ip link add mgmt type vrf table 1000
ip link set mgmt up
ip link set eth0 master mgmt
# Enslaving cycles eth0; its connected route reappears in table 1000 when
# the link is back up, and only then is the gateway reachable.
for i in $(seq 100); do ip route add default via "$gw" dev eth0 table 1000 2>/dev/null && break; sleep 0.1; done
ip route show vrf mgmt | grep '^default'`)
	s.check("before/hand-made VRF set up", code == 0, "exit %d", code)
	_, _, code = s.run(ctx, "ip vrf exec mgmt curl -sf --max-time 10 -o /dev/null http://"+vm.UpstreamAddr4+vm.MirrorPath)
	s.check("before/routing through the VRF works (HTTP by address)", code == 0, "exit %d", code)
	out, _, code := s.run(ctx, "ip vrf exec mgmt getent hosts "+vm.MirrorName)
	s.check("before/DNS inside the VRF fails (the problem is reproduced)", code != 0, "exit %d, output %q", code, out)
}

// Provision writes the policy and the PAM line and runs vrf-netsetup.
func (s *Scenario) Provision(ctx context.Context) {
	s.R.Step("Provision with vrf-netsetup and enable pam_vrf.so",
		"policy: alice and root -> mgmt, bob has no rule; pam_vrf.so enabled with pam-auth-update (after pam_systemd)")
	_, _, code := s.run(ctx, `set -e
BREAK=`+shq(s.Break)+`
cat > /etc/security/pam_vrf.toml <<'EOF'
`+guestPolicy+`EOF
chmod 0644 /etc/security/pam_vrf.toml
if [ "$BREAK" = no-pam ]; then
  echo "deliberately not enabling pam_vrf.so"
elif [ -f /usr/share/pam-configs/vrf ]; then
  pam-auth-update --enable vrf
  grep -n 'pam_systemd\|pam_vrf' /etc/pam.d/common-session
else
  grep -q pam_vrf.so /etc/pam.d/sshd || echo 'session required pam_vrf.so' >> /etc/pam.d/sshd
  tail -n 3 /etc/pam.d/sshd
fi`)
	s.check("provision/policy and PAM line installed", code == 0, "exit %d", code)

	apply := "vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0"
	switch s.Break {
	case "no-dns":
		apply += " --dns none"
	}
	out, errOut, code := s.run(ctx, apply)
	s.check("provision/vrf-netsetup apply succeeds", code == 0, "exit %d\n%s%s", code, out, errOut)
	out, _, code = s.run(ctx, apply)
	s.check("provision/second apply changes nothing", code == 0 && strings.Contains(out, "nothing to do"), "exit %d, output %q", code, out)
	if s.Break == "no-l3mdev-accept" {
		s.run(ctx, "sysctl -w net.ipv4.tcp_l3mdev_accept=0 && sed -i s/=1/=0/ /etc/sysctl.d/60-pam-vrf.conf")
	}
	s.Check(ctx, "provision")
}

// Check runs vrf-netsetup check once the applies the nameserver watch
// (pam-vrf-dns.path) started are done: after a boot the lease's and the
// RA's nameservers arrive after the boot unit ran, and the watch's apply
// steers them; check may wait up to 60 s for that, and says how long.
func (s *Scenario) Check(ctx context.Context, stage string) {
	out, errOut, code := s.run(ctx, `for i in $(seq 30); do
	while [ "$(systemctl is-active pam-vrf-dns.service)" = activating ]; do sleep 0.5; done
	flock /run/pam-vrf/apply.lock true 2>/dev/null
	vrf-netsetup check --vrf mgmt --iface eth0 --query-name `+vm.MirrorName+` > /tmp/check.out 2>&1; rc=$?
	[ $rc = 0 ] && ! grep -q FAIL /tmp/check.out && break
	sleep 2
done
cat /tmp/check.out; echo "check passed after $i attempt(s)" >&2; exit $rc`)
	s.check(stage+"/vrf-netsetup check passes", code == 0 && !strings.Contains(out, "FAIL"), "exit %d\n%s%s", code, out, errOut)
}

// ipRe matches a resolved mirror.test line of getent hosts (which asks for
// IPv6 first, so either address counts).
var ipRe = regexp.MustCompile(`(?m)^(` + regexp.QuoteMeta(vm.UpstreamAddr4) + `|` + regexp.QuoteMeta(vm.UpstreamAddr6) + `)\s+` + regexp.QuoteMeta(vm.MirrorName))

// Logins checks what ssh users get.
func (s *Scenario) Logins(ctx context.Context, stage string) {
	s.R.Step("ssh logins ("+stage+")", "alice is placed in mgmt by pam_vrf.so; bob is not")
	out, _, code := s.run(ctx, sshCmd("alice", `echo "vrf=[$(ip vrf identify)]"
getent hosts `+vm.MirrorName+`
curl -sf --max-time 10 http://`+vm.MirrorName+vm.MirrorPath+` | head -n 1
echo "self=$$"; ip vrf pids mgmt
loginctl show-session "$XDG_SESSION_ID" -p State -p Remote`))
	s.check(stage+"/alice's shell is in VRF mgmt (ip vrf identify)", code == 0 && strings.Contains(out, "vrf=[mgmt]"), "exit %d, output %q", code, out)
	s.check(stage+"/name resolution works in alice's shell", ipRe.MatchString(out), "output %q", out)
	s.check(stage+"/HTTP fetch by name works in alice's shell", strings.Contains(out, "Origin: pam-vrf-test"), "output %q", out)
	self := regexp.MustCompile(`self=(\d+)`).FindStringSubmatch(out)
	s.check(stage+"/ip vrf pids mgmt lists the session's shell", self != nil && regexp.MustCompile(`(?m)^\s*`+self[1]+`\s`).MatchString(out), "output %q", out)
	s.check(stage+"/logind tracks the placed session", strings.Contains(out, "State=active") && strings.Contains(out, "Remote=yes"), "output %q", out)

	// ip vrf exec needs root (CAP_BPF, CAP_NET_ADMIN): root's login is
	// placed too, and iproute2 then attaches into the very cgroup pam_vrf
	// made, with the same flags, so the kernel must not refuse it.
	out, errOut, code := s.run(ctx, sshCmd("root", `ip vrf identify; ip vrf exec mgmt sh -c 'echo exec-ok in $(ip vrf identify)'`))
	s.check(stage+"/ip vrf exec mgmt works in a placed root shell (no EPERM)", code == 0 && strings.Contains(out, "exec-ok in mgmt"), "exit %d, output %q %q", code, out, errOut)

	out, _, code = s.run(ctx, sshCmd("bob", `echo "vrf=[$(ip vrf identify)]"`))
	s.check(stage+"/bob (no rule) lands in the default VRF", code == 0 && strings.Contains(out, "vrf=[]"), "exit %d, output %q", code, out)

	// systemd removes a session's scope, and the VRF cgroup below it (and
	// with it the attached program), when the session ends.
	out, _, _ = s.run(ctx, `for i in $(seq 50); do
  n=$(find /sys/fs/cgroup/user.slice -type d -path '*/vrf/mgmt' | wc -l); [ "$n" = 0 ] && break; sleep 0.2
done; echo "left=$n"`)
	s.check(stage+"/ended sessions leave no VRF cgroup behind", strings.Contains(out, "left=0"), "output %q", out)

	out, _, code = s.run(ctx, "getent hosts "+vm.MirrorName)
	s.check(stage+"/name resolution still works in the default VRF", code == 0 && ipRe.MatchString(out), "exit %d, output %q", code, out)
}

// mgrlogShell: mgrlog SINCE prints the addresses and routes now, and
// what the network managers, DHCP clients and the DHCP server (dnsmasq in
// netns upstream) logged since epoch SINCE, for the reader of a failure.
const mgrlogShell = `
mgrlog() {
	ip -br addr | sed 's/^/| now: /'; ip route | sed 's/^/| now: /'
	# where journald waits now (its kernel stack names the lock when the
	# journal has stalled)
	cat /proc/$(pidof systemd-journald)/stack 2>/dev/null | head -n 12 | sed 's/^/| journald: /'
	journalctl --since "@$1" -u systemd-networkd -u NetworkManager -u networking -u dhcpcd -u pamvrf-dnsmasq -t dhclient -o short-monotonic --no-pager |
		grep -vE 'dnsmasq-dhcp.*(sent size|requested options|next server|tags:|available DHCP range|client provides name)' | tail -n 80 | cut -c1-220 | sed 's/^/| log: /'
}
# dhcpdebug SINCE: for a link networkd left without its IPv4 lease: turns
# networkd's debug log on for 70 s (a DHCPv4 client in backoff sends again
# within 64 s), then prints what its DHCPv4 client and the DHCP server did
# since epoch SINCE: whether DISCOVERs go out, reach the server, and
# whether its OFFERs come back
dhcpdebug() {
	local D=$(date +%s)
	systemctl service-log-level systemd-networkd debug 2>/dev/null; sleep 70
	systemctl service-log-level systemd-networkd info 2>/dev/null
	networkctl status eth0 --no-pager -n 0 2>/dev/null | sed 's/^/| dhcpdebug status: /'
	journalctl --since "@$1" -u pamvrf-dnsmasq -o short-monotonic --no-pager | grep -E 'DHCP[A-Z]+\(' | tail -n 20 | cut -c1-160 | sed 's/^/| dhcpdebug dnsmasq: /'
	journalctl --since "@$D" -u systemd-networkd -o short-monotonic --no-pager | grep -iE 'eth0.*(dhcp|DISCOVER|OFFER|REQUEST|ACK|NAK|lease|state|carrier|link)|DHCP CLIENT' | tail -n 60 | cut -c1-200 | sed 's/^/| dhcpdebug networkd: /'
	# which kick brings the lease back, mildest first
	local k i
	has4() { ip -4 addr show dev eth0 | grep -q 'inet '; }
	for k in "networkctl renew eth0" "networkctl reconfigure eth0" "networkctl down eth0; networkctl up eth0" "systemctl restart systemd-networkd"; do
		has4 && break
		eval "$k" 2>/dev/null
		for i in $(seq 60); do has4 && break; sleep 0.5; done
		has4 && echo "| dhcpdebug kick: $k: lease back after ${i}x0.5 s" || echo "| dhcpdebug kick: $k: no lease 30 s on"
	done
}
# dhcpwhy SINCE: one line for a failure's why (CI shows only those): eth0's
# IPv4 address, networkd state and IPv6 default route now, the DHCP
# server's DHCP and RA messages since epoch SINCE, networkd's last line on
# eth0, and whether journald keeps up (pamvrf-journalwatch's last note: a
# "journal stalled" not yet followed by "caught up" is a stall going on;
# the summary keeps a why's first 320 characters, so these come first): a
# guest whose journal stopped taking lines for minutes (seen
# once: no entry from anyone for 200 s) stalls networkd, whose every log
# line then waits up to 10 s
dhcpwhy() {
	local a st c m j v6 js
	js=$(tail -n 1 /var/lib/pamvrf-journalwatch/stalls 2>/dev/null)
	case "$js" in
	*"journal stalled"*) j="JOURNAL STALLED now (journald waits in $(cat /proc/$(pidof systemd-journald)/wchan 2>/dev/null))" ;;
	*) j="journal ok" ;;
	esac
	a=$(ip -4 -o addr show dev eth0 | awk '{print $4}' | tr '\n' ' ')
	st=$(networkctl --no-legend list eth0 2>/dev/null | awk '{print $4 "/" $5}')
	c=$(journalctl --since "@$1" -u pamvrf-dnsmasq -o cat --no-pager 2>/dev/null | grep -oE 'DHCP(DISCOVER|OFFER|REQUEST|ACK|NAK|RELEASE|DECLINE)|RTR-(SOLICIT|ADVERT)' | sort | uniq -c | awk '{printf "%s %s ", $2, $1}')
	v6=$(ip -6 route show table all default dev eth0 | grep -q via && echo "v6 RA default" || echo "NO v6 default")
	m=$(journalctl --since "@$1" -u systemd-networkd -o cat --no-pager 2>/dev/null | grep 'eth0' | tail -n 1 | cut -c1-90)
	echo "eth0 v4 [${a% }] ${st:-?}, $v6; $j${js:+ (journalwatch: $js)}; dnsmasq since: ${c:-nothing}; networkd: ${m:-nothing}"
}
`

// WaitOnline waits until eth0 has its DHCP lease and default route: the
// agent answers as soon as systemd has booted, which can be before that.
func (s *Scenario) WaitOnline(ctx context.Context, stage string) {
	out, _, code := s.run(ctx, mgrlogShell+`T=$(date +%s)
/lib/systemd/systemd-networkd-wait-online -i eth0 --timeout=60 &&
for i in $(seq 150); do ip route show vrf mgmt 2>/dev/null | grep -q '^default via' && exit 0
ip route show default dev eth0 | grep -q via && exit 0; sleep 0.2; done
dhcpwhy "$T"; exit 1`)
	why := ""
	if code != 0 {
		why = "(" + strings.TrimSpace(out) + ")"
	}
	if !s.checkWhy(stage+"/eth0 is online with a default route", code == 0, why, "exit %d, %s", code, out) {
		s.run(ctx, mgrlogShell+`mgrlog "$(( $(date +%s) - 300 ))"`)
	}
}

// Reboot reboots the guest on the same disk.
func (s *Scenario) Reboot(ctx context.Context) bool {
	s.R.Step("Reboot", "everything must come back from the persisted configuration")
	err := s.VM.Reboot(ctx)
	if !s.check("reboot/guest comes back", err == nil, "%v", err) {
		return false
	}
	cycles := orderingCycles(ctx, s.VM)
	s.check("reboot/no ordering cycle at boot (systemd deletes a job to break one)", cycles == "", "%s", cycles)
	return true
}

// Soak logs in n times in a row (in 4 parallel streams), each login a new
// sshd connection, so a new monitor process that loads pam_vrf.so and runs
// its Go code once; sshd must neither hang nor crash.
func (s *Scenario) Soak(ctx context.Context, n int) {
	s.R.Step(fmt.Sprintf("%d ssh logins in a row", n), "each login loads the module into a fresh sshd monitor and places the session")
	start := time.Now()
	// Batches of up to 40 logins in 4 parallel streams: under TCG one
	// login costs 2-4 s, and one guest command may run 5 minutes at most.
	total, done, sshdUp := 0, 0, true
	for done < n && sshdUp {
		batch := min(40, n-done)
		out, _, _ := s.run(ctx, fmt.Sprintf(`for stream in 1 2 3 4; do
  ( good=0; for i in $(seq $(( (%d + 4 - stream) / 4 ))); do
      v=$(%s) && [ "$v" = mgmt ] && good=$((good+1))
    done; echo "stream $stream: $good" ) &
done; wait
systemctl is-active ssh`, batch, sshCmd("alice", "ip vrf identify")))
		for _, m := range regexp.MustCompile(`stream \d: (\d+)`).FindAllStringSubmatch(out, -1) {
			var k int
			fmt.Sscan(m[1], &k)
			total += k
		}
		done += batch
		sshdUp = strings.HasSuffix(strings.TrimSpace(out), "\nactive")
	}
	s.check(fmt.Sprintf("soak/%d of %d logins placed in mgmt (%v)", total, n, time.Since(start).Round(time.Second)), total == n, "%d of %d attempted logins placed", total, done)
	out, _, code := s.run(ctx, `systemctl is-active ssh && ! journalctl -u ssh --since=-60min -o cat | grep -iE 'segfault|panic|fatal error|core dump|hung'`)
	s.check("soak/sshd still active, no crash in its log", sshdUp && code == 0, "exit %d, output %q", code, out)
}

// LoginRate compares ssh logins per second with pam_vrf.so in the stack and
// with its line commented out. A TCG guest on a shared host drifts and
// stalls, so the two sides alternate batch by batch (4 logins in parallel
// streams each, the order swapped every round) and each side's rate comes
// from its median batch: a stall hits one batch, not a whole side. It
// prints both rates, their ratio, and the spread of the ratio over the
// rounds (each round's two batches side by side), which says how far a
// short run can be trusted: 8 batches each way have read 81% to 108% here,
// 24 read 97%. The target (within 5%) is printed, not asserted: a timing
// is no test.
func (s *Scenario) LoginRate(ctx context.Context, perRound, rounds int) {
	const streams = 4
	batches := rounds * ((perRound + streams - 1) / streams)
	s.R.Step("Login rate with and without pam_vrf.so", fmt.Sprintf("%d batches of %d parallel logins each way, alternating", batches, streams))
	batch := fmt.Sprintf(`t0=$(date +%%s%%N)
for stream in $(seq %d); do
  ( %s >/dev/null 2>&1 || echo fail ) &
done; wait
t1=$(date +%%s%%N); echo "elapsed_ns $((t1-t0))"`, streams, sshCmd("alice", "true"))
	off := `cp /etc/pam.d/common-session /run/common-session.pamvrf && sed -i '/pam_vrf\.so/s/^/#PAMVRF-RATE-OFF /' /etc/pam.d/common-session && grep -c PAMVRF-RATE-OFF /etc/pam.d/common-session`
	on := `mv /run/common-session.pamvrf /etc/pam.d/common-session && grep -c '^[^#]*pam_vrf\.so' /etc/pam.d/common-session`
	elapsed := map[bool][]float64{}
	var paired []float64 // per round: the rate with over the rate without
	fails := 0
	for r := 0; r < batches; r++ {
		round := map[bool]float64{}
		for _, with := range []bool{r%2 == 0, r%2 != 0} {
			if !with {
				if out, _, code := s.run(ctx, off); code != 0 || strings.TrimSpace(out) != "1" {
					s.check("rate/module line switched off", false, "exit %d, %q", code, out)
					return
				}
			}
			out, _, _ := s.run(ctx, batch)
			fails += strings.Count(out, "fail")
			if m := regexp.MustCompile(`elapsed_ns (\d+)`).FindStringSubmatch(out); m != nil {
				ns, _ := strconv.ParseFloat(m[1], 64)
				elapsed[with] = append(elapsed[with], ns/1e9)
				round[with] = ns / 1e9
			}
			if !with {
				if out, _, code := s.run(ctx, on); code != 0 || strings.TrimSpace(out) != "1" {
					s.check("rate/module line restored", false, "exit %d, %q", code, out)
					return
				}
			}
		}
		if round[true] > 0 && round[false] > 0 {
			paired = append(paired, round[false]/round[true])
		}
	}
	median := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	mw, mo := median(elapsed[true]), median(elapsed[false])
	ok := fails == 0 && mw > 0 && mo > 0 && len(paired) > 0
	if ok {
		rateWith, rateWithout := streams/mw, streams/mo
		ratio := rateWith / rateWithout
		target := "MISS"
		if ratio >= 0.95 {
			target = "PASS"
		}
		q := slices.Clone(paired)
		slices.Sort(q)
		s.R.Note(fmt.Sprintf("login rate: with pam_vrf.so %.2f/s, without %.2f/s (same guest, %d alternating batches of %d parallel logins each way, median batch): %.1f%% of the rate without; target within 5%%: %s; round by round %.0f%% to %.0f%% (middle half of %d rounds)",
			rateWith, rateWithout, batches, streams, 100*ratio, target, 100*q[len(q)/4], 100*q[(3*len(q))/4], len(q)))
	}
	s.check("rate/every login of both runs succeeded", ok, "%d failed", fails)
}

// VRFRecreated deletes the VRF under a live session, checks that logins
// follow the failure rule while it is gone (no on_error anywhere: they
// continue unbound and are told), and that after re-creating it (with a new
// ifindex) new logins bind to the new device.
func (s *Scenario) VRFRecreated(ctx context.Context) {
	s.R.Step("The VRF disappears under live sessions, then comes back",
		"an admin whose VRF is missing still logs in, unplaced and told why; a re-created mgmt has a new ifindex that new logins must use")
	old, _, _ := s.run(ctx, "cat /sys/class/net/mgmt/ifindex")
	s.run(ctx, sshCmd("alice", "sleep 120")+" >/dev/null 2>&1 & sleep 3; ip link del mgmt")
	// Deleting the VRF also cycles eth0, the path ssh comes in on, so the
	// login attempt while mgmt is gone runs the sshd PAM stack in place,
	// with pamtester: same module, same policy, same failure rule.
	out, errOut, code := s.run(ctx, "pamtester -v sshd alice open_session close_session")
	s.check("vrf gone/alice's session opens (the default failure rule is allow)", code == 0 && strings.Contains(out, "successfully opened"), "exit %d, output %q %q", code, out, errOut)
	s.check("vrf gone/she is told why and that she is not in the VRF", strings.Contains(errOut+out, "pam_vrf: VRF mgmt is not available: the VRF device does not exist; this session continues without VRF placement"), "output %q %q", out, errOut)
	out, _, _ = s.run(ctx, "journalctl --since=-2min -o cat | grep 'pam_vrf' | tail -n 3")
	s.check("vrf gone/auth log names user, VRF and reason", strings.Contains(out, `user "alice" service "sshd" VRF "mgmt"`) && strings.Contains(out, "does not exist; session continues unbound (on_error=allow, the default)"), "output %q", out)
	// Nothing vrf-netsetup added captures traffic while the VRF is gone:
	// the DNS steering rule (to 192.0.2.1 iif lo lookup 1000) once met an
	// unreachable default left in table 1000 and blackholed every reply to
	// the DNS server's address (issue 16).
	out, _, code = s.run(ctx, "ip -4 route get 192.0.2.1; ip rule")
	s.check("vrf gone/the DNS server's address routes through eth0, not into a leftover VRF table", code == 0 && strings.Contains(out, "dev eth0"), "exit %d, output %q", code, out)
	out, _, code = s.run(ctx, "for i in 1 2 3; do "+sshCmd("root", "echo reached")+" && break; sleep 2; done")
	s.check("vrf gone/ssh from the DNS server's address (192.0.2.1) reaches the host", code == 0 && strings.Contains(out, "reached"), "exit %d, output %q", code, out)

	// --force: alice's sleeping session is an established ssh connection
	// through eth0, and apply's lockout guard rightly refuses otherwise.
	_, _, code = s.run(ctx, "vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0 --force")
	s.check("vrf back/vrf-netsetup apply re-creates it", code == 0, "exit %d", code)
	s.WaitOnline(ctx, "vrf back")
	now, _, _ := s.run(ctx, "cat /sys/class/net/mgmt/ifindex")
	s.check("vrf back/the new mgmt has a new ifindex", strings.TrimSpace(now) != "" && strings.TrimSpace(now) != strings.TrimSpace(old), "old %q new %q", old, now)
	out, _, code = s.run(ctx, sshCmd("alice", "ip vrf identify; getent hosts "+vm.MirrorName))
	s.check("vrf back/new logins are bound to the new mgmt and resolve names", code == 0 && strings.HasPrefix(out, "mgmt\n") && ipRe.MatchString(out), "exit %d, output %q", code, out)
	// A VRF lookup its table misses must not fall through to the main
	// table, here to a prefix only main has: the table's catch-all route
	// (default dev mgmt, made anew with the device) ends it in the VRF.
	// The VRF's default route would match first, so it is set aside for
	// the probe (as between a lease's expiry and the next one).
	out, _, code = s.run(ctx, "ip link add pvguard0 type dummy && ip addr add 203.0.113.10/24 dev pvguard0 && ip link set pvguard0 up && "+
		"def=$(ip -4 route show table 1000 default | grep via) && ip route del $def table 1000 && "+
		"{ ip route get 203.0.113.99 vrf mgmt; ip vrf exec mgmt curl -s --max-time 3 http://203.0.113.99/; echo curl=$?; ip route add $def table 1000; ip link del pvguard0; }")
	s.check("vrf back/VRF traffic does not leak into the main table (the catch-all route)", strings.Contains(out, "dev mgmt table 1000") && !strings.Contains(out, "pvguard0") && !strings.Contains(out, "curl=0"), "exit %d, output %q", code, out)
}

// orderingCycles: what systemd logged this boot about ordering cycles (it
// breaks one by deleting a job, e.g. the boot unit's: seen with a path
// unit ordered after it); "" when none.
func orderingCycles(ctx context.Context, m *vm.VM) string {
	out, _, _, err := m.Run(ctx, `journalctl -b -o cat --no-pager | grep -iE 'ordering cycle|to break ordering cycle' | head -n 5`)
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(out)
}
