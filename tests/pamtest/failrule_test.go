package pamtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pam-vrf/pam-vrf/cgroup"
)

// nssFail builds the failing NSS module (testdata/libnss_pvtfail.c) and
// returns a wrap prefix that runs the driver with "group: pvtfail" in a
// private mount namespace, failing in mode ("hang" or "error").
func nssFail(t *testing.T, mode string) []string {
	t.Helper()
	dir := t.TempDir()
	src, err := filepath.Abs("testdata/libnss_pvtfail.c")
	if err != nil {
		t.Fatal(err)
	}
	run(t, "cc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", filepath.Join(dir, "libnss_pvtfail.so.2"), src)
	conf := filepath.Join(dir, "nsswitch.conf")
	if err := os.WriteFile(conf, []byte("passwd: files\ngroup: pvtfail\nshadow: files\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"env", "LD_LIBRARY_PATH=" + dir, "PVTFAIL_MODE=" + mode,
		"unshare", "--mount", "--propagation", "private",
		"sh", "-c", `mount --bind "$0" /etc/nsswitch.conf && exec "$@"`, conf}
}

// intoCgroup returns a wrap prefix that moves the driver into dir first.
func intoCgroup(dir string) []string {
	return []string{"sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, dir}
}

// foreignCgroup makes a cgroup at the top of the hierarchy that the failure
// rule must refuse: owned by nobody, or root's but marked delegated.
func foreignCgroup(t *testing.T, delegated bool) string {
	t.Helper()
	mnt, err := cgroup.Mount()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, fmt.Sprintf("pvt-foreign-%d-%v", os.Getpid(), delegated))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range []string{"vrf/*", "*-ns/vrf/*", "*-ns/vrf", "*-ns", "vrf"} {
			m, _ := filepath.Glob(filepath.Join(dir, d))
			for _, x := range m {
				unix.Rmdir(x)
			}
		}
		unix.Rmdir(dir)
	})
	if delegated {
		if err := unix.Setxattr(dir, "trusted.delegate", []byte("1"), 0); err != nil {
			t.Skipf("cgroupfs here takes no trusted.* xattr: %v", err)
		}
	} else if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFailureRuleThroughLibpam drives pam_vrf.so through libpam for every
// failure class × where on_error is said × a service the module acts for
// (sshd) and one it does not (cron), and checks the PAM result, what the
// user is told and the auth-log line (the table of pam_vrf(8) FAILURES).
func TestFailureRuleThroughLibpam(t *testing.T) {
	n := newNetns(t)
	type class struct {
		name   string
		so     string
		user   string
		rules  string // policy body; "DEV" becomes the stand-in VRF device
		args   string // extra module arguments
		setup  func(t *testing.T, s *stack)
		wrap   func(t *testing.T) []string
		broken bool   // the policy cannot be read: its own on_error is unknown
		told   string // regexp of the terminal message's reason
		logged string // regexp of the auth-log detail
	}
	rootRule := "[user.root]\nvrf = \"DEV\"\n"
	classes := []class{
		{name: "option", user: "root", rules: rootRule, args: "debgu",
			told: `the module is misconfigured`, logged: `option failure: unknown option "debgu"`},
		{name: "policy-syntax", user: "root", rules: rootRule + "vrf = \n", broken: true,
			told: `the VRF policy .*pam_vrf.toml:LINE is broken`, logged: `policy failure: .*pam_vrf.toml:LINE: syntax error`},
		{name: "policy-unsafe", user: "root", rules: rootRule, broken: true,
			setup: func(t *testing.T, s *stack) { os.Chmod(s.policy, 0o664) },
			told:  `the VRF policy .*pam_vrf.toml is unsafe or unreadable`, logged: `mode 0664 is group/world-writable \(fix: chmod 0644 `},
		{name: "policy-unreadable", user: "root", rules: rootRule, broken: true,
			setup: func(t *testing.T, s *stack) { os.Remove(s.policy); os.Mkdir(s.policy, 0o755) },
			told:  `is unsafe or unreadable`, logged: `not a regular file \(a directory\)`},
		{name: "vrf-missing", user: "root", rules: "[user.root]\nvrf = \"novrf0\"\n",
			told: `VRF novrf0 is not available: the VRF device does not exist`, logged: `VRF "novrf0" \(user "root" .*vrf failure: `},
		{name: "not-a-vrf", so: prodSO, user: "root", rules: rootRule,
			told: `is not available: the device is not a VRF`, logged: `vrf failure: .*not a VRF`},
		{name: "nss-error", user: "nobody", rules: "[user.root]\nvrf = \"\"\n[group.pvtgrp]\nvrf = \"DEV\"\n",
			wrap: func(t *testing.T) []string { return nssFail(t, "error") },
			told: `your groups could not be looked up`, logged: `nss failure: groups of user "nobody" unknown, needed for group "pvtgrp"`},
		{name: "cgroup-user-owned", user: "root", rules: rootRule,
			wrap: func(t *testing.T) []string { return intoCgroup(foreignCgroup(t, false)) },
			told: `the session's cgroup is not root's`, logged: `placement failure: .*owned by uid 65534`},
		{name: "cgroup-delegated", user: "root", rules: rootRule,
			wrap: func(t *testing.T) []string { return intoCgroup(foreignCgroup(t, true)) },
			told: `the session's cgroup is not root's`, logged: `placement failure: .*is delegated \(trusted.delegate\)`},
	}
	settings := []struct{ name, policyLine, arg string }{
		{"default", "", ""},
		{"pamd-deny", "", "on_error=deny"},
		{"policy-deny", "on_error = \"deny\"\n", ""},
	}
	for _, c := range classes {
		for _, set := range settings {
			for _, svc := range []string{"sshd", "cron"} {
				t.Run(c.name+"/"+set.name+"/"+svc, func(t *testing.T) {
					so := c.so
					if so == "" {
						so = testSO
					}
					args := strings.TrimSpace("config={policy} " + set.arg + " " + c.args)
					s := newStack(t, svc, so, args, set.policyLine+strings.ReplaceAll(c.rules, "DEV", n.dev))
					if c.setup != nil {
						c.setup(t, s)
					}
					var wrap []string
					if c.wrap != nil {
						wrap = c.wrap(t)
					}
					r := n.sessionWrapped(t, wrap, s, svc, c.user)
					// The syntax error is on the policy's third rule line.
					line := fmt.Sprint(3 + strings.Count(set.policyLine, "\n"))
					told, logged := strings.ReplaceAll(c.told, "LINE", line), strings.ReplaceAll(c.logged, "LINE", line)
					if r.has(`(?m)^(child-)?cgroup: .*/vrf/`) {
						t.Errorf("the session was placed despite the failure")
					}
					if svc == "cron" {
						if r.rc != 0 || r.has(`conv: `) || r.logged(`^[34] `) {
							t.Errorf("a service the module does not act for was denied, told or warned (exit %d)", r.rc)
						}
						return
					}
					deny := set.arg == "on_error=deny" || set.policyLine != "" && !c.broken
					if deny {
						if r.rc == 0 || !r.has(`open_session: 14 `) || r.has(`child-cgroup`) {
							t.Errorf("want PAM_SESSION_ERR and no session command (exit %d)", r.rc)
						}
						if !r.has(`(?m)^conv: error: pam_vrf: (.* )?` + told + `.*; session refused$`) {
							t.Errorf("user not told %q + refused", told)
						}
						if !r.logged(`^3 .*user "` + c.user + `" service "sshd".*` + logged + `.*; session refused \(on_error=deny`) {
							t.Errorf("no auth-log error with user, service, %q and the setting", logged)
						}
						return
					}
					// PAM_IGNORE: the stack's result is pam_permit's success.
					if r.rc != 0 || !r.has(`open_session: 0 `) || !r.has(`sock tcp4 dev=""`) {
						t.Errorf("want the session to open unbound (exit %d)", r.rc)
					}
					if !r.has(`(?m)^conv: error: pam_vrf: (.* )?` + told + `.*; this session continues without VRF placement$`) {
						t.Errorf("user not told %q + continues", told)
					}
					if !r.logged(`^4 .*user "` + c.user + `" service "sshd".*` + logged + `.*; session continues unbound \(on_error=allow, the default\)`) {
						t.Errorf("no auth-log warning with user, service, %q and the setting", logged)
					}
				})
			}
		}
	}
}

// With the directory hanging, a login whose user rule decides never asks
// it; one that needs its groups waits the policy's nss_timeout, no longer,
// and then follows the failure rule.
func TestNSSHangIsBounded(t *testing.T) {
	n := newNetns(t)
	policy := fmt.Sprintf("nss_timeout = 0.5\n[user.root]\nvrf = %q\n[group.pvtgrp]\nvrf = %q\n", n.dev, n.dev)
	wrap := nssFail(t, "hang")

	s := newStack(t, "sshd", testSO, "", policy)
	start := time.Now()
	r := n.sessionWrapped(t, wrap, s, "sshd", "root")
	rootTook := time.Since(start)
	if r.rc != 0 || !r.has(`sock tcp4 dev="`+n.dev+`"`) {
		t.Errorf("root's user rule did not place root while NSS hangs (exit %d)", r.rc)
	}

	start = time.Now()
	r = n.sessionWrapped(t, wrap, s, "sshd", "nobody")
	took := time.Since(start)
	if r.rc != 0 || !r.has(`sock tcp4 dev=""`) || !r.has(`conv: error: pam_vrf: your groups could not be looked up in time`) {
		t.Errorf("nobody: want an unbound session and the reason (exit %d)", r.rc)
	}
	if !r.logged(`nss failure: .*NSS group lookup timed out after 500ms`) {
		t.Errorf("auth log does not say the lookup timed out after the bound")
	}
	// The directory would answer after 30 s; the bound is 0.5 s. Process
	// start-up and the namespace set-up are in both figures.
	t.Logf("root (user rule, no NSS): %v; nobody (group lookup bounded at 0.5s): %v", rootTook, took)
	if took > rootTook+5*time.Second || took < 500*time.Millisecond {
		t.Errorf("the login with a group lookup took %v: want about the 0.5 s bound", took)
	}
}

// vrf = "default" from a placed session (su from the placed shell) moves
// the process to …/vrf, as `ip vrf exec default` would: no program, sockets
// unbound, `ip vrf identify` empty.
func TestDefaultVRFFromPlacedSession(t *testing.T) {
	n := newNetns(t)
	policy := fmt.Sprintf("services = [\"sshd\", \"su\"]\ndefault = \"default\"\n[user.root]\nvrf = %q\nservices = [\"sshd\"]\n", n.dev)
	outer := newStack(t, "sshd", testSO, "", policy)
	inner := newStack(t, "su", testSO, "config="+outer.policy, "")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := n.session(t, outer, "sshd", "root", "--", driver, "-d", inner.dir, "-s", "su", "-u", "root", "--", "sh", "-c",
		`ip vrf identify; echo "identify-done"; "$0"`, self)
	if r.rc != 0 {
		t.Fatalf("driver exit %d", r.rc)
	}
	base := regexp.QuoteMeta(fmt.Sprintf("/%s-ns/vrf", n.name))
	if !r.has(`(?m)^cgroup: .*` + base + `/` + regexp.QuoteMeta(n.dev) + `$`) {
		t.Errorf("the outer (sshd) session was not placed in %s", n.dev)
	}
	if !r.has(`(?m)^cgroup: .*`+base+`$`) || !r.has(`(?m)^child-cgroup: .*`+base+`$`) {
		t.Errorf("the su session is not in …%s (iproute2's default VRF directory)", base)
	}
	if !r.has(`(?m)^identify-done$`) || r.has(`(?m)^`+regexp.QuoteMeta(n.dev)+`\nidentify-done`) {
		t.Errorf("ip vrf identify in the su session is not empty")
	}
	for _, fam := range []string{"tcp4", "udp4", "tcp6", "udp6"} {
		if !r.has(fmt.Sprintf(`sock %s dev=""`, fam)) {
			t.Errorf("%s socket of the su session is bound", fam)
		}
	}
	if !r.logged(`user "root" placed in the default VRF \(default \(`) {
		t.Errorf("no auth-log line for the default-VRF placement")
	}
	// The same directory `ip vrf exec default` picks from the placed shell.
	out, err := exec.Command("nsenter", "--net=/run/netns/"+n.name, driver, "-d", outer.dir, "-s", "sshd", "-u", "root", "--",
		"ip", "vrf", "exec", "default", "cat", "/proc/self/cgroup").CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^0::.*`+base+`$`).Match(out) {
		t.Errorf("ip vrf exec default from the placed shell: %v\n%s", err, out)
	}
}
