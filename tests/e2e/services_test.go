//go:build vm

package e2e

import (
	"context"
	"testing"
	"time"
)

// servicesShell is sourced by every script of TestE2EServices.
const servicesShell = `
set -u
A="vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0"
S="--service chrony --service rsyslog --service pamvrf-apt-update --service pamvrf-early"
res() { if [ "$1" = 0 ]; then echo "ok   $2"; else echo "FAIL $2"; fi; }
online() {
	/lib/systemd/systemd-networkd-wait-online -i eth0 --timeout=60 >/dev/null
	for i in $(seq 150); do
		ip route show vrf mgmt 2>/dev/null | grep -q '^default via' && return 0
		ip -4 route show default dev eth0 | grep -q via && return 0
		sleep 0.2
	done
	return 1
}
# synced N: chronyd follows the NTP server in netns upstream within N s
synced() { chronyc -n waitsync "$1" 0 0 1 >/dev/null 2>&1; }
# forwarded MARK: rsyslog's message reached the remote syslog within 15 s
forwarded() {
	logger -t pamvrf-e2e "$1"
	for i in $(seq 30); do grep -q "$1" /run/pamvrf-remote.log 2>/dev/null && return 0; sleep 0.5; done
	return 1
}
# aptlog: what the last run of the oneshot apt unit printed (a file: the
# journal may not have the unit's last lines yet when the start returns)
aptlog() { cat /run/pamvrf-apt.log; }
# vrfsocks UNIT: its sockets in the kernel's socket table, with ss's %dev
vrfsocks() { ss -Htuanp | grep "pid=$(systemctl show -p MainPID --value "$1")," ; }
# slow WHAT T0 OUT: how long the command took and what it said it waited on
slow() { echo "| $1 took $(( $(date +%s) - $2 ))s"; grep -E '^(note|WARN)|took|settled in' "$3" | cut -c1-200 | sed 's/^/|   /'; }
units() {
	for u in chrony rsyslog pamvrf-apt-update; do systemctl cat $u.service; systemctl show -p DropInPaths -p BPFProgram $u.service; done 2>&1
	ls -d /etc/systemd/system/*.service.d 2>&1
}
`

// TestE2EServices: daemons in the management VRF (vrf-netsetup apply
// --service). chrony syncs from an NTP server, rsyslog forwards to a remote
// syslog and a oneshot runs apt-get update against the mirror by name, all
// three reachable only through eth0, the management NIC, in netns upstream.
// Before --service they fail and check names them with the fix; with it
// they work, also after a reboot (a unit that starts before the boot unit,
// like systemd-timesyncd, is restarted into the VRF by it); revert and the
// package's purge bring the units back to stock. The refusals each print
// their message.
func TestE2EServices(t *testing.T) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	m, r := netsetupGuest(ctx, t, "services", nil)
	if err := m.Push(ctx, "../../debian/vrf-netsetup.postrm", "/root/vrf-netsetup.postrm", 0o755); err != nil {
		fatal(t, err)
	}
	run := guestScripts(ctx, t, m, r, servicesShell)

	run("setup: NTP server and remote syslog in netns upstream, the daemons in the guest", `
online; res $? "setup/eth0 online"
mkdir -p /etc/pamvrf-test /etc/apt/pamvrf-empty.d
# The NTP server: a second chronyd serving its clock (-x: never sets it),
# with a /run/chrony of its own so the guest's chronyc talks to the client.
cat > /etc/pamvrf-test/ntp-server.conf <<'EOF'
local stratum 8
allow all
bindaddress 192.0.2.1
cmdport 0
pidfile /run/chrony/pamvrf-ntpd.pid
EOF
cat > /etc/systemd/system/pamvrf-ntpd.service <<'EOF'
[Unit]
Description=pam-vrf test network: NTP server (chronyd -x) in netns upstream
BindsTo=pamvrf-upstream.service
After=pamvrf-upstream.service
[Service]
NetworkNamespacePath=/run/netns/upstream
TemporaryFileSystem=/run/chrony:mode=0700
ExecStart=/usr/sbin/chronyd -d -x -u root -f /etc/pamvrf-test/ntp-server.conf
[Install]
WantedBy=multi-user.target
EOF
cat > /etc/pamvrf-test/syslogd.py <<'EOF'
# remote syslog: every datagram to 192.0.2.1:514 becomes one line
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.1", 514))
f = open("/run/pamvrf-remote.log", "ab", 0)
while True:
    d, a = s.recvfrom(65535)
    f.write(d.rstrip(b"\n") + b" <from " + a[0].encode() + b">\n")
EOF
cat > /etc/systemd/system/pamvrf-syslogd.service <<'EOF'
[Unit]
Description=pam-vrf test network: remote syslog (UDP 514) in netns upstream
BindsTo=pamvrf-upstream.service
After=pamvrf-upstream.service
[Service]
NetworkNamespacePath=/run/netns/upstream
ExecStart=/usr/bin/python3 /etc/pamvrf-test/syslogd.py
[Install]
WantedBy=multi-user.target
EOF
# the daemons: chrony follows only that server, rsyslog forwards everything
cat > /etc/chrony/chrony.conf <<'EOF'
server 192.0.2.1 iburst minpoll 0 maxpoll 1
driftfile /var/lib/chrony/chrony.drift
makestep 1 -1
EOF
echo '*.* @192.0.2.1:514' > /etc/rsyslog.d/90-pamvrf-remote.conf
# apt: a oneshot unit, apt-get update against the mirror, by name; the
# mirror (busybox httpd in netns upstream) gets a minimal valid suite
d=/srv/mirror/dists/pamvrf
mkdir -p $d/main/binary-amd64 && : > $d/main/binary-amd64/Packages
{ printf 'Origin: pam-vrf-test\nSuite: pamvrf\nCodename: pamvrf\nDate: %s\nArchitectures: amd64\nComponents: main\nSHA256:\n' "$(date -Ru)"
  printf ' %s %s main/binary-amd64/Packages\n' $(sha256sum < $d/main/binary-amd64/Packages | cut -d' ' -f1) 0; } > $d/Release
echo 'deb [trusted=yes] http://mirror.test pamvrf main' > /etc/apt/pamvrf-mirror.list
cat > /etc/systemd/system/pamvrf-apt-update.service <<'EOF'
[Unit]
Description=apt-get update from the test mirror (as apt-daily.service would)
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'exec /usr/bin/apt-get -o Dir::Etc::SourceList=/etc/apt/pamvrf-mirror.list -o Dir::Etc::SourceParts=/etc/apt/pamvrf-empty.d -o Acquire::Retries=0 -o Acquire::http::Timeout=10 -o APT::Update::Error-Mode=any update >/run/pamvrf-apt.log 2>&1'
EOF
# a daemon that starts before sysinit.target, as systemd-timesyncd does
# (which chrony's package conflicts with): it cannot be ordered after the
# boot unit, which restarts it into the VRF at boot
cat > /etc/systemd/system/pamvrf-early.service <<'EOF'
[Unit]
Description=early daemon with a UDP socket (starts like systemd-timesyncd)
DefaultDependencies=no
Before=sysinit.target shutdown.target
Conflicts=shutdown.target
[Service]
ExecStart=/usr/bin/python3 -c 'import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 0)); time.sleep(1e9)'
[Install]
WantedBy=sysinit.target
EOF
# a socket-activated service (for its refusal)
cat > /etc/systemd/system/pamvrf-echo.socket <<'EOF'
[Socket]
ListenStream=7777
[Install]
WantedBy=sockets.target
EOF
printf '[Service]\nExecStart=/bin/cat\nStandardInput=socket\n' > /etc/systemd/system/pamvrf-echo.service
systemctl daemon-reload
systemctl enable -q --now pamvrf-ntpd pamvrf-syslogd pamvrf-echo.socket pamvrf-early; res $? "setup/NTP server, remote syslog and the socket unit started"
$A > /tmp/apply.out 2>&1; rc=$?; res $rc "setup/vrf-netsetup apply (no --service yet): eth0 and its default route in VRF mgmt"
[ $rc = 0 ] || cat /tmp/apply.out
online >/dev/null
! ip route show default | grep -q .; res $? "setup/the default VRF has no default route"
systemctl enable -q --now chrony rsyslog; res $? "setup/chrony and rsyslog enabled and started (in the default VRF)"
units > /root/units.stock
:
`, 3*time.Minute)

	run("before --service: the daemons fail and check names them with the fix", `
! synced 10; res $? "before/chrony does not synchronise (the NTP server is only reachable through mgmt)"
chronyc -n sources | sed 's/^/| /'
! forwarded before-$RANDOM; res $? "before/rsyslog's forward does not reach the remote syslog"
! systemctl start pamvrf-apt-update.service; res $? "before/apt-get update in the oneshot unit fails"
aptlog | grep -m1 -E 'unreachable|Could not connect|Failed' | sed 's/^/| apt: /'
vrf-netsetup check --vrf mgmt --iface eth0 --query-name mirror.test > /tmp/check.out 2>&1; rc=$?
grep '^FAIL daemons outside the VRF' /tmp/check.out | sed 's/^/| /'
[ $rc = 1 ] && grep '^FAIL daemons outside the VRF' /tmp/check.out | grep 'chrony.service (NTP)' | grep 'rsyslog.service (forwards to @192.0.2.1:514' | grep -q 'fix: vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0 --service chrony.service --service rsyslog.service)'
res $? "before/check fails and names chrony and rsyslog with --service for each"
`, 2*time.Minute)

	run("refusals: each names the unit and what to do, and changes nothing", `
refused() { # CODE TAG PATTERN ARGS...
	want=$1 tag=$2 pat=$3; shift 3
	$A "$@" > /tmp/ref.out 2>&1; rc=$?
	sed 's/^/| /' /tmp/ref.out
	[ $rc = $want ] && grep -qF -- "$pat" /tmp/ref.out; res $? "refuse/$tag (exit $rc)"
}
refused 1 "a unit that is not installed" "unit snmpd.service is not installed (systemd: not-found) (fix: install the package that ships it" --service snmpd
refused 2 "a template without an instance" "getty@.service is a template without an instance: name an instance, e.g. getty@mgmt.service" --service getty@.service
refused 1 "a socket-activated service" "pamvrf-echo.service is socket-activated by pamvrf-echo.socket (listens on [::]:7777)" --service pamvrf-echo
grep -qF "BindToDevice=mgmt" /tmp/ref.out; res $? "refuse/socket-activated: the fix binds the socket unit instead"
refused 1 "a unit whose sandboxing defeats the binding" "systemd-hostnamed.service runs in a network namespace of its own (PrivateNetwork=yes)" --service systemd-hostnamed
refused 2 "a timer" "apt-daily.timer is a timer, which opens no sockets: name the service it starts (usually apt-daily.service)" --service apt-daily.timer
refused 2 "sshd (has --sshd vrf-only)" "--sshd vrf-only" --service ssh
! ls /etc/systemd/system/*.service.d/pam-vrf.conf 2>/dev/null && ! grep -q services /etc/pam-vrf/netsetup.toml; res $? "refuse/no drop-in written, settings unchanged"
`, 2*time.Minute)

	run("apply --service: the daemons work, bound to mgmt", `
$A $S > /tmp/apply.out 2>&1; rc=$?; res $rc "service/apply $S"
[ $rc = 0 ] || cat /tmp/apply.out
grep -E '^ +[0-9]+\. ' /tmp/apply.out | sed 's/^/| /'
[ $(grep -cE '^ +[0-9]+\. restart (chrony|rsyslog).service' /tmp/apply.out) = 2 ]; res $? "service/the plan restarts chrony and rsyslog once (the oneshot is not started)"
l=$(grep '^services = ' /etc/pam-vrf/netsetup.toml); echo "| settings: $l"
for u in chrony rsyslog pamvrf-apt-update pamvrf-early; do echo "$l" | grep -q "\"$u.service\"" || echo "missing $u"; done | grep -q .; [ $? = 1 ]; res $? "service/the list is in the settings file"
$A $S > /tmp/apply2.out 2>&1 && grep -q 'nothing to do' /tmp/apply2.out; res $? "service/a second apply has nothing to do"
synced 40; res $? "service/chrony synchronises from 192.0.2.1 through mgmt"
chronyc -n sources | grep '192.0.2.1' | sed 's/^/| /'
vrfsocks chrony.service | sed 's/^/| ss: /'
vrfsocks chrony.service | grep -q . && ! vrfsocks chrony.service | grep -v '%mgmt:'; res $? "service/every socket of chronyd is bound to mgmt in the socket table (ss %mgmt)"
forwarded after-$RANDOM; res $? "service/rsyslog forwards to the remote syslog"
tail -n 1 /run/pamvrf-remote.log | sed 's/^/| remote syslog: /'
systemctl start pamvrf-apt-update.service; res $? "service/apt-get update in the oneshot unit succeeds"
aptlog | grep -E 'mirror.test' | head -n 2 | sed 's/^/| apt: /'
aptlog | grep -q 'http://mirror.test pamvrf' && ! aptlog | grep -qE 'Failed|unreachable'; res $? "service/apt reached the mirror by name"
vrf-netsetup check --vrf mgmt --iface eth0 --query-name mirror.test > /tmp/check.out 2>&1
grep -E '^(ok  |FAIL) (service |daemons)' /tmp/check.out | cut -c1-220 | sed 's/^/| /'
for u in chrony rsyslog pamvrf-apt-update pamvrf-early; do grep -q "^ok   service $u.service:" /tmp/check.out || echo "missing $u"; done | grep -q . ; [ $? = 1 ]; res $? "service/check: ok for each listed unit"
grep -q After= /etc/systemd/system/pamvrf-early.service.d/pam-vrf.conf; [ $? = 1 ]; res $? "service/the early unit's drop-in has no After= (it would be an ordering cycle)"
grep -q "^ok   service chrony.service: active, pids .*$(systemctl show -p MainPID --value chrony.service).*%mgmt" /tmp/check.out; res $? "service/check lists chronyd's pid and its %mgmt sockets"
grep -q '^ok   daemons outside the VRF' /tmp/check.out; res $? "service/check: no daemon left outside the VRF"
! grep '^FAIL' /tmp/check.out | grep -vqE '^FAIL (pam|policy):'; res $? "service/check passes (pam and policy are not set up in this guest)"
# ip vrf pids lists iproute2's vrf/NAME cgroups only (vrf-netsetup(8) says why)
echo "| ip vrf pids mgmt: [$(ip vrf pids mgmt | tr '\n' ' ')]; chronyd: pid $(systemctl show -p MainPID --value chrony.service)"
`, 3*time.Minute)
	if !rebootChecked(ctx, t, m, r, "reboot", "reboot/guest comes back") {
		return
	}

	run("after the reboot: still bound, still working", `
systemctl is-system-running --wait >/dev/null 2>&1
online; res $? "reboot/eth0 online in mgmt"
journalctl -b -u pam-vrf-netsetup.service -o cat | grep -E 'restart|nothing to do|done' | sed 's/^/| boot unit: /'
synced 60; res $? "reboot/chrony synchronises through mgmt"
journalctl -b -u pam-vrf-netsetup.service -o cat | grep -q 'restart pamvrf-early.service'; res $? "reboot/the boot unit restarted the early unit (started before the program was pinned)"
for i in $(seq 60); do vrfsocks pamvrf-early.service | grep -q '%mgmt' && break; sleep 0.5; done
vrfsocks pamvrf-early.service | grep -q . && ! vrfsocks pamvrf-early.service | grep -v '%mgmt:'; res $? "reboot/the early unit's socket is bound to mgmt"
vrfsocks chrony.service | grep -q . && ! vrfsocks chrony.service | grep -v '%mgmt:'; res $? "reboot/chronyd's sockets are bound to mgmt"
forwarded reboot-$RANDOM; res $? "reboot/rsyslog forwards to the remote syslog"
systemctl start pamvrf-apt-update.service && aptlog | grep -q 'http://mirror.test pamvrf'; res $? "reboot/apt-get update reaches the mirror"
vrf-netsetup check --vrf mgmt --iface eth0 --query-name mirror.test > /tmp/check.out 2>&1
! grep '^FAIL' /tmp/check.out | grep -vqE '^FAIL (pam|policy):'; res $? "reboot/check passes (pam and policy aside)"
grep '^FAIL' /tmp/check.out | cut -c1-200 | sed 's/^/| /'
`, 4*time.Minute)

	run("revert: the units are back to stock", `
old=$(systemctl show -p MainPID --value chrony.service)
t0=$(date +%s)
vrf-netsetup revert > /tmp/revert.out 2>&1; rc=$?; res $rc "revert/revert succeeds"
grep -E '^ +[0-9]+\. .*(pam-vrf.conf|restart)' /tmp/revert.out | sed 's/^/| /'
slow revert $t0 /tmp/revert.out
units > /root/units.now
diff /root/units.stock /root/units.now; res $? "revert/unit files, drop-ins and BPFProgram= as before apply"
[ "$(systemctl show -p MainPID --value chrony.service)" != "$old" ]; res $? "revert/chrony restarted"
t0=$(date +%s); online >/dev/null; echo "| online after $(( $(date +%s) - t0 ))s"
vrfsocks chrony.service | grep -q . && ! vrfsocks chrony.service | grep -q '%mgmt'; res $? "revert/chronyd's sockets are in the default VRF again"
synced 60; res $? "revert/chrony synchronises in the default VRF (its default route is back)"
forwarded revert-$RANDOM; res $? "revert/rsyslog forwards from the default VRF"
`, 5*time.Minute)

	run("purge: the package's postrm removes the drop-ins", `
t0=$(date +%s)
$A $S > /tmp/apply.out 2>&1; res $? "purge/apply --service again"
slow apply $t0 /tmp/apply.out
t0=$(date +%s); online >/dev/null; echo "| online after $(( $(date +%s) - t0 ))s"
vrfsocks chrony.service | grep -q '%mgmt'; res $? "purge/chrony bound again"
/root/vrf-netsetup.postrm purge > /tmp/purge.out 2>&1; res $? "purge/postrm purge succeeds"
sed 's/^/| /' /tmp/purge.out
! ls /etc/systemd/system/*.service.d/pam-vrf.conf 2>/dev/null; res $? "purge/no --service drop-in left"
[ -z "$(systemctl show -p BPFProgram --value chrony.service rsyslog.service pamvrf-apt-update.service | tr -d '\n')" ]; res $? "purge/systemd has no BPFProgram= for the units"
! vrfsocks chrony.service | grep -q '%mgmt'; res $? "purge/chrony restarted unbound"
`, 5*time.Minute)
}
