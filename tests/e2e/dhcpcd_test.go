//go:build vm

package e2e

import (
	"context"
	"testing"
	"time"
)

// dhcpcdShell is sourced after netsetupShell (res, same) by every script
// of TestE2EDhcpcd.
const dhcpcdShell = `
A="vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0"
H=/usr/lib/dhcpcd/dhcpcd-hooks/99-pam-vrf
# snap, for this IPv4 DHCP shape (IPv6 routes come and go with dhcpcd's
# RA handling), the files ifupdown and dhcpcd use
snap() {
	ip -d link | sed -E 's/^[0-9]+: /N: /; s/@if[0-9]+//'
	ip rule; ip -6 rule; ip route
	cat /etc/resolv.conf; ls /usr/lib/dhcpcd/dhcpcd-hooks /etc/sysctl.d 2>&1
	sysctl net.ipv4.tcp_l3mdev_accept
}
# online: dhcpcd's lease is in place (main before apply, table 1000 after)
online() {
	for i in $(seq 300); do
		ip -4 route show table all default dev eth0 | grep -q 'via 192.0.2.1' && return 0
		sleep 0.2
	done
	return 1
}
# invrf STAGE: eth0 in mgmt, the lease's routes (prefix, option 121 and
# default) and the RA default in table 1000 and none in main, the DHCP
# server steered into the VRF, names resolve from both VRFs
invrf() {
	for i in $(seq 100); do
		ip -4 route show table 1000 | grep -q '^default via 192.0.2.1' && ! ip -4 route show default | grep -q . && break
		sleep 0.3
	done
	ip -4 route show table 1000 | sed 's/^/| table 1000: /'
	ip -o link show eth0 | grep -q 'master mgmt'; res $? "$1/eth0 is in VRF mgmt"
	ip -4 route show table 1000 | grep -q '^default via 192.0.2.1' && ! ip -4 route show default | grep -q .
	res $? "$1/the default route is in table 1000, not in main"
	ip -4 route show table 1000 | grep -q '^192.0.2.0/24 dev eth0 proto dhcp' && ! ip -4 route show | grep -q '^192.0.2.0/24'
	res $? "$1/the lease's prefix route is in table 1000, not in main"
	ip -4 route show table 1000 | grep -q '^198.51.100.0/24 via 192.0.2.1' && ! ip -4 route show | grep -q '^198.51.100.0/24'
	res $? "$1/the option 121 route is in table 1000, not in main"
	for i in $(seq 60); do ip -6 route show table 1000 | grep -q '^default via fe80::' && break; sleep 0.5; done
	ip -6 route show table 1000 | grep -q '^default via fe80::' && ! ip -6 route show default | grep -q .
	res $? "$1/the RA default route (dhcpcd's) is in table 1000, not in main"
	[ "$(ip vrf identify "$(pgrep -xo dhcpcd)")" = mgmt ]; res $? "$1/dhcpcd runs in VRF mgmt (ip vrf identify)"
	ip rule | grep -q '^1002:.*to 192.0.2.1 iif lo lookup 1000'; res $? "$1/the lease's server and nameserver 192.0.2.1 is steered into the VRF (1002)"
	ip vrf exec mgmt curl -sf -o /dev/null --max-time 10 http://mirror.test/; res $? "$1/HTTP by name from inside the VRF"
	getent hosts mirror.test >/dev/null; res $? "$1/DNS from the default VRF"
	vrf-netsetup check --vrf mgmt --table 1000 --iface eth0 --query-name mirror.test > /tmp/check.out 2>&1
	grep '^FAIL' /tmp/check.out | grep -vE '^FAIL (pam|policy):' | cut -c1-200 | sed 's/^/| /'
	! grep '^FAIL' /tmp/check.out | grep -qvE '^FAIL (pam|policy):'; res $? "$1/check passes (pam and policy are not set up in this guest)"
	grep -q '^ok   dhcp client: dhcpcd (pid [0-9 ]*) runs in VRF mgmt' /tmp/check.out; res $? "$1/check sees dhcpcd in VRF mgmt"
}
# dhcpcd's log since epoch SINCE (debug: setup turns it on): renewals started, leases bound, renewals
# that failed over to a rebind, sends that found no route (dhcpcd also
# logs its own failed route adds to main, "if_route (ADD): ...": not sends)
dlog() { journalctl -t dhcpcd --since "@$1" -o cat; }
renewing() { dlog "$1" | grep -c 'eth0: renewing lease of 192.0.2.10'; }
leased() { dlog "$1" | grep -c 'eth0: leased 192.0.2.10'; }
rebinding() { dlog "$1" | grep -c 'failed to renew DHCP, rebinding'; }
unreachable() { dlog "$1" | grep -v if_route | grep -c 'Network is unreachable'; }
waitfor() { n=$1; shift; for i in $(seq 200); do [ "$("$@")" -ge "$n" ] && return 0; sleep 1; done; return 1; }
`

// TestE2EDhcpcd: Debian 13's ifupdown + dhcpcd host shape, with a DHCP
// server that sends option 121 and 2-minute leases, and RAs that dhcpcd
// handles itself. After apply, through two lease times, an ifdown/ifup, a
// reboot and revert: eth0 in the VRF, the lease's routes (which dhcpcd
// cannot add once eth0 is a VRF port: its hook does) and the RA default
// only in table 1000, dhcpcd running in the VRF (its hook moves it there,
// as ip vrf exec would) and its unicast renewals acknowledged.
func TestE2EDhcpcd(t *testing.T) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	m, r := netsetupGuestSuite(ctx, t, "trixie", "dhcpcd", map[string][]string{"vrf-netsetup-fault": {"-tags", "netsetupfault"}})
	run := guestScripts(ctx, t, m, r, netsetupShell+dhcpcdShell)

	run("setup: Debian 13, eth0 on ifupdown + dhcpcd, option 121 and 2-minute leases", `
grep -q '^VERSION_CODENAME=trixie' /etc/os-release; res $? "setup/the guest is Debian 13 (trixie)"
/lib/systemd/systemd-networkd-wait-online -i eth0 --timeout=60 >/dev/null
rm /etc/systemd/network/20-eth0.network && networkctl reload && sleep 2
ip addr flush dev eth0
sed -i 's/^dhcp-host=52:54:00:12:34:10,192.0.2.10,pamvrf-guest$/&,2m/' /etc/pamvrf-test/dnsmasq.conf
echo 'dhcp-option=option:classless-static-route,198.51.100.0/24,192.0.2.1,0.0.0.0/0,192.0.2.1' >> /etc/pamvrf-test/dnsmasq.conf
systemctl restart pamvrf-dnsmasq
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
	run("a step that fails rolls everything back (fault build: fail-at-step)", `
$A --dry-run > /tmp/plan
pick() { grep -E "^ +[0-9]+\. $1" /tmp/plan | head -1 | awk '{print $1}' | tr -d .; }
for what in 'write /usr/lib/dhcpcd' 'enslave eth0' 're-add addresses' 'wait for dhcpcd' 'move ipv6 route default' 'add rule ipv4 1002' 'systemctl daemon-reload'; do
	n=$(pick "$what")
	[ -n "$n" ] || { echo "FAIL rollback/plan has a step '$what'"; continue; }
	tag="rollback/step $n ($what) fails"
	VRF_NETSETUP_FAULT=fail-at-step:$n vrf-netsetup-fault apply --vrf mgmt --table 1000 --iface eth0 > /tmp/f.out 2>&1
	rc=$?; [ $rc = 1 ] && grep -q 'fault injection: this step fails; .* rolled back' /tmp/f.out && ! grep -q 'ROLLBACK INCOMPLETE' /tmp/f.out
	res $? "$tag: apply fails and rolls back completely"
	grep -E 'settled|FAILED|INCOMPLETE' /tmp/f.out | cut -c1-200 | sed 's/^/| /'
	online >/dev/null
	same "$tag: links, rules, routes, resolv.conf and files as before apply" /root/s0
	`+sshCmd("root", "true")+`; res $? "$tag: ssh from the management network works"
done
`, 8*time.Minute)

	run("apply on the dhcpcd host", `
T=$(date +%s)
$A > /tmp/apply.out 2>&1; rc=$?; res $rc "apply/apply succeeds"
sed 's/^/| /' /tmp/apply.out | grep -E 'manager|dhcpcd|dns mode|settled|done|ERROR|FAIL|rollback' 
[ $rc = 0 ] || cat /tmp/apply.out
grep -q 'interface manager: ifupdown: /etc/network/interfaces, DHCP by dhcpcd' /tmp/apply.out; res $? "apply/the manager is ifupdown with dhcpcd"
grep -q 'dns mode none (auto: dhcpcd writes /etc/resolv.conf' /tmp/apply.out; res $? "apply/DNS: resolv.conf is left to dhcpcd"
grep -q 'dhcpcd settled in' /tmp/apply.out; res $? "apply/apply waited for dhcpcd to bind the lease again after the enslave"
[ -f $H ]; res $? "apply/the dhcpcd hook is installed"
invrf apply
dlog $T | grep -E 'carrier|leased|rebinding|if_route|unreachable' | sed 's/^/| dhcpcd: /'
`, 3*time.Minute)

	run("two DHCP renewals (2-minute lease: T1 is 1 minute)", `
T=$(date +%s)
waitfor 2 renewing $T && waitfor 2 leased $T; res $? "renew/two renewals, each acknowledged"
dlog $T | grep -E 'renewing|leased|rebinding|unreachable' | grep -v if_route | sed 's/^/| dhcpcd: /'
[ "$(rebinding $T)" = 0 ]; res $? "renew/no renewal fell back to the broadcast rebind (the unicast RENEW was answered)"
[ "$(unreachable $T)" = 0 ]; res $? "renew/dhcpcd logged no unreachable send"
for p in $(pgrep -x dhcpcd); do echo "| $(ip vrf identify $p | sed 's/^$/(default)/') $(tr '\0' ' ' </proc/$p/cmdline)"; done
[ "$(ip vrf identify "$(pgrep -xo dhcpcd)")" = mgmt ]; res $? "renew/dhcpcd runs in VRF mgmt (ip vrf identify)"
invrf renew
`, 5*time.Minute)

	run("without the DHCP server's rule the renewal fails, as it did before", `
ip rule del pref 1002 to 192.0.2.1 iif lo lookup 1000
T=$(date +%s)
waitfor 1 unreachable $T; res $? "norule/the unicast renewal cannot be sent ('Network is unreachable')"
dlog $T | grep -E 'renewing|unreachable' | grep -v if_route | head -n 3 | sed 's/^/| dhcpcd: /'
$A > /tmp/apply.out 2>&1; res $? "norule/apply puts the rule back"
T=$(date +%s)
waitfor 1 leased $T; res $? "norule/the lease is bound again"
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
journalctl -b -u pam-vrf-netsetup.service -o short-precise --no-pager | grep -vE '^.{33}vrf-netsetup\[[0-9]+\]: +[0-9]+\. ' | tail -n 25 | cut -c8-220 | sed 's/^/| unit: /'
invrf reboot
sleep 20
invrf reboot+20s
journalctl -b -o short-precise -t dhcpcd -t vrf-netsetup -t dhcpcd-run-hooks --no-pager | grep -vE 'if_route|^.{33}vrf-netsetup\[[0-9]+\]: +[0-9]+\. ' | tail -n 60 | cut -c8-200 | sed 's/^/| /'
`, 4*time.Minute)

	run("revert", `
vrf-netsetup revert > /tmp/revert.out 2>&1; rc=$?; res $rc "revert/revert succeeds"
[ $rc = 0 ] || cat /tmp/revert.out
online >/dev/null
for i in $(seq 60); do ip -4 route show default | grep -q 'via 192.0.2.1 dev eth0' && break; sleep 0.5; done
same "revert/network, rules and files as before apply" /root/s0
[ ! -e $H ]; res $? "revert/the dhcpcd hook is gone"
T=$(date +%s)
waitfor 1 renewing $T && waitfor 1 leased $T; res $? "revert/dhcpcd renews in the default VRF"
dlog $T | grep -E 'renewing|leased|rebinding|unreachable' | sed 's/^/| dhcpcd: /'
[ "$(rebinding $T)" = 0 ]; res $? "revert/the unicast renewal is acknowledged (no rebind)"
ip -4 route show default | grep -q 'via 192.0.2.1 dev eth0'; res $? "revert/the default route is in main again"
`, 6*time.Minute)
}
