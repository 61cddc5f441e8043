#!/bin/bash
# Runs as root in the test guest (tests/vm), driven by BenchmarkVMNetsetup
# (make bench-vm). Converges the host with vrf-netsetup apply, then times
# N more applies and N checks, and proves the applies were a read-only no-op:
#   - `ip monitor all` runs across them: any link/addr/route/rule/neigh change
#     the kernel makes is reported as a netlink notification;
#   - ip -d link/addr/route (all tables)/rule (v4+v6) and the net sysctls are
#     compared before/after;
#   - no file under /etc, /run/systemd/network, /run/systemd/resolve changed
#     (find -newer a marker), and no unit was restarted (ExecMainStartTimestamp
#     / NRestarts of ssh, systemd-networkd, systemd-resolved).
# Output: key=value lines parsed by the benchmark; "BENCH-FAIL ..." on error.
set -u
N=${N:-20}
VRF="vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0"
CHECK="vrf-netsetup check --vrf mgmt --table 1000 --iface eth0"
fail() { echo "BENCH-FAIL $*"; exit 1; }

# As tests/e2e: wait for the DHCP lease, install a policy and the PAM line.
/lib/systemd/systemd-networkd-wait-online -i eth0 --timeout=60 >/dev/null 2>&1
for i in $(seq 300); do ip route show default dev eth0 | grep -q via && break; sleep 0.2; done
ip route show default dev eth0 | grep -q via || { ip -br addr; ip route show table all | head -20; fail "eth0 has no DHCP default route"; }
printf '[user.root]\nvrf = "mgmt"\n' >/etc/security/pam_vrf.toml
chmod 0644 /etc/security/pam_vrf.toml
grep -q pam_vrf.so /etc/pam.d/sshd || echo 'session required pam_vrf.so' >>/etc/pam.d/sshd

$VRF >/tmp/apply0.out 2>&1 || { cat /tmp/apply0.out; fail "first apply exit $?"; }
for i in $(seq 150); do ip route show vrf mgmt | grep -q '^default via' && break; sleep 0.2; done
for i in $(seq 30); do $CHECK >/dev/null 2>&1 && break; sleep 1; done
$CHECK >/dev/null 2>&1 || { cat /tmp/apply0.out; ip route show table all | head -30; }
$VRF >/tmp/apply1.out 2>&1 || { cat /tmp/apply1.out; fail "second apply"; }
grep -q "nothing to do" /tmp/apply1.out || { cat /tmp/apply1.out; fail "second apply did something"; }
$CHECK >/tmp/check0.out 2>&1 || { cat /tmp/check0.out; fail "check fails on a converged host"; }
sleep 1

# Lifetimes and expiry counters tick by themselves; strip them.
snap() {
	{
		ip -d link show; ip -d addr show; ip -d route show table all; ip -6 -d route show table all
		ip -d rule show; ip -6 -d rule show
		sysctl -a 2>/dev/null | grep -E '^net\.(ipv4|ipv6|core)\.' | grep -vE 'stable_secret|random|_count|conntrack_count|route\.gc'
		for u in ssh systemd-networkd systemd-resolved; do
			systemctl show -p ExecMainStartTimestampMonotonic -p NRestarts -p MainPID "$u"
		done
	} 2>&1 | sed -E 's/(valid_lft|preferred_lft|expires) *[0-9]+sec//g' >"$1"
}
snap /tmp/before
touch /tmp/marker; sleep 1.1
ip monitor all >/tmp/monitor 2>&1 &
MON=$!
sleep 0.5

ns() { date +%s%N; }
for i in $(seq "$N"); do
	t0=$(ns); $VRF >/tmp/applyN.out 2>&1; rc=$?; t1=$(ns)
	[ $rc = 0 ] && grep -q "nothing to do" /tmp/applyN.out || { cat /tmp/applyN.out; fail "apply $i on converged host (exit $rc)"; }
	echo "apply_us=$(( (t1 - t0) / 1000 ))"
done
sleep 0.5
kill $MON; wait $MON 2>/dev/null
for i in $(seq "$N"); do
	t0=$(ns); $CHECK >/tmp/checkN.out 2>&1; rc=$?; t1=$(ns)
	[ $rc = 0 ] || { cat /tmp/checkN.out; fail "check $i (exit $rc)"; }
	echo "check_us=$(( (t1 - t0) / 1000 ))"
done
snap /tmp/after
changed=$(find /etc /run/systemd/network /run/systemd/resolve -newer /tmp/marker 2>/dev/null | grep -v '^/etc/ld.so.cache$' || true)
# Notifications the kernel sends on its own during the window are not writes
# by vrf-netsetup: neighbour state, and SLAAC/RA refreshes of dynamic
# addresses and proto-ra routes (the guest's upstream sends RAs).
grep -vE '^\[NEIGH\]|^ +valid_lft|dynamic|proto ra' /tmp/monitor >/tmp/monitor.own || true
echo "monitor_all_lines=$(grep -c . /tmp/monitor)"
echo "monitor_lines=$(grep -c . /tmp/monitor.own)"
echo "state_diff_lines=$(diff /tmp/before /tmp/after | grep -c '^[<>]')"
echo "files_changed=$(printf '%s' "$changed" | grep -c .)"
if [ -s /tmp/monitor.own ]; then echo "--- netlink notifications during the applies:"; head -20 /tmp/monitor.own; fi
diff /tmp/before /tmp/after | head -20
[ -n "$changed" ] && echo "$changed" | head
echo "kernel=$(uname -r) nproc=$(nproc)"
echo BENCH-DONE
