package pam

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pam-vrf/pam-vrf/config"
	"github.com/pam-vrf/pam-vrf/nss"
	"github.com/pam-vrf/pam-vrf/placement"
)

type memLog struct{ lines []string }

func (l *memLog) Log(p Priority, msg string) { l.lines = append(l.lines, fmt.Sprintf("%d %s", p, msg)) }

func (l *memLog) has(prio Priority, sub string) bool {
	for _, x := range l.lines {
		if strings.HasPrefix(x, fmt.Sprintf("%d ", prio)) && strings.Contains(x, sub) {
			return true
		}
	}
	return false
}

// fakeEnv records placements instead of touching cgroups; the real
// placement is exercised through libpam in tests/pamtest.
type fakeEnv struct {
	groups    map[string][]string
	groupErr  error
	enterErr  error
	entered   []string
	groupAsks [][]string
}

func (f *fakeEnv) env() *Env {
	return &Env{
		Policies: &config.Cache{},
		Groups: func(user string, names []string, timeout time.Duration) ([]bool, error) {
			f.groupAsks = append(f.groupAsks, names)
			if f.groupErr != nil {
				return nil, f.groupErr
			}
			return config.MemberOf(f.groups[user]...)(user, names)
		},
		Enter: func(pid int, vrf string) (placement.Result, error) {
			if f.enterErr != nil {
				return placement.Result{}, f.enterErr
			}
			f.entered = append(f.entered, fmt.Sprintf("%d:%s", pid, vrf))
			return placement.Result{Dir: "/cg/vrf/" + vrf, Ifindex: 7}, nil
		},
	}
}

func writePolicy(t *testing.T, text string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("policy files must be root-owned; run as root")
	}
	p := filepath.Join(t.TempDir(), "pam_vrf.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want Options
		err  string
	}{
		{nil, Options{ConfigPath: DefaultConfigPath}, ""},
		{[]string{"debug", "config=/etc/x.toml"}, Options{ConfigPath: "/etc/x.toml", Debug: true}, ""},
		{[]string{"on_error=deny"}, Options{ConfigPath: DefaultConfigPath, OnError: config.OnErrorDeny}, ""},
		{[]string{"on_error=allow"}, Options{ConfigPath: DefaultConfigPath, OnError: config.OnErrorAllow}, ""},
		{[]string{"config=relative.toml"}, Options{ConfigPath: DefaultConfigPath}, "must be absolute"},
		{[]string{"on_error=maybe"}, Options{ConfigPath: DefaultConfigPath}, "on_error=allow or on_error=deny"},
		// The options that parse still count next to a bad one: the
		// failure rule needs on_error even when another word is misspelt.
		{[]string{"confg=/x", "on_error=deny"}, Options{ConfigPath: DefaultConfigPath, OnError: config.OnErrorDeny}, `unknown option "confg=/x"`},
		{[]string{"Debug"}, Options{ConfigPath: DefaultConfigPath}, `unknown option "Debug"`},
	} {
		got, err := ParseArgs(tc.args)
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.err)
		}
		if tc.err == "" && err != nil {
			t.Errorf("%q: error %v", tc.args, err)
		}
		if got != tc.want {
			t.Errorf("%q: got %+v; want %+v", tc.args, got, tc.want)
		}
	}
}

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policy   string // "" = no file at all
		user     string
		service  string
		f        fakeEnv
		want     Code
		entered  string
		logPrio  Priority
		logSub   string
		noGroups bool // group lookup must not happen
	}{
		{name: "user rule places", policy: "[user.alice]\nvrf = \"mgmt\"\n", user: "alice", service: "sshd",
			want: Success, entered: "42:mgmt", logPrio: Info, logSub: `user "alice" placed in VRF "mgmt"`, noGroups: true},
		{name: "group rule places", policy: "[group.netops]\nvrf = \"mgmt\"\n", user: "bob", service: "login",
			f: fakeEnv{groups: map[string][]string{"bob": {"users", "netops"}}}, want: Success, entered: "42:mgmt"},
		{name: "no rule ignores", policy: "[user.alice]\nvrf = \"mgmt\"\n", user: "bob", service: "sshd",
			want: Ignore, noGroups: true},
		{name: "missing policy ignores", user: "alice", service: "sshd", want: Ignore},
		{name: "vrf empty leaves the session", policy: "default = \"mgmt\"\n[user.root]\nvrf = \"\"\n", user: "root", service: "sshd",
			want: Ignore},
		{name: "vrf default moves to the default VRF", policy: "services = [\"su\"]\n[user.root]\nvrf = \"default\"\n", user: "root", service: "su",
			want: Success, entered: "42:default", logPrio: Info, logSub: `user "root" placed in the default VRF`},
		{name: "service outside the list ignores", policy: "[user.alice]\nvrf = \"mgmt\"\n", user: "alice", service: "cron",
			want: Ignore},
		// The user rule decides before NSS is asked: an outage cannot touch root.
		{name: "user rule beats a failing NSS", policy: "[user.root]\nvrf = \"\"\n[group.netops]\nvrf = \"mgmt\"\n", user: "root", service: "sshd",
			f: fakeEnv{groupErr: errors.New("nss down")}, want: Ignore, noGroups: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/nonexistent/pam_vrf.toml"
			if tc.policy != "" {
				path = writePolicy(t, tc.policy)
			}
			log := &memLog{}
			f := tc.f
			out := Open(Request{User: tc.user, Service: tc.service, PID: 42, Args: []string{"config=" + path}}, log, f.env())
			if out.Code != tc.want {
				t.Errorf("code %v, want %v; log %q", out.Code, tc.want, log.lines)
			}
			if got := strings.Join(f.entered, ","); got != tc.entered {
				t.Errorf("placed %q, want %q", got, tc.entered)
			}
			if out.UserMessage != "" {
				t.Errorf("user message %q on a path without failure", out.UserMessage)
			}
			if tc.logSub != "" && !log.has(tc.logPrio, tc.logSub) {
				t.Errorf("no log line at priority %d containing %q: %q", tc.logPrio, tc.logSub, log.lines)
			}
			if tc.noGroups && len(f.groupAsks) != 0 {
				t.Errorf("groups were looked up although no group rule could decide: %q", f.groupAsks)
			}
		})
	}
}

// TestFailureRule is the failure rule as a table: every failure class ×
// where on_error is said × a service the module acts for and one it does
// not. The same table runs through the real libpam stack in tests/pamtest.
func TestFailureRule(t *testing.T) {
	type class struct {
		name    string
		policy  string // rules; "on_error" is prepended per setting
		args    []string
		user    string
		f       fakeEnv
		setup   func(t *testing.T, path string)
		readErr bool // the policy cannot be read: its own on_error is unknown
		userMsg string
		logSub  string
	}
	rule := "[user.alice]\nvrf = \"mgmt\"\n"
	classes := []class{
		{name: "option", policy: rule, args: []string{"debgu"}, user: "alice",
			userMsg: "the module is misconfigured", logSub: `option failure: unknown option "debgu"`},
		{name: "policy-syntax", policy: rule + "vrf = \n", user: "alice", readErr: true,
			userMsg: "is broken", logSub: "policy failure: "},
		{name: "policy-unsafe", policy: rule, user: "alice", readErr: true,
			setup:   func(t *testing.T, p string) { os.Chmod(p, 0o664) },
			userMsg: "is unsafe or unreadable", logSub: "mode 0664 is group/world-writable (fix: chmod 0644"},
		{name: "policy-unreadable", policy: rule, user: "alice", readErr: true,
			setup: func(t *testing.T, p string) {
				os.Remove(p)
				os.Mkdir(p, 0o755)
			},
			userMsg: "is unsafe or unreadable", logSub: "not a regular file (a directory)"},
		{name: "user", policy: rule, user: "",
			userMsg: "no user name", logSub: "user failure: PAM_USER is not set"},
		{name: "nss", policy: "[group.netops]\nvrf = \"mgmt\"\n", user: "bob", f: fakeEnv{groupErr: fmt.Errorf("groups of \"bob\": %w after 5s", nss.ErrTimeout)},
			userMsg: "your groups could not be looked up in time", logSub: `nss failure: groups of user "bob" unknown, needed for group "netops"`},
		{name: "vrf", policy: rule, user: "alice", f: fakeEnv{enterErr: fmt.Errorf(`enter VRF "mgmt": %w`, placement.ErrNoDevice)},
			userMsg: "VRF mgmt is not available: the VRF device does not exist", logSub: `VRF "mgmt" (user "alice" (`},
		{name: "placement", policy: rule, user: "alice", f: fakeEnv{enterErr: fmt.Errorf(`enter VRF "mgmt": %w`, placement.ErrBPFPermission)},
			userMsg: "VRF mgmt is not available: no permission to attach the BPF program", logSub: "placement failure: "},
		{name: "unsafe-cgroup", policy: rule, user: "alice", f: fakeEnv{enterErr: fmt.Errorf(`enter VRF "mgmt": %w`, placement.ErrUnsafeCgroup)},
			userMsg: "the session's cgroup is not root's", logSub: "placement failure: "},
	}
	settings := []struct {
		name       string
		policyLine string
		arg        string
	}{
		{"default", "", ""},
		{"pamd-deny", "", "on_error=deny"},
		{"pamd-allow", "", "on_error=allow"},
		{"policy-deny", "on_error = \"deny\"\n", ""},
		{"policy-allow", "on_error = \"allow\"\n", ""},
		// The policy wins over the pam.d line when it can be read.
		{"policy-allow-over-pamd-deny", "on_error = \"allow\"\n", "on_error=deny"},
	}
	for _, c := range classes {
		for _, s := range settings {
			for _, svc := range []string{"sshd", "cron"} {
				t.Run(c.name+"/"+s.name+"/"+svc, func(t *testing.T) {
					path := writePolicy(t, s.policyLine+c.policy)
					if c.setup != nil {
						c.setup(t, path)
					}
					args := []string{"config=" + path}
					if s.arg != "" {
						args = append(args, s.arg)
					}
					args = append(args, c.args...)
					log := &memLog{}
					f := c.f
					out := Open(Request{User: c.user, Service: svc, PID: 42, Args: args}, log, f.env())

					if len(f.entered) != 0 && f.enterErr == nil {
						t.Fatalf("placed %q despite the failure", f.entered)
					}
					if svc == "cron" {
						// Never denied, nothing shown.
						if out.Code != Ignore || out.UserMessage != "" || log.has(Err, "") || log.has(Warning, "") {
							t.Fatalf("service not acted for: %v %q, log %q", out.Code, out.UserMessage, log.lines)
						}
						return
					}
					deny := strings.Contains(s.policyLine, "deny") && !c.readErr ||
						s.arg == "on_error=deny" && (s.policyLine == "" || c.readErr)
					wantCode, wantTail, prio, logTail := Ignore, "; this session continues without VRF placement", Warning, "session continues unbound (on_error=allow"
					if deny {
						wantCode, wantTail, prio, logTail = SessionErr, "; session refused", Err, "session refused (on_error=deny"
					}
					if out.Code != wantCode {
						t.Errorf("code %v, want %v; log %q", out.Code, wantCode, log.lines)
					}
					if !strings.HasPrefix(out.UserMessage, "pam_vrf: ") || !strings.Contains(out.UserMessage, c.userMsg) || !strings.HasSuffix(out.UserMessage, wantTail) {
						t.Errorf("user message %q, want %q ... %q", out.UserMessage, c.userMsg, wantTail)
					}
					if !log.has(prio, c.logSub) || !log.has(prio, logTail) || (c.user != "" && !log.has(prio, `user "`+c.user+`" service "sshd"`)) {
						t.Errorf("no auth-log line at %d with %q, %q and user/service: %q", prio, c.logSub, logTail, log.lines)
					}
					silent := Open(Request{User: c.user, Service: svc, PID: 42, Args: args, Silent: true}, &memLog{}, f.env())
					if silent.Code != out.Code || silent.UserMessage != "" {
						t.Errorf("PAM_SILENT: %v %q", silent.Code, silent.UserMessage)
					}
				})
			}
		}
	}
}

func TestRecoveredFollowsThePamdLine(t *testing.T) {
	log := &memLog{}
	if out := Recovered(Request{User: "a", Service: "sshd"}, "boom", nil, log); out.Code != Ignore || !strings.Contains(out.UserMessage, "internal error") {
		t.Errorf("default: %+v", out)
	}
	if out := Recovered(Request{User: "a", Service: "sshd", Args: []string{"on_error=deny"}}, "boom", nil, log); out.Code != SessionErr {
		t.Errorf("on_error=deny: %+v", out)
	}
	if out := Recovered(Request{User: "a", Service: "sudo", Args: []string{"on_error=deny"}}, "boom", nil, log); out.Code != Ignore || out.UserMessage != "" {
		t.Errorf("sudo: %+v", out)
	}
	if !log.has(Err, "internal failure: boom") {
		t.Errorf("log: %q", log.lines)
	}
}

// TestGroupsTimedOutInC: the C part already waited the whole bound for this
// login's group lookup; the Go part reports the timeout under the failure
// rule without asking NSS (and waiting) a second time.
func TestGroupsTimedOutInC(t *testing.T) {
	path := writePolicy(t, "[group.netops]\nvrf = \"mgmt\"\n")
	for _, timedOut := range []bool{false, true} {
		f := &fakeEnv{groups: map[string][]string{"bob": {"netops"}}}
		log := &memLog{}
		out := Open(Request{User: "bob", Service: "sshd", PID: 42, Args: []string{"config=" + path}, GroupsTimedOut: timedOut}, log, f.env())
		if !timedOut {
			if len(f.groupAsks) != 1 || len(f.entered) != 1 || out.Code != Success {
				t.Fatalf("no timeout: asks %v, entered %v, code %v", f.groupAsks, f.entered, out.Code)
			}
			continue
		}
		if len(f.groupAsks) != 0 || len(f.entered) != 0 {
			t.Fatalf("asked NSS again (%v) or placed (%v) after the C part's timeout", f.groupAsks, f.entered)
		}
		if out.Code != Ignore || !log.has(Warning, "NSS group lookup timed out after 5s") {
			t.Fatalf("timeout: code %v, log %q; want the failure rule (allow) with the timeout named", out.Code, log.lines)
		}
	}
}
