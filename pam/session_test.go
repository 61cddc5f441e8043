package pam

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pam-vrf/pam-vrf/config"
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
	groupAsks int
}

func (f *fakeEnv) env() *Env {
	return &Env{
		Policies: &config.Cache{},
		Groups: func(user string) ([]string, error) {
			f.groupAsks++
			return f.groups[user], f.groupErr
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
		{[]string{"config=relative.toml"}, Options{}, "must be absolute"},
		{[]string{"confg=/x"}, Options{}, `unknown option "confg=/x"`},
		{[]string{"Debug"}, Options{}, `unknown option "Debug"`},
	} {
		got, err := ParseArgs(tc.args)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}

func TestOpen(t *testing.T) {
	notVRF := fmt.Errorf(`enter VRF "mgmt": %w`, placement.ErrNotVRF)
	for _, tc := range []struct {
		name     string
		policy   string // "" = no file at all
		args     []string
		user     string
		service  string
		f        fakeEnv
		want     Code
		entered  string
		userMsg  string
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
		{name: "explicit default VRF ignores", policy: "default = \"mgmt\"\n[user.root]\nvrf = \"\"\n", user: "root", service: "sshd",
			want: Ignore},
		{name: "service outside the list ignores", policy: "[user.alice]\nvrf = \"mgmt\"\n", user: "alice", service: "cron",
			want: Ignore},
		{name: "deny names VRF and reason", policy: "[user.alice]\nvrf = \"mgmt\"\n", user: "alice", service: "sshd",
			f: fakeEnv{enterErr: notVRF}, want: SessionErr, userMsg: "pam_vrf: VRF mgmt is not available: the device is not a VRF",
			logPrio: Err, logSub: `user "alice": cannot enter VRF "mgmt"`},
		{name: "allow warns", policy: "on_error = \"allow\"\n[user.alice]\nvrf = \"mgmt\"\n", user: "alice", service: "sshd",
			f: fakeEnv{enterErr: notVRF}, want: Ignore, logPrio: Warning, logSub: "on_error=allow"},
		{name: "broken policy denies default services", policy: "[user.alice]\nvrf = 3\n", user: "alice", service: "sshd",
			want: SessionErr, userMsg: "the VRF policy is broken", logPrio: Err, logSub: "pam_vrf.toml:2"},
		{name: "broken policy leaves sudo alone", policy: "[user.alice]\nvrf = 3\n", user: "alice", service: "sudo",
			want: Ignore, logPrio: Err, logSub: "service not in the default list"},
		{name: "group lookup failure denies", policy: "[group.netops]\nvrf = \"mgmt\"\n", user: "bob", service: "sshd",
			f: fakeEnv{groupErr: errors.New("nss down")}, want: SessionErr, userMsg: "cannot resolve your groups", logPrio: Err, logSub: "nss down"},
		{name: "bad option denies", policy: "[user.alice]\nvrf = \"mgmt\"\n", args: []string{"bogus"}, user: "alice", service: "sshd",
			want: SessionErr, userMsg: "module misconfigured", logPrio: Err, logSub: `unknown option "bogus"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/nonexistent/pam_vrf.toml"
			if tc.policy != "" {
				path = writePolicy(t, tc.policy)
			}
			log := &memLog{}
			f := tc.f
			args := append([]string{"config=" + path}, tc.args...)
			out := Open(Request{User: tc.user, Service: tc.service, PID: 42, Args: args}, log, f.env())
			if out.Code != tc.want {
				t.Errorf("code %v, want %v; log %q", out.Code, tc.want, log.lines)
			}
			if got := strings.Join(f.entered, ","); got != tc.entered {
				t.Errorf("placed %q, want %q", got, tc.entered)
			}
			if !strings.Contains(out.UserMessage, tc.userMsg) || (tc.userMsg == "" && out.UserMessage != "") {
				t.Errorf("user message %q, want %q", out.UserMessage, tc.userMsg)
			}
			if tc.logSub != "" && !log.has(tc.logPrio, tc.logSub) {
				t.Errorf("no log line at priority %d containing %q: %q", tc.logPrio, tc.logSub, log.lines)
			}
			if tc.noGroups && f.groupAsks != 0 {
				t.Errorf("groups were looked up without a group rule")
			}
		})
	}
}
