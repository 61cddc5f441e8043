//go:build vm

package e2e

import (
	"context"
	"testing"
	"time"
)

// otherVRFShell is sourced after netsetupShell (res, online, snap, same).
// bluesnap prints VRF blue as a router carries it: device, port, address,
// routes and rules (ifindexes normalised away). probe NAME [PREFIX...]
// sends a DNS query for NAME.test to the DNS server 192.0.2.1 (under
// PREFIX, e.g. "ip vrf exec blue") and prints the reply's size (0: none in
// 3 s); logged NAME: the server (dnsmasq in netns upstream, log-queries)
// got the query; seen NAME: it does within 10 s.
const otherVRFShell = `
bluesnap() {
	ip -d link show blue | sed -E 's/^[0-9]+: //'
	ip -d link show bd0 | sed -E 's/^[0-9]+: //'
	ip -4 addr show dev bd0 | sed -E 's/^[0-9]+: //'
	ip route show table 2000; ip -6 route show table 2000
	ip rule | grep -E 'lookup 2000|blue'; ip -6 rule | grep -E 'lookup 2000|blue'
}
probe() { n=$1; shift; timeout 10 "$@" python3 -c '
import socket, sys
n = sys.argv[1].encode()
q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + bytes([len(n)]) + n + b"\x04test\x00\x00\x01\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
try:
    s.connect(("192.0.2.1", 53))
    s.send(q)
    print(len(s.recv(512)))
except OSError as e:
    print(0)
    print("probe", sys.argv[1], e, file=sys.stderr)
' "$n"; }
logged() { journalctl -u pamvrf-dnsmasq --no-pager -o cat | grep -q "query\[A\] $1.test "; }
seen() { for i in $(seq 20); do logged "$1" && return 0; sleep 0.5; done; return 1; }
# unseen NAME: the query NAME, sent before, never reached the server: one
# sent after it through mgmt did, and the server logs in arrival order
# (no 10 s wait for a line that must not come)
unseen() { probe "$1m" ip vrf exec mgmt >/dev/null; seen "$1m" && ! logged "$1"; }
A="$A --nameserver 192.0.2.1"
# after a failed apply's rollback blue is as the router had it
after_fault() { bluesnap > /tmp/b1; diff /root/b0 /tmp/b1; res $? "$1: blue's device, port, address, routes and rules untouched"; }
# invrf STAGE: what mgmt must give after each event (apply, renewals,
# networkd's reload, reboot), and blue as the router has it
invrf() {
	local bad=0
	check() { res "$1" "$2"; [ "$1" = 0 ] || bad=1; }
	for i in $(seq 150); do
		ip -4 route show table 1000 default | grep -q 'via 192.0.2.1 dev eth0' && ip -6 route show table 1000 default | grep -q 'dev eth0' &&
			! ip -4 route show default | grep -q . && ! ip -6 route show default | grep -q . && break
		sleep 0.4
	done
	ip -o link show eth0 | grep -q 'master mgmt'; check $? "$1/eth0 is in VRF mgmt"
	ip -4 route show table 1000 default | grep -q 'via 192.0.2.1 dev eth0' && ip -6 route show table 1000 default | grep -q 'via fe80::.* dev eth0'
	check $? "$1/the IPv4 (DHCP) and IPv6 (RA) default routes are in table 1000"
	! ip -4 route show default | grep -q . && ! ip -6 route show default | grep -q .; check $? "$1/no default route in main, either family"
	placed "$1" || bad=1
	getent hosts mirror.test >/dev/null; check $? "$1/DNS by name from the default VRF"
	checked "$1" || bad=1
	bluesnap > /tmp/b1; diff /root/b0 /tmp/b1; check $? "$1/blue's device, port, address, routes and rules as the router made them"
	# blue's query first, then one from the default VRF: once the server
	# logged the second, it would have logged the first
	probe "b$1" ip vrf exec blue >/dev/null; probe "d$1" >/dev/null
	seen "d$1" && ! logged "b$1"
	check $? "$1/blue's DNS query stays in blue; the default VRF's reaches the server"
	[ $bad = 0 ] || { ip rule; ip route show table all | grep -vE '^(local|broadcast|multicast)|ff00::'; networkctl --no-pager status eth0 | head -n 30; } 2>&1 | sed 's/^/| dump: /'
}
`

// TestE2EOtherVRF: on a host (Debian 12, networkd) that already carries a
// VRF of its own (blue, table 2000, a port, routes, an ip rule and a
// Cumulus-style DNS steering rule at pref 99, made by the router's own
// unit at boot), apply and revert of mgmt leave blue exactly as it was;
// apply refuses a table blue (or someone's routes) uses, and check fails
// when another VRF shares mgmt's table; blue's queries to the DNS server
// stay in blue, where a pref-99 steering rule (earlier releases) took them
// out through mgmt; revert keeps the l3mdev rule blue needs. After apply,
// two DHCP renewals, networkd's reload and a reboot: eth0 in mgmt, both
// default routes only in table 1000, ssh logins land in mgmt with DNS and
// HTTP by name, check passes, blue as it was.
func TestE2EOtherVRF(t *testing.T) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), faultTime(25*time.Minute))
	defer cancel()
	s := guestScenario(ctx, t, "other VRFs")
	pushFaultBuild(ctx, t, s.VM)
	r := s.R.(*testReporter)
	run := guestScripts(ctx, t, s.VM, r, netsetupShell+otherVRFShell)

	run("a router with VRF blue (table 2000), short leases, pam_vrf", `
# networkd deletes every rule and route it did not configure whenever it
# configures a link (ManageForeign*=yes): a router that keeps hand-made
# VRFs next to it turns that off, or its VRFs would go at the next reload
# whoever triggers it.
mkdir -p /etc/systemd/networkd.conf.d
printf '[Network]\nManageForeignRoutingPolicyRules=no\nManageForeignRoutes=no\n' > /etc/systemd/networkd.conf.d/90-router.conf
short_leases
# dnsmasq first, then networkd: restarted together, networkd's first
# requests can go out before dnsmasq listens, and under TCG next to
# another guest its backoff outlasted online's two minutes (CI, stop 29)
systemctl restart pamvrf-dnsmasq && systemctl restart systemd-networkd
networkctl renew eth0
online || { echo "| eth0 not online after 2 min: networkctl reconfigure eth0, once"; networkctl reconfigure eth0; online; }
res $? "router/eth0 online"
# the router's own unit makes blue at every boot (fixed MACs: the
# snapshot after a reboot compares link addresses too)
cat > /usr/local/sbin/router-blue <<'EOF'
#!/bin/sh -e
ip link add blue address 02:00:00:00:20:00 type vrf table 2000
ip link set blue up
ip link add bd0 address 02:00:00:00:20:01 type dummy
ip link set bd0 master blue
ip addr add 10.20.0.1/24 dev bd0
ip link set bd0 up
ip route add 192.0.2.1/32 dev bd0 table 2000
ip route add 10.99.0.0/16 via 10.20.0.2 dev bd0 table 2000
ip rule add pref 500 from 10.20.0.0/24 lookup 2000
ip rule add pref 99 to 198.51.100.53 iif lo lookup 2000
EOF
chmod 755 /usr/local/sbin/router-blue
cat > /etc/systemd/system/router-blue.service <<'EOF'
[Unit]
Description=VRF blue, made by the router's own script
After=pamvrf-upstream.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/router-blue
[Install]
WantedBy=multi-user.target
EOF
systemctl enable -q --now router-blue.service
res $? "router/VRF blue (table 2000): port bd0, its route to 192.0.2.1, a route, a rule, a DNS steering rule at pref 99"
pam_setup
ip rule | grep -q '^1000:.*l3mdev-table' && ip -6 rule | grep -q '^1000:.*l3mdev-table'; res $? "router/the kernel added the l3mdev rule with blue"
ip route get 192.0.2.1 vrf blue | grep -q 'dev bd0 table 2000'; res $? "router/blue routes the DNS server's address through bd0"
sleep 2
bluesnap > /root/b0; snap > /root/s0
sed 's/^/| blue: /' /root/b0
`, 3*time.Minute)

	// Issue 16 on this shape: the rollback of a failed apply (here at the
	// DNS steering rule, after the VRF, its routes and the l3mdev rule
	// blue shares) leaves the host and blue as they were.
	run("a step that fails rolls everything back, blue untouched (fault build: fail-at-step)",
		failAtStepScript("add rule ipv4 1002"), faultTime(5*time.Minute))

	run("apply mgmt beside blue", `
$A > /tmp/apply.out 2>&1; rc=$?; res $rc "apply/mgmt (table 1000, eth0, --nameserver 192.0.2.1) applies"
[ $rc = 0 ] || cat /tmp/apply.out
for i in $(seq 120); do ip route show vrf mgmt | grep -q '^default' && break; sleep 0.5; done
! grep -E 'blue|bd0|table 2000|198\.51\.100\.53' /tmp/apply.out; res $? "apply/the plan names nothing of blue"
bluesnap > /tmp/b1; diff /root/b0 /tmp/b1; res $? "apply/blue's device, port, address, routes and rules untouched"
ip rule | sed 's/^/| /'
ip rule | awk -F: '/l3mdev-table/ {l=$1} /to 192.0.2.1 iif lo lookup 1000/ {d=$1} /lookup local/ {o=$1} END {exit !(l == 1000 && d == 1002 && o == 32765)}'
res $? "apply/DNS steering rule at 1002: after l3mdev (1000), before local (32765)"
ip route get 192.0.2.1 | grep -q 'dev eth0 table 1000'; res $? "apply/default VRF: the DNS server's address is looked up in table 1000 (via eth0)"
[ "$(probe dflt1)" -gt 0 ] && seen dflt1; res $? "apply/a query from the default VRF reaches the server and is answered"
[ "$(probe mgmt1 ip vrf exec mgmt)" -gt 0 ]; res $? "apply/a query from VRF mgmt is answered"
getent hosts mirror.test >/dev/null && ip vrf exec mgmt getent hosts mirror.test >/dev/null; res $? "apply/names resolve in the default VRF and in mgmt"
vrf-netsetup check --vrf mgmt --iface eth0 --query-name mirror.test > /tmp/check.out 2>&1
grep -q '^ok   table: table 1000 is used by VRF mgmt only; other VRFs: blue (table 2000)' /tmp/check.out; res $? "apply/check: table 1000 is mgmt's only, blue listed"
grep -E '^.... (table|converged)' /tmp/check.out | cut -c1-200 | sed 's/^/| /'
invrf apply
`, 4*time.Minute)

	run("blue's DNS queries stay in blue", `
ip route get 192.0.2.1 vrf blue | tee /tmp/rg | sed 's/^/| /'
grep -q 'dev bd0 table 2000' /tmp/rg; res $? "dns/blue's lookup for 192.0.2.1 is answered by table 2000 (dev bd0), not mgmt's"
probe blue1 ip vrf exec blue >/dev/null; unseen blue1; res $? "dns/a query from VRF blue to 192.0.2.1 does not reach the server through mgmt"
# what earlier releases added: the same rule at pref 99, before l3mdev
ip rule add pref 99 to 192.0.2.1 iif lo lookup 1000
ip route get 192.0.2.1 vrf blue | sed 's/^/| pref 99: /'
ip route get 192.0.2.1 vrf blue | grep -q 'dev eth0 table 1000'; res $? "dns/with the pref-99 rule, blue's lookup was taken into table 1000 (the bug)"
probe blue2 ip vrf exec blue >/dev/null; seen blue2; res $? "dns/... and blue's query left through mgmt's eth0 to the server (the bug)"
$A > /tmp/a2.out 2>&1; res $? "dns/apply again"
grep -q 'delete rule ipv4 99: from all to 192.0.2.1/32 iif lo lookup 1000' /tmp/a2.out; res $? "dns/apply deletes the pref-99 rule of table 1000"
! ip rule | grep -q '^99:.*lookup 1000'; res $? "dns/no pref-99 rule into table 1000 left"
ip rule | grep -q '^99:.*to 198.51.100.53 iif lo lookup 2000'; res $? "dns/blue's own pref-99 rule stays"
ip route get 192.0.2.1 vrf blue | grep -q 'dev bd0 table 2000'; res $? "dns/blue's lookup is blue's again"
probe blue3 ip vrf exec blue >/dev/null; unseen blue3; res $? "dns/blue's query no longer reaches the server through mgmt"
`, 3*time.Minute)

	run("tables in use are refused", `
ip link add rd0 type dummy && ip link set rd0 up
cp /etc/pam-vrf/netsetup.toml /tmp/conf0
vrf-netsetup apply --vrf red --table 2000 --iface rd0 --dns none > /tmp/red.out 2>&1; rc=$?
sed 's/^/| /' /tmp/red.out
[ $rc = 1 ] && grep -q 'table 2000 is also the table of VRF blue' /tmp/red.out && grep -q 'fix: give red a table of its own, e.g. --table' /tmp/red.out
res $? "refuse/apply of VRF red with --table 2000 is refused, naming blue and the fix"
ip route add 198.51.100.0/24 dev rd0 table 3000
vrf-netsetup apply --vrf red --table 3000 --iface rd0 --dns none > /tmp/red.out 2>&1; rc=$?
sed 's/^/| /' /tmp/red.out
[ $rc = 1 ] && grep -q 'table 3000 holds 1 route(s) (198.51.100.0/24 dev rd0), and VRF red does not exist yet' /tmp/red.out
res $? "refuse/--table 3000, which holds someone's route, is refused too"
! ip link show red >/dev/null 2>&1 && cmp -s /tmp/conf0 /etc/pam-vrf/netsetup.toml; res $? "refuse/nothing was created or written"
ip route del 198.51.100.0/24 dev rd0 table 3000; ip link del rd0
bluesnap > /tmp/b2; diff /root/b0 /tmp/b2; res $? "refuse/blue untouched"

ip link add green type vrf table 1000
vrf-netsetup check --vrf mgmt --iface eth0 --query-name mirror.test > /tmp/check.out 2>&1; rc=$?
grep '^.... table' /tmp/check.out | cut -c1-300 | sed 's/^/| /'
[ $rc = 1 ] && grep -q '^FAIL table: table 1000 is also the table of VRF green: .*(fix: re-create green with a table of its own' /tmp/check.out
res $? "check/a VRF green on table 1000 fails the table line, with the fix"
$A > /tmp/a3.out 2>&1; rc=$?
[ $rc = 1 ] && grep -q 'table 1000 is also the table of VRF green' /tmp/a3.out; res $? "check/... and apply refuses while green shares the table"
ip link del green
vrf-netsetup check --vrf mgmt --iface eth0 --query-name mirror.test > /tmp/check.out 2>&1
grep -q '^ok   table:' /tmp/check.out && grep -q '^ok   converged' /tmp/check.out; res $? "check/green gone: table and converged lines pass"
`, 3*time.Minute)

	run("two DHCP renewals (T1 is 20 s), the server deaf to broadcasts", `
two_renewals
invrf renew
`, 5*time.Minute)

	run("networkd's reload: networkctl reload + reconfigure eth0", `
networkctl reload && networkctl reconfigure eth0; res $? "reload/networkctl reload; networkctl reconfigure eth0"
sleep 3
invrf reload
`, 3*time.Minute)

	if !rebootChecked(ctx, t, s.VM, r, "reboot", "reboot/guest comes back") {
		return
	}
	run("after the reboot", `
booted
systemctl is-active --quiet router-blue.service; res $? "reboot/the router's unit made blue again"
invrf reboot
`, 4*time.Minute)

	run("revert leaves blue and its l3mdev rule", `
vrf-netsetup revert > /tmp/revert.out 2>&1; rc=$?; res $rc "revert/revert succeeds"
[ $rc = 0 ] || cat /tmp/revert.out
! grep -q 'l3mdev-table' /tmp/revert.out; res $? "revert/the plan does not delete the l3mdev rule"
ip rule | grep -q '^1000:.*l3mdev-table' && ip -6 rule | grep -q '^1000:.*l3mdev-table'; res $? "revert/l3mdev rule still there, both families (blue exists)"
bluesnap > /tmp/b3; diff /root/b0 /tmp/b3; res $? "revert/blue's device, port, address, routes and rules as before apply"
same "revert/links, rules, routes, resolv.conf and sysctl as before apply" /root/s0
ip route get 192.0.2.1 vrf blue | grep -q 'dev bd0 table 2000'; res $? "revert/blue still routes 192.0.2.1 itself"
getent hosts mirror.test >/dev/null; res $? "revert/DNS works in the default VRF"
out=$(sshin alice 'echo "vrf=[$(ip vrf identify)]"'); echo "$out" | sed 's/^/| alice: /'
echo "$out" | grep -q '^vrf=\[\]$'; res $? "revert/ssh works and the session is in the default VRF"
`, 4*time.Minute)
}
