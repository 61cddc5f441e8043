//go:build vm

package e2e

import (
	"context"
	"testing"
	"time"
)

// ipv6Shell is sourced after netsetupShell (res) by every script of
// TestE2EIPv6Only.
const ipv6Shell = `
A="vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0"
C="vrf-netsetup check --vrf mgmt --table 1000 --iface eth0 --query-name mirror.test"
# ssh6 USER CMD: a login from netns upstream over IPv6 only
ssh6() {
	u=$1; shift
	ip netns exec upstream ssh -i /root/.ssh/id_ed25519 -o BatchMode=yes -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=20 "$u@2001:db8::10" "$@"
}
# snap6: what revert must restore on this shape (ifindexes and RA/SLAAC
# lifetimes normalised away: they count down)
snap6() {
	ip -br link | sed -E 's/@if[0-9]+//'
	ip -br addr | sed -E 's/@if[0-9]+//'
	ip route; ip -6 route | sed -E 's/ expires [0-9]+sec//'
	ip rule; ip -6 rule
	resolvectl dns eth0; resolvectl domain eth0; resolvectl dns | grep -i global
	readlink /etc/resolv.conf
	ls -R /etc/systemd/network /etc/systemd/resolved.conf.d /etc/sysctl.d 2>&1
	sysctl net.ipv4.tcp_l3mdev_accept net.ipv4.udp_l3mdev_accept
}
same6() {
	for i in $(seq 120); do snap6 > /tmp/now; cmp -s "$2" /tmp/now && break; sleep 0.5; done
	diff "$2" /tmp/now; res $? "$1"
}
# failAtStepScript on this shape: the RA route back in main, snap6, ssh over IPv6
fault_online() { for i in $(seq 150); do radef >/dev/null && return 0; sleep 0.4; done; return 1; }
fault_same() { same6 "$@"; }
fault_ssh() { ssh6 root true; }
# radef TABLE: the RA-learnt default route of eth0 in TABLE ("" = main)
radef() { ip -6 route show ${1:+table $1} default | grep -E '^default via fe80::[0-9a-f:]+ dev eth0 proto ra'; }
# rexp: seconds left of the RA default route in table 1000
rexp() { radef 1000 | sed -nE 's/.* expires ([0-9]+)sec.*/\1/p' | head -n 1; }
# invrf6 STAGE: the IPv6-only management network is in the VRF and works
invrf6() {
	for i in $(seq 150); do radef 1000 >/dev/null && ! ip -6 route show default | grep -q . && break; sleep 0.4; done
	ip -6 route show table 1000 | sed 's/^/| table 1000: /'
	ip -6 route show default | sed 's/^/| main (must be empty): /'
	ip -o link show eth0 | grep -q 'master mgmt'; res $? "$1/eth0 is in VRF mgmt"
	radef 1000 >/dev/null; res $? "$1/table 1000 has the RA default route (via fe80::... dev eth0 proto ra)"
	! ip -6 route show default | grep -q .; res $? "$1/main has no IPv6 default route"
	! ip -4 addr show dev eth0 | grep -q inet && ! ip -4 route show table all | grep -q 'via'
	res $? "$1/still IPv6-only: no IPv4 address on eth0, no IPv4 gateway route in any table"
	out=$(ssh6 alice 'echo "vrf=[$(ip vrf identify)]"
getent ahostsv6 mirror.test | head -n 1
curl -6 -sf --max-time 10 http://mirror.test/dists/bookworm/Release | head -n 1' 2>&1)
	echo "$out" | sed 's/^/| alice: /'
	echo "$out" | grep -q '^vrf=\[mgmt\]$'; res $? "$1/ssh alice@2001:db8::10 works and lands in VRF mgmt"
	echo "$out" | grep -q '^2001:db8::1 .*mirror.test'; res $? "$1/AAAA of mirror.test resolves in the placed shell"
	echo "$out" | grep -q '^Origin: pam-vrf-test$'; res $? "$1/HTTP over IPv6 by name from the placed shell"
	getent ahostsv6 mirror.test | grep -q '^2001:db8::1 '; res $? "$1/DNS (AAAA) from the default VRF"
	$C > /tmp/check.out 2>&1; rc=$?
	grep -E '^FAIL|^.... default route' /tmp/check.out | cut -c1-240 | sed 's/^/| check: /'
	[ $rc = 0 ]; res $? "$1/vrf-netsetup check exits 0"
	grep -q '^ok   default route ipv6: table 1000: default via fe80::' /tmp/check.out && ! grep -q 'default route ipv4' /tmp/check.out
	res $? "$1/check tests the IPv6 default route only (eth0 has no IPv4)"
}
`

// TestE2EIPv6Only: a management network that is IPv6 only (RA with short
// lifetimes, stateless DHCPv6 for DNS, a static address), under
// systemd-networkd + resolved. After apply, two RA refreshes, a networkd
// reload, a reboot: eth0 in mgmt, the RA default route in table 1000 and
// none in main, ssh over IPv6 lands in the VRF, DNS (AAAA) and HTTP by
// name from the placed shell, DNS from the default VRF, check passes with
// an IPv6 default-route line and no IPv4 one (and fails on it without the
// route). With resolved's global DNS=[2001:db8::1]:53 instead of the
// link's, apply steers the IPv6 server into the VRF. Revert restores the state.
func TestE2EIPv6Only(t *testing.T) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), faultTime(30*time.Minute))
	defer cancel()
	s := guestScenario(ctx, t, "ipv6-only")
	pushFaultBuild(ctx, t, s.VM)
	run := guestScripts(ctx, t, s.VM, s.R.(*testReporter), netsetupShell+ipv6Shell)

	run("setup: eth0 IPv6-only (RA + stateless DHCPv6), RA every 10 s, router lifetime 60 s", `
/lib/systemd/systemd-networkd-wait-online -i eth0 --timeout=60 >/dev/null
dnsmasq --version | head -n 1 | sed 's/^/| /'
# RA interval 10 s, router lifetime 60 s (dnsmasq's ra-param): the default
# route expires within a minute unless RAs keep reaching networkd
echo 'ra-param=up0,10,60' >> /etc/pamvrf-test/dnsmasq.conf
systemctl restart pamvrf-dnsmasq
mkdir -p /etc/systemd/network/20-eth0.network.d
printf '[Network]\nDHCP=ipv6\n' > /etc/systemd/network/20-eth0.network.d/ipv6-only.conf
networkctl reload && networkctl reconfigure eth0
# the DHCPv4 address goes with the DHCPv4 client; flushed in case it lingers
sleep 2; ip -4 addr flush dev eth0
for i in $(seq 150); do radef >/dev/null && [ "$(resolvectl dns eth0 | cut -d: -f2- | xargs)" = 2001:db8::1 ] && break; sleep 0.4; done
ip -br addr show eth0 | sed 's/^/| /'; ip -6 route | sed 's/^/| /'; resolvectl dns | sed 's/^/| /'
! ip -4 addr show dev eth0 | grep -q inet && ! ip -4 route | grep -q .; res $? "setup/eth0 has no IPv4 address and main no IPv4 route"
ip -6 addr show dev eth0 | grep -q 'inet6 2001:db8::10/64'; res $? "setup/the static 2001:db8::10/64 stays"
radef >/dev/null; res $? "setup/networkd put the RA default route into main"
radef | grep -qE 'expires [0-9]+sec'; res $? "setup/the RA default route has a lifetime"
[ "$(resolvectl dns eth0 | cut -d: -f2- | xargs)" = 2001:db8::1 ] && ! resolvectl dns | grep -q 192.0.2.1
res $? "setup/resolved's only DNS server is 2001:db8::1 (eth0's, from DHCPv6/RA)"
getent ahostsv6 mirror.test | grep -q '^2001:db8::1 '; res $? "setup/DNS (AAAA) works"
journalctl -u pamvrf-dnsmasq -o cat --no-pager | grep -q 'query\[AAAA\] mirror.test from 2001:db8:'; res $? "setup/dnsmasq answered the AAAA query, asked over IPv6"
ssh6 alice 'echo "vrf=[$(ip vrf identify 2>/dev/null)]"' | grep -q '^vrf=\[\]$'; res $? "setup/ssh over IPv6 works (default VRF: nothing applied yet)"
cat > /etc/security/pam_vrf.toml <<'EOF'
[user.alice]
vrf = "mgmt"
EOF
chmod 0644 /etc/security/pam_vrf.toml
pam-auth-update --enable vrf; res $? "setup/policy (alice -> mgmt) and pam_vrf.so enabled"
sleep 2
snap6 > /root/s0
sed 's/^/| before: /' /root/s0 | grep -vE 'before: (/etc|$)'
`, 4*time.Minute)

	// Issue 16 on this shape: a failure once networkd has taken eth0
	// over gives the RA default route back to main, ssh over IPv6 works.
	run("a step that fails rolls everything back (fault build: fail-at-step)",
		failAtStepScript("networkctl reconfigure"), faultTime(5*time.Minute))

	run("apply", `
$A > /tmp/apply.out 2>&1; rc=$?; res $rc "apply/apply succeeds"
cat /tmp/apply.out >&2
grep -E 'dns mode|default route|table 1000|settled' /tmp/apply.out | cut -c1-200 | sed 's/^/| apply: /'
$A > /tmp/apply2.out 2>&1; rc=$?
[ $rc = 0 ] && grep -q 'nothing to do' /tmp/apply2.out; res $? "apply/a second apply has nothing to do"
[ $rc = 0 ] || sed 's/^/| apply 2: /' /tmp/apply2.out
invrf6 apply
`, 5*time.Minute)

	run("two RA refreshes", `
T=$(date +%s)
n=0; prev=$(rexp); first=$prev
for i in $(seq 150); do
	sleep 1; e=$(rexp)
	if [ -z "$e" ]; then echo "| route gone after $i s"; break; fi
	if [ "$e" -gt "$prev" ]; then n=$((n+1)); echo "| refresh $n after $i s: expires $prev -> $e sec"; fi
	prev=$e
	[ $n -ge 2 ] && break
done
[ $n -ge 2 ]; res $? "ra/the RA default route in table 1000 was refreshed twice (expires went up)"
journalctl -u pamvrf-dnsmasq --since "@$T" -o cat --no-pager | grep -c 'RTR-ADVERT' | sed 's/^/| dnsmasq RTR-ADVERT lines since: /'
# the IPv6 line of check is a real test: without the route it fails (and
# still asks nothing of IPv4), and the next RA puts the route back
ip -6 route del $(radef 1000 | cut -d' ' -f1-5) table 1000
$C > /tmp/check.out 2>&1; rc=$?
grep '^FAIL default route' /tmp/check.out | cut -c1-240 | sed 's/^/| check: /'
[ $rc = 1 ] && grep -q '^FAIL default route ipv6: no default route in table 1000' /tmp/check.out && ! grep -q 'default route ipv4' /tmp/check.out
res $? "ra/without the RA default route check fails on its IPv6 line only"
for i in $(seq 60); do radef 1000 >/dev/null && break; sleep 1; done
radef 1000 >/dev/null && ! ip -6 route show default | grep -q .; res $? "ra/the next RA puts the default route back into table 1000 (after $i s), not into main"
invrf6 ra
`, 5*time.Minute)

	run("networkd reload: networkctl reload + reconfigure eth0", `
networkctl reload && networkctl reconfigure eth0; res $? "reload/networkctl reload; networkctl reconfigure eth0"
sleep 3
/lib/systemd/systemd-networkd-wait-online -i eth0 --timeout=60 >/dev/null
invrf6 reload
`, 4*time.Minute)

	if !rebootChecked(ctx, t, s.VM, s.R.(*testReporter), "reboot", "reboot/guest comes back") {
		return
	}
	run("after the reboot", `
systemctl is-system-running --wait >/dev/null 2>&1
/lib/systemd/systemd-networkd-wait-online -i eth0 --timeout=60 >/dev/null
systemctl is-active --quiet pam-vrf-netsetup.service; res $? "reboot/the boot unit ran"
invrf6 reboot
`, 4*time.Minute)

	run("DNS from resolved's global DNS=[2001:db8::1]:53 instead of eth0's", `
# resolved sends to a global server from the default VRF: apply steers it
# into the VRF with an IPv6 rule (to 2001:db8::1 iif lo lookup 1000). The
# bracketed form with a port is resolved.conf(5)'s: its address is steered.
printf '[Resolve]\nDNS=[2001:db8::1]:53\n' > /etc/systemd/resolved.conf.d/90-ipv6-global.conf
printf '[DHCPv6]\nUseDNS=no\n[IPv6AcceptRA]\nUseDNS=no\n' > /etc/systemd/network/20-eth0.network.d/no-link-dns.conf
systemctl restart systemd-resolved && networkctl reload && networkctl reconfigure eth0
for i in $(seq 100); do [ -z "$(resolvectl dns eth0 | cut -d: -f2- | xargs)" ] && radef 1000 >/dev/null && break; sleep 0.3; done
# apply's resolved.conf.d/pam-vrf.conf (read after 90-*) resets DNS= and
# lists the admin's servers as of the last apply: until apply runs again
# the new server is masked, and check's converged line must say so. The
# nameserver watch (resolved's resolv.conf changed) steers the new server
# but leaves the drop-in to a full apply: let any run it started finish,
# then run it once more ourselves so the state does not depend on timing.
while [ "$(systemctl is-active pam-vrf-dns.service)" = activating ]; do sleep 0.5; done
flock /run/pam-vrf/apply.lock true
systemctl start pam-vrf-dns.service; res $? "global/the nameserver watch's apply --dns-only succeeds"
ip -6 rule | grep -q '^1002:.*to 2001:db8::1 iif lo lookup 1000'; res $? "global/the watch steers the new IPv6 server into the VRF (ip -6 rule 1002)"
resolvectl dns | sed 's/^/| before re-apply: /'
$C > /tmp/check.out 2>&1; rc=$?
grep '^FAIL' /tmp/check.out | cut -c1-300 | sed 's/^/| check: /'
[ $rc = 1 ] && grep -q '^FAIL converged: .*write /etc/systemd/resolved.conf.d/pam-vrf.conf' /tmp/check.out && ! grep -q '^FAIL converged: .*add rule ipv6 1002' /tmp/check.out
res $? "global/before apply runs again, check fails naming the resolved drop-in (not the steering rule the watch added)"
$A > /tmp/apply.out 2>&1; rc=$?; res $rc "global/apply succeeds"
cat /tmp/apply.out >&2
resolvectl dns | sed 's/^/| /'
# (resolvectl leaves out the default port)
[ -z "$(resolvectl dns eth0 | cut -d: -f2- | xargs)" ] && resolvectl dns | grep -qE '^Global: (2001:db8::1|\[2001:db8::1\]:53)$'; res $? "global/resolved's only server is the global [2001:db8::1]:53"
ip -6 rule | sed 's/^/| /'
ip -6 rule | grep -q '^1002:.*to 2001:db8::1 iif lo lookup 1000'; res $? "global/the IPv6 DNS server is steered into the VRF (ip -6 rule 1002)"
resolvectl flush-caches
invrf6 global
# Two things carry them, each enough for resolved's connected sockets:
# the rule, and the connect hook that binds a socket connecting to the
# server to mgmt. Without both the default VRF has no route to
# 2001:db8::1 (main has neither the /64 nor a default now).
ip -6 rule del pref 1002 to 2001:db8::1 iif lo lookup 1000
resolvectl flush-caches
timeout 20 resolvectl query -t AAAA --cache=no mirror.test >/dev/null 2>&1; res $? "global/without the rule, DNS from the default VRF still works (the connect hook binds resolved's socket to mgmt)"
rm /sys/fs/bpf/pam-vrf/dns6-mgmt
resolvectl flush-caches
! timeout 20 resolvectl query -t AAAA --cache=no mirror.test >/dev/null 2>&1; res $? "global/without the rule and the hook, DNS from the default VRF fails"
$A > /tmp/apply.out 2>&1 && ip -6 rule | grep -q '^1002:.*to 2001:db8::1 iif lo lookup 1000' && [ -e /sys/fs/bpf/pam-vrf/dns6-mgmt ]; res $? "global/apply puts the rule and the hook back"
resolvectl flush-caches
getent ahostsv6 mirror.test | grep -q '^2001:db8::1 '; res $? "global/DNS (AAAA) from the default VRF again"
rm /etc/systemd/resolved.conf.d/90-ipv6-global.conf /etc/systemd/network/20-eth0.network.d/no-link-dns.conf
systemctl restart systemd-resolved && networkctl reload && networkctl reconfigure eth0
for i in $(seq 100); do [ "$(resolvectl dns eth0 | cut -d: -f2- | xargs)" = 2001:db8::1 ] && radef 1000 >/dev/null && break; sleep 0.3; done
$A > /tmp/apply.out 2>&1; rc=$?; res $rc "global/back to eth0's server: apply succeeds"
cat /tmp/apply.out >&2
! ip -6 rule | grep -q '2001:db8::1'; res $? "global/the steering rule is gone with the global server"
invrf6 link-dns
`, 6*time.Minute)

	run("revert", `
vrf-netsetup revert > /tmp/revert.out 2>&1; rc=$?; res $rc "revert/revert succeeds"
cat /tmp/revert.out >&2
for i in $(seq 150); do radef >/dev/null && break; sleep 0.4; done
! ip -o link show eth0 | grep -q master; res $? "revert/eth0 is back in the default VRF"
radef >/dev/null && ! ip -6 route show table 1000 | grep -q .; res $? "revert/the RA default route is in main again, table 1000 empty"
same6 "revert/links, addresses, routes, rules, resolved DNS, files and sysctls as before apply" /root/s0
ssh6 alice 'echo "vrf=[$(ip vrf identify 2>/dev/null)]"' | grep -q '^vrf=\[\]$'; res $? "revert/ssh over IPv6 works (default VRF)"
getent ahostsv6 mirror.test | grep -q '^2001:db8::1 '; res $? "revert/DNS (AAAA) works"
`, 4*time.Minute)
}
