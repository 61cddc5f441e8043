package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pam-vrf/pam-vrf/config"
	"golang.org/x/sys/unix"
)

// goodPolicy: line numbers matter, the tests name them.
const goodPolicy = `default = "mgmt"
on_error = "allow"

[user.alice]
vrf = "mgmt"

[user.root]
vrf = ""

[user.dave]
vrf = "default"

[user.erin]
vrf = "mgmt"
services = ["login"]

[group.netops]
vrf = "mgmt"

[group.ops]
vrf = "oob"
services = ["sshd"]

[group.admins]
vrf = "mgmt"
`

// noDefaultPolicy has no default, so a user without a rule is untouched.
const noDefaultPolicy = `[user.alice]
vrf = "mgmt"

[group.netops]
vrf = "mgmt"
`

const brokenPolicy = `[user.alice]
vrf = "mgmt"
bogus = 1
`

// setHooks replaces the outside world for one test: no NSS (the group
// source must be set by the test), VRF devices from the map, no terminal.
func setHooks(t *testing.T, devices map[string]string) {
	t.Helper()
	saved := hooks
	t.Cleanup(func() { hooks = saved })
	hooks.groups = func(*config.Policy) config.Groups {
		return func(string, []string) ([]bool, error) {
			t.Error("unexpected group lookup")
			return nil, errors.New("unexpected group lookup")
		}
	}
	hooks.linkKind = func(name string) (string, bool, error) {
		k, ok := devices[name]
		return k, ok, nil
	}
	hooks.stdin = strings.NewReader("")
	hooks.isTerminal = func() bool { return false }
	hooks.getenv = func(string) string { return "" }
}

func writePolicy(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask
		t.Fatal(err)
	}
	return p
}

func runPolicy(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(append([]string{"policy"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: config.Load insists on root-owned files")
	}
}

func TestPolicyCheck(t *testing.T) {
	requireRoot(t)
	setHooks(t, map[string]string{"mgmt": "vrf", "oob": "veth"})
	dir := t.TempDir()
	good := writePolicy(t, dir, "good.toml", goodPolicy, 0o644)

	code, out, errs := runPolicy("check", good)
	want := good + `: OK (4 user rules, 3 group rules, default "mgmt", acts for sshd, login; on_error allow)` + "\n"
	if code != 0 || out != want {
		t.Errorf("good: exit %d\nstdout %q\nwant   %q\nstderr %q", code, out, want, errs)
	}
	// mgmt exists as a VRF: no word about it; oob is a veth: warned, with
	// the rule that names it, and not fatal
	if strings.Contains(errs, `"mgmt"`) || !strings.Contains(errs, `warning: VRF "oob" is a veth device on this host, not a VRF`) ||
		!strings.Contains(errs, `group "ops" (`+good+`:20)`) || !strings.Contains(errs, `on_error = "allow", `+good+`:2`) {
		t.Errorf("good: VRF warnings %q", errs)
	}
	// same through --file
	if code, out2, _ := runPolicy("check", "--file", good); code != 0 || out2 != want {
		t.Errorf("--file: exit %d %q", code, out2)
	}

	// a missing VRF is a warning too
	setHooks(t, map[string]string{})
	code, out, errs = runPolicy("check", good)
	if code != 0 || !strings.Contains(errs, `warning: VRF "mgmt" does not exist on this host`) ||
		!strings.Contains(errs, `used by default (`+good+`:1), user "alice" (`+good+`:4) and 3 more`) {
		t.Errorf("missing VRF: exit %d %q %q", code, out, errs)
	}

	broken := writePolicy(t, dir, "broken.toml", brokenPolicy, 0o644)
	code, out, errs = runPolicy("check", broken)
	if code != 1 || out != "" || !strings.HasPrefix(errs, broken+":3: user.alice.bogus: unknown key\n") ||
		!strings.Contains(errs, "vrf      = \"mgmt\"") || // the usage hint
		!strings.Contains(errs, "fix it with: vrf-netsetup policy edit --file "+broken+"\n") {
		t.Errorf("broken: exit %d stdout %q stderr %q", code, out, errs)
	}

	unsafe := writePolicy(t, dir, "unsafe.toml", goodPolicy, 0o664)
	code, out, errs = runPolicy("check", unsafe)
	if code != 1 || out != "" || !strings.HasPrefix(errs, unsafe+": refusing policy: mode 0664 is group/world-writable") ||
		strings.Contains(errs, "policy edit") {
		t.Errorf("unsafe: exit %d stdout %q stderr %q", code, out, errs)
	}

	notRoot := writePolicy(t, dir, "user.toml", goodPolicy, 0o644)
	if err := os.Chown(notRoot, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if code, _, errs = runPolicy("check", notRoot); code != 1 || !strings.Contains(errs, "owned by uid 1000, not root") {
		t.Errorf("not root's: exit %d %q", code, errs)
	}

	missing := filepath.Join(dir, "missing.toml")
	code, out, errs = runPolicy("check", missing)
	if code != 0 || out != missing+": no policy (the file does not exist): pam_vrf places nobody\n" || errs != "" {
		t.Errorf("missing: exit %d %q %q", code, out, errs)
	}

	for _, args := range [][]string{{"check", good, broken}, {"check", "--file", good, broken}, {"check", "--bogus"}, {"frob"}, {}} {
		if code, _, errs := runPolicy(args...); code != 2 || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d %q", args, code, errs)
		}
	}
}

func TestPolicyExplain(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	good := writePolicy(t, dir, "good.toml", goodPolicy, 0o644)
	nodef := writePolicy(t, dir, "nodef.toml", noDefaultPolicy, 0o644)
	at := func(p string, line string) string { return "(" + p + ":" + line + ")" }

	type tc struct {
		name    string
		args    []string
		groups  config.Groups // nil: a lookup fails the test
		code    int
		first   string   // first line of stdout
		more    []string // further lines of stdout, each must be present
		absent  []string
		asked   []string // group names Decide must ask for, if any
		warning string   // on stderr
		devices map[string]string
	}
	fail := func(string, []string) ([]bool, error) { return nil, errors.New("NSS group lookup timed out") }
	for _, c := range []tc{
		{name: "user rule", args: []string{"alice", "--file", good},
			first: `user alice, service sshd: VRF mgmt, by user "alice" ` + at(good, "4"),
			more:  []string{"  group rules not consulted: the user rule comes first"}},
		{name: "group member", args: []string{"bob", "--file", good}, groups: config.MemberOf("users", "admins", "netops"),
			first: `user bob, service sshd: VRF mgmt, by group "netops" ` + at(good, "17"),
			more: []string{
				"  group rules for sshd, in file order:",
				`    group "netops" ` + at(good, "17") + ": member: decides",
				`    group "ops" ` + at(good, "20") + ": not a member",
				`    group "admins" ` + at(good, "24") + ": member (an earlier group rule decides)",
				"  bob's groups with a rule: netops, admins",
			},
			asked: []string{"netops", "ops", "admins"}},
		{name: "second group", args: []string{"bob", "--file", good}, groups: config.MemberOf("ops"),
			first: `user bob, service sshd: VRF oob, by group "ops" ` + at(good, "20"),
			more:  []string{`    group "ops" ` + at(good, "20") + ": member: decides"}},
		{name: "default", args: []string{"carol", "--file", good}, groups: config.MemberOf(),
			first: `user carol, service sshd: VRF mgmt, by the policy's default ` + at(good, "1"),
			more:  []string{"  carol is in none of these groups", "  no user or group rule matched; `default` applies"}},
		{name: "no rule", args: []string{"carol", "--file", nodef}, groups: config.MemberOf("users"),
			first: "user carol, service sshd: no rule matches; the session is left where it is (pam_vrf returns PAM_IGNORE)"},
		{name: "vrf empty", args: []string{"root", "--file", good},
			first: `user root, service sshd: left where it is (vrf = ""), by user "root" ` + at(good, "7")},
		{name: "default VRF", args: []string{"dave", "--service", "login", "--file", good},
			first:  `user dave, service login: the default VRF (the …/vrf cgroup, sockets unbound), by user "dave" ` + at(good, "10"),
			more:   []string{"  group rules not consulted: the user rule comes first"},
			absent: []string{"does not apply"}},
		{name: "group rule for another service", args: []string{"carol", "--service", "login", "--file", good}, groups: config.MemberOf("ops"),
			first: `user carol, service login: VRF mgmt, by the policy's default ` + at(good, "1"),
			more: []string{`  group "ops" ` + at(good, "20") + " does not apply: its services are sshd",
				"  group rules for login, in file order:", "  carol is in none of these groups"},
			asked: []string{"netops", "admins"}},
		{name: "user rule for another service", args: []string{"--file", good, "erin"}, groups: config.MemberOf("admins"),
			first: `user erin, service sshd: VRF mgmt, by group "admins" ` + at(good, "24"),
			more:  []string{`  user "erin" ` + at(good, "13") + " does not apply: its services are login"}},
		{name: "not acted for", args: []string{"alice", "--service", "sudo", "--file", good},
			first: `user alice, service sudo: pam_vrf does not act for service "sudo" (it acts for sshd, login); the session is left where it is (PAM_IGNORE)`,
			more:  []string{"  to change that, list sudo in the top-level services of " + good}},
		{name: "refused service", args: []string{"alice", "--service", "systemd-user", "--file", good},
			first: `user alice, service systemd-user: pam_vrf does not act for service "systemd-user"`,
			more:  []string{"  a policy cannot name systemd-user: "}},
		{name: "lookup fails", args: []string{"bob", "--file", good}, groups: fail, code: 1,
			first: `user bob, service sshd: undecided: groups of user "bob" unknown, needed for group "netops" ` + at(good, "17") +
				`, group "ops" ` + at(good, "20") + `, group "admins" ` + at(good, "24") + ": NSS group lookup timed out",
			more: []string{`  a login now would get pam_vrf's failure rule: let in unplaced, sockets unbound (on_error = "allow", ` + good + ":2)"}},
		{name: "missing VRF", args: []string{"bob", "--file", good}, groups: config.MemberOf("ops"), devices: map[string]string{"mgmt": "vrf"},
			first:   `user bob, service sshd: VRF oob, by group "ops" ` + at(good, "20"),
			warning: `warning: VRF "oob" does not exist on this host; a login now would be let in unplaced, sockets unbound (on_error = "allow", ` + good + ":2)\n"},
		{name: "no policy", args: []string{"alice", "--file", filepath.Join(dir, "none.toml")},
			first: "user alice, service sshd: no policy (" + filepath.Join(dir, "none.toml") + " does not exist): pam_vrf places nobody; the session is left where it is"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.devices == nil {
				c.devices = map[string]string{"mgmt": "vrf", "oob": "vrf"}
			}
			setHooks(t, c.devices)
			var asked []string
			calls := 0
			if c.groups != nil {
				hooks.groups = func(pol *config.Policy) config.Groups {
					return func(u string, names []string) ([]bool, error) {
						calls++
						asked = names
						return c.groups(u, names)
					}
				}
			}
			code, out, errs := runPolicy(append([]string{"explain"}, c.args...)...)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if code != c.code || !strings.HasPrefix(lines[0], c.first) {
				t.Fatalf("exit %d (want %d)\nfirst line %q\nwant       %q\nstderr %q", code, c.code, lines[0], c.first, errs)
			}
			for _, m := range c.more {
				if !strings.Contains(out, m+"\n") && !strings.HasPrefix(lines[0], m) && !containsPrefixLine(lines, m) {
					t.Errorf("stdout lacks %q:\n%s", m, out)
				}
			}
			for _, a := range c.absent {
				if strings.Contains(out, a) {
					t.Errorf("stdout has %q:\n%s", a, out)
				}
			}
			if c.asked != nil && strings.Join(asked, ",") != strings.Join(c.asked, ",") {
				t.Errorf("asked NSS for %v, want %v", asked, c.asked)
			}
			if calls > 1 {
				t.Errorf("%d group lookups, want at most 1", calls)
			}
			if errs != c.warning {
				t.Errorf("stderr %q, want %q", errs, c.warning)
			}
		})
	}

	// a broken policy decides nothing: exit 1, the error on stderr
	setHooks(t, nil)
	broken := writePolicy(t, dir, "broken.toml", brokenPolicy, 0o644)
	code, out, errs := runPolicy("explain", "alice", "--file", broken)
	if code != 1 || !strings.HasPrefix(errs, broken+":3: user.alice.bogus: unknown key\n") ||
		!strings.HasPrefix(out, "user alice, service sshd: pam_vrf cannot use the policy "+broken) {
		t.Errorf("broken: exit %d %q %q", code, out, errs)
	}
	for _, args := range [][]string{{"explain"}, {"explain", "a", "b"}, {"explain", "a", "--service", ""}, {"explain", "a", "--frob"}} {
		if code, _, errs := runPolicy(args...); code != 2 || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d %q", args, code, errs)
		}
	}
}

func containsPrefixLine(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// editor writes a script that plays the admin: on its Nth run it copies
// contents[N-1] over the file it is given (the last one again if run more
// often), and it logs every file it was given.
func editor(t *testing.T, contents ...string) (cmd, log string) {
	t.Helper()
	d := t.TempDir()
	for i, c := range contents {
		if err := os.WriteFile(filepath.Join(d, "content."+strconv.Itoa(i+1)), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := `#!/bin/sh
d=` + d + `
n=$(cat $d/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > $d/count
echo "$1" >> $d/log
cp "$1" $d/seen.$n
[ -f $d/content.$n ] || n=` + strconv.Itoa(len(contents)) + `
cat $d/content.$n > "$1"
`
	if err := os.WriteFile(filepath.Join(d, "ed"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(d, "ed"), filepath.Join(d, "log")
}

func setEditor(cmd string) {
	hooks.getenv = func(k string) string {
		if k == "EDITOR" {
			return cmd
		}
		return ""
	}
}

func stat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

// onlyFiles: edit leaves no temp file behind.
func onlyFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s holds %v, want %v", dir, got, want)
	}
}

func TestPolicyEditInstalls(t *testing.T) {
	requireRoot(t)
	setHooks(t, map[string]string{"mgmt": "vrf", "oob": "vrf"})
	dir := t.TempDir()
	// an unsafe file (not root's, group-writable): edit is the way out
	live := writePolicy(t, dir, "pam_vrf.toml", noDefaultPolicy, 0o664)
	if err := os.Chown(live, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	before := stat(t, live)
	// the old file, still open, must keep its content: the new one is
	// renamed over it, never written in place
	old, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	ed, log := editor(t, goodPolicy)
	setEditor(ed)
	code, out, errs := runPolicy("edit", "--file", live)
	want := live + `: installed (4 user rules, 3 group rules, default "mgmt", acts for sshd, login; on_error allow)` + "\n"
	if code != 0 || out != want || errs != "" {
		t.Fatalf("exit %d\nstdout %q\nwant   %q\nstderr %q", code, out, want, errs)
	}
	got, _ := os.ReadFile(live)
	if string(got) != goodPolicy {
		t.Errorf("installed %q", got)
	}
	st := stat(t, live)
	if st.Uid != 0 || st.Gid != 0 || st.Mode&0o7777 != 0o644 || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		t.Errorf("installed uid %d gid %d mode %o", st.Uid, st.Gid, st.Mode)
	}
	if st.Ino == before.Ino {
		t.Errorf("same inode %d: written in place, not renamed", st.Ino)
	}
	if b, _ := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(old.Fd()))); string(b) != noDefaultPolicy {
		t.Errorf("old file changed: %q", b)
	}
	onlyFiles(t, dir, "pam_vrf.toml")

	// the editor got a root-owned 0600 temp file in the same directory,
	// holding the live content
	l, _ := os.ReadFile(log)
	tmp := strings.TrimSpace(string(l))
	if filepath.Dir(tmp) != dir || tmp == live {
		t.Errorf("editor was given %q", tmp)
	}
	seen, _ := os.ReadFile(filepath.Join(filepath.Dir(log), "seen.1"))
	if string(seen) != noDefaultPolicy {
		t.Errorf("editor started from %q", seen)
	}
	if _, err := config.Load(live); err != nil {
		t.Errorf("pam_vrf's view: %v", err)
	}
}

func TestPolicyEditTempMode(t *testing.T) {
	requireRoot(t)
	setHooks(t, nil)
	dir := t.TempDir()
	live := writePolicy(t, dir, "pam_vrf.toml", noDefaultPolicy, 0o644)
	probe := filepath.Join(t.TempDir(), "probe")
	// the editor records the mode and owner of what it is given
	setEditor(`f() { stat -c '%a %u %g' "$1" > ` + probe + `; }; f`)
	if code, out, errs := runPolicy("edit", "--file", live); code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("exit %d %q %q", code, out, errs)
	}
	if b, _ := os.ReadFile(probe); string(b) != "600 0 0\n" {
		t.Errorf("temp file: %q, want 600 root root", b)
	}
}

func TestPolicyEditRefusesBroken(t *testing.T) {
	requireRoot(t)
	setHooks(t, nil)
	dir := t.TempDir()
	live := writePolicy(t, dir, "pam_vrf.toml", noDefaultPolicy, 0o644)
	before := stat(t, live)
	ed, _ := editor(t, brokenPolicy)
	setEditor(ed)
	code, out, errs := runPolicy("edit", "--file", live)
	// the LIVE path and the line, as visudo reports
	if code != 1 || !strings.HasPrefix(errs, live+":3: user.alice.bogus: unknown key\n") ||
		!strings.HasSuffix(errs, "not installed (no terminal to ask what now); "+live+" left as it was\n") || strings.Contains(out, "What now") {
		t.Errorf("exit %d stdout %q stderr %q", code, out, errs)
	}
	if got, _ := os.ReadFile(live); string(got) != noDefaultPolicy {
		t.Errorf("live file changed: %q", got)
	}
	if st := stat(t, live); st.Ino != before.Ino || st.Mtim != before.Mtim || st.Mode != before.Mode {
		t.Errorf("live file touched")
	}
	onlyFiles(t, dir, "pam_vrf.toml")

	// a broken live file, left unchanged, is still refused
	writePolicy(t, dir, "pam_vrf.toml", brokenPolicy, 0o644)
	setEditor("true")
	if code, _, errs := runPolicy("edit", "--file", live); code != 1 || !strings.HasPrefix(errs, live+":3:") {
		t.Errorf("broken and unchanged: exit %d %q", code, errs)
	}

	// the editor fails: nothing installed
	writePolicy(t, dir, "pam_vrf.toml", noDefaultPolicy, 0o644)
	setEditor(`f() { echo '[bad' > "$1"; exit 3; }; f`)
	if code, _, errs := runPolicy("edit", "--file", live); code != 1 || !strings.Contains(errs, "exit status 3; "+live+" left as it was") {
		t.Errorf("editor fails: exit %d %q", code, errs)
	}
	if got, _ := os.ReadFile(live); string(got) != noDefaultPolicy {
		t.Errorf("live file changed: %q", got)
	}
	onlyFiles(t, dir, "pam_vrf.toml")
}

// On a terminal a broken edit asks what now: e edits the same temp file
// again, x leaves.
func TestPolicyEditAgain(t *testing.T) {
	requireRoot(t)
	setHooks(t, nil)
	hooks.isTerminal = func() bool { return true }
	dir := t.TempDir()
	live := writePolicy(t, dir, "pam_vrf.toml", noDefaultPolicy, 0o644)

	ed, log := editor(t, brokenPolicy, goodPolicy)
	setEditor(ed)
	hooks.stdin = strings.NewReader("what?\ne\n")
	code, out, errs := runPolicy("edit", "--file", live)
	if code != 0 || strings.Count(out, "What now? (e)dit again, e(x)it without saving: ") != 2 ||
		!strings.Contains(out, "Options are:") || !strings.HasSuffix(out, live+": installed (4 user rules, 3 group rules, default \"mgmt\", acts for sshd, login; on_error allow)\n") ||
		!strings.HasPrefix(errs, live+":3: user.alice.bogus: unknown key\n") {
		t.Errorf("exit %d\nstdout %q\nstderr %q", code, out, errs)
	}
	if got, _ := os.ReadFile(live); string(got) != goodPolicy {
		t.Errorf("installed %q", got)
	}
	// the second run edited the same file, which still held the broken text
	l, _ := os.ReadFile(log)
	if runs := strings.Fields(string(l)); len(runs) != 2 || runs[0] != runs[1] {
		t.Errorf("editor runs: %q", l)
	}
	if seen, _ := os.ReadFile(filepath.Join(filepath.Dir(log), "seen.2")); string(seen) != brokenPolicy {
		t.Errorf("second edit started from %q", seen)
	}

	writePolicy(t, dir, "pam_vrf.toml", noDefaultPolicy, 0o644)
	ed, _ = editor(t, brokenPolicy)
	setEditor(ed)
	for _, answer := range []string{"x\n", ""} { // x, and EOF
		hooks.stdin = strings.NewReader(answer)
		code, out, errs = runPolicy("edit", "--file", live)
		if code != 1 || !strings.Contains(out, "What now?") || !strings.HasSuffix(errs, "not installed; "+live+" left as it was\n") {
			t.Errorf("answer %q: exit %d %q %q", answer, code, out, errs)
		}
		if got, _ := os.ReadFile(live); string(got) != noDefaultPolicy {
			t.Errorf("answer %q: live file changed: %q", answer, got)
		}
		onlyFiles(t, dir, "pam_vrf.toml")
	}
}

func TestPolicyEditUnchanged(t *testing.T) {
	requireRoot(t)
	setHooks(t, nil)
	dir := t.TempDir()
	live := writePolicy(t, dir, "pam_vrf.toml", noDefaultPolicy, 0o640)
	before := stat(t, live)
	setEditor("true")
	code, out, errs := runPolicy("edit", "--file", live)
	if code != 0 || out != live+": no changes; left as it was\n" || errs != "" {
		t.Errorf("exit %d %q %q", code, out, errs)
	}
	if st := stat(t, live); st.Ino != before.Ino || st.Mtim != before.Mtim || st.Mode != before.Mode {
		t.Errorf("live file touched")
	}
	onlyFiles(t, dir, "pam_vrf.toml")

	// no policy yet: the editor starts from a commented template; saving
	// it unchanged creates nothing
	newLive := filepath.Join(dir, "new.toml")
	probe := filepath.Join(t.TempDir(), "probe")
	setEditor("f() { cp \"$1\" " + probe + "; }; f")
	code, out, _ = runPolicy("edit", "--file", newLive)
	if code != 0 || out != newLive+": no changes; not created\n" {
		t.Errorf("new: exit %d %q", code, out)
	}
	if b, _ := os.ReadFile(probe); string(b) != newPolicyTemplate {
		t.Errorf("template %q", b)
	}
	if _, err := config.Parse("t", []byte(newPolicyTemplate)); err != nil {
		t.Errorf("template does not parse: %v", err)
	}
	onlyFiles(t, dir, "pam_vrf.toml")

	// ... and writing a policy creates it
	ed, _ := editor(t, noDefaultPolicy)
	setEditor(ed)
	if code, out, errs := runPolicy("edit", "--file", newLive); code != 0 || !strings.HasPrefix(out, newLive+": installed (1 user rule, 1 group rule, no default") {
		t.Errorf("create: exit %d %q %q", code, out, errs)
	}
	if st := stat(t, newLive); st.Mode&0o7777 != 0o644 || st.Uid != 0 {
		t.Errorf("created with mode %o uid %d", st.Mode, st.Uid)
	}
}

// A symlinked policy: its target is replaced, the link stays.
func TestPolicyEditSymlink(t *testing.T) {
	requireRoot(t)
	setHooks(t, map[string]string{"mgmt": "vrf", "oob": "vrf"})
	dir, real := t.TempDir(), t.TempDir()
	target := writePolicy(t, real, "policy.toml", noDefaultPolicy, 0o644)
	live := filepath.Join(dir, "pam_vrf.toml")
	if err := os.Symlink(target, live); err != nil {
		t.Fatal(err)
	}
	ed, _ := editor(t, goodPolicy)
	setEditor(ed)
	if code, out, errs := runPolicy("edit", "--file", live); code != 0 || !strings.HasPrefix(out, live+": installed") {
		t.Fatalf("exit %d %q %q", code, out, errs)
	}
	if fi, err := os.Lstat(live); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("symlink replaced: %v %v", fi.Mode(), err)
	}
	if got, _ := os.ReadFile(target); string(got) != goodPolicy {
		t.Errorf("target holds %q", got)
	}
	onlyFiles(t, real, "policy.toml")
}

// Refusals before any editing: a directory pam_vrf would refuse, and a
// concurrent edit.
func TestPolicyEditRefusals(t *testing.T) {
	requireRoot(t)
	setHooks(t, nil)
	dir := t.TempDir()
	live := writePolicy(t, dir, "pam_vrf.toml", noDefaultPolicy, 0o644)
	ed, log := editor(t, goodPolicy)
	setEditor(ed)

	os.Chmod(dir, 0o775)
	code, _, errs := runPolicy("edit", "--file", live)
	os.Chmod(dir, 0o700)
	if code != 1 || !strings.Contains(errs, "pam_vrf would refuse any policy in "+dir) || !strings.Contains(errs, "group/world-writable") {
		t.Errorf("unsafe dir: exit %d %q", code, errs)
	}

	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runPolicy("edit", "--file", live)
	d.Close()
	if code != 1 || !strings.Contains(errs, "is being edited by another vrf-netsetup policy edit") {
		t.Errorf("locked: exit %d %q", code, errs)
	}
	if _, err := os.Stat(log); err == nil {
		t.Errorf("the editor ran")
	}
	if got, _ := os.ReadFile(live); string(got) != noDefaultPolicy {
		t.Errorf("live file changed: %q", got)
	}
	onlyFiles(t, dir, "pam_vrf.toml")

	// someone rewrote the live file while the admin was in the editor
	setEditor(`f() { cp ` + writePolicy(t, t.TempDir(), "g.toml", goodPolicy, 0o644) + ` "$1"; echo '# theirs' >> ` + live + `; }; f`)
	code, _, errs = runPolicy("edit", "--file", live)
	if code != 1 || !strings.Contains(errs, "was changed by someone else while you edited it; not installed; your version is in "+live+".edit-rejected") {
		t.Errorf("concurrent change: exit %d %q", code, errs)
	}
	if got, _ := os.ReadFile(live); string(got) != noDefaultPolicy+"# theirs\n" {
		t.Errorf("their change lost: %q", got)
	}
	if got, _ := os.ReadFile(live + ".edit-rejected"); string(got) != goodPolicy {
		t.Errorf("our version: %q", got)
	}
}

// The real hooks: netlink for devices, NSS for groups (root is in group
// root on every Linux host).
func TestPolicyRealHooks(t *testing.T) {
	requireRoot(t)
	if kind, ok, err := hooks.linkKind("lo"); err != nil || !ok || kind != "device" {
		t.Errorf("lo: %q %v %v", kind, ok, err)
	}
	if _, ok, err := hooks.linkKind("nosuchvrf0"); err != nil || ok {
		t.Errorf("nosuchvrf0: %v %v", ok, err)
	}
	p := writePolicy(t, t.TempDir(), "p.toml", "[group.nosuchgroup-x]\nvrf = \"lo\"\n\n[group.root]\nvrf = \"lo\"\n", 0o644)
	code, out, errs := runPolicy("explain", "root", "--file", p)
	if code != 0 || !strings.HasPrefix(out, `user root, service sshd: VRF lo, by group "root" (`+p+":4)\n") ||
		!strings.Contains(out, `group "nosuchgroup-x" (`+p+":1): not a member\n") ||
		errs != `warning: VRF "lo" is a network device on this host but not a VRF; a login now would be let in unplaced, sockets unbound (on_error is not set: unless the pam.d line says on_error=deny)`+"\n" {
		t.Errorf("exit %d %q %q", code, out, errs)
	}
}
