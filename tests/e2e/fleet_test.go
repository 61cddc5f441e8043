//go:build vm

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pam-vrf/pam-vrf/tests/vm"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// fleetDir is where the test puts the role, the packages and the
// playbooks in the guest.
const fleetDir = "/root/fleet"

// recap is one host's PLAY RECAP line.
type recap struct{ ok, changed, failed, skipped int }

var recapRe = regexp.MustCompile(`(?m)^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)\s+skipped=(\d+)`)

func (r recap) String() string {
	return fmt.Sprintf("ok=%d changed=%d failed=%d skipped=%d", r.ok, r.changed, r.failed, r.skipped)
}

// fleet is one guest with the role, the packages and the playbooks of
// the fleet tests in fleetDir.
type fleet struct {
	t   *testing.T
	ctx context.Context
	m   *vm.VM
	s   *Scenario
	r   *testReporter
}

// newFleet boots a guest and puts the role as shipped (contrib/ansible),
// the .debs of PAMVRF_DEBS and the test's playbook and vars files into it.
func newFleet(ctx context.Context, t *testing.T, name string) *fleet {
	debDir := os.Getenv("PAMVRF_DEBS")
	if debDir == "" {
		fatal(t, "PAMVRF_DEBS is not set: run through make e2e, which builds the packages")
	}
	debs, _ := filepath.Glob(filepath.Join(debDir, "*.deb"))
	if len(debs) == 0 {
		fatalf(t, "no .deb in %s (make deb)", debDir)
	}
	start := time.Now()
	m := bootGuest(ctx, t)
	r := &testReporter{t: t}
	f := &fleet{t: t, ctx: ctx, m: m, s: &Scenario{VM: m, R: r}, r: r}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console tail:\n%s", m.ConsoleTail(40))
		}
		say(t, "\n%s summary (%v):\n  %s\n", name, time.Since(start).Round(time.Second), strings.Join(r.lines, "\n  "))
		say(t, "%s: %d passed, %d failed (%v)\n", name, r.passed, r.failed, time.Since(start).Round(time.Second))
	})
	var guestDebs []string
	for _, d := range debs {
		dst := fleetDir + "/debs/" + filepath.Base(d)
		if err := m.Push(ctx, d, dst, 0o644); err != nil {
			fatal(t, err)
		}
		guestDebs = append(guestDebs, dst)
	}
	pushTree(ctx, t, m, "../../contrib/ansible", fleetDir+"/ansible")
	djs, _ := json.Marshal(guestDebs)
	vars := func(onError, moreUsers, more string) []byte {
		return []byte(`pam_vrf_debs: ` + string(djs) + `
pam_vrf_iface: eth0
pam_vrf_policy_on_error: ` + onError + `
pam_vrf_policy_users:
  - {name: alice, vrf: mgmt}
  - {name: root, vrf: ""}
` + moreUsers + more)
	}
	const local = "pam_vrf_debs_on_host: true\n"
	for name, data := range map[string][]byte{
		"site.yml": []byte("- hosts: all\n  gather_facts: false\n  roles: [pam_vrf]\n"),
		// -c local: the .debs are on the host already (copying them to
		// where they are costs a minute per run under TCG)
		"good.yml": vars("allow", "", local),
		// check mode: one more user rule
		"bob.yml": vars("allow", "  - {name: bob, vrf: mgmt}\n", local),
		// a typo in the policy: pam_vrf's loader refuses on_error = "sometimes"
		"broken.yml": vars("sometimes", "", local),
		// over ssh through eth0, the interface that moves: try + confirm;
		// the .debs are copied over that connection
		// and the role enables the metrics timer
		"try.yml": vars("allow", "", "pam_vrf_apply_mode: try\npam_vrf_try_timeout: 300\npam_vrf_metrics_timer: true\n"),
	} {
		if err := m.WriteFile(ctx, fleetDir+"/"+name, data, 0o644); err != nil {
			fatal(t, err)
		}
	}
	f.s.WaitOnline(ctx, "fleet")
	return f
}

// play runs ansible-playbook in the guest (ansible is "ansible-playbook
// -c local -i localhost," or an ssh variant). One agent command may run 5
// minutes at most, and one play can take longer under TCG: it runs in the
// background and is polled.
func (f *fleet) play(stage, ansible, varsFile, flags string) (recap, string, int) {
	t, s, m, ctx := f.t, f.s, f.m, f.ctx
	t.Helper()
	t0 := time.Now()
	dir := fleetDir + "/runs/" + strings.NewReplacer(" ", "-", "(", "", ")", "", "+", "").Replace(stage)
	cmd := ansible + " site.yml -e @" + varsFile + " " + flags
	// every module run costs seconds under TCG: pipelining, and no
	// deflate/inflate of the module payloads; the junit callback records
	// what each task took (logged below)
	_, errOut, code := s.run(ctx, "mkdir -p "+dir+" && cd "+fleetDir+" && ANSIBLE_ROLES_PATH="+fleetDir+"/ansible/roles ANSIBLE_NOCOLOR=1 "+
		"ANSIBLE_PIPELINING=1 ANSIBLE_MODULE_COMPRESSION=ZIP_STORED ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 "+
		"ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_CALLBACKS_ENABLED=ansible.builtin.junit JUNIT_OUTPUT_DIR="+dir+" "+
		"setsid sh -c '"+cmd+" >"+dir+"/out 2>&1; echo $? >"+dir+"/rc.tmp; mv "+dir+"/rc.tmp "+dir+"/rc' </dev/null >/dev/null 2>&1 &")
	if code != 0 {
		s.check(stage+"/ansible-playbook started", false, "exit %d %s", code, errOut)
		return recap{}, "", -1
	}
	code = -1
	for time.Since(t0) < 12*time.Minute && ctx.Err() == nil {
		time.Sleep(5 * time.Second)
		out, _, c, err := m.Run(ctx, "cat "+dir+"/rc 2>/dev/null")
		if err == nil && c == 0 && strings.TrimSpace(out) != "" {
			code, _ = strconv.Atoi(strings.TrimSpace(out))
			break
		}
	}
	outb, _ := m.ReadFile(ctx, dir+"/out")
	out := string(outb)
	s.R.Command(cmd, out, "", code)
	if x, _, _ := s.run(ctx, "cat "+dir+"/*.xml"); x != "" {
		t.Logf("%s: task times:\n%s", stage, taskTimes(x))
	}
	var rc recap
	mm := recapRe.FindStringSubmatch(out)
	if mm != nil {
		rc.ok, _ = strconv.Atoi(mm[2])
		rc.changed, _ = strconv.Atoi(mm[3])
		rc.failed, _ = strconv.Atoi(mm[4])
		rc.skipped, _ = strconv.Atoi(mm[5])
	}
	say(f.t, "   %s: exit %d, PLAY RECAP %s (%v)\n", stage, code, rc, time.Since(t0).Round(time.Second))
	s.check(stage+"/ansible-playbook printed a PLAY RECAP", mm != nil, "exit %d\n%s", code, out)
	return rc, out, code
}

// vrfOf is the VRF an ssh login of user lands in (ip vrf identify).
func (f *fleet) vrfOf(user string) string {
	out, _, code := f.s.run(f.ctx, sshCmd(user, `echo "vrf=[$(ip vrf identify)]"`))
	if code != 0 {
		return fmt.Sprintf("(ssh exit %d)", code)
	}
	if mm := regexp.MustCompile(`vrf=\[(.*)\]`).FindStringSubmatch(out); mm != nil {
		return mm[1]
	}
	return "(no answer)"
}

// taskStatus is the status line of the role's task in a play's output
// ("ok", "changed", "skipping", "fatal"), or "not run".
func taskStatus(out, task string) string {
	re := regexp.MustCompile(`(?m)^TASK \[pam_vrf : ` + regexp.QuoteMeta(task) + `\] \**\n(?:.*\n)*?(ok|changed|skipping|fatal|failed): \[[^\]]+\]`)
	if mm := re.FindStringSubmatch(out); mm != nil {
		return mm[1]
	}
	return "not run"
}

const localAnsible = "ansible-playbook -c local -i localhost,"

// TestE2EFleet runs contrib/ansible's pam_vrf role with Debian's
// ansible-core inside one guest (ansible-playbook -c local): the first run
// installs the packages, writes the policy, enables the module and
// provisions (changed), and ssh logins are then placed; the second run
// changes nothing; check mode with drift and a new policy reports changes
// and makes none; a broken policy fails the play before it goes live. On
// the way it takes vrf-netsetup's JSON (validated on the host against
// docs/schema), its exit codes, and the metrics of a healthy and a broken
// guest (promtool on the host).
func TestE2EFleet(t *testing.T) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	f := newFleet(ctx, t, "e2e fleet")
	s := f.s
	play := func(stage, varsFile, flags string) (recap, string, int) {
		return f.play(stage, localAnsible, varsFile, flags)
	}
	vrfOf := f.vrfOf
	s.R.Step("Fleet: the pam_vrf Ansible role (ansible-playbook -c local in the guest)", "contrib/ansible/roles/pam_vrf with Debian's ansible-core; packages from the .deb files")
	policySum := func() string {
		out, _, _ := s.run(ctx, "sha256sum /etc/security/pam_vrf.toml 2>&1")
		return strings.TrimSpace(out)
	}
	const applyTask = "Provision the management VRF (vrf-netsetup apply)"

	// ---- run 1: provision ----
	rc, out, code := play("run 1", "good.yml", "")
	s.check("run 1/play succeeds and reports changes", code == 0 && rc.failed == 0 && rc.changed > 0, "exit %d %s\n%s", code, rc, out)
	s.check("run 1/apply reported changed (from its JSON)", taskStatus(out, applyTask) == "changed", "status %q", taskStatus(out, applyTask))
	s.check("run 1/the role's own verification ran (vrf-netsetup check)", taskStatus(out, "Verify (vrf-netsetup check)") == "ok", "status %q", taskStatus(out, "Verify (vrf-netsetup check)"))
	s.Check(ctx, "run 1")
	got := vrfOf("alice")
	s.check("run 1/alice's ssh login lands in VRF mgmt (ip vrf identify)", got == "mgmt", "got %q", got)
	got = vrfOf("bob")
	s.check("run 1/bob (no rule) lands in the default VRF", got == "", "got %q", got)
	goodPolicy := policySum()

	// ---- run 2: idempotent ----
	rc, out, code = play("run 2", "good.yml", "")
	s.check("run 2/play succeeds with changed=0", code == 0 && rc.failed == 0 && rc.changed == 0, "exit %d %s\n%s", code, rc, out)
	s.check("run 2/apply reported ok (nothing to do)", taskStatus(out, applyTask) == "ok", "status %q", taskStatus(out, applyTask))

	// ---- vrf-netsetup's own interface: exit codes, JSON, metrics ----
	s.R.Step("vrf-netsetup for automation", "exit codes, --json validated against docs/schema on the host, metrics checked by promtool on the host")
	out, _, code = s.run(ctx, "vrf-netsetup apply --exit-changed")
	s.check("exit codes/converged apply --exit-changed exits 0", code == 0 && strings.Contains(out, "nothing to do"), "exit %d %q", code, out)
	out, _, code = s.run(ctx, "vrf-netsetup check --json")
	s.check("json/check --json on the provisioned guest: ok, exit 0", code == 0 && validJSON(t, "vrf-netsetup-check.schema.json", out, "ok"), "exit %d\n%s", code, out)
	// the timer as shipped, enabled by hand as vrf-netsetup(8) says (the
	// role's pam_vrf_metrics_timer is TestE2EFleetTry's)
	out, _, code = s.run(ctx, `systemctl is-enabled pam-vrf-check-metrics.timer
mkdir -p /var/lib/prometheus/node-exporter && systemctl enable --now pam-vrf-check-metrics.timer 2>&1 &&
systemctl start pam-vrf-check-metrics.service && cat /var/lib/prometheus/node-exporter/pam-vrf.prom`)
	s.check("metrics/the timer is shipped disabled; enabled, its service writes the file", code == 0 && strings.HasPrefix(out, "disabled\n"), "exit %d\n%s", code, out)
	_, healthy, _ := strings.Cut(out, "# HELP")
	healthy = "# HELP" + healthy
	s.check("metrics/healthy guest: every pam_vrf_check_ok is 1", strings.Count(healthy, "pam_vrf_check_ok{") > 10 &&
		!regexp.MustCompile(`(?m)^pam_vrf_check_ok\{.*\} 0$`).MatchString(healthy) && strings.Contains(healthy, `pam_vrf_checks_failed{vrf="mgmt"} 0`), "%s", healthy)
	s.check("metrics/promtool check metrics accepts the healthy file", promtoolOK(t, healthy), "see the log")

	// drift: a sysctl apply manages, set back by hand
	s.run(ctx, "sysctl -qw net.ipv4.udp_l3mdev_accept=0")
	out, _, code = s.run(ctx, "vrf-netsetup apply --dry-run --exit-changed --json")
	s.check("exit codes/apply --dry-run --exit-changed on a drifted guest exits 3", code == 3, "exit %d", code)
	s.check("json/the dry run's JSON: changed, the sysctl step planned", validJSON(t, "vrf-netsetup-result.schema.json", out, "changed") &&
		strings.Contains(out, `"id": "sysctl-net.ipv4.udp_l3mdev_accept"`), "%s", out)
	out, _, code = s.run(ctx, "systemctl start pam-vrf-check-metrics.service; cat /var/lib/prometheus/node-exporter/pam-vrf.prom")
	s.check("metrics/broken guest: the drifted sysctl's gauge is 0", code == 0 &&
		strings.Contains(out, `pam_vrf_check_ok{check="sysctl net.ipv4.udp_l3mdev_accept",vrf="mgmt"} 0`) && !strings.Contains(out, `pam_vrf_checks_failed{vrf="mgmt"} 0`), "%s", out)
	s.check("metrics/promtool check metrics accepts the broken file", promtoolOK(t, out), "see the log")

	// ---- check mode with drift and a new policy ----
	rc, out, code = play("check mode (drift + new rule)", "bob.yml", "--check --diff")
	s.check("check mode (drift)/play succeeds and reports the policy and apply as would-change", code == 0 && rc.failed == 0 && rc.changed >= 2 &&
		taskStatus(out, applyTask) == "changed", "exit %d %s apply %q\n%s", code, rc, taskStatus(out, applyTask), out)
	s.check("check mode (drift)/--diff shows the new rule", strings.Contains(out, `+[user."bob"]`), "%s", out)
	s.check("check mode (drift)/the new policy was checked by vrf-netsetup policy check", taskStatus(out, "Check the policy in check mode (vrf-netsetup policy check)") == "ok",
		"status %q", taskStatus(out, "Check the policy in check mode (vrf-netsetup policy check)"))
	sysctl, _, _ := s.run(ctx, "sysctl -n net.ipv4.udp_l3mdev_accept")
	pol, got := policySum(), vrfOf("bob")
	s.check("check mode (drift)/nothing changed: policy, sysctl (still drifted), bob's login", pol == goodPolicy &&
		strings.TrimSpace(sysctl) == "0" && got == "", "policy %q (was %q), sysctl %q, bob in %q", pol, goodPolicy, sysctl, got)

	// ---- a broken policy variable ----
	rc, out, code = play("broken policy", "broken.yml", "")
	s.check("broken policy/play fails", code != 0 && rc.failed == 1, "exit %d %s\n%s", code, rc, out)
	s.check("broken policy/the failure is vrf-netsetup policy check's verdict", strings.Contains(out, `on_error: must be \"allow\" or \"deny\", not \"sometimes\"`) ||
		strings.Contains(out, `on_error: must be "allow" or "deny", not "sometimes"`), "%s", out)
	s.check("broken policy/nothing after the policy ran (apply, verification)", taskStatus(out, applyTask) == "not run", "status %q", taskStatus(out, applyTask))
	sysctl, _, _ = s.run(ctx, "sysctl -n net.ipv4.udp_l3mdev_accept; ls /etc/security/ | grep -c ansible || true")
	pol = policySum()
	s.check("broken policy/the live policy is unchanged, no candidate left behind, apply did not run", pol == goodPolicy && strings.TrimSpace(sysctl) == "0\n0",
		"policy %q (was %q), %q", pol, goodPolicy, sysctl)
	got = vrfOf("alice")
	s.check("broken policy/alice's login still lands in mgmt", got == "mgmt", "got %q", got)

	// ---- revert, as JSON ----
	out, errOut, code := s.run(ctx, "vrf-netsetup revert --json --exit-changed")
	s.check("exit codes/revert --exit-changed exits 3 (changed)", code == 3, "exit %d\n%s%s", code, out, errOut)
	s.check("json/revert's JSON: ok, changed, revert steps applied", validJSON(t, "vrf-netsetup-result.schema.json", out, "ok", "changed") &&
		strings.Contains(out, `"phase": "revert"`) && !strings.Contains(out, `"status": "planned"`), "%s", out)
}

// TestE2EFleetTry runs the role the way a fleet does when Ansible reaches
// the host through the very interface that moves into the VRF: over ssh,
// from the upstream namespace through eth0, with pam_vrf_apply_mode try.
// vrf-netsetup try runs in the background with its rollback armed, the
// role reaches the host again over a new connection, and a new login
// confirms; the host is then provisioned, the try confirmed and its
// rollback disarmed.
func TestE2EFleetTry(t *testing.T) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	f := newFleet(ctx, t, "e2e fleet try")
	s := f.s
	s.R.Step("Fleet over ssh through the management interface (pam_vrf_apply_mode: try)",
		"ansible-playbook in the upstream namespace reaches the guest through eth0, which moves into VRF mgmt; a new ssh login confirms")
	// The race that hung this play in CI, made certain: try makes its
	// first change 20 s after it starts, so the connection Ansible opens to
	// reach the host again is made in the default VRF before eth0 moves,
	// and the move kills it. (A diversion, so the package installs its
	// binary beside this wrapper.)
	_, errOut, code := s.run(ctx, `set -e
dpkg-divert --local --quiet --divert /usr/sbin/vrf-netsetup.real --rename --add /usr/sbin/vrf-netsetup
cat > /usr/sbin/vrf-netsetup <<'EOF'
#!/bin/sh
if [ "$1" = try ]; then logger -t fleet-test "try starts"; sleep 20; logger -t fleet-test "try runs"; fi
exec /usr/sbin/vrf-netsetup.real "$@"
EOF
chmod 755 /usr/sbin/vrf-netsetup`)
	if code != 0 {
		fatalf(t, "divert vrf-netsetup: exit %d: %s", code, errOut)
	}
	ssh := "ip netns exec " + vm.UpstreamNetns + " env ANSIBLE_HOST_KEY_CHECKING=False ansible-playbook -u root -i " + vm.GuestAddr4 + ","
	rc, out, code := f.play("try over ssh", ssh, "try.yml", "")
	s.check("try/play over ssh succeeds and reports changes", code == 0 && rc.failed == 0 && rc.changed > 0, "exit %d %s\n%s", code, rc, out)
	for _, c := range []struct{ task, want string }{
		{"Provision the management VRF (vrf-netsetup apply)", "skipping"},
		{"Start vrf-netsetup try (in the background; the connection may break)", "ok"},
		{"Wait for vrf-netsetup try", "changed"},
		{"Confirm the try from the new login (vrf-netsetup confirm)", "changed"},
	} {
		got := taskStatus(out, c.task)
		s.check("try/task "+c.task+": "+c.want, got == c.want, "status %q", got)
	}
	if taskStatus(out, "Wait for vrf-netsetup try") != "changed" {
		// what the guest saw of Ansible's connections and of the try
		s.run(ctx, `journalctl -o short-precise --no-pager -u ssh | tail -n 30
journalctl -o short-precise --no-pager -t vrf-netsetup -u pam-vrf-rollback.service -u pam-vrf-dns.service | tail -n 30
ps -eo pid,ppid,lstart,args | grep -E '[s]sh|[a]nsible|[v]rf-netsetup'
ls -la /root/.ansible/cp 2>&1; ip netns exec `+vm.UpstreamNetns+` ss -tnp
for f in /root/.ansible_async/*; do echo "== $f"; head -c 2000 "$f"; echo; done
ip netns exec `+vm.UpstreamNetns+` ssh -v -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 root@`+vm.GuestAddr4+` true 2>&1 | tail -n 15`)
	}
	st, _, _ := s.run(ctx, "grep -o '\"status\": \"[a-z-]*\"' /var/lib/pam-vrf/try.json; systemctl is-active pam-vrf-rollback.timer")
	s.check("try/the try is confirmed and its rollback timer is gone", strings.Contains(st, `"status": "confirmed"`) && strings.Contains(st, "inactive"), "%q", st)
	logins, _, _ := s.run(ctx, "journalctl -u ssh --no-pager -o cat | grep -c 'Accepted publickey for root from "+vm.UpstreamAddr4+"'")
	n, _ := strconv.Atoi(strings.TrimSpace(logins))
	s.check("try/Ansible logged in over eth0 more than once (the confirm came from a new login)", n >= 2, "%d root logins from %s", n, vm.UpstreamAddr4)
	early, _, _ := s.run(ctx, `journalctl -o short-unix --no-pager | grep -E 'fleet-test[^:]*: try (starts|runs)|Accepted publickey for root from `+vm.UpstreamAddr4+`' |
awk '/try starts/{w=1} /try runs/{w=0} w && /Accepted/{n++} END{print n+0}'`)
	s.check("try/Ansible's connection made before eth0 moved did not hang the play (keepalives, reconnect)",
		strings.TrimSpace(early) != "0" && code == 0, "%s root logins between try's start and its first change; play exit %d", strings.TrimSpace(early), code)
	st, _, _ = s.run(ctx, "systemctl is-enabled pam-vrf-check-metrics.timer; systemctl is-active pam-vrf-check-metrics.timer")
	s.check("try/the role enabled and started the metrics timer", st == "enabled\nactive\n", "%q", st)
	s.Check(ctx, "try")
	got := f.vrfOf("alice")
	s.check("try/alice's ssh login lands in VRF mgmt", got == "mgmt", "got %q", got)
}

// TestE2ECloudInit runs contrib/cloud-init/user-data.yaml's write_files
// and runcmd in a fresh guest the way cloud-init would (the guest has no
// cloud-init): the packages come over HTTP from the upstream namespace's
// server; afterwards the policy is live, the module enabled, the guest
// provisioned, check's JSON says ok, and alice's ssh login lands in mgmt.
func TestE2ECloudInit(t *testing.T) {
	guestTest(t)
	debs, _ := filepath.Glob(filepath.Join(os.Getenv("PAMVRF_DEBS"), "*.deb"))
	if len(debs) == 0 {
		fatal(t, "no .deb in $PAMVRF_DEBS: run through make e2e, which builds the packages")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	m := bootGuest(ctx, t)
	r := &testReporter{t: t}
	s := &Scenario{VM: m, R: r}
	defer func() {
		say(t, "e2e cloud-init: %d passed, %d failed (%v)\n", r.passed, r.failed, time.Since(start).Round(time.Second))
	}()
	for _, d := range debs {
		if err := m.Push(ctx, d, "/srv/mirror/pam-vrf/"+filepath.Base(d), 0o644); err != nil {
			fatal(t, err)
		}
	}
	if err := m.Push(ctx, "../../contrib/cloud-init/user-data.yaml", "/root/user-data.yaml", 0o644); err != nil {
		fatal(t, err)
	}
	s.R.Step("cloud-init user-data (contrib/cloud-init/user-data.yaml)", "write_files, then runcmd with the packages from http://"+vm.MirrorName+"/pam-vrf")
	s.WaitOnline(ctx, "cloud-init")
	out, errOut, code := s.run(ctx, `cd /root && python3 - <<'PY'
import os, yaml
d = yaml.safe_load(open("user-data.yaml"))
for f in d["write_files"]:
    with open(f["path"], "w") as w:
        w.write(f["content"])
    os.chmod(f["path"], int(f["permissions"], 8))
argv = d["runcmd"][0]
open("runcmd.sh", "w").write(argv[2].replace("https://repo.example.net/pam-vrf", "http://`+vm.MirrorName+`/pam-vrf"))
open("runcmd.flags", "w").write(argv[1])
assert argv[0] == "sh"
PY
sh $(cat runcmd.flags) "$(cat runcmd.sh)"`)
	s.check("cloud-init/runcmd succeeds", code == 0, "exit %d\n%s%s", code, out, errOut)
	out, _, _ = s.run(ctx, `stat -c '%U %a' /etc/security/pam_vrf.toml; ls /etc/security/pam_vrf.toml.new 2>&1
grep -c pam_vrf.so /etc/pam.d/common-session`)
	s.check("cloud-init/the policy is live (root, 0644), the module enabled", strings.HasPrefix(out, "root 644\n") &&
		strings.Contains(out, "No such file") && strings.HasSuffix(strings.TrimSpace(out), "1"), "%q", out)
	out, _, _ = s.run(ctx, "cat /var/log/pam-vrf-check.json")
	s.check("cloud-init/check's JSON in /var/log says ok", validJSON(t, "vrf-netsetup-check.schema.json", out, "ok"), "%s", out)
	out, _, _ = s.run(ctx, "cat /var/log/pam-vrf-apply.json")
	s.check("cloud-init/apply's JSON in /var/log says changed", validJSON(t, "vrf-netsetup-result.schema.json", out, "ok", "changed"), "%s", out)
	out, _, code = s.run(ctx, sshCmd("alice", `echo "vrf=[$(ip vrf identify)]"`))
	s.check("cloud-init/alice's ssh login lands in VRF mgmt", code == 0 && strings.Contains(out, "vrf=[mgmt]"), "exit %d %q", code, out)
}

// taskTimes lists the tasks of an ansible junit report, slowest first.
func taskTimes(junitXML string) string {
	var doc struct {
		Suites []struct {
			Cases []struct {
				Name string  `xml:"name,attr"`
				Time float64 `xml:"time,attr"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(junitXML), &doc); err != nil {
		return err.Error()
	}
	type tc struct {
		name string
		t    float64
	}
	var all []tc
	total := 0.0
	for _, su := range doc.Suites {
		for _, c := range su.Cases {
			// "[host] all: pam_vrf : TASK args..." -> "TASK"
			name := c.Name
			if i := strings.Index(name, "pam_vrf : "); i >= 0 {
				name = name[i+len("pam_vrf : "):]
			}
			if i := strings.IndexAny(name, "=\n"); i >= 0 {
				if j := strings.LastIndex(name[:i], " "); j > 0 {
					name = name[:j]
				}
			}
			all = append(all, tc{name, c.Time})
			total += c.Time
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].t > all[j].t })
	var b strings.Builder
	fmt.Fprintf(&b, "  %6.1fs in %d tasks\n", total, len(all))
	for _, c := range all {
		fmt.Fprintf(&b, "  %6.1fs %s\n", c.t, c.name)
	}
	return b.String()
}

// pushTree copies a host directory into the guest.
func pushTree(ctx context.Context, t *testing.T, m *vm.VM, src, dst string) {
	t.Helper()
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		fatal(t, err)
	}
	sort.Strings(files)
	for _, f := range files {
		rel, _ := filepath.Rel(src, f)
		if err := m.Push(ctx, f, dst+"/"+filepath.ToSlash(rel), 0o644); err != nil {
			fatal(t, err)
		}
	}
}

// validJSON: doc is one JSON document valid against docs/schema/<schema>,
// and the boolean fields named in mustBeTrue are true.
func validJSON(t *testing.T, schema, doc string, mustBeTrue ...string) bool {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(filepath.Join("..", "..", "docs", "schema", schema))
	if err != nil {
		errorf(t, "compile %s: %v", schema, err)
		return false
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
	if err != nil {
		t.Logf("not JSON: %v", err)
		return false
	}
	if err := sch.Validate(inst); err != nil {
		t.Logf("%s: %#v", schema, err)
		return false
	}
	var m map[string]any
	_ = json.Unmarshal([]byte(doc), &m)
	for _, f := range mustBeTrue {
		if m[f] != true {
			t.Logf("%s is %v", f, m[f])
			return false
		}
	}
	return true
}

// promtoolOK runs the host's promtool check metrics on a metrics text.
func promtoolOK(t *testing.T, metrics string) bool {
	t.Helper()
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader([]byte(metrics))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("promtool check metrics: %v\n%s\n--- metrics ---\n%s", err, out, metrics)
		return false
	}
	return true
}
