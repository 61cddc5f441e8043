package netsetup

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// newNS creates a throw-away netns without ever leaving the calling thread
// in it (LockOSThread + restore), and a Net bound to it.
func newNS(t *testing.T) (netns.NsHandle, *Net) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (netns)")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("netns.New: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("restore netns: %v", err)
	}
	n, err := NewNet(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); ns.Close() })
	lo, _ := n.H.LinkByName("lo")
	_ = n.H.LinkSetUp(lo)
	return ns, n
}

// peeredNS: two throw-away netns joined by a veth, dev (10.9.0.1/24) in the
// first, peer0 (10.9.0.2/24) in the second.
func peeredNS(t *testing.T, dev string) (nsA netns.NsHandle, na *Net, nsB netns.NsHandle, nb *Net) {
	t.Helper()
	nsA, na = newNS(t)
	nsB, nb = newNS(t)
	vethPair(t, na, dev, "peer0", nsB)
	pl, err := nb.H.LinkByName("peer0")
	if err != nil {
		t.Fatal(err)
	}
	if err := nb.H.LinkSetUp(pl); err != nil {
		t.Fatal(err)
	}
	addAddr(t, na, dev, "10.9.0.1/24")
	addAddr(t, nb, "peer0", "10.9.0.2/24")
	return nsA, na, nsB, nb
}

// vethPair creates a veth pair in ns a; the peer is moved into ns b (if valid).
func vethPair(t *testing.T, na *Net, name, peer string, b netns.NsHandle) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}
	if b > 0 {
		v.PeerNamespace = netlink.NsFd(int(b))
	}
	if err := na.H.LinkAdd(v); err != nil {
		t.Fatalf("veth: %v", err)
	}
	l, _ := na.H.LinkByName(name)
	if err := na.H.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

func addAddr(t *testing.T, n *Net, dev, cidr string) {
	t.Helper()
	l, err := n.H.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	a.Flags |= unix.IFA_F_NODAD
	if err := n.H.AddrAdd(l, a); err != nil {
		t.Fatalf("addr %s: %v", cidr, err)
	}
}

func testEnv(ns netns.NsHandle, n *Net, root string) *Env {
	return &Env{Net: n, FS: FS{Root: root}, Sysctl: Sysctl{NS: ns}, Svc: &fakeSvc{}, Mod: fakeMod{}}
}

func testReader(ns netns.NsHandle, n *Net, root string) *Reader {
	return &Reader{Net: n, FS: FS{Root: root}, Sysctl: Sysctl{NS: ns}, Svc: &fakeSvc{}, HostRoot: "/nonexistent"}
}

type fakeMod struct{}

func (fakeMod) Load(ModuleState) error { return nil }

type fakeSvc struct {
	active map[string]bool
	runs   []string
}

func (f *fakeSvc) IsActive(u string) bool  { return f.active[u] }
func (f *fakeSvc) IsEnabled(u string) bool { return f.active[u] }
func (f *fakeSvc) Run(verb string, units ...string) error {
	f.runs = append(f.runs, verb)
	return nil
}

func localPrefs(t *testing.T, n *Net, fam int) (l3 []uint32, local []uint32) {
	t.Helper()
	rs, err := n.RuleList(fam)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.IsLocal() {
			local = append(local, r.Pref)
		}
		if r.IsL3mdev() {
			l3 = append(l3, r.Pref)
		}
	}
	return
}

// TestRuleOrderingInNetns moves local 0 -> 32765 for v4 and v6 via raw
// rtnetlink, adds the l3mdev rule with FRA_L3MDEV, and is idempotent.
func TestRuleOrderingInNetns(t *testing.T) {
	ns, n := newNS(t)
	st := &State{}
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, err := n.RuleList(f)
		if err != nil {
			t.Fatal(err)
		}
		st.Rules = append(st.Rules, rs...)
	}
	steps := planRules(st)
	wantOrder(t, ids(steps), "rule-l3mdev-v4", "rule-local-add-v4", "rule-local-del0-v4", "rule-l3mdev-v6", "rule-local-add-v6", "rule-local-del0-v6")
	if err := Apply(testEnv(ns, n, t.TempDir()), steps); err != nil {
		t.Fatalf("apply: %v", err)
	}
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		l3, local := localPrefs(t, n, f)
		if len(local) != 1 || local[0] != PrefLocalNew {
			t.Errorf("%s local rules at %v, want [32765]", famName(f), local)
		}
		if len(l3) != 1 || l3[0] != PrefL3mdev {
			t.Errorf("%s l3mdev rules at %v, want [1000]", famName(f), l3)
		}
	}
	// second run: nothing to do
	st.Rules = nil
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, _ := n.RuleList(f)
		st.Rules = append(st.Rules, rs...)
	}
	if s := planRules(st); len(s) != 0 {
		t.Fatalf("second run planned %v", ids(s))
	}
	// local addresses still work (a local rule exists): 127.0.0.1 resolves to local
	rt, err := n.H.RouteGet(net.ParseIP("127.0.0.1"))
	if err != nil || len(rt) == 0 || rt[0].Type != unix.RTN_LOCAL {
		t.Fatalf("127.0.0.1 not local after the move: %v %v", rt, err)
	}
}

// TestRollbackOnFailure: every applied step is undone in reverse order when
// a later step fails; the rules, sysctls and files are as before.
func TestRollbackOnFailure(t *testing.T) {
	ns, n := newNS(t)
	root := t.TempDir()
	env := testEnv(ns, n, root)
	fsys := FS{Root: root}
	if err := fsys.WriteAtomic(SysctlConf, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := map[int][]uint32{}
	st := &State{Sysctls: map[string]string{}}
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, _ := n.RuleList(f)
		st.Rules = append(st.Rules, rs...)
		_, before[f] = localPrefs(t, n, f)
	}
	for _, s := range l3mdevSysctls {
		st.Sysctls[s], _ = env.Sysctl.Get(s)
	}
	cfg := testCfg()
	old, _ := fsys.Stat(SysctlConf)
	steps := append(planRules(st), planSysctls(cfg, DNSStatic, st)...)
	steps = append(steps, stepFile(fileSpec{Path: SysctlConf, Content: "new\n"}, old))
	steps = append(steps, Step{ID: "boom", Desc: "injected failure", Do: func(*Env) error { return errors.New("injected") }})
	err := Apply(env, steps)
	if !errors.Is(err, ErrRolledBack) {
		t.Fatalf("want rolled back error, got %v", err)
	}
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		l3, local := localPrefs(t, n, f)
		if len(l3) != 0 || len(local) != 1 || local[0] != before[f][0] {
			t.Errorf("%s after rollback: l3mdev %v local %v, want none and %v", famName(f), l3, local, before[f])
		}
	}
	for _, s := range l3mdevSysctls {
		if v, _ := env.Sysctl.Get(s); v != st.Sysctls[s] {
			t.Errorf("%s = %s after rollback, want %s", s, v, st.Sysctls[s])
		}
	}
	if f, _ := fsys.Stat(SysctlConf); f.Content != "old\n" {
		t.Errorf("file after rollback: %q", f.Content)
	}
}

// TestSysctlPerNetns: writes land in the test netns only.
func TestSysctlPerNetns(t *testing.T) {
	ns, _ := newNS(t)
	host, err := (Sysctl{}).Get(l3mdevSysctls[0])
	if err != nil {
		t.Fatal(err)
	}
	want := "1"
	if host == "1" {
		want = "0"
	}
	s := Sysctl{NS: ns}
	if err := s.Set(l3mdevSysctls[0], want); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get(l3mdevSysctls[0]); v != want {
		t.Fatalf("netns value %s, want %s", v, want)
	}
	if v, _ := (Sysctl{}).Get(l3mdevSysctls[0]); v != host {
		t.Fatalf("host value changed to %s", v)
	}
}

// TestAddressesAndRoutesOnVeth: the reader captures addresses and the
// non-connected routes; the route move puts defaults into the VRF table and
// removes them from main; the address re-add restores flushed addresses;
// enslave/undo (to a bridge, as the VRF driver is unavailable here) restores
// addresses and main routes.
func TestAddressesAndRoutesOnVeth(t *testing.T) {
	ns, n := newNS(t)
	vethPair(t, n, "eth0", "peer0", netns.None())
	addAddr(t, n, "eth0", "192.0.2.10/24")
	addAddr(t, n, "eth0", "2001:db8::10/64")
	l, _ := n.H.LinkByName("eth0")
	for _, r := range []*netlink.Route{
		{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("192.0.2.1"), Dst: defaultDst(unix.AF_INET), Protocol: unix.RTPROT_STATIC},
		{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("2001:db8::1"), Dst: defaultDst(unix.AF_INET6), Protocol: unix.RTPROT_STATIC},
		{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("192.0.2.1"), Dst: &net.IPNet{IP: net.ParseIP("198.51.100.0").To4(), Mask: net.CIDRMask(24, 32)}, Protocol: unix.RTPROT_STATIC},
	} {
		if err := n.H.RouteAdd(r); err != nil {
			t.Fatalf("route %v: %v", r, err)
		}
	}
	cfg := testCfg()
	rd := testReader(ns, n, t.TempDir())
	st, err := rd.Read(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mv := movableRoutes(st, "eth0")
	if len(mv) != 3 {
		t.Fatalf("movable routes %+v", mv)
	}
	env := testEnv(ns, n, t.TempDir())

	// enslave to a bridge and undo: addresses and routes come back in main
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := n.H.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	bcfg := cfg
	bcfg.VRF = "br0"
	es := stepEnslave(bcfg, st)
	if err := es.Do(env); err != nil {
		t.Fatal(err)
	}
	// simulate the flush a VRF enslave does
	for _, r := range mv {
		nr, _ := env.nlRoute(r, unix.RT_TABLE_MAIN)
		_ = n.H.RouteDel(nr)
	}
	a6, _ := netlink.ParseAddr("2001:db8::10/64")
	_ = n.H.AddrDel(l, a6)
	if err := es.Undo(env); err != nil {
		t.Fatal(err)
	}
	st2, _ := rd.Read(cfg)
	if st2.Links["eth0"].Master != 0 || !st2.hasAddr("eth0", "2001:db8::10/64") || len(movableRoutes(st2, "eth0")) != 3 {
		t.Fatalf("undo enslave: master %d addrs %v routes %v", st2.Links["eth0"].Master, st2.Addrs["eth0"], movableRoutes(st2, "eth0"))
	}

	// re-add + move
	_ = n.H.AddrDel(l, a6)
	steps := []Step{stepReaddAddrs("eth0", st.Addrs["eth0"])}
	for _, r := range mv {
		steps = append(steps, stepMoveRoute(r, cfg.Table, false))
	}
	steps = append(steps, withoutCatchAll(planGuard(cfg, st))...)
	if err := Apply(env, steps); err != nil {
		t.Fatal(err)
	}
	st3, _ := rd.Read(cfg)
	if len(movableRoutes(st3, "eth0")) != 0 {
		t.Errorf("routes left in main: %v", movableRoutes(st3, "eth0"))
	}
	for _, r := range mv {
		if !routeInTable(st3, r, cfg.Table) {
			t.Errorf("route %s not in table %d", r.Dst, cfg.Table)
		}
	}
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		for _, g := range guardRules(cfg.VRF, f) {
			if !hasRule(st3, g) {
				t.Errorf("guard rule %s missing", g)
			}
		}
	}
	if !st3.hasAddr("eth0", "2001:db8::10/64") {
		t.Errorf("v6 address not re-added: %v", st3.Addrs["eth0"])
	}
	// rollback of the moves puts the routes back into main
	if err := rollback(env, os.Stderr, steps); err != nil {
		t.Fatal(err)
	}
	st4, _ := rd.Read(cfg)
	if len(movableRoutes(st4, "eth0")) != 3 {
		t.Errorf("after undo, main routes %v", movableRoutes(st4, "eth0"))
	}
}

// TestApplyWithoutVRFDriverRollsBack: the full plan on this host fails at
// vrf-create (EOPNOTSUPP through the Handle) and leaves nothing behind.
func TestApplyWithoutVRFDriverRollsBack(t *testing.T) {
	ns, n := newNS(t)
	if err := n.H.LinkAdd(&netlink.Vrf{LinkAttrs: netlink.LinkAttrs{Name: "probe"}, Table: 7}); err == nil {
		t.Skip("this kernel has the VRF driver; covered by the VM tests")
	}
	vethPair(t, n, "eth0", "peer0", netns.None())
	addAddr(t, n, "eth0", "192.0.2.10/24")
	root := t.TempDir()
	cfg := testCfg()
	cfg.Nameservers = []string{"192.0.2.53"}
	rd := testReader(ns, n, root)
	env := testEnv(ns, n, root)
	r := &Runner{Reader: rd, Env: env, Out: os.Stderr}
	err := r.Apply(cfg)
	if !errors.Is(err, ErrRolledBack) || !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("want EOPNOTSUPP + rolled back, got %v", err)
	}
	if f, _ := (FS{Root: root}).Stat(BackupPath); f.Exists {
		t.Errorf("backup left behind after rollback")
	}
}

// WaitIPv4 (the wait for dhcpcd's lease before apply reads the state): no
// IPv4 address (a link-local one does not count) until the timeout is
// false; an address that arrives while it waits is true.
func TestWaitIPv4(t *testing.T) {
	_, n := newNS(t)
	vethPair(t, n, "wv0", "wv1", 0)
	addAddr(t, n, "wv0", "169.254.3.3/16")
	if WaitIPv4(n, "wv0", 300*time.Millisecond) {
		t.Error("true with only a link-local address")
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		l, _ := n.H.LinkByName("wv0")
		a, _ := netlink.ParseAddr("10.9.9.1/24")
		n.H.AddrAdd(l, a)
	}()
	if !WaitIPv4(n, "wv0", 5*time.Second) {
		t.Error("false although an address arrived while it waited")
	}
}

// TestVerifyAppliesFollowSteps: a nameserver the manager learns while
// apply runs shows up as a pending Follow step at verify, which applies it
// instead of failing; any other pending step still fails the apply.
func TestVerifyAppliesFollowSteps(t *testing.T) {
	ns, n := newNS(t)
	vethPair(t, n, "eth0", "peer0", netns.None())
	root := t.TempDir()
	cfg := testCfg()
	for _, tc := range []struct {
		follow bool
		want   string // "" = success
	}{{true, ""}, {false, "1 step(s) still pending after apply"}} {
		ran, calls := 0, 0
		step := Step{ID: "late", Desc: "steer a late nameserver", Follow: tc.follow,
			Do: func(*Env) error { ran++; return nil }}
		r := &Runner{Reader: testReader(ns, n, root), Env: testEnv(ns, n, root), Out: io.Discard,
			plan: func(Config, *State) ([]Step, error) {
				calls++
				switch {
				case calls == 1: // the plan: something to do
					return []Step{{ID: "first", Desc: "first", Do: func(*Env) error { return nil }}}, nil
				case ran == 0 || !tc.follow: // verify: the late step pending
					return []Step{step}, nil
				}
				return nil, nil
			}}
		err := r.Apply(cfg)
		switch {
		case tc.want == "" && (err != nil || ran != 1):
			t.Errorf("follow step: err %v, ran %d times (want nil, 1)", err, ran)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || ran != 0):
			t.Errorf("other step: err %v, ran %d times (want %q, 0)", err, ran, tc.want)
		}
	}
}
