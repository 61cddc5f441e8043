//go:build vm

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pam-vrf/pam-vrf/tests/vm"
)

// TestE2EFailureRule drives pam_vrf's failure rule (pam/failure.go) through
// real ssh logins in one guest: a good policy places alice (user rule) and
// bob (group rule); a policy with a syntax error, or a deleted VRF, lets
// sessions in unplaced and tells the user and the auth log (on_error unset:
// allow); on_error = "deny" in the policy, or on the pam.d line when the
// policy cannot be read, refuses them; vrf = "default" sends `su -` from a
// placed shell to the default VRF exactly where `ip vrf exec default` goes;
// `vrf-netsetup policy` checks, explains and edits the policy safely.
//
// What reaches the ssh client: pam_error() text goes into sshd's loginmsg
// buffer, which sshd prints for an interactive login (a pty, no command),
// not for `ssh host cmd`; a refused session prints it in either form. So the
// allow cases log in interactively (ssh -tt, commands on stdin) to see it.
func TestE2EFailureRule(t *testing.T) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	s := guestScenario(ctx, t, "failure rule")
	f := &failRule{Scenario: s}

	s.R.Step("Setup", "VRF mgmt by vrf-netsetup, pam_vrf.so enabled, group netops = {bob}")
	s.WaitOnline(ctx, "setup")
	_, _, code := s.run(ctx, `set -e
getent group netops >/dev/null || groupadd netops
usermod -aG netops bob
if [ -f /usr/share/pam-configs/vrf ]; then
  pam-auth-update --enable vrf
else
  sed -i '/pam_systemd\.so/a session required pam_vrf.so' /etc/pam.d/common-session
fi
grep -n pam_vrf /etc/pam.d/common-session
cp /etc/pam.d/common-session /root/common-session.orig`)
	s.check("setup/group netops and the pam_vrf.so line", code == 0, "exit %d", code)
	out, errOut, code := s.run(ctx, "vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0")
	s.check("setup/vrf-netsetup apply succeeds", code == 0, "exit %d\n%s%s", code, out, errOut)
	s.WaitOnline(ctx, "setup")

	f.goodPolicy(ctx)
	f.brokenPolicy(ctx)
	f.pamdDeny(ctx)
	f.policyTool(ctx)
	f.vrfGone(ctx)
	f.defaultVRF(ctx)
}

const policyPath = "/etc/security/pam_vrf.toml"

// goodPolicyText: alice by her user rule (line 1), bob by group netops (line 3).
const goodPolicyText = `[user.alice]
vrf = "mgmt"
[group.netops]
vrf = "mgmt"
`

// brokenLine is the line of `vrf = ` appended to goodPolicyText.
var brokenLine = strings.Count(goodPolicyText, "\n") + 1

type failRule struct{ *Scenario }

func (f *failRule) writePolicy(ctx context.Context, stage, text string) {
	_, _, code := f.run(ctx, "cat > "+policyPath+" <<'EOF'\n"+text+"EOF\nchmod 0644 "+policyPath+"; cat -n "+policyPath)
	f.check(stage+"/policy written", code == 0, "exit %d", code)
}

// cursor marks the end of the journal; authLog returns the pam_vrf lines
// after it, waiting up to 10 s for one containing want (journald may lag
// behind the login that wrote it).
func (f *failRule) cursor(ctx context.Context) string {
	out, _, _ := f.run(ctx, `journalctl -q -n0 --show-cursor | sed -n 's/^-- cursor: //p'`)
	return strings.TrimSpace(out)
}

func (f *failRule) authLog(ctx context.Context, cursor, want string) string {
	out, _, _ := f.run(ctx, fmt.Sprintf(`for i in $(seq 50); do
  journalctl -q --after-cursor=%s -o cat | grep -F 'pam_vrf(' > /tmp/authlog || true
  grep -qF -- %s /tmp/authlog && break; sleep 0.2
done; cat /tmp/authlog`, shq(cursor), shq(want)))
	return out
}

// sshTTY is sshCmd with a pty and no remote command: an interactive login
// shell that reads its commands from stdin, the only form in which sshd
// prints an accepted session's PAM messages.
func sshTTY(user string) string {
	return strings.Replace(sshCmd(user, ""), " ssh ", " ssh -tt ", 1)
}

// probe prints the shell's VRF and cgroup; the markers are split in the
// source so that the pty's echo of the command line cannot match them.
const probe = `echo "V""RF=[$(ip vrf identify)]"; echo "C""G=$(grep ^0:: /proc/self/cgroup)"`

var (
	vrfRe = regexp.MustCompile(`(?m)^VRF=\[([^\]]*)\]`)
	cgRe  = regexp.MustCompile(`(?m)^CG=0::(\S+)`)
)

// session is what one login showed.
type session struct {
	out  string // stdout+stderr of ssh, \r removed
	code int
	vrf  string // ip vrf identify; "?" when the probe did not run
	cg   string // cgroup path
}

func parseSession(out string, code int) session {
	out = strings.ReplaceAll(out, "\r", "")
	se := session{out: out, code: code, vrf: "?"}
	if m := vrfRe.FindStringSubmatch(out); m != nil {
		se.vrf = m[1]
	}
	if m := cgRe.FindStringSubmatch(out); m != nil {
		se.cg = m[1]
	}
	return se
}

// login runs probe (and extra) over `ssh host cmd`.
func (f *failRule) login(ctx context.Context, user, extra string) session {
	out, errOut, code := f.run(ctx, sshCmd(user, probe+"\n"+extra))
	return parseSession(out+errOut, code)
}

// loginTTY runs probe in an interactive pty login.
func (f *failRule) loginTTY(ctx context.Context, user string) session {
	out, errOut, code := f.run(ctx, "printf '%s\\nexit\\n' "+shq(probe)+" | "+sshTTY(user))
	return parseSession(out+errOut, code)
}

// unplaced: the session runs, outside any VRF cgroup, with no VRF.
func (f *failRule) unplaced(stage, who string, se session) {
	f.check(stage+"/"+who+" logs in", se.code == 0 && se.vrf != "?", "exit %d, output %q", se.code, se.out)
	f.check(stage+"/"+who+" is unplaced (ip vrf identify empty, no /vrf in its cgroup)",
		se.vrf == "" && se.cg != "" && !strings.Contains(se.cg, "/vrf"), "vrf %q cgroup %q", se.vrf, se.cg)
}

// refused: sshd refused the session, the command never ran.
func (f *failRule) refused(stage, who string, out string, code int, marker string) {
	f.check(stage+"/"+who+"'s session is refused (ssh fails, the command does not run)",
		code != 0 && !strings.Contains(out, marker), "exit %d, output %q", code, out)
}

func (f *failRule) told(stage, who, msg string, se session) {
	f.check(stage+"/"+who+"'s ssh client shows "+strconv.Quote(msg), strings.Contains(se.out, msg), "output %q", se.out)
}

// 1. A good policy places alice (user rule) and bob (group rule).
func (f *failRule) goodPolicy(ctx context.Context) {
	const st = "good policy"
	f.R.Step("1. Good policy", "alice by [user.alice], bob by [group.netops]: both land in mgmt")
	f.writePolicy(ctx, st, goodPolicyText)
	cur := f.cursor(ctx)
	a := f.login(ctx, "alice", "")
	f.check(st+"/alice is placed in mgmt", a.code == 0 && a.vrf == "mgmt" && strings.HasSuffix(a.cg, "/vrf/mgmt"), "exit %d, vrf %q, cgroup %q, output %q", a.code, a.vrf, a.cg, a.out)
	b := f.login(ctx, "bob", "")
	f.check(st+"/bob is placed in mgmt (group netops)", b.code == 0 && b.vrf == "mgmt" && strings.HasSuffix(b.cg, "/vrf/mgmt"), "exit %d, vrf %q, cgroup %q, output %q", b.code, b.vrf, b.cg, b.out)
	log := f.authLog(ctx, cur, `user "bob" placed`)
	f.check(st+"/auth log names the deciding rules", strings.Contains(log, `user "alice" placed in VRF "mgmt" (user "alice" (`+policyPath+`:1)`) &&
		strings.Contains(log, `user "bob" placed in VRF "mgmt" (group "netops" (`+policyPath+`:3)`), "log %q", log)
}

// 2. A syntax error: every sshd session continues unplaced, told why.
func (f *failRule) brokenPolicy(ctx context.Context) {
	const st = "broken policy"
	f.R.Step("2. Syntax error in the policy, on_error unset", "alice (has a rule) and root (no rule) log in unplaced; they and the auth log are told")
	_, _, code := f.run(ctx, "printf 'vrf = \\n' >> "+policyPath+"; cat -n "+policyPath)
	f.check(st+"/policy broken", code == 0, "exit %d", code)
	loc := fmt.Sprintf("%s:%d", policyPath, brokenLine)
	msg := "pam_vrf: the VRF policy " + loc + " is broken; this session continues without VRF placement"
	cur := f.cursor(ctx)
	for _, u := range []string{"alice", "root"} {
		se := f.loginTTY(ctx, u)
		f.unplaced(st, u, se)
		f.told(st, u, msg, se)
	}
	log := f.authLog(ctx, cur, `user "root"`)
	for _, u := range []string{"alice", "root"} {
		f.check(st+"/auth log warns about "+u+" with the policy's file:line", hasLine(log, `user "`+u+`" service "sshd": policy failure: `+loc+": ", "session continues unbound (on_error=allow, the default)"), "log %q", log)
	}
	out, errOut, code := f.run(ctx, "vrf-netsetup policy check")
	f.check(st+"/vrf-netsetup policy check fails and names "+loc, code != 0 && strings.Contains(out+errOut, loc), "exit %d, output %q %q", code, out, errOut)
}

// hasLine: one line of log contains all of parts.
func hasLine(log string, parts ...string) bool {
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

// setPamdOnError sets (v = "deny"/"allow") or removes (v = "") on_error= on
// the pam_vrf.so line of common-session.
func (f *failRule) setPamdOnError(ctx context.Context, stage, v string) {
	script := "cp /root/common-session.orig /etc/pam.d/common-session"
	if v != "" {
		script += `
sed -i -E 's/^(session\s+required\s+pam_vrf\.so)\s*$/\1 on_error=` + v + `/' /etc/pam.d/common-session
grep -q 'pam_vrf\.so on_error=` + v + `$' /etc/pam.d/common-session`
	}
	_, _, code := f.run(ctx, script+"\ngrep -n pam_vrf /etc/pam.d/common-session")
	what := "pam.d line restored"
	if v != "" {
		what = "pam.d line says on_error=" + v
	}
	f.check(stage+"/"+what, code == 0, "exit %d", code)
}

// 5. The policy cannot be read, so the pam.d line's on_error=deny decides.
func (f *failRule) pamdDeny(ctx context.Context) {
	const st = "pam.d deny"
	f.R.Step("5. pam.d on_error=deny, policy still broken", "a policy that cannot be read cannot say deny itself: the pam.d line does, and alice is refused")
	f.setPamdOnError(ctx, st, "deny")
	loc := fmt.Sprintf("%s:%d", policyPath, brokenLine)
	cur := f.cursor(ctx)
	const marker = "cmd-ran-5e1"
	out, errOut, code := f.run(ctx, sshCmd("alice", "echo "+marker))
	f.refused(st, "alice", out+errOut, code, marker)
	msg := "pam_vrf: the VRF policy " + loc + " is broken; session refused"
	f.told(st, "alice", msg, session{out: out + errOut})
	log := f.authLog(ctx, cur, "session refused")
	f.check(st+"/auth log: refused by the pam.d line", hasLine(log, `user "alice" service "sshd": policy failure: `+loc+": ", "session refused (on_error=deny, pam.d line)"), "log %q", log)
	f.setPamdOnError(ctx, st, "")
	f.writePolicy(ctx, st, goodPolicyText)
}

// 7. vrf-netsetup policy check|explain|edit on the good policy.
func (f *failRule) policyTool(ctx context.Context) {
	const st = "policy tool"
	f.R.Step("7. vrf-netsetup policy check, explain, edit", "explain names the deciding rule; edit installs only a policy that parses")
	out, errOut, code := f.run(ctx, "vrf-netsetup policy check")
	f.check(st+"/policy check passes on the good policy", code == 0 && strings.Contains(out, policyPath+": OK"), "exit %d, output %q %q", code, out, errOut)
	for _, c := range []struct{ user, want, what string }{
		{"alice", `VRF mgmt, by user "alice" (` + policyPath + `:1)`, "the user rule"},
		{"bob", `VRF mgmt, by group "netops" (` + policyPath + `:3)`, "the group rule"},
		{"nobody", "no rule matches", "that no rule matches"},
	} {
		out, errOut, code := f.run(ctx, "vrf-netsetup policy explain "+c.user)
		f.check(st+"/explain "+c.user+" names "+c.what, code == 0 && strings.Contains(out, "user "+c.user+", service sshd: "+c.want), "exit %d, output %q %q", code, out, errOut)
	}

	before, _, _ := f.run(ctx, "sha256sum "+policyPath)
	out, errOut, code = f.run(ctx, `printf '#!/bin/sh\nprintf "vrf = \\n" >> "$1"\n' > /root/bad-editor; chmod 0755 /root/bad-editor
EDITOR=/root/bad-editor vrf-netsetup policy edit </dev/null`)
	f.check(st+"/edit refuses a broken result", code != 0 && strings.Contains(out+errOut, "syntax error"), "exit %d, output %q %q", code, out, errOut)
	after, _, _ := f.run(ctx, "sha256sum "+policyPath+"; ls -A /etc/security | grep '^\\.pam_vrf' || true")
	f.check(st+"/the live policy stays byte-identical, no temporary file left", before != "" && after == before, "before %q after %q", before, after)

	out, errOut, code = f.run(ctx, `printf '#!/bin/sh\nprintf "[user.carol]\\nvrf = \\"mgmt\\"\\n" >> "$1"\n' > /root/good-editor; chmod 0755 /root/good-editor
EDITOR=/root/good-editor vrf-netsetup policy edit </dev/null && sha256sum `+policyPath+` && stat -c '%U %a' `+policyPath+` && vrf-netsetup policy explain carol`)
	f.check(st+"/edit installs a good result (root 644) that explain then sees", code == 0 && !strings.Contains(out, strings.TrimSpace(before)) &&
		strings.Contains(out, "root 644") && strings.Contains(out, `VRF mgmt, by user "carol" (`+policyPath+`:5)`), "exit %d, output %q %q", code, out, errOut)
}

// 3 and 4. The VRF device is gone: allow (nothing set) lets alice in
// unplaced; on_error = "deny" in the policy refuses her but not root
// (vrf = ""); the policy's on_error = "allow" beats the pam.d line's deny.
func (f *failRule) vrfGone(ctx context.Context) {
	st := "vrf gone"
	f.R.Step("3. The VRF is deleted, on_error unset", "alice logs in unplaced, is told, and the auth log names VRF and reason")
	f.writePolicy(ctx, st, goodPolicyText)
	// A placed login first: the policy file is then unchanged when mgmt
	// goes, so the next login may take the C fast path, which must hand
	// a missing device over to the failure rule.
	a := f.login(ctx, "alice", "")
	f.check(st+"/before: alice is placed in mgmt", a.code == 0 && a.vrf == "mgmt", "exit %d, vrf %q, output %q", a.code, a.vrf, a.out)
	_, _, code := f.run(ctx, "ip link del mgmt && ! ip link show mgmt")
	f.check(st+"/ip link del mgmt", code == 0, "exit %d", code)
	// eth0 leaves the VRF with it; it must be reachable in the default VRF
	// before ssh can come in that way.
	out, _, _ := f.run(ctx, `/lib/systemd/systemd-networkd-wait-online -i eth0 --timeout=60
ip rule | grep -q 'lookup local' || echo NO-LOCAL-RULE
ip rule; ip route`)
	// The moved local rule (pref 32765) must outlive the VRF device: without
	// it no local address (192.0.2.10, 127.0.0.1) is reachable at all, and
	// nobody can log in to repair anything.
	f.check(st+"/the local rule survives the VRF's deletion", !strings.Contains(out, "NO-LOCAL-RULE"), "ip rule / ip route:\n%s", out)
	_, _, code = f.run(ctx, "for i in $(seq 60); do ip netns exec "+vm.UpstreamNetns+" ping -c1 -W1 "+vm.GuestAddr4+" >/dev/null && exit 0; sleep 0.5; done; exit 1")
	f.check(st+"/the guest is reachable in the default VRF", code == 0, "exit %d", code)

	cur := f.cursor(ctx)
	se := f.loginTTY(ctx, "alice")
	f.unplaced(st, "alice", se)
	f.told(st, "alice", "pam_vrf: VRF mgmt is not available: the VRF device does not exist; this session continues without VRF placement", se)
	log := f.authLog(ctx, cur, `user "alice"`)
	f.check(st+"/auth log warns: user, VRF, rule, reason, allow", hasLine(log, `user "alice" service "sshd" VRF "mgmt" (user "alice" (`+policyPath+`:1)): vrf failure: `, "does not exist", "session continues unbound (on_error=allow, the default)"), "log %q", log)

	st = "vrf gone, policy deny"
	f.R.Step("4. The VRF is deleted, on_error = \"deny\" in the policy", "alice is refused; root (vrf = \"\") still logs in")
	f.writePolicy(ctx, st, `on_error = "deny"
`+goodPolicyText+`[user.root]
vrf = ""
`)
	cur = f.cursor(ctx)
	const marker = "cmd-ran-4d7"
	out, errOut, code := f.run(ctx, sshCmd("alice", "echo "+marker))
	f.refused(st, "alice", out+errOut, code, marker)
	f.told(st, "alice", "pam_vrf: VRF mgmt is not available: the VRF device does not exist; session refused", session{out: out + errOut})
	r := f.login(ctx, "root", "")
	f.unplaced(st, "root (vrf = \"\")", r)
	log = f.authLog(ctx, cur, "session refused")
	f.check(st+"/auth log: refused by the policy's on_error", hasLine(log, `user "alice" service "sshd" VRF "mgmt" (user "alice" (`+policyPath+`:2)): vrf failure: `, "does not exist", "session refused (on_error=deny, "+policyPath+":1)"), "log %q", log)
	f.check(st+"/auth log: nothing failed for root", !strings.Contains(log, `user "root"`), "log %q", log)

	st = "vrf gone, policy allow over pam.d deny"
	f.R.Step("4b. The policy's on_error = \"allow\" beats the pam.d line's on_error=deny", "the policy can be read, so its setting wins")
	f.setPamdOnError(ctx, st, "deny")
	f.writePolicy(ctx, st, "on_error = \"allow\"\n"+goodPolicyText)
	cur = f.cursor(ctx)
	a = f.login(ctx, "alice", "")
	f.unplaced(st, "alice", a)
	log = f.authLog(ctx, cur, `user "alice"`)
	f.check(st+"/auth log: allowed by the policy's on_error", hasLine(log, `user "alice" service "sshd" VRF "mgmt"`, "session continues unbound (on_error=allow, "+policyPath+":1)"), "log %q", log)
	f.setPamdOnError(ctx, st, "")

	st = "vrf back"
	out, errOut, code = f.run(ctx, "vrf-netsetup apply --vrf mgmt --table 1000 --iface eth0")
	f.check(st+"/vrf-netsetup apply re-creates mgmt", code == 0, "exit %d\n%s%s", code, out, errOut)
	f.WaitOnline(ctx, st)
}

// 6. vrf = "default": `su -` from alice's placed shell goes to the …/vrf
// directory of her session, as `ip vrf exec default` does; its sockets are
// unbound.
func (f *failRule) defaultVRF(ctx context.Context) {
	const st = "vrf default"
	f.R.Step("6. vrf = \"default\" for root's su - (service su-l)", "from alice's mgmt shell, su - lands in the …/vrf cgroup with unbound sockets, where ip vrf exec default goes")
	// util-linux `su -` opens PAM service su-l (which includes su);
	// pam_permit spares alice a password prompt (test guest only).
	f.writePolicy(ctx, st, `services = ["sshd", "su", "su-l"]
[user.alice]
vrf = "mgmt"
[user.root]
vrf = "default"
`)
	_, _, code := f.run(ctx, "sed -i '1a auth sufficient pam_permit.so' /etc/pam.d/su && head -n 3 /etc/pam.d/su")
	f.check(st+"/su lets alice in without a password (test only)", code == 0, "exit %d", code)
	// sock: this shell's TCP sockets (an open connection to sshd on
	// 127.0.0.1); a socket bound to mgmt shows as 127.0.0.1%mgmt:PORT.
	sock := func(key string) string {
		return `exec 3<>/dev/tcp/127.0.0.1/22; echo "` + key + `=$(ss -Htnp | grep "pid=$$," | awk '{print $4}')"; exec 3<&-`
	}
	inner := `echo "S-VRF=[$(ip vrf identify)]"; echo "S-CG=$(grep ^0:: /proc/self/cgroup)"; ` +
		`echo "S-EXEC-DEFAULT=$(ip vrf exec default grep ^0:: /proc/self/cgroup)"; ` + sock("SSOCK")
	cur := f.cursor(ctx)
	se := f.login(ctx, "alice", sock("ASOCK")+"\nsu - -c "+shq(inner)+" 2>&1")
	get := func(key string) string {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `=(.*)$`).FindStringSubmatch(se.out)
		if m == nil {
			return "?"
		}
		return strings.TrimSpace(m[1])
	}
	f.check(st+"/alice is placed in mgmt", se.code == 0 && se.vrf == "mgmt" && strings.HasSuffix(se.cg, "/vrf/mgmt"), "exit %d, vrf %q, cgroup %q, output %q", se.code, se.vrf, se.cg, se.out)
	f.check(st+"/alice's socket is bound to mgmt", strings.Contains(get("ASOCK"), "%mgmt:"), "socket %q, output %q", get("ASOCK"), se.out)
	sdir := strings.TrimPrefix(get("S-CG"), "0::")
	f.check(st+"/su - is in no VRF (ip vrf identify empty)", get("S-VRF") == "[]", "S-VRF %q, output %q", get("S-VRF"), se.out)
	f.check(st+"/su - is in the …/vrf directory of alice's session", se.cg != "" && sdir == strings.TrimSuffix(se.cg, "/mgmt") && strings.HasSuffix(sdir, "/vrf"), "alice %q, su - %q", se.cg, sdir)
	f.check(st+"/that is where ip vrf exec default goes", get("S-EXEC-DEFAULT") == get("S-CG"), "ip vrf exec default %q, su - %q", get("S-EXEC-DEFAULT"), get("S-CG"))
	f.check(st+"/su -'s socket is unbound", strings.HasPrefix(get("SSOCK"), "127.0.0.1:"), "socket %q, output %q", get("SSOCK"), se.out)
	log := f.authLog(ctx, cur, "su-l:session")
	f.check(st+"/auth log: root placed in the default VRF by its rule", strings.Contains(log, `pam_vrf(su-l:session): user "root" placed in the default VRF (user "root" (`+policyPath+`:4), cgroup /sys/fs/cgroup`+sdir+`)`), "log %q", log)
}
