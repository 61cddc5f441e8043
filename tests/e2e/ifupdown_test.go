//go:build vm

package e2e

import (
	"context"
	"testing"
	"time"
)

// ifupdownShell is sourced after netsetupShell (snap, same, res) by every
// script of TestE2EIfupdown.
const ifupdownShell = `
A="vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0"
# snap, for this IPv4 DHCP shape: IPv6 routes left out (the kernel's SLAAC
# and RA routes on eth0 come and go with the link-local address, which the
# switch from networkd flushed), the files ifupdown and dhclient use in
snap() {
	ip -d link | sed -E 's/^[0-9]+: /N: /; s/@if[0-9]+//'
	ip rule; ip -6 rule; ip route
	cat /etc/resolv.conf; ls /etc/dhcp/dhclient-exit-hooks.d /etc/sysctl.d 2>&1
	sysctl net.ipv4.tcp_l3mdev_accept
}
# online: dhclient's lease is in place, in the VRF table once applied
online() {
	for i in $(seq 300); do
		ip -4 route show table all default dev eth0 | grep -q 'via 192.0.2.1' && return 0
		sleep 0.2
	done
	return 1
}
# invrf STAGE: eth0 in mgmt, both DHCP routes (router and option 121) in
# table 1000 and none in main, the DHCP server steered into the VRF
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
	ip vrf exec mgmt curl -sf -o /dev/null --max-time 10 http://mirror.test/; res $? "$1/HTTP by name from inside the VRF"
	getent hosts mirror.test >/dev/null; res $? "$1/DNS from the default VRF"
	vrf-netsetup check --vrf mgmt --table 1000 --iface eth0 --query-name mirror.test > /tmp/check.out 2>&1
	grep '^FAIL' /tmp/check.out | grep -vE '^FAIL (pam|policy):' | cut -c1-200 | sed 's/^/| /'
	! grep '^FAIL' /tmp/check.out | grep -qvE '^FAIL (pam|policy):'; res $? "$1/check passes (pam and policy are not set up in this guest)"
}
# renewals SINCE N: dhclient's unicast renewals to the server since epoch
# SINCE, and how many were acknowledged / could not be sent
dlog() { journalctl -t dhclient --since "@$1" -o cat; }
renewed() { dlog "$1" | grep -c 'DHCPREQUEST for 192.0.2.10 on eth0 to 192.0.2.1 port 67'; }
acked() { dlog "$1" | grep -c 'DHCPACK of 192.0.2.10 from 192.0.2.1'; }
unreachable() { dlog "$1" | grep -c 'Network is unreachable'; }
# waitfor N CMD...: until CMD prints a number >= N (up to 200 s)
waitfor() { n=$1; shift; for i in $(seq 200); do [ "$("$@")" -ge "$n" ] && return 0; sleep 1; done; return 1; }
`

// TestE2EIfupdown: the Debian 12 ifupdown + isc-dhcp-client host shape,
// with a DHCP server that sends option 121 (classless static routes, a
// default among them) and 2-minute leases. After apply, through two
// renewals, an ifdown/ifup, a reboot and revert: eth0 in the VRF, both
// DHCP routes only in table 1000, dhclient's unicast renewals acknowledged
// (its server steered into the VRF), and with that rule taken away the
// renewal fails as it did before ("Network is unreachable").
func TestE2EIfupdown(t *testing.T) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	m, r := netsetupGuest(ctx, t, "ifupdown", nil)
	run := guestScripts(ctx, t, m, r, netsetupShell+ifupdownShell)

	run("setup: eth0 on ifupdown + dhclient, option 121 and 2-minute leases", `
/lib/systemd/systemd-networkd-wait-online -i eth0 --timeout=60 >/dev/null
rm /etc/systemd/network/20-eth0.network && networkctl reload && sleep 2
ip addr flush dev eth0
sed -i 's/^dhcp-host=52:54:00:12:34:10,192.0.2.10,pamvrf-guest$/&,2m/' /etc/pamvrf-test/dnsmasq.conf
echo 'dhcp-option=option:classless-static-route,198.51.100.0/24,192.0.2.1,0.0.0.0/0,192.0.2.1' >> /etc/pamvrf-test/dnsmasq.conf
systemctl restart pamvrf-dnsmasq
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

	run("apply on the ifupdown host", `
$A > /tmp/apply.out 2>&1; rc=$?; res $rc "apply/apply succeeds"
[ $rc = 0 ] || cat /tmp/apply.out
grep -q 'interface manager: ifupdown' /tmp/apply.out; res $? "apply/the manager is ifupdown"
grep -q 'dns mode none (auto: dhclient writes /etc/resolv.conf' /tmp/apply.out; res $? "apply/DNS: resolv.conf is left to dhclient"
ls /etc/dhcp/dhclient-exit-hooks.d/ | sed 's/^/| exit hooks: /'
[ "$(ls /etc/dhcp/dhclient-exit-hooks.d/ | tail -n 1)" = zz-pam-vrf ]; res $? "apply/the exit hook runs last (after rfc3442-classless-routes)"
invrf apply
`, 3*time.Minute)

	run("two DHCP renewals (2-minute lease: T1 is 1 minute)", `
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
$A > /tmp/apply.out 2>&1; res $? "norule/apply puts the rule back"
T=$(date +%s)
waitfor 1 acked $T; res $? "norule/the next renewal is acknowledged"
invrf norule
`, 6*time.Minute)

	run("the manager's own reload: ifdown/ifup", `
ifdown eth0 >/tmp/ifdown.out 2>&1; timeout 90 ifup eth0 >/tmp/ifup.out 2>&1; res $? "reload/ifdown eth0; ifup eth0"
online >/dev/null
invrf reload
`, 3*time.Minute)

	if !rebootChecked(ctx, t, m, r, "reboot", "reboot/guest comes back") {
		return
	}
	run("after the reboot", `
systemctl is-system-running --wait >/dev/null 2>&1
online; res $? "reboot/eth0 has its lease"
systemctl is-active --quiet pam-vrf-netsetup.service; res $? "reboot/the boot unit ran"
invrf reboot
`, 4*time.Minute)

	run("revert", `
vrf-netsetup revert > /tmp/revert.out 2>&1; rc=$?; res $rc "revert/revert succeeds"
[ $rc = 0 ] || cat /tmp/revert.out
same "revert/network, rules and files as before apply" /root/s0
[ ! -e /etc/dhcp/dhclient-exit-hooks.d/zz-pam-vrf ]; res $? "revert/the exit hook is gone"
T=$(date +%s)
waitfor 1 acked $T; res $? "revert/dhclient renews in the default VRF"
ip -4 route show default | grep -q 'via 192.0.2.1 dev eth0'; res $? "revert/the default route is in main again"
`, 4*time.Minute)
}
