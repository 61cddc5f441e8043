//go:build vm

package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pam-vrf/pam-vrf/tests/vm"
)

// The DHCP host shapes (TestE2EIfupdown: dhclient on Debian 12,
// TestE2EDhcpcd: dhcpcd on Debian 13, TestE2ENetworkManager) share their
// shell and their lifecycle: a failed apply at each kind of step, the manager's reload, a
// reboot, revert. What differs per client is in each test's own shell:
//
//	HOOKS         the client's hook directory (snap lists it)
//	HOOK          our hook's path
//	invrf_client  STAGE: the client's own checks, after the common ones
//	renewal_ok    SINCE: a unicast renewal acknowledged since epoch SINCE

// dhcpShapeShell is sourced after netsetupShell (res, same, deaf) and before the
// test's own shell.
const dhcpShapeShell = `
A="vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0"
# snap, for these IPv4 DHCP shapes (IPv6 routes come and go with RA
# handling), the files ifupdown and the client use
snap() {
	ip -d link | sed -E 's/^[0-9]+: /N: /; s/@if[0-9]+//'
	ip rule; ip -6 rule; ip route
	cat /etc/resolv.conf; ls $HOOKS /etc/sysctl.d 2>&1
	sysctl net.ipv4.tcp_l3mdev_accept
}
# online: the lease is in place (main before apply, table 1000 after)
online() {
	for i in $(seq 300); do
		ip -4 route show table all default dev eth0 | grep -q 'via 192.0.2.1' && return 0
		sleep 0.2
	done
	return 1
}
# invrf STAGE: eth0 in mgmt, the lease's routes (router and option 121) in
# table 1000 and none in main, the DHCP server steered into the VRF, an ssh
# login lands in mgmt, names resolve from both VRFs, check passes; then the
# client's own checks
invrf() {
	for i in $(seq 100); do
		ip -4 route show table 1000 | grep -q '^default via 192.0.2.1' && ! ip -4 route show default | grep -q . && break
		sleep 0.3
	done
	ip -4 route show table 1000 | sed 's/^/| table 1000: /'
	ip -o link show eth0 | grep -q 'master mgmt'; res $? "$1/eth0 is in VRF mgmt"
	ip -4 route show table 1000 | grep -q '^default via 192.0.2.1' && ! ip -4 route show default | grep -q .
	res $? "$1/the default route is in table 1000, not in main"
	ip -4 route show table 1000 | grep -q '^198.51.100.0/24 via 192.0.2.1' && ! ip -4 route show | grep -q '^198.51.100.0/24'
	res $? "$1/the option 121 route is in table 1000, not in main"
	ip rule | grep -q '^1002:.*to 192.0.2.1 iif lo lookup 1000'; res $? "$1/the lease's server and nameserver 192.0.2.1 is steered into the VRF (1002)"
	placed "$1"
	getent hosts mirror.test >/dev/null; res $? "$1/DNS from the default VRF"
	# the client's hook moves what the client re-adds to main (dhcpcd: its
	# RA routes after a reboot) at the client's next event: check may see
	# that in between, so it gets 30 s, and says what it saw on the way
	checked "$1" 15
	invrf_client "$1"
}
# shape_setup: eth0 taken off systemd-networkd (the guest's default), for
# the test to hand it to its manager; the DHCP server gives short
# leases and option 121 (a route and a default: RFC 3442 clients ignore
# the router option then); pam_vrf enabled
shape_setup() {
	pam_setup
	/lib/systemd/systemd-networkd-wait-online -i eth0 --timeout=60 >/dev/null
	rm /etc/systemd/network/20-eth0.network && networkctl reload && sleep 2
	ip addr flush dev eth0
	short_leases
	echo 'dhcp-option=option:classless-static-route,198.51.100.0/24,192.0.2.1,0.0.0.0/0,192.0.2.1' >> /etc/pamvrf-test/dnsmasq.conf
	systemctl restart pamvrf-dnsmasq
}
`

// failAtStepScript: for each step (the start of its line in apply's plan
// of $A), an apply that fails there (the fault build, run with $A's
// arguments) rolls back completely: the host as in /root/s0, ssh from the
// management network working. A shape's shell may define how it waits for
// its network (fault_online), compares with /root/s0 (fault_same TAG
// FILE), logs in (fault_ssh) and what else must be as before (after_fault
// TAG); the defaults are netsetupShell's online and same and root's ssh
// over IPv4. With PAMVRF_FAULT_STEPS=all (make e2e-faults) every step of
// the plan fails in turn instead.
func failAtStepScript(steps ...string) string {
	list := "for what in " + shellWords(steps) + `; do
	n=$(pick "$what")`
	if os.Getenv("PAMVRF_FAULT_STEPS") == "all" {
		// every step of the plan as it is before the first fault, found
		// by its description in a fresh plan each time (its number
		// moves: the first failed apply past the driver's step loads it,
		// which no rollback unloads, and a nameserver's steering rule
		// comes and goes with the manager's resolv.conf); a step no
		// longer planned is named and skipped; each step's time printed
		list = `$A --dry-run | sed -nE 's/^ +[0-9]+\. //p' > /root/plan.all
echo "| the plan before the first fault: $(wc -l < /root/plan.all) steps"
pickx() { $A --dry-run | sed -nE 's/^ +([0-9]+)\. (.*)$/\1\t\2/p' | D="$1" awk -F'\t' '$2 == ENVIRON["D"] {print $1; exit}'; }
exec 3< /root/plan.all
t0=$(date +%s) last=
while IFS= read -r full <&3; do
	[ -z "$last" ] || echo "| $last: $(( $(date +%s) - t0 ))s"; t0=$(date +%s)
	what=$(printf '%s' "$full" | cut -c1-60)
	n=$(pickx "$full")
	[ -n "$n" ] || { echo "| step '$what': not in the plan now, skipped"; last=; continue; }
	last="step $n ($what)"`
	}
	return `
type fault_online >/dev/null 2>&1 || fault_online() { online; }
type fault_same >/dev/null 2>&1 || fault_same() { same "$@"; }
type fault_ssh >/dev/null 2>&1 || fault_ssh() { ` + sshCmd("root", "true") + `; }
type after_fault >/dev/null 2>&1 || after_fault() { :; }
F="${A/vrf-netsetup /vrf-netsetup-fault }"
# numbered from a fresh plan each time: the first apply loads the VRF
# driver, which no rollback unloads
pick() { $A --dry-run | grep -E "^ +[0-9]+\. $1" | head -1 | awk '{print $1}' | tr -d .; }
` + list + `
	[ -n "$n" ] || { echo "FAIL rollback/plan has a step '$what'"; continue; }
	tag="rollback/step $n ($what) fails"
	T=$(date +%s)
	VRF_NETSETUP_FAULT=fail-at-step:$n $F > /tmp/f.out 2>&1
	rc=$?; [ $rc = 1 ] && grep -q 'fault injection: this step fails; .* rolled back' /tmp/f.out && ! grep -q 'ROLLBACK INCOMPLETE' /tmp/f.out
	res $? "$tag: apply fails and rolls back completely"
	grep -E 'settle|FAILED|INCOMPLETE|took|WARN|^note   networkd' /tmp/f.out | cut -c1-200 | sed 's/^/| /'
	# the network back as before, or what the manager and the DHCP
	# server did since the apply started, for the reader of a failure
	fault_online >/dev/null || mgrlog "$T"
	fault_same "$tag: links, rules, routes, resolv.conf and files as before apply" /root/s0
	fault_ssh; rc=$?; res $rc "$tag: ssh from the management network works" "$([ $rc = 0 ] || dhcpwhy "$T")"
	after_fault "$tag"
done
`
}

// faultTime is d, or with PAMVRF_FAULT_STEPS=all the time every step's
// failure and rollback takes (up to a minute each under TCG).
func faultTime(d time.Duration) time.Duration {
	if os.Getenv("PAMVRF_FAULT_STEPS") == "all" {
		return d + 100*time.Minute
	}
	return d
}

func shellWords(ws []string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		q[i] = shq(w)
	}
	return strings.Join(q, " ")
}

// dhcpShapeGuest boots a guest of suite for the DHCP shape test name, with
// pam-vrf's packages and the fault build, and returns its script runner
// (shell: the test's own, after netsetupShell and dhcpShapeShell).
func dhcpShapeGuest(t *testing.T, suite, name, shell string) (context.Context, *vm.VM, *testReporter, func(title, script string, limit time.Duration) string) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), faultTime(25*time.Minute))
	t.Cleanup(cancel)
	s := guestScenarioSuite(ctx, t, suite, name)
	pushFaultBuild(ctx, t, s.VM)
	r := s.R.(*testReporter)
	return ctx, s.VM, r, guestScripts(ctx, t, s.VM, r, netsetupShell+dhcpShapeShell+shell)
}

// ifupdownReload is the ifupdown shapes' own reload.
const ifupdownReload = `ifdown eth0 >/tmp/ifdown.out 2>&1; timeout 90 ifup eth0 >/tmp/ifup.out 2>&1; res $? "reload/ifdown eth0; ifup eth0"`

// dhcpShapeLifecycle runs what follows the client-specific blocks: the
// manager's reload (the reload script), a reboot, revert.
func dhcpShapeLifecycle(ctx context.Context, t *testing.T, m *vm.VM, r *testReporter, run func(title, script string, limit time.Duration) string, client, reloadTitle, reload string) {
	run("the manager's own reload: "+reloadTitle, reload+`
online >/dev/null
invrf reload
`, 3*time.Minute)

	if !rebootChecked(ctx, t, m, r, "reboot", "reboot/guest comes back") {
		return
	}
	run("after the reboot", `
booted
online; res $? "reboot/eth0 has its lease"
journalctl -b -u pam-vrf-netsetup.service -o short-precise --no-pager | grep -vE '^.{33}vrf-netsetup\[[0-9]+\]: +[0-9]+\. ' | tail -n 25 | cut -c8-220 | sed 's/^/| unit: /'
invrf reboot
`, 4*time.Minute)

	run("revert", fmt.Sprintf(`
reverted
online >/dev/null
for i in $(seq 60); do ip -4 route show default | grep -q 'via 192.0.2.1 dev eth0' && break; sleep 0.5; done
same "revert/network, rules and files as before apply" /root/s0
[ ! -e $HOOK ]; res $? "revert/our hook for %[1]s is gone"
deaf on; res $? "revert/the server's side drops broadcast requests (tc u32 on up0 ingress)"
renewal_ok "$(date +%%s)"; res $? "revert/%[1]s renews by unicast in the default VRF (the server deaf to broadcasts)"
deaf off
ip -4 route show default | grep -q 'via 192.0.2.1 dev eth0'; res $? "revert/the default route is in main again"
`, client), 6*time.Minute)
}
