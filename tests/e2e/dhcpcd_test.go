//go:build vm

package e2e

import (
	"testing"
	"time"
)

// dhcpcdShell is sourced after netsetupShell and dhcpShapeShell by every
// script of TestE2EDhcpcd (see dhcpshape.go for what it defines).
const dhcpcdShell = `
HOOKS=/usr/lib/dhcpcd/dhcpcd-hooks
HOOK=$HOOKS/99-pam-vrf
# invrf_client STAGE: the lease's prefix route (dhcpcd's own, its hook
# adds it) and dhcpcd's RA default in table 1000, dhcpcd in the VRF
invrf_client() {
	ip -4 route show table 1000 | grep -q '^192.0.2.0/24 dev eth0 proto dhcp' && ! ip -4 route show | grep -q '^192.0.2.0/24'
	res $? "$1/the lease's prefix route is in table 1000, not in main"
	# dhcpcd adds each RA's default to main again and its hook moves it a
	# moment later (seen: one look fell in between): wait for both halves
	ra_moved() { ip -6 route show table 1000 | grep -q '^default via fe80::' && ! ip -6 route show default | grep -q .; }
	for i in $(seq 60); do ra_moved && break; sleep 0.5; done
	ra_moved
	rc=$?; res $rc "$1/the RA default route (dhcpcd's) is in table 1000, not in main"
	if [ $rc != 0 ]; then
		{ ip -6 route show table all default; journalctl -t dhcpcd -b -o short-precise | grep -iE 'eth0: (carrier|router|adding|deleting|soliciting)|ROUTERADVERT|if_route' | tail -n 15; } | sed 's/^/| ra: /'
	fi
	[ "$(ip vrf identify "$(pgrep -xo dhcpcd)")" = mgmt ]; res $? "$1/dhcpcd runs in VRF mgmt (ip vrf identify)"
	grep -q '^ok   dhcp client: dhcpcd (pid [0-9 ]*) runs in VRF mgmt' /tmp/check.out; res $? "$1/check sees dhcpcd in VRF mgmt"
}
# dhcpcd's log since epoch SINCE (debug: setup turns it on): renewals
# started, leases bound, renewals that failed over to a rebind, sends that
# found no route (dhcpcd also logs its own failed route adds to main,
# "if_route (ADD): ...": not sends)
dlog() { journalctl -t dhcpcd --since "@$1" -o cat; }
renewing() { dlog "$1" | grep -c 'eth0: renewing lease of 192.0.2.10'; }
leased() { dlog "$1" | grep -c 'eth0: leased 192.0.2.10'; }
rebinding() { dlog "$1" | grep -c 'failed to renew DHCP, rebinding'; }
unreachable() { dlog "$1" | grep -v if_route | grep -c 'Network is unreachable'; }
renewal_ok() {
	waitfor 1 renewing "$1" && waitfor 1 leased "$1" || return 1
	dlog "$1" | grep -E 'renewing|leased|rebinding|unreachable' | sed 's/^/| dhcpcd: /'
	[ "$(rebinding "$1")" = 0 ]
}
`

// TestE2EDhcpcd: Debian 13's ifupdown + dhcpcd host shape, with a DHCP
// server that sends option 121 and short leases, and RAs that dhcpcd
// handles itself. After apply, through two renewals, an ifdown/ifup, a
// reboot and revert: eth0 in the VRF, the lease's routes (which dhcpcd
// cannot add once eth0 is a VRF port: its hook does) and the RA default
// only in table 1000, dhcpcd running in the VRF (its hook moves it there,
// as ip vrf exec would) and its unicast renewals acknowledged.
func TestE2EDhcpcd(t *testing.T) {
	ctx, m, r, run := dhcpShapeGuest(t, "trixie", "dhcpcd", dhcpcdShell)

	run("setup: Debian 13, eth0 on ifupdown + dhcpcd, option 121 and short leases", `
grep -q '^VERSION_CODENAME=trixie' /etc/os-release; res $? "setup/the guest is Debian 13 (trixie)"
shape_setup
# a Debian 13 server of this kind has no systemd-resolved: dhcpcd's
# resolv.conf hook writes /etc/resolv.conf from the lease
systemctl disable -q --now systemd-resolved && rm -f /etc/resolv.conf
DEBIAN_FRONTEND=noninteractive dpkg --purge systemd-resolved >/tmp/purge.out 2>&1; res $? "setup/systemd-resolved purged"
printf 'auto eth0\niface eth0 inet dhcp\n' >> /etc/network/interfaces
mkdir -p /etc/systemd/system/networking.service.d
printf '[Unit]\nWants=pamvrf-dnsmasq.service\nAfter=pamvrf-dnsmasq.service\n' > /etc/systemd/system/networking.service.d/pamvrf-test.conf
systemctl daemon-reload
[ ! -e /usr/sbin/dhclient ] && [ -x /usr/sbin/dhcpcd ]; res $? "setup/dhcpcd is the DHCP client (no dhclient)"
# dhcpcd logs a renewal and its ACK at debug level only
echo debug >> /etc/dhcpcd.conf
timeout 90 ifup eth0 >/tmp/ifup.out 2>&1; res $? "setup/ifup eth0"
online; res $? "setup/eth0 has its lease"
pgrep -x dhcpcd >/dev/null; res $? "setup/ifup started dhcpcd"
ip -4 route show default | grep -q 'via 192.0.2.1 dev eth0' && ip -4 route | grep -q '^198.51.100.0/24 via 192.0.2.1'
res $? "setup/dhcpcd put the router and the option 121 routes into main"
for i in $(seq 50); do grep -q '^nameserver 192.0.2.1' /etc/resolv.conf 2>/dev/null && break; sleep 0.2; done
grep -q '^nameserver 192.0.2.1' /etc/resolv.conf && getent hosts mirror.test >/dev/null; res $? "setup/dhcpcd wrote resolv.conf and names resolve"
snap > /root/s0
`, 3*time.Minute)

	// Issue 16: on this shape a failed apply took the host off the network
	// (dhcpcd had dropped the lease the rollback tried to restore routes
	// for). Now the rollback waits for dhcpcd to bind again in main.
	run("a step that fails rolls everything back (fault build: fail-at-step)", failAtStepScript(
		// the enslave, the wait for dhcpcd after it; make e2e-faults
		// fails every step
		"enslave eth0", "wait for dhcpcd"),
		faultTime(8*time.Minute))

	run("apply on the dhcpcd host", `
T=$(date +%s)
$A > /tmp/apply.out 2>&1; rc=$?; res $rc "apply/apply succeeds"
sed 's/^/| /' /tmp/apply.out | grep -E 'manager|dhcpcd|dns mode|settled|done|ERROR|FAIL|rollback' 
[ $rc = 0 ] || cat /tmp/apply.out
grep -q 'interface manager: ifupdown: /etc/network/interfaces, DHCP by dhcpcd' /tmp/apply.out; res $? "apply/the manager is ifupdown with dhcpcd"
grep -q 'dns mode none (auto: dhcpcd writes /etc/resolv.conf' /tmp/apply.out; res $? "apply/DNS: resolv.conf is left to dhcpcd"
grep -q 'dhcpcd settled in' /tmp/apply.out; res $? "apply/apply waited for dhcpcd to bind the lease again after the enslave"
[ -f $HOOK ]; res $? "apply/the dhcpcd hook is installed"
invrf apply
dlog $T | grep -E 'carrier|leased|rebinding|if_route|unreachable' | sed 's/^/| dhcpcd: /'
`, 3*time.Minute)

	run("two DHCP renewals (T1 is 20 s)", `
T=$(date +%s)
waitfor 2 renewing $T && waitfor 2 leased $T; res $? "renew/two renewals, each acknowledged"
dlog $T | grep -E 'renewing|leased|rebinding|unreachable' | grep -v if_route | sed 's/^/| dhcpcd: /'
[ "$(rebinding $T)" = 0 ]; res $? "renew/no renewal fell back to the broadcast rebind (the unicast RENEW was answered)"
[ "$(unreachable $T)" = 0 ]; res $? "renew/dhcpcd logged no unreachable send"
for p in $(pgrep -x dhcpcd); do echo "| $(ip vrf identify $p | sed 's/^$/(default)/') $(tr '\0' ' ' </proc/$p/cmdline)"; done
[ "$(ip vrf identify "$(pgrep -xo dhcpcd)")" = mgmt ]; res $? "renew/dhcpcd runs in VRF mgmt (ip vrf identify)"
invrf renew
`, 5*time.Minute)

	// ifdown/ifup, the reload that follows, is the fix check names
	run("broken: dhcpcd outside the VRF", `
hold broken
# as a dhcpcd restarted by hand from a default-VRF shell would be
for p in $(pgrep -x dhcpcd); do echo $p > /sys/fs/cgroup/cgroup.procs; done
broken broken "dhcpcd outside the VRF" '^FAIL dhcp client: dhcpcd \(pid [0-9 ]+\) runs outside VRF mgmt: .*\(fix: ifdown eth0; ifup eth0 '
`, 2*time.Minute)

	// The negative control (the server's rule deleted: the unicast
	// RENEW cannot be sent, apply puts the rule back) is TestE2EIfupdown's;
	// dhcpcd sends through the same rule.
	dhcpShapeLifecycle(ctx, t, m, r, run, "dhcpcd", "ifdown/ifup", ifupdownReload)
}
