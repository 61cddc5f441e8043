//go:build vm

package e2e

import (
	"testing"
	"time"
)

// nmShell is sourced after netsetupShell and dhcpShapeShell by every script
// of TestE2ENetworkManager (see dhcpshape.go for what it defines).
const nmShell = `
HOOKS="/etc/NetworkManager/system-connections /etc/NetworkManager/dispatcher.d"
HOOK=/etc/NetworkManager/dispatcher.d/90-pam-vrf
KF=/etc/NetworkManager/system-connections/eth0.nmconnection
UUID=0c4f31c6-63a4-4a4e-8a5b-6a1d0f2f5c11
# invrf_client STAGE: NetworkManager's own view, its RA default route in
# table 1000, and the admin's connection changed by the two port keys only
invrf_client() {
	for i in $(seq 60); do ip -6 route show table 1000 | grep -q '^default via fe80::' && break; sleep 0.5; done
	ip -6 route show table 1000 | grep -q '^default via fe80::.* dev eth0' && ! ip -6 route show default | grep -q .
	res $? "$1/the RA default route (NetworkManager's) is in table 1000, not in main"
	[ "$(nmcli -g GENERAL.STATE connection show pam-vrf-mgmt 2>/dev/null)" = activated ] &&
		[ "$(nmcli -g GENERAL.STATE connection show uuid $UUID 2>/dev/null)" = activated ]
	res $? "$1/NetworkManager has the VRF's connection and eth0's active"
	[ "$(nmcli -g GENERAL.CONNECTION device show mgmt)" = pam-vrf-mgmt ]; res $? "$1/NetworkManager manages mgmt (its connection pam-vrf-mgmt)"
	diff /root/eth0.nmconnection $KF | grep '^[<>]' | tr '\n' ' ' | grep -qx '> master=mgmt > slave-type=vrf '
	res $? "$1/the admin's connection gained only master=mgmt and slave-type=vrf"
}
# acked (netsetupShell: dnsmasq's ACKs to eth0 since SINCE) proves a
# unicast RENEW while the server is deaf to broadcasts (deaf on)
unreachable() { journalctl -u NetworkManager --since "@$1" -o cat | grep -ci 'unreachable'; }
renewal_ok() { waitfor 1 acked "$1"; }
# nm_handover: the dispatcher hands apply the connection's nameservers at
# each event ("up" before the IPv6 or a late IPv4 ones are known, then
# "dhcp4-change"/"dhcp6-change"): wait until it has handed over both and
# the apply it started is done
nm_handover() {
	for i in $(seq 60); do
		grep -q '192.0.2.1' /run/pam-vrf/nm-eth0.lease 2>/dev/null && grep -q '2001:db8::1' /run/pam-vrf/nm-eth0.lease && break
		sleep 1
	done
	sleep 2; flock /run/pam-vrf/apply.lock true
}
`

// nmSetup makes the guest a NetworkManager host (the snapshot /root/s0).
const nmSetup = `
grep -q '^VERSION_CODENAME=trixie' /etc/os-release; res $? "setup/the guest is Debian 13 (trixie)"
shape_setup
systemctl disable -q --now systemd-networkd.service systemd-networkd.socket systemd-networkd-varlink.socket 2>/dev/null
# a server of this kind has no systemd-resolved: NetworkManager writes
# /etc/resolv.conf from the lease (with resolved's resolvconf installed
# it would hand them to resolvconf instead; a missing file it leaves missing)
systemctl disable -q --now systemd-resolved && rm -f /etc/resolv.conf
DEBIAN_FRONTEND=noninteractive dpkg --purge systemd-resolved >/tmp/purge.out 2>&1; res $? "setup/systemd-resolved purged"
echo '# placeholder' > /etc/resolv.conf
# only eth0 is NetworkManager's (no default connections for the test's
# other links); DHCP at debug level to see the renewals
printf '[main]\nno-auto-default=*\n[logging]\ndomains=DHCP4:DEBUG\n' > /etc/NetworkManager/conf.d/pamvrf-test.conf
mkdir -p /etc/systemd/system/NetworkManager.service.d
printf '[Unit]\nWants=pamvrf-dnsmasq.service\nAfter=pamvrf-dnsmasq.service\n' > /etc/systemd/system/NetworkManager.service.d/pamvrf-test.conf
cat > $KF <<'K'
[connection]
id=eth0
uuid=0c4f31c6-63a4-4a4e-8a5b-6a1d0f2f5c11
type=ethernet
interface-name=eth0

[ethernet]

[ipv4]
method=auto

[ipv6]
addr-gen-mode=default
method=auto

[proxy]
K
chmod 600 $KF; cp -p $KF /root/eth0.nmconnection
systemctl daemon-reload
systemctl enable -q --now NetworkManager; res $? "setup/NetworkManager started"
online; res $? "setup/eth0 has its lease"
nmcli --version | sed 's/^/| /'
ip -4 route show default | grep -q 'via 192.0.2.1 dev eth0' && ip -4 route | grep -q '^198.51.100.0/24 via 192.0.2.1'
res $? "setup/NetworkManager put the router and the option 121 routes into main"
# the snapshot wants both: the DHCPv6 nameserver comes after the lease
for i in $(seq 150); do grep -q '^nameserver 192.0.2.1' /etc/resolv.conf 2>/dev/null && grep -q '^nameserver 2001:db8::1' /etc/resolv.conf && break; sleep 0.2; done
grep -q '^nameserver 192.0.2.1' /etc/resolv.conf && getent hosts mirror.test >/dev/null; res $? "setup/NetworkManager wrote resolv.conf and names resolve"
snap > /root/s0
`

// TestE2ENetworkManager: a host whose management NIC NetworkManager
// manages with DHCP (a keyfile connection, its internal DHCP client,
// RAs handled by NetworkManager), without systemd-resolved (NetworkManager
// writes /etc/resolv.conf). apply makes NetworkManager itself create the
// VRF (a vrf connection of ours) and enslave eth0 (the admin's connection
// as its port), so its DHCP and RA routes go into table 1000. After apply,
// through two renewals, NetworkManager's own reload and re-activation,
// a reboot and revert: eth0 in the VRF, default routes only in table 1000,
// renewals acknowledged, names resolve from both VRFs, check passes; every
// kind of failed step rolls back to the pre-apply host.
func TestE2ENetworkManager(t *testing.T) {
	ctx, m, r, run := dhcpShapeGuest(t, "trixie", "networkmanager", nmShell)

	run("setup: Debian 13, eth0 on NetworkManager (keyfile, DHCP), option 121 and short leases", nmSetup, 3*time.Minute)

	run("a step that fails rolls everything back (fault build: fail-at-step)", failAtStepScript(
		// the takeover and a step on the VRF device NetworkManager made;
		// make e2e-faults fails every step
		"nmcli connection up", "add address 127.0.0.1/8"),
		faultTime(8*time.Minute))

	run("apply on the NetworkManager host", `
T=$(date +%s)
$A > /tmp/apply.out 2>&1; rc=$?; res $rc "apply/apply succeeds"
sed 's/^/| /' /tmp/apply.out | grep -E 'manager|NetworkManager|nmcli|dns mode|settled|done|ERROR|FAIL|rollback'
[ $rc = 0 ] || cat /tmp/apply.out
grep -q 'interface manager: NetworkManager: /etc/NetworkManager/system-connections/eth0.nmconnection' /tmp/apply.out; res $? "apply/the manager is NetworkManager (eth0's keyfile)"
grep -q 'dns mode none (auto: NetworkManager writes /etc/resolv.conf' /tmp/apply.out; res $? "apply/DNS: resolv.conf is left to NetworkManager"
! grep -qE '^ +[0-9]+\. (enslave|move ipv4 route)' /tmp/apply.out; res $? "apply/nothing enslaved or moved behind NetworkManager's back"
# The failed applies above activated eth0 as a port before, and each
# rollback removed the l3mdev rule, which the kernel adds only for a
# netns's first VRF: apply puts it back before the enslave, else
# NetworkManager's DHCP client cannot connect its socket to the server
# after the ACK ("accept failed: Network is unreachable") and goes
# without its IPv4 lease until it expires.
grep -q 'NetworkManager settled in' /tmp/apply.out; res $? "apply/NetworkManager settled (eth0 a port, both default routes in table 1000)"
ip -4 route show table 1000 | grep -q '^default via 192.0.2.1 dev eth0'; res $? "apply/the IPv4 lease is in table 1000 when apply is done"
[ "$(journalctl -u NetworkManager --since "@$T" -o cat | grep -c 'accept failed')" = 0 ]; res $? "apply/NetworkManager's DHCP client accepted the lease (no 'accept failed')"
echo "| IPv4 default in table 1000 $(( $(date +%s) - T ))s after apply started; apply said: $(grep -E 'NetworkManager (settled|did not settle)' /tmp/apply.out | sed 's/^ *//' | cut -c1-90)"
nm_handover
invrf apply
# what NetworkManager and the server did with the lease meanwhile
journalctl -u NetworkManager --since "@$T" -o cat | grep -E 'dhcp4 \(eth0\)|device \(eth0\): (state|Activation)' | grep -v 'option ' | head -n 20 | cut -c1-160 | sed 's/^/| NetworkManager: /'
journalctl -u pamvrf-dnsmasq --since "@$T" -o cat | grep -E 'DHCP[A-Z]+\(' | head -n 10 | sed 's/^/| dnsmasq: /'
`, 7*time.Minute)

	// The server drops broadcast requests meanwhile: every ACK answers a
	// unicast RENEW (NetworkManager's client sends it on a socket bound
	// to eth0, so through the VRF with no steering rule).
	run("two DHCP renewals (T1 is 20 s), the server deaf to broadcasts", `
T=$(date +%s)
two_renewals
[ "$(unreachable $T)" = 0 ]; res $? "renew/NetworkManager logged no unreachable send"
invrf renew
`, 5*time.Minute)

	run("broken: the dispatcher hook gone", `
hold broken
rm $HOOK
broken broken "the missing dispatcher hook" '^FAIL converged: .*write /etc/NetworkManager/dispatcher.d/90-pam-vrf.*\(fix: vrf-netsetup apply '
$A > /tmp/apply.out 2>&1; res $? "broken/apply puts the hook back"
[ -x $HOOK ]; res $? "broken/the hook is back, executable"
`, 3*time.Minute)

	dhcpShapeLifecycle(ctx, t, m, r, run, "NetworkManager", "nmcli connection reload; nmcli connection up",
		`nmcli connection reload && nmcli --wait 90 connection up uuid $UUID >/tmp/up.out 2>&1; res $? "reload/nmcli connection reload; nmcli connection up eth0"
nm_handover`)
}
