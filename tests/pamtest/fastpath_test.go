package pamtest

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/pam-vrf/pam-vrf/bpf"
	"github.com/pam-vrf/pam-vrf/fastpath"
)

// settle waits until a policy file just written is older than the racy
// window: before that the Go part writes no decision table for it.
func settle() { time.Sleep(2100 * time.Millisecond) }

// threadsHeld opens a session and reports the PAM host's threads while it
// is held: 1 means the Go part was never loaded (the C fast path decided).
func (n *netns) threadsHeld(t *testing.T, s *stack, service, user string) (threads int, r result) {
	t.Helper()
	r = n.session(t, s, service, user, "-w")
	m := regexp.MustCompile(`held: rc=(\d+) fds=\d+ threads=(\d+) `).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no held line (exit %d)", r.rc)
	}
	threads, _ = strconv.Atoi(m[2])
	return threads, r
}

// The C fast path decides and places exactly as the Go part does, without
// starting Go, once the Go part has recorded the policy and the VRF.
func TestFastPathReplaysTheGoPath(t *testing.T) {
	n := newNetns(t)
	s := newStack(t, "sshd", testSO, "", fmt.Sprintf("[user.root]\nvrf = %q\n[user.alice]\nvrf = %q\n", n.dev, n.dev))
	settle()

	// 1. First login: the Go part (nothing recorded for this netns yet).
	th, r := n.threadsHeld(t, s, "sshd", "root")
	if th == 1 || !r.has(`cgroup: .*/vrf/`+regexp.QuoteMeta(n.dev)) {
		t.Fatalf("first login: threads %d (want the Go part), not placed?", th)
	}
	goLine := placedLine(t, r)
	// 2. Second login: the C fast path, same placement, same log line.
	th, r = n.threadsHeld(t, s, "sshd", "root")
	if th != 1 {
		t.Errorf("second login: %d threads, want 1 (the fast path, no Go runtime)", th)
	}
	if !r.has(`(?m)cgroup: .*/` + n.name + `-ns/vrf/` + regexp.QuoteMeta(n.dev) + `$`) {
		t.Errorf("fast path placed elsewhere")
	}
	if cLine := placedLine(t, r); regexp.MustCompile(`/vrf/\S+\)$`).ReplaceAllString(cLine, "") != regexp.MustCompile(`/vrf/\S+\)$`).ReplaceAllString(goLine, "") {
		t.Errorf("auth-log lines differ:\n go: %s\n  c: %s", goLine, cLine)
	}
	// The shell of a fast-path session: every socket bound, ip vrf identify agrees.
	r = n.session(t, s, "sshd", "root")
	for _, fam := range []string{"tcp4", "udp4", "tcp6", "udp6"} {
		if !r.has(fmt.Sprintf(`sock %s dev="%s"`, fam, n.dev)) {
			t.Errorf("fast path: %s socket not bound to %s", fam, n.dev)
		}
	}
	if r = n.session(t, s, "sshd", "root", "--", "ip", "vrf", "identify"); !r.has(`(?m)^` + regexp.QuoteMeta(n.dev) + `$`) {
		t.Errorf("ip vrf identify in a fast-path session does not print %s", n.dev)
	}

	// 3. Decided in C without Go: a service not acted for, a user with no rule.
	for _, c := range []struct{ svc, user string }{{"cron", "root"}, {"sshd", "nobody"}} {
		cs := newStack(t, c.svc, testSO, "config="+s.policy, "")
		if th, r := n.threadsHeld(t, cs, c.svc, c.user); th != 1 || r.rc != 0 || r.has(`/vrf/`) {
			t.Errorf("%s/%s: threads %d exit %d: want left alone without Go", c.svc, c.user, th, r.rc)
		}
	}
	// debug (and any other option) always takes the Go path, which logs.
	ds := newStack(t, "sshd", testSO, "config="+s.policy+" debug", "")
	if th, _ := n.threadsHeld(t, ds, "sshd", "nobody"); th == 1 {
		t.Errorf("debug: the Go part did not run")
	}
}

func placedLine(t *testing.T, r result) string {
	t.Helper()
	for _, l := range r.syslog {
		if regexp.MustCompile(`placed in VRF`).MatchString(l) {
			return l
		}
	}
	t.Fatalf("no placement line in the auth log")
	return ""
}

// Whatever no longer matches what the Go part recorded sends the login to
// the Go part: a changed policy, a group rule, a VRF with a new ifindex, a
// record anyone but root could have written.
func TestFastPathHandsOver(t *testing.T) {
	n := newNetns(t)
	s := newStack(t, "sshd", testSO, "", fmt.Sprintf("[user.root]\nvrf = %q\n", n.dev))
	settle()
	n.threadsHeld(t, s, "sshd", "root") // the Go part records
	if th, _ := n.threadsHeld(t, s, "sshd", "root"); th != 1 {
		t.Fatalf("fast path not taken after the Go part recorded (threads %d)", th)
	}

	// A record that is not root's and 0644 or stricter is ignored.
	rec := fastpath.PolicyFile(fastpath.Dir, s.policy)
	if err := os.Chmod(rec, 0o666); err != nil {
		t.Fatal(err)
	}
	if th, _ := n.threadsHeld(t, s, "sshd", "root"); th == 1 {
		t.Errorf("a world-writable record was trusted")
	}
	os.Remove(rec)
	n.threadsHeld(t, s, "sshd", "root") // re-recorded
	if th, _ := n.threadsHeld(t, s, "sshd", "root"); th != 1 {
		t.Fatalf("fast path not back after re-recording (threads %d)", th)
	}

	// The VRF re-created: a new ifindex, no program for it yet. The fast
	// path loads, pins and attaches it itself (first-ever placement in C).
	run(t, "ip", "-n", n.name, "link", "del", n.dev)
	os.Remove(bpf.PinPath(77))
	run(t, "ip", "-n", n.name, "link", "add", n.dev, "index", "77", "type", "veth", "peer", "name", n.dev+"p")
	run(t, "ip", "-n", n.name, "link", "set", n.dev, "up")
	if th, r := n.threadsHeld(t, s, "sshd", "root"); th != 1 || !r.logged(`ifindex 77,`) {
		t.Errorf("after re-creating the VRF: threads %d, want the fast path placing into ifindex 77", th)
	}
	if _, err := os.Stat(bpf.PinPath(77)); err != nil {
		t.Errorf("the fast path did not pin the program it loaded: %v", err)
	}
	// The VRF gone: the Go part says so (the failure rule).
	run(t, "ip", "-n", n.name, "link", "del", n.dev)
	if th, r := n.threadsHeld(t, s, "sshd", "root"); th == 1 || !r.logged(`VRF .* does not exist`) {
		t.Errorf("VRF deleted: threads %d; want the Go part to report it", th)
	}
	run(t, "ip", "-n", n.name, "link", "add", n.dev, "type", "veth", "peer", "name", n.dev+"p")
	run(t, "ip", "-n", n.name, "link", "set", n.dev, "up")

	// A policy with a group rule for the service: decided in C too (NSS in
	// a thread of its own, joined before the session is held). The first
	// login after the change goes through the Go part, which writes the
	// table.
	write := func(text string) {
		if err := os.WriteFile(s.policy, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf("[group.nogroup]\nvrf = %q\n", n.dev))
	settle()
	n.threadsHeld(t, s, "sshd", "nobody")
	if th, r := n.threadsHeld(t, s, "sshd", "nobody"); th != 1 || !r.has(`/vrf/`) || !r.logged(`group "nogroup"`) {
		t.Errorf("group rule: threads %d, placed %v; want nobody placed by the group rule in C", th, r.has(`/vrf/`))
	}
	// A user NSS does not know: the Go part says so (the failure rule).
	if th, _ := n.threadsHeld(t, s, "sshd", "pamvrf-no-such-user"); th == 1 {
		t.Errorf("a user NSS does not know was decided in C")
	}
	// Changed again: until the Go part has read it, the old record is dead.
	write(fmt.Sprintf("[user.nobody]\nvrf = %q\n", n.dev))
	if th, r := n.threadsHeld(t, s, "sshd", "nobody"); th == 1 || !r.has(`/vrf/`) {
		t.Errorf("changed policy: threads %d; want the Go part to read it and place nobody", th)
	}
}

// The fast path decides as the Go part does: the same policies, users and
// services through both (debug forces the Go part), same outcome, and the
// fast path without starting Go.
func TestFastPathAgreesWithGo(t *testing.T) {
	n := newNetns(t)
	policies := []string{
		fmt.Sprintf("default = %q\n[user.root]\nvrf = \"\"\n[user.nobody]\nvrf = %q\nservices = [\"login\"]\n", n.dev, n.dev),
		fmt.Sprintf("services = [\"sshd\", \"su\"]\n[user.nobody]\nvrf = %q\n", n.dev),
		fmt.Sprintf("default = %q\nservices = [\"login\"]\n", n.dev),
		fmt.Sprintf("[user.root]\nvrf = %q\nservices = [\"su\", \"login\"]\n", n.dev),
		// Group rules: first match in policy order; a group NSS does not
		// know has no members; a group rule's services; vrf = "" on a group.
		fmt.Sprintf("[group.pamvrf-no-such-group]\nvrf = %q\n[group.nogroup]\nvrf = %q\nservices = [\"sshd\", \"su\"]\n[group.root]\nvrf = \"\"\n", n.dev, n.dev),
		fmt.Sprintf("default = %q\n[group.root]\nvrf = \"\"\nservices = [\"sshd\"]\n[user.nobody]\nvrf = \"\"\nservices = [\"login\"]\n", n.dev),
	}
	type combo struct{ svc, user string }
	var stacks [][2]*stack // [fast, go] per policy and service
	for _, p := range policies {
		fast := newStack(t, "sshd", testSO, "", p)
		stacks = append(stacks, [2]*stack{fast, nil})
	}
	settle()
	placedIn := regexp.MustCompile(`held: rc=0 .* cgroup: .*/vrf/` + regexp.QuoteMeta(n.dev) + `\n`)
	outcomes := map[bool]int{}
	for i := range policies {
		for _, c := range []combo{{"sshd", "root"}, {"sshd", "nobody"}, {"login", "nobody"}, {"login", "root"}, {"su", "root"}, {"su", "nobody"}, {"cron", "root"}} {
			fast := newStack(t, c.svc, testSO, "config="+stacks[i][0].policy, "")
			slow := newStack(t, c.svc, testSO, "config="+stacks[i][0].policy+" debug", "")
			_, rg := n.threadsHeld(t, slow, c.svc, c.user) // the Go part (and it writes the table)
			th, rc := n.threadsHeld(t, fast, c.svc, c.user)
			if placedIn.MatchString(rg.stdout) != placedIn.MatchString(rc.stdout) {
				t.Errorf("policy %d, %s/%s: Go placed=%v, fast path placed=%v", i, c.svc, c.user,
					placedIn.MatchString(rg.stdout), placedIn.MatchString(rc.stdout))
			}
			if th != 1 {
				t.Errorf("policy %d, %s/%s: the fast path started Go (%d threads)", i, c.svc, c.user, th)
			}
			outcomes[placedIn.MatchString(rc.stdout)]++
		}
	}
	if outcomes[true] < 4 || outcomes[false] < 4 {
		t.Errorf("the combinations do not exercise both outcomes: %v", outcomes)
	}
	t.Logf("placed %d, left alone %d, all alike in both parts", outcomes[true], outcomes[false])
}
