//go:build vm

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/pam-vrf/pam-vrf/tests/vm"
)

// ifupdownShell is sourced after netsetupShell and dhcpShapeShell by every
// script of TestE2EIfupdown (see dhcpshape.go for what it defines).
const ifupdownShell = `
HOOKS=/etc/dhcp/dhclient-exit-hooks.d
HOOK=$HOOKS/zz-pam-vrf
invrf_client() { :; }
# dhclient's unicast renewals to the server since epoch SINCE, and how
# many were acknowledged / could not be sent
dlog() { journalctl -t dhclient --since "@$1" -o cat; }
renewed() { dlog "$1" | grep -c 'DHCPREQUEST for 192.0.2.10 on eth0 to 192.0.2.1 port 67'; }
acked() { dlog "$1" | grep -c 'DHCPACK of 192.0.2.10 from 192.0.2.1'; }
unreachable() { dlog "$1" | grep -c 'Network is unreachable'; }
renewal_ok() { waitfor 1 acked "$1"; }
`

// TestE2EIfupdown: the Debian 12 ifupdown + isc-dhcp-client host shape,
// with a DHCP server that sends option 121 (classless static routes, a
// default among them) and short leases. After apply, through two
// renewals, an ifdown/ifup, a reboot and revert: eth0 in the VRF, both
// DHCP routes only in table 1000, dhclient's unicast renewals acknowledged
// (its server steered into the VRF), and with that rule taken away the
// renewal fails as it did before ("Network is unreachable").
func TestE2EIfupdown(t *testing.T) {
	ctx, m, r, run := dhcpShapeGuest(t, vm.DefaultSuite, "ifupdown", ifupdownShell)

	run("setup: eth0 on ifupdown + dhclient, option 121 and short leases", `
shape_setup
# an ifupdown host of this kind has no systemd-resolved: dhclient writes
# /etc/resolv.conf from the lease
systemctl disable -q --now systemd-resolved && rm -f /etc/resolv.conf
printf 'auto eth0\niface eth0 inet dhcp\n' >> /etc/network/interfaces
# test network plumbing: at boot ifup's dhclient (-1: one try) needs the
# DHCP server in netns upstream to be up already
mkdir -p /etc/systemd/system/networking.service.d
printf '[Unit]\nWants=pamvrf-dnsmasq.service\nAfter=pamvrf-dnsmasq.service\n' > /etc/systemd/system/networking.service.d/pamvrf-test.conf
systemctl daemon-reload
timeout 90 ifup eth0 >/tmp/ifup.out 2>&1; res $? "setup/ifup eth0 (dhclient)"
online; res $? "setup/eth0 has its lease"
ip -4 route show default | grep -q 'via 192.0.2.1 dev eth0' && ip -4 route | grep -q '^198.51.100.0/24 via 192.0.2.1'
res $? "setup/dhclient put the router and the option 121 routes into main"
ls /etc/dhcp/dhclient-exit-hooks.d/ | sed 's/^/| exit hooks: /'
grep -q '^nameserver 192.0.2.1' /etc/resolv.conf && getent hosts mirror.test >/dev/null; res $? "setup/dhclient wrote resolv.conf and names resolve"
snap > /root/s0
`, 3*time.Minute)

	run("a step that fails rolls everything back (fault build: fail-at-step)", failAtStepScript(
		// make e2e-faults fails every step
		"enslave eth0", "move ipv4 route default"),
		faultTime(6*time.Minute))

	run("apply on the ifupdown host", `
$A > /tmp/apply.out 2>&1; rc=$?; res $rc "apply/apply succeeds"
[ $rc = 0 ] || cat /tmp/apply.out
grep -q 'interface manager: ifupdown' /tmp/apply.out; res $? "apply/the manager is ifupdown"
grep -q 'dns mode none (auto: dhclient writes /etc/resolv.conf' /tmp/apply.out; res $? "apply/DNS: resolv.conf is left to dhclient"
ls /etc/dhcp/dhclient-exit-hooks.d/ | sed 's/^/| exit hooks: /'
[ "$(ls /etc/dhcp/dhclient-exit-hooks.d/ | tail -n 1)" = zz-pam-vrf ]; res $? "apply/the exit hook runs last (after rfc3442-classless-routes)"
invrf apply
`, 3*time.Minute)

	run("two DHCP renewals (T1 is 20 s)", `
T=$(date +%s)
waitfor 2 acked $T; res $? "renew/two renewals acknowledged"
dlog $T | grep -E 'DHCPREQUEST|DHCPACK|unreachable|Failed' | sed 's/^/| dhclient: /'
[ "$(renewed $T)" -ge 2 ]; res $? "renew/the renewals were unicast to the server (not only the broadcast rebind)"
[ "$(unreachable $T)" = 0 ]; res $? "renew/dhclient logged no 'Network is unreachable'"
invrf renew
`, 5*time.Minute)

	run("without the DHCP server's rule the renewal fails, as it did before", `
ip rule del pref 1002 to 192.0.2.1 iif lo lookup 1000
T=$(date +%s)
waitfor 1 unreachable $T; res $? "norule/the unicast renewal cannot be sent ('Network is unreachable')"
dlog $T | grep -E 'DHCPREQUEST|unreachable' | head -n 3 | sed 's/^/| dhclient: /'
broken norule "the missing rule for the DHCP server" '^FAIL converged: .*add rule ipv4 1002: .*to 192.0.2.1/32 iif lo lookup 1000.*\(fix: vrf-netsetup apply '
$A > /tmp/apply.out 2>&1; res $? "norule/apply puts the rule back"
T=$(date +%s)
waitfor 1 acked $T; res $? "norule/the next renewal is acknowledged"
invrf norule
`, 6*time.Minute)

	dhcpShapeLifecycle(ctx, t, m, r, run, "dhclient", "ifdown/ifup", ifupdownReload)
}

// ifupStaticShell is sourced after netsetupShell and dhcpShapeShell (its
// snap and online fit a static gateway too) by every script of
// TestE2EIfupdownStatic.
const ifupStaticShell = `
HOOKS=/etc/network/if-up.d
HOOK=$HOOKS/pam-vrf
# gw_invrf STAGE: eth0 in mgmt, ifupdown's gateway only in table 1000,
# an ssh login lands in mgmt, names resolve from both VRFs, check passes
gw_invrf() {
	for i in $(seq 60); do
		ip -4 route show table 1000 | grep -q '^default via 192.0.2.1 dev eth0' && ! ip -4 route show default | grep -q . && break
		sleep 0.5
	done
	ip -o link show eth0 | grep -q 'master mgmt'; res $? "$1/eth0 is in VRF mgmt"
	ip -4 route show table 1000 | grep -q '^default via 192.0.2.1 dev eth0' && ! ip -4 route show default | grep -q .
	res $? "$1/the static gateway is in table 1000, not in main"
	placed "$1"
	getent hosts mirror.test >/dev/null; res $? "$1/DNS from the default VRF"
	checked "$1"
}
`

// TestE2EIfupdownStatic: the Debian 12 ifupdown host with a static stanza
// (address, gateway) and a static resolv.conf. ifup puts the gateway into
// main on every `ifdown/ifup` and `systemctl restart networking`: apply's
// if-up.d hook moves it into table 1000 each time (and without the hook it
// stays in main, as before). Then a reboot, and revert to the snapshot;
// every kind of failed step rolls back to the pre-apply host.
func TestE2EIfupdownStatic(t *testing.T) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), faultTime(20*time.Minute))
	defer cancel()
	s := guestScenario(ctx, t, "ifupdown static")
	pushFaultBuild(ctx, t, s.VM)
	m, r := s.VM, s.R.(*testReporter)
	run := guestScripts(ctx, t, m, r, netsetupShell+dhcpShapeShell+ifupStaticShell)

	run("setup: eth0 on an ifupdown static stanza, resolv.conf static", `
pam_setup
/lib/systemd/systemd-networkd-wait-online -i eth0 --timeout=60 >/dev/null
rm /etc/systemd/network/20-eth0.network && networkctl reload && sleep 2
ip addr flush dev eth0
systemctl disable -q --now systemd-resolved && rm -f /etc/resolv.conf
printf 'nameserver 192.0.2.1\n' > /etc/resolv.conf
printf 'auto eth0\niface eth0 inet static\n\taddress 192.0.2.10/24\n\tgateway 192.0.2.1\n' >> /etc/network/interfaces
ifup eth0 >/tmp/ifup.out 2>&1; res $? "setup/ifup eth0 (static)"
ip -4 route show default | grep -q '^default via 192.0.2.1 dev eth0'; res $? "setup/ifup put the gateway into main"
getent hosts mirror.test >/dev/null; res $? "setup/names resolve"
snap > /root/s0
`, 2*time.Minute)

	run("a step that fails rolls everything back (fault build: fail-at-step)", failAtStepScript(
		// make e2e-faults fails every step
		"write /etc/network/if-up.d", "move ipv4 route default"),
		faultTime(5*time.Minute))

	run("apply on the static ifupdown host", `
$A > /tmp/apply.out 2>&1; rc=$?; res $rc "apply/apply succeeds"
[ $rc = 0 ] || cat /tmp/apply.out
grep -E 'manager|if-up|dns mode' /tmp/apply.out | sed 's/^/| /'
grep -q 'interface manager: ifupdown' /tmp/apply.out; res $? "apply/the manager is ifupdown"
[ -x $HOOK ]; res $? "apply/the if-up.d hook is installed"
gw_invrf apply
# resolv.conf names 192.0.2.1 itself, a server that refuses recursion
# (dnsmasq here serves .test only): without a query name check asks for
# the root's SOA, gets REFUSED, and must say so, not "no nameserver"
vrf-netsetup check --vrf mgmt --table 1000 --iface eth0 > /tmp/check.out 2>&1
grep -E '^.... (resolver|resolution)' /tmp/check.out | cut -c1-300 | sed 's/^/| /'
grep -q '^ok   resolver' /tmp/check.out && grep -qE '^FAIL resolution: .*answered REFUSED for \. SOA.*\(fix: the server answers but refuses these queries: .*--query-name NAME' /tmp/check.out
res $? "refusing/a server that refuses the root's SOA: the resolver line passes, resolution names --query-name as the fix"
`, 3*time.Minute)

	run("ifdown/ifup without the hook: the gateway stays in main (the bug)", `
chmod -x $HOOK
ifdown eth0 >/tmp/ifdown.out 2>&1; ifup eth0 >/tmp/ifup.out 2>&1; res $? "nohook/ifdown eth0; ifup eth0"
sleep 2
ip -4 route show default | grep -q '^default via 192.0.2.1 dev eth0'; res $? "nohook/the gateway is back in main"
broken nohook "the hook without its x bit" '^FAIL converged: .*write /etc/network/if-up.d/pam-vrf \(mode 0644, want 0755\).*\(fix: vrf-netsetup apply '
grep -q '^FAIL converged: .*move ipv4 route default' /tmp/check.out; res $? "nohook/... and names the gateway to move back"
chmod +x $HOOK
$A --quiet; res $? "nohook/apply moves it again"
`, 2*time.Minute)

	run("ifdown/ifup", `
ifdown eth0 >/tmp/ifdown.out 2>&1; ifup eth0 >/tmp/ifup.out 2>&1; res $? "ifup/ifdown eth0; ifup eth0"
gw_invrf ifup
`, 2*time.Minute)

	run("systemctl restart networking", `
systemctl restart networking; res $? "restart/systemctl restart networking"
gw_invrf restart
`, 2*time.Minute)

	if !rebootChecked(ctx, t, m, r, "reboot", "reboot/guest comes back") {
		return
	}
	run("after the reboot", "booted; gw_invrf reboot", 3*time.Minute)

	run("revert", `
reverted
same "revert/network, rules and files as before apply" /root/s0
[ ! -e $HOOK ]; res $? "revert/the if-up.d hook is gone"
ifdown eth0 >/tmp/ifdown.out 2>&1; ifup eth0 >/tmp/ifup.out 2>&1
ip -4 route show default | grep -q '^default via 192.0.2.1 dev eth0'; res $? "revert/ifup puts the gateway into main again"
`, 3*time.Minute)
}
