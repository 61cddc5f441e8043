package netsetup

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// hostPlan is Plan without the steps that need the VRF driver, which this
// host lacks (vrf-create fails with EOPNOTSUPP): what is left are the rule,
// route, sysctl, file and service steps, in Plan's order.
func hostPlan(cfg Config, st *State) ([]Step, error) {
	steps, err := Plan(cfg, st)
	if err != nil {
		return nil, err
	}
	var out []Step
	for _, s := range steps {
		switch {
		case s.ID == "module-vrf", s.ID == "vrf-create", s.ID == "link-up-"+cfg.VRF, strings.HasPrefix(s.ID, "addr-"+cfg.VRF+"-"),
			s.ID == "enslave", s.ID == "readd-addrs", strings.HasPrefix(s.ID, "route-catchall-"):
			continue
		}
		out = append(out, s)
	}
	if len(out) == 1 && out[0].ID == "backup" {
		return nil, nil
	}
	return out, nil
}

// withoutCatchAll drops the catch-all route steps, which need the VRF
// device (tests on this host have none).
func withoutCatchAll(steps []Step) []Step {
	var out []Step
	for _, s := range steps {
		if !strings.HasPrefix(s.ID, "route-catchall-") {
			out = append(out, s)
		}
	}
	return out
}

// faultHost is one throw-away "host": a netns with eth0 (address, static
// default route, so there is a route to move) and a temp root with a
// resolv.conf to replace.
type faultHost struct {
	ns   netns.NsHandle
	n    *Net
	root string
	svc  *fakeSvc
}

func newFaultHost(t *testing.T) *faultHost { return newHost(t, true) }

func newHost(t *testing.T, defaultRoute bool) *faultHost {
	ns, n := newNS(t)
	vethPair(t, n, "eth0", "peer0", netns.None())
	addAddr(t, n, "eth0", "192.0.2.10/24")
	l, _ := n.H.LinkByName("eth0")
	if !defaultRoute {
	} else if err := n.H.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("192.0.2.1"), Dst: defaultDst(unix.AF_INET), Protocol: unix.RTPROT_STATIC}); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := (FS{Root: root}).WriteAtomic(ResolvConf, []byte("nameserver 192.0.2.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &faultHost{ns: ns, n: n, root: root, svc: &fakeSvc{}}
}

func faultCfg() Config {
	c := testCfg()
	c.Nameservers = []string{"192.0.2.53"}
	return c
}

func (h *faultHost) runner() *Runner {
	rd := testReader(h.ns, h.n, h.root)
	rd.Svc = h.svc
	env := testEnv(h.ns, h.n, h.root)
	env.Svc = h.svc
	return &Runner{Reader: rd, Env: env, Out: os.Stderr, plan: hostPlan}
}

// snapshot: rules, routes of table main and the VRF table, sysctls, and
// every file under the root (path, mode, link target, content).
func (h *faultHost) snapshot(t *testing.T) string { return h.snap(t, true) }

// snap: vrfTable false leaves out table 1000 and try's own files (/run,
// TryStatePath, TryBackupPath).
func (h *faultHost) snap(t *testing.T, vrfTable bool) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, err := h.n.RuleList(f)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, r := range rs {
			lines = append(lines, "rule "+r.String())
		}
		sort.Strings(lines)
		b.WriteString(strings.Join(lines, "\n") + "\n")
		for _, table := range []int{unix.RT_TABLE_MAIN, 1000} {
			if table == 1000 && !vrfTable {
				continue
			}
			rts, err := h.n.H.RouteListFiltered(f, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rts {
				fmt.Fprintf(&b, "route table %d %v\n", table, r.String())
			}
		}
	}
	for _, s := range l3mdevSysctls {
		v, _ := (Sysctl{NS: h.ns}).Get(s)
		fmt.Fprintf(&b, "sysctl %s=%s\n", s, v)
	}
	_ = filepath.WalkDir(h.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(p, h.root)
		if !vrfTable && (strings.HasPrefix(rel, "/run/") || rel == TryStatePath || rel == TryBackupPath) {
			return nil
		}
		st, _ := (FS{Root: h.root}).Stat(rel)
		fmt.Fprintf(&b, "file %s mode %o link %q\n%s\n", rel, st.Mode, st.Symlink, st.Content)
		return nil
	})
	return b.String()
}

// TestFaultChild is the process killed by the fault: it runs apply with
// VRF_NETSETUP_FAULT-style kill after step N in the netns passed as fd 3.
func TestFaultChild(t *testing.T) {
	if os.Getenv("NETSETUP_FAULT_CHILD") == "" {
		t.Skip("helper process for TestKillAtEveryStep")
	}
	ns := netns.NsHandle(3)
	n, err := NewNet(ns)
	if err != nil {
		t.Fatal(err)
	}
	fault, err := ParseFault(os.Getenv(FaultEnv))
	if err != nil || fault == nil {
		t.Fatalf("fault %v %v", fault, err)
	}
	h := &faultHost{ns: ns, n: n, root: os.Getenv("NETSETUP_FAULT_ROOT"), svc: &fakeSvc{}}
	r := h.runner()
	r.Out, r.Env.Out = os.Stdout, os.Stdout
	r.Env.Fault = fault
	err = r.Apply(faultCfg())
	t.Fatalf("apply was not killed: %v", err)
}

// TestKillAtEveryStep: for every step N of the plan that runs on this host,
// an apply killed right after step N (os.Exit, no rollback: as SIGKILL or a
// power loss) leaves a state that check reports as not converged, naming
// the steps still missing; a second apply converges to exactly the state of
// an uninterrupted run, and re-runs the service actions (marker).
func TestKillAtEveryStep(t *testing.T) {
	cfg := faultCfg()
	ref := newFaultHost(t)
	rst, err := ref.runner().Reader.Read(cfg)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := hostPlan(cfg, rst)
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.runner().Apply(cfg); err != nil {
		t.Fatalf("uninterrupted apply: %v", err)
	}
	want := ref.snapshot(t)
	t.Logf("plan (%d steps): %v", len(plan), ids(plan))
	kinds := map[string]bool{}
	for _, s := range plan {
		kinds[strings.SplitN(s.ID, "-", 2)[0]] = true
	}
	for _, k := range []string{"backup", "route", "rule", "sysctl", "file", "svc"} {
		if !kinds[k] {
			t.Errorf("plan has no %s step: the test would not cover it", k)
		}
	}

	for n := 1; n <= len(plan); n++ {
		t.Run(fmt.Sprintf("kill-after-%02d-%s", n, plan[n-1].ID), func(t *testing.T) {
			h := newFaultHost(t)
			cmd := exec.Command(os.Args[0], "-test.run=^TestFaultChild$", "-test.v")
			cmd.Env = append(os.Environ(), "NETSETUP_FAULT_CHILD=1", "NETSETUP_FAULT_ROOT="+h.root, FaultEnv+"=kill-after-step:"+strconv.Itoa(n))
			fd, err := unix.Dup(int(h.ns))
			if err != nil {
				t.Fatal(err)
			}
			nsf := os.NewFile(uintptr(fd), "netns")
			cmd.ExtraFiles = []*os.File{nsf}
			out, err := cmd.CombinedOutput()
			nsf.Close()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != FaultExitCode || !strings.Contains(string(out), fmt.Sprintf("FAULT  killed after step %d/", n)) {
				t.Fatalf("child: %v\n%s", err, out)
			}

			// check: not converged, and names every step not yet run
			r := h.runner()
			res, err := (&Checker{Reader: r.Reader, DNSTimeout: 1, KernelRelease: "6.1.0"}).Run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var conv *CheckResult
			for i := range res {
				if res[i].Name == "converged" {
					conv = &res[i]
				}
			}
			if conv == nil || conv.OK {
				t.Fatalf("check after kill at %d: converged %+v", n, conv)
			}
			if !strings.Contains(conv.Detail, ApplyMarker) {
				t.Errorf("check does not mention the interrupted apply: %s", conv.Detail)
			}
			for _, s := range plan[n:] {
				if s.ID != "backup" && !strings.HasPrefix(s.ID, "file-write:"+ConfigPath) && !strings.Contains(conv.Detail, s.Desc) {
					t.Errorf("check does not name %q: %s", s.Desc, conv.Detail)
				}
			}
			// what apply would do now: exactly the rest (+ service actions again)
			st, _ := r.Reader.Read(cfg)
			left, _ := hostPlan(cfg, st)
			rest := map[string]bool{}
			for _, s := range plan[n:] {
				rest[s.ID] = true
			}
			for _, s := range left {
				if !rest[s.ID] && !strings.HasPrefix(s.ID, "svc-") {
					t.Errorf("after kill at %d apply would run %s, which had already run", n, s.ID)
				}
				delete(rest, s.ID)
			}
			for id := range rest {
				t.Errorf("after kill at %d apply would not run %s", n, id)
			}

			if err := r.Apply(cfg); err != nil {
				t.Fatalf("re-apply: %v", err)
			}
			if !strings.Contains(strings.Join(h.svc.runs, " "), "daemon-reload") {
				t.Errorf("re-apply did not re-run the service actions: %v", h.svc.runs)
			}
			if got := h.snapshot(t); got != want {
				t.Errorf("state after kill at %d + apply differs from an uninterrupted apply:\n%s", n, lineDiff(want, got))
			}
		})
	}
}

func lineDiff(a, b string) string {
	as, bs := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(a, "\n") {
		as[l] = true
	}
	for _, l := range strings.Split(b, "\n") {
		bs[l] = true
	}
	var out []string
	for l := range as {
		if !bs[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range bs {
		if !as[l] {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// fail-at-step:N: step N does not run and fails; steps before it are
// undone in reverse order, as after a real failure there.
func TestFaultFailAtStep(t *testing.T) {
	f, err := ParseFault("fail-at-step:3")
	if err != nil || f.FailAt != 3 || f.KillAfter != 0 {
		t.Fatalf("ParseFault: %+v %v", f, err)
	}
	if h, err := ParseFault("hang-after-step:2"); err != nil || h.HangAfter != 2 || h.StuckAfter != hangStuckAfter || h.KillAfter != 0 || h.FailAt != 0 {
		t.Fatalf("ParseFault(hang-after-step:2): %+v %v", h, err)
	}
	for _, bad := range []string{"fail-at-step:0", "fail-at-step:x", "fail-after-step:2", "3", "hang-after-step:0"} {
		if _, err := ParseFault(bad); err == nil {
			t.Errorf("ParseFault(%q) accepted", bad)
		}
	}
	var log []string
	step := func(id string) Step {
		return Step{ID: id, Desc: id,
			Do:   func(*Env) error { log = append(log, "do "+id); return nil },
			Undo: func(*Env) error { log = append(log, "undo "+id); return nil }}
	}
	err = Apply(&Env{Fault: f}, []Step{step("a"), step("b"), step("c"), step("d")})
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), `step "c" failed: fault injection`) {
		t.Errorf("err = %v", err)
	}
	if got := strings.Join(log, ","); got != "do a,do b,undo b,undo a" {
		t.Errorf("ran %s", got)
	}
}

// An apply started by a hook while another one held the lock (NetworkManager's
// dispatcher at the takeover, a DHCP hook at the rebind) must not bring back
// what that one's rollback undid: the settings file it was started with is
// gone, so it does nothing.
func TestApplyReloadGone(t *testing.T) {
	h := newFaultHost(t)
	before := h.snap(t, false) // the lock file in /run aside
	r := h.runner()
	var out strings.Builder
	r.Out = &out
	calls := 0
	r.Reload = func() (Config, bool, error) { calls++; return Config{}, true, nil }
	if err := r.ApplyChanged(faultCfg()); !errors.Is(err, ErrNothingToDo) {
		t.Fatalf("apply with its settings file gone: %v, want ErrNothingToDo", err)
	}
	if calls != 1 || !strings.Contains(out.String(), "settings file is gone") {
		t.Errorf("Reload called %d times; out %q", calls, out.String())
	}
	if after := h.snap(t, false); after != before {
		t.Errorf("host changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
