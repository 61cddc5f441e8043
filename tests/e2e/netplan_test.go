//go:build vm

package e2e

import (
	"context"
	"testing"
	"time"
)

// netplanShell is sourced after netsetupShell (res) by every script of
// TestE2ETrixieNetplan.
const netplanShell = `
A="vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0 --sshd vrf-only"
NP=/run/systemd/network/10-netplan-eth0.network
# psnap: the state revert must restore. Addresses and DNS servers sorted
# within their line; ifindexes, RA lifetimes and nexthop ids (networkd 257
# puts RA routes on nexthop objects, new ones each time) normalised away:
# DHCP and RA re-run after revert, in whatever order their answers come.
psnap() {
	ip -br addr | sed -E 's/@if[0-9]+//' | while read -r dev state addrs; do
		echo "$dev $state $(printf '%s\n' $addrs | sort | tr '\n' ' ')"
	done
	ip route | sed -E 's/ nhid [0-9]+//'
	ip -6 route | sed -E 's/ expires [0-9]+sec//; s/ nhid [0-9]+//'
	ip rule; ip -6 rule
	resolvectl dns | sed -E 's/^Link [0-9]+ /Link N /' | while IFS= read -r l; do
		echo "${l%%:*}: $(printf '%s\n' ${l#*:} | sort | tr '\n' ' ')"
	done
	readlink /etc/resolv.conf
}
psame() {
	for i in $(seq 120); do psnap > /tmp/now; cmp -s "$2" /tmp/now && break; sleep 0.5; done
	local rc; diff "$2" /tmp/now; rc=$?; res $rc "$1" "$([ $rc = 0 ] || diffwhy "$2" /tmp/now)"
}
# v4online TABLE: networkd has eth0's DHCPv4 default route in TABLE (main or 1000)
v4online() {
	for i in $(seq 300); do
		ip -4 route show table "$1" default | grep -q 'via 192.0.2.1 dev eth0' && return 0
		sleep 0.2
	done
	return 1
}
# failAtStepScript on this shape: the lease's route back in main, psnap,
# and ssh.socket in charge again, listening unbound
fault_online() { v4online main; }
fault_same() { psame "$@"; }
after_fault() {
	unbound22
	echo "$o" | grep -q 'systemd' && ! echo "$o" | grep -q '%' && systemctl is-active --quiet ssh.socket && ! systemctl is-enabled --quiet ssh.service
	res $? "$1: ssh.socket in charge, listening unbound"
}
# dump: what a reader of a failure needs to see
dump() {
	echo "| --- state dump ($1)"
	{
		ip -d link show eth0; ip -d link show mgmt 2>&1
		ip -br addr; ip rule; ip route show table all | grep -v '^local\|^broadcast\|^multicast\|ff00::'
		echo "# /run/systemd/network:"; ls -l /run/systemd/network
		echo "# drop-ins:"; ls -l /etc/systemd/network/ /etc/systemd/network/*.d 2>&1
		networkctl --no-pager status eth0 mgmt 2>&1 | head -n 60
		resolvectl --no-pager status 2>&1 | head -n 30
		ss -Htlnp 'sport = :22'
		systemctl --no-pager is-active ssh.socket ssh.service pam-vrf-netsetup.service
		journalctl -u systemd-networkd --since=-4min -o cat --no-pager | tail -n 40
	} 2>&1 | sed 's/^/| /'
}
# invrf STAGE: everything a management VRF must give after each event
invrf() {
	local bad=0 out
	check() { res "$1" "$2"; [ "$1" = 0 ] || bad=1; }
	v4online 1000
	for i in $(seq 100); do ip -4 route show default | grep -q . || break; sleep 0.3; done
	ip -o link show eth0 | grep -q 'master mgmt'; check $? "$1/eth0 is enslaved to VRF mgmt"
	ip -4 route show table 1000 | grep -q '^default via 192.0.2.1 dev eth0'; check $? "$1/the IPv4 default route is in table 1000"
	! ip -4 route show table main | grep -q '^default'; check $? "$1/no IPv4 default route in main"
	networkctl --no-pager status eth0 2>/dev/null | grep -q "Network File: $NP" && grep -q '^VRF=mgmt' /etc/systemd/network/10-netplan-eth0.network.d/pam-vrf.conf
	check $? "$1/networkd runs eth0 from netplan's file; our drop-in (VRF=mgmt) is beside it"
	placed "$1" || bad=1
	ss -Htlnp 'sport = :22' > /tmp/ss.out
	grep -q '%mgmt:22 .*"systemd"' /tmp/ss.out && [ "$(systemctl is-active ssh.socket)" = active ]; check $? "$1/ssh.socket is active and its listener is bound to mgmt"
	# trixie's ssh.socket has Accept=no: the first connection starts
	# ssh.service on the socket's own (bound) listener, so ssh.service may
	# be active; what must never be is a listener of its own, unbound
	! grep -v '%mgmt:22 ' /tmp/ss.out | grep -q .; check $? "$1/no port-22 listener outside mgmt (ssh.service, if running, serves the socket's)"
	ip vrf exec mgmt getent hosts mirror.test > /dev/null; check $? "$1/DNS by name from a shell in the VRF"
	getent hosts mirror.test > /dev/null; check $? "$1/DNS by name from the default VRF"
	checked "$1" || bad=1
	[ $bad = 0 ] || dump "$1"
}
`

// TestE2ETrixieNetplan: the Ubuntu server shape on Debian 13 (trixie):
// eth0 configured by netplan (renderer networkd, DHCPv4, matched by name),
// systemd-resolved, and a socket-activated sshd. After apply with
// --sshd vrf-only, through two DHCP renewals (short leases), netplan
// apply (netplan regenerates /run/systemd/network, where its file for eth0
// lives), networkctl reload and a reboot: eth0 in mgmt, the IPv4 default
// route only in table 1000, ssh logins land in mgmt through the VRF-bound
// ssh.socket, DNS works in and out of the VRF, and check passes. revert
// restores the state before apply.
func TestE2ETrixieNetplan(t *testing.T) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), faultTime(40*time.Minute))
	defer cancel()
	s := guestScenarioSuite(ctx, t, "trixie", "trixie netplan")
	pushFaultBuild(ctx, t, s.VM)
	r := s.R.(*testReporter)
	run := guestScripts(ctx, t, s.VM, r, netsetupShell+netplanShell)

	run("setup: eth0 on netplan (networkd), short leases, ssh.socket, pam_vrf", `
grep -q '^VERSION_CODENAME=trixie' /etc/os-release; res $? "setup/the guest is Debian 13 (trixie)"
short_leases
systemctl restart pamvrf-dnsmasq
# netplan takes eth0 over from the image's own networkd file
rm /etc/systemd/network/20-eth0.network
cat > /etc/netplan/50-cloud-init.yaml <<'EOF'
network:
  version: 2
  renderer: networkd
  ethernets:
    eth0:
      match:
        name: eth0
      dhcp4: true
EOF
chmod 600 /etc/netplan/50-cloud-init.yaml
netplan generate; res $? "setup/netplan generate"
grep -q '^Name=eth0' $NP && grep -q '^DHCP=ipv4' $NP; res $? "setup/netplan wrote $NP (Name=eth0, DHCP=ipv4)"
sed 's/^/| netplan: /' $NP
systemctl disable -q --now ssh.service && systemctl enable -q --now ssh.socket; res $? "setup/sshd socket-activated (ssh.socket), as on Ubuntu"
echo "| ssh.socket: $(systemctl show -p Accept -p BindToDevice ssh.socket | tr '\n' ' ')"
pam_setup
sync
`, 3*time.Minute)
	// a clean start, as the shape boots: netplan's generator at boot, no
	// leftovers of the image's own eth0 configuration
	if !rebootChecked(ctx, t, s.VM, r, "reboot into the netplan shape", "setup/guest boots with netplan's configuration") {
		return
	}
	run("before apply", `
systemctl is-system-running --wait >/dev/null 2>&1
v4online main; res $? "before/DHCPv4 default route in main"
networkctl --no-pager status eth0 | grep -q "Network File: $NP"; res $? "before/networkd runs eth0 from $NP"
resolvectl dns eth0 | grep -q '192.0.2.1'; res $? "before/resolved has the lease's DNS server on eth0"
readlink /etc/resolv.conf | grep -q stub-resolv.conf; res $? "before/resolv.conf is resolved's stub"
getent hosts mirror.test > /dev/null; res $? "before/DNS by name works"
ss -Htlnp 'sport = :22' | grep -v '%' | grep -q 'systemd'; res $? "before/ssh.socket listens, unbound"
out=$(sshin bob 'echo "vrf=[$(ip vrf identify)]"'); echo "$out" | grep -q '^vrf=\[\]$'; res $? "before/ssh works (default VRF)"
sleep 3
psnap > /root/s0
sed 's/^/| s0: /' /root/s0
`, 3*time.Minute)

	// Issue 16 on this shape: a failure at ssh.socket's restart (its
	// drop-in written, eth0 in the VRF) rolls back to netplan's
	// configuration and an unbound ssh.socket.
	run("a step that fails rolls everything back (fault build: fail-at-step)",
		failAtStepScript("stop ssh.service and restart ssh.socket"), faultTime(5*time.Minute))

	run("apply --sshd vrf-only", `
$A > /tmp/apply.out 2>&1; rc=$?; res $rc "apply/apply succeeds"
grep -E 'manager|dns mode|netplan|ssh' /tmp/apply.out | cut -c1-240 | sed 's/^/| apply: /'
[ $rc = 0 ] || sed 's/^/| /' /tmp/apply.out
grep -q 'generated by netplan' /tmp/apply.out; res $? "apply/the manager is networkd with netplan's file"
[ -s /etc/systemd/network/10-netplan-eth0.network.d/pam-vrf.conf ]; res $? "apply/the drop-in is /etc/systemd/network/10-netplan-eth0.network.d/pam-vrf.conf"
grep -q 'BindToDevice=mgmt' /run/systemd/system/ssh.socket.d/pam-vrf.conf; res $? "apply/ssh.socket's drop-in binds it to mgmt"
invrf apply
`, 4*time.Minute)

	run("two DHCP renewals (T1 is 20 s), the server deaf to broadcasts", `
two_renewals
invrf renew
`, 6*time.Minute)

	run("broken: our networkd drop-in deleted", `
hold broken
D=/etc/systemd/network/10-netplan-eth0.network.d/pam-vrf.conf
rm $D
broken broken "the missing drop-in" "^FAIL converged: .*write $D.*\\(fix: vrf-netsetup apply "
$A > /tmp/apply.out 2>&1; res $? "broken/apply puts the drop-in back"
grep -q '^VRF=mgmt' $D; res $? "broken/the drop-in is back (VRF=mgmt)"
`, 3*time.Minute)

	run("netplan apply (the manager's own reload)", `
T=$(date +%s)
netplan apply > /tmp/np.out 2>&1; rc=$?; res $rc "netplan/netplan apply"
sed 's/^/| netplan apply: /' /tmp/np.out
ls -l --time-style=+%s $NP | sed 's/^/| /'
[ "$(stat -c %Y $NP)" -ge "$T" ]; res $? "netplan/netplan rewrote $NP"
sleep 5
invrf netplan
`, 4*time.Minute)

	run("networkctl reload", `
networkctl reload; res $? "reload/networkctl reload"
sleep 5
invrf reload
`, 4*time.Minute)

	if !rebootChecked(ctx, t, s.VM, r, "reboot", "reboot/guest comes back") {
		return
	}
	run("after the reboot", "booted; invrf reboot", 4*time.Minute)

	run("revert", `
reverted
v4online main; res $? "revert/the IPv4 default route is in main again"
! ip -o link show eth0 | grep -q master; res $? "revert/eth0 is back in the default VRF"
psame "revert/ip -br addr, ip route, ip -6 route, ip rule, resolvectl dns as before apply" /root/s0
unbound22
echo "$o" | sed 's/^/| ss: /'
echo "$o" | grep -q 'systemd' && ! echo "$o" | grep -q '%'; res $? "revert/ssh.socket listens unbound again"
systemctl is-active --quiet ssh.socket && ! systemctl is-enabled --quiet ssh.service; res $? "revert/ssh.socket still in charge (ssh.service not enabled)"
out=$(sshin alice 'echo "vrf=[$(ip vrf identify)]"'); echo "$out" | sed 's/^/| alice: /'
echo "$out" | grep -q '^vrf=\[\]$'; res $? "revert/ssh works and the session is in the default VRF"
getent hosts mirror.test > /dev/null; res $? "revert/DNS by name from the default VRF"
[ ! -e /etc/systemd/network/10-netplan-eth0.network.d ] && [ ! -e /run/systemd/system/ssh.socket.d/pam-vrf.conf ]; res $? "revert/our drop-ins are gone"
`, 4*time.Minute)
}
