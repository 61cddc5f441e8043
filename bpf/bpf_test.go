package bpf

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/pam-vrf/pam-vrf/cgroup"
)

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: loads BPF programs and creates cgroups")
	}
}

var cgSeq atomic.Int64

// testCgroup creates an empty cgroup below the test process's own cgroup and
// removes it (which detaches its programs) at the end.
func testCgroup(tb testing.TB) string {
	tb.Helper()
	requireRoot(tb)
	mount, err := cgroup.Mount()
	if err != nil {
		tb.Fatal(err)
	}
	own, err := cgroup.ProcPath(os.Getpid())
	if err != nil {
		tb.Fatal(err)
	}
	dir := filepath.Join(mount, own, fmt.Sprintf("pamvrf-bpftest-%d-%d", os.Getpid(), cgSeq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { removeTree(tb, dir) })
	return dir
}

// removeTree removes a tree of empty cgroups, leaves first.
func removeTree(tb testing.TB, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeTree(tb, filepath.Join(dir, e.Name()))
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		tb.Errorf("cleanup: %v", err)
	}
}

// kernelCount asks the kernel through cilium/ebpf, independently of our own
// raw query code.
func kernelCount(tb testing.TB, dir string) []link.AttachedProgram {
	tb.Helper()
	f, err := os.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachCGroupInetSockCreate})
	if err != nil {
		tb.Fatal(err)
	}
	return res.Programs
}

// attachedTag returns the kernel tag of the single program attached to dir.
func attachedTag(tb testing.TB, dir string) (ebpf.ProgramID, string) {
	tb.Helper()
	progs := kernelCount(tb, dir)
	if len(progs) != 1 {
		tb.Fatalf("%s: %d programs attached, want exactly 1", dir, len(progs))
	}
	p, err := ebpf.NewProgramFromID(progs[0].ID)
	if err != nil {
		tb.Fatal(err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		tb.Fatal(err)
	}
	return progs[0].ID, info.Tag
}

func wantBinds(tb testing.TB, dir string, ifindex uint32) ebpf.ProgramID {
	tb.Helper()
	id, tag := attachedTag(tb, dir)
	if !hasTag(Instructions(ifindex), tag) {
		tb.Fatalf("%s: attached program %d (tag %s) does not bind ifindex %d", dir, id, tag, ifindex)
	}
	return id
}

// uniqueIfindex avoids matching programs other tests (or other packages'
// tests running in parallel) loaded for small, real ifindexes.
// TestMain removes the pins the tests made (Ensure pins every program it
// loads, and pins outlive their devices).
func TestMain(m *testing.M) {
	before := Pins()
	code := m.Run()
	UnpinExcept(before)
	os.Exit(code)
}

func uniqueIfindex() uint32 { return 1<<24 + rand.Uint32N(1<<24) }

func TestInstructions(t *testing.T) {
	insns := Instructions(42)
	if len(insns) != 4 {
		t.Fatalf("%d instructions, want 4:\n%v", len(insns), insns)
	}
	st := insns[1]
	if st.OpCode.Class() != asm.StXClass || st.OpCode.Mode() != asm.MemMode || st.OpCode.Size() != asm.Word {
		t.Errorf("store is %v, want a 32-bit STX (BPF_ST into ctx is rejected by 6.1 verifiers)", st)
	}
	if st.Dst != asm.R1 || st.Offset != 0 {
		t.Errorf("store goes to %v%+d, want r1+0 (bpf_sock.bound_dev_if)", st.Dst, st.Offset)
	}
	if insns[0].Constant != 42 || st.Src != insns[0].Dst {
		t.Errorf("stored value is not the ifindex: %v", insns)
	}
	if insns[2].Dst != asm.R0 || insns[2].Constant != 1 || insns[3].OpCode.JumpOp() != asm.Exit {
		t.Errorf("program must return 1: %v", insns)
	}
	for _, ins := range insns {
		if ins.OpCode.Class() == asm.StClass {
			t.Errorf("immediate store %v", ins)
		}
	}
	if len(ProgramName) > 15 {
		t.Errorf("ProgramName %q longer than 15 bytes", ProgramName)
	}
	s := Spec(42)
	if s.Type != ebpf.CGroupSock || s.AttachType != ebpf.AttachCGroupInetSockCreate || s.License != "GPL" || s.Name != ProgramName {
		t.Errorf("spec %+v", s)
	}
}

func TestLoad(t *testing.T) {
	requireRoot(t)
	prog, err := Load(7)
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != ProgramName || info.Type != ebpf.CGroupSock {
		t.Errorf("loaded %q type %v", info.Name, info.Type)
	}
	if !hasTag(Instructions(7), info.Tag) || hasTag(Instructions(8), info.Tag) {
		t.Errorf("tag %s does not identify ifindex 7", info.Tag)
	}
	// Our raw OBJ_GET_INFO agrees with cilium's.
	raw, err := objInfo(prog.FD())
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	if raw.tag != info.Tag || raw.name != info.Name || ebpf.ProgramID(raw.id) != id || raw.typ != uint32(ebpf.CGroupSock) {
		t.Errorf("raw info %+v vs cilium %+v", raw, info)
	}
}

func TestEnsureIdempotent(t *testing.T) {
	dir := testCgroup(t)
	ifx := uniqueIfindex()
	r1, err := Ensure(dir, ifx)
	if err != nil {
		t.Fatalf("%+v", err)
	}
	if !r1.Changed || r1.ProgramID == 0 {
		t.Fatalf("first Ensure: %+v", r1)
	}
	r2, err := Ensure(dir, ifx)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Changed || r2.ProgramID != r1.ProgramID {
		t.Fatalf("second Ensure: %+v, first %+v", r2, r1)
	}
	if id := wantBinds(t, dir, ifx); uint32(id) != r1.ProgramID {
		t.Fatalf("kernel has %d attached, Ensure said %d", id, r1.ProgramID)
	}
	a, err := Query(dir)
	if err != nil || a.Flags != 0 || len(a.Programs) != 1 {
		t.Fatalf("Query = %+v, %v; want flags 0, one program", a, err)
	}
	ids, err := Attached(dir)
	if err != nil || len(ids) != 1 || uint32(ids[0]) != r1.ProgramID {
		t.Fatalf("Attached = %v, %v", ids, err)
	}
}

// 1,000 Ensure calls, alternating between two ifindexes so that every
// second call really replaces, plus the same ifindex over and over: the
// kernel must show exactly one program all the time.
func TestEnsureThousandLeavesOne(t *testing.T) {
	dir := testCgroup(t)
	a, b := uniqueIfindex(), uniqueIfindex()
	changed := 0
	for i := range 1000 {
		ifx := a
		if i%4 >= 2 { // a a b b a a b b ...
			ifx = b
		}
		r, err := Ensure(dir, ifx)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if r.Changed {
			changed++
		}
		if i%50 == 0 || i == 999 {
			wantBinds(t, dir, ifx)
		}
	}
	if changed != 500 {
		t.Errorf("%d calls changed the attachment, want 500 (every switch of ifindex)", changed)
	}
	if n := len(kernelCount(t, dir)); n != 1 {
		t.Fatalf("%d programs attached after 1000 Ensure calls", n)
	}
}

func TestEnsureNewIfindexReplaces(t *testing.T) {
	dir := testCgroup(t)
	old, nw := uniqueIfindex(), uniqueIfindex()
	r1, err := Ensure(dir, old)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Ensure(dir, nw)
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Changed || r2.ProgramID == r1.ProgramID {
		t.Fatalf("new ifindex did not replace: %+v after %+v", r2, r1)
	}
	wantBinds(t, dir, nw)
}

// A second cgroup for the same ifindex gets the program that is already
// loaded: same kernel program ID, so no new load and no verifier run.
func TestEnsureReuse(t *testing.T) {
	d1, d2 := testCgroup(t), testCgroup(t)
	ifx := uniqueIfindex()
	r1, err := Ensure(d1, ifx)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Reused {
		t.Fatalf("first Ensure for a never-used ifindex reused a program: %+v", r1)
	}
	r2, err := Ensure(d2, ifx)
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Changed || !r2.Reused || r2.ProgramID != r1.ProgramID {
		t.Fatalf("second cgroup: %+v, want Reused with program %d", r2, r1.ProgramID)
	}
	id1, _ := attachedTag(t, d1)
	id2, _ := attachedTag(t, d2)
	if id1 != id2 || uint32(id2) != r1.ProgramID {
		t.Fatalf("kernel: %s has %d, %s has %d; want both %d", d1, id1, d2, id2, r1.ProgramID)
	}
	// FindLoaded finds it; a different ifindex finds nothing.
	p, err := FindLoaded(ifx)
	if err != nil || p == nil {
		t.Fatalf("FindLoaded = %v, %v", p, err)
	}
	p.Close()
	if p, err := FindLoaded(uniqueIfindex()); err != nil || p != nil {
		t.Fatalf("FindLoaded(unused ifindex) = %v, %v", p, err)
	}
}

// iproute2 compatibility. `ip vrf exec` needs a VRF device, which this host
// cannot create, so its attach is reproduced: its six-instruction program
// (ip/ipvrf.c prog_load) attached with BPF_PROG_ATTACH flags 0.
func TestIproute2Compatible(t *testing.T) {
	dir := testCgroup(t)
	ifx := uniqueIfindex()
	if _, err := Ensure(dir, ifx); err != nil {
		t.Fatal(err)
	}
	ipProg, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.CGroupSock, AttachType: ebpf.AttachCGroupInetSockCreate,
		License: "GPL", Instructions: iproute2Instructions(ifx),
	})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer ipProg.Close()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// `ip vrf exec` after us: replaces, no EPERM.
	if err := link.RawAttachProgram(link.RawAttachProgramOptions{
		Target: int(f.Fd()), Program: ipProg, Attach: ebpf.AttachCGroupInetSockCreate, Flags: 0,
	}); err != nil {
		t.Fatalf("iproute2-style flags-0 attach after Ensure: %v", err)
	}
	info, _ := ipProg.Info()
	ipID, _ := info.ID()
	if id, _ := attachedTag(t, dir); id != ipID {
		t.Fatalf("attached %d, want iproute2's %d", id, ipID)
	}
	// We recognise iproute2's program for the same ifindex and leave it.
	r, err := Ensure(dir, ifx)
	if err != nil || r.Changed || ebpf.ProgramID(r.ProgramID) != ipID {
		t.Fatalf("Ensure over iproute2's equivalent program: %+v, %v", r, err)
	}
	// ... and replace it for another ifindex.
	other := uniqueIfindex()
	if r, err := Ensure(dir, other); err != nil || !r.Changed {
		t.Fatalf("Ensure(other ifindex) over iproute2's program: %+v, %v", r, err)
	}
	wantBinds(t, dir, other)

	// What link.AttachCgroup would have done: a MULTI/bpf_link attachment
	// cannot join a flags-0 cgroup (EPERM) ...
	l, err := link.AttachCgroup(link.CgroupOptions{Path: dir, Attach: ebpf.AttachCGroupInetSockCreate, Program: ipProg})
	if err == nil {
		l.Close()
		t.Fatal("link.AttachCgroup onto a flags-0 cgroup succeeded; expected EPERM")
	}
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("link.AttachCgroup: %v, want EPERM", err)
	}
	// ... and a cgroup that holds a bpf_link makes flags-0 attaches fail,
	// which Ensure reports as a conflict, not as missing permission.
	dir2 := testCgroup(t)
	l, err = link.AttachCgroup(link.CgroupOptions{Path: dir2, Attach: ebpf.AttachCGroupInetSockCreate, Program: ipProg})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Ensure(dir2, ifx)
	if !errors.Is(err, ErrConflict) || errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), dir2) {
		t.Fatalf("Ensure on a bpf_link cgroup: %v; want ErrConflict naming %s", err, dir2)
	}
}

// The kernel refuses flags-0 attaches below a cgroup with a flags-0
// program; Ensure names that ancestor instead of blaming permissions.
func TestEnsureAncestorConflict(t *testing.T) {
	parent := testCgroup(t)
	child := filepath.Join(parent, "vrf")
	if err := os.Mkdir(child, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(parent, uniqueIfindex()); err != nil {
		t.Fatal(err)
	}
	_, err := Ensure(child, uniqueIfindex())
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "ancestor cgroup "+parent) {
		t.Fatalf("Ensure below a flags-0 parent: %v", err)
	}
	if n := len(kernelCount(t, child)); n != 0 {
		t.Fatalf("%d programs attached to child after refused attach", n)
	}
}

// withoutCaps runs fn on a fresh OS thread whose effective capabilities lack
// drop (capabilities are per thread). The thread is discarded afterwards.
func withoutCaps(t *testing.T, drop []uint, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			t.Error(err)
			return
		}
		for _, c := range drop {
			data[c/32].Effective &^= 1 << (c % 32)
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			t.Error(err)
			return
		}
		fn()
	}()
	<-done
}

func TestEnsurePermission(t *testing.T) {
	dir := testCgroup(t)
	ifx := uniqueIfindex()
	all := []uint{unix.CAP_SYS_ADMIN, unix.CAP_NET_ADMIN, unix.CAP_BPF, unix.CAP_PERFMON}
	var err error
	withoutCaps(t, all, func() { _, err = Ensure(dir, ifx) })
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), dir) ||
		!strings.Contains(err.Error(), "no BPF permission: operation not permitted") {
		t.Fatalf("Ensure without any BPF capability: %v", err)
	}
	// CAP_NET_ADMIN alone can query but not load.
	withoutCaps(t, []uint{unix.CAP_SYS_ADMIN, unix.CAP_BPF, unix.CAP_PERFMON}, func() { _, err = Ensure(dir, ifx) })
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "attach sock program to "+dir) {
		t.Fatalf("Ensure with CAP_NET_ADMIN only: %v", err)
	}
	t.Logf("example error: %v", err)
	if n := len(kernelCount(t, dir)); n != 0 {
		t.Fatalf("%d programs attached after refused Ensure", n)
	}
	withoutCaps(t, all, func() { _, err = Load(ifx) })
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("Load without capabilities: %v", err)
	}
}

func TestEnsureErrors(t *testing.T) {
	requireRoot(t)
	_, err := Ensure("/nonexistent/cgroup", 5)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/cgroup") || errors.Is(err, ErrPermission) {
		t.Fatalf("Ensure(missing dir) = %v", err)
	}
	dir := testCgroup(t)
	if _, err := Ensure(dir, 0); err == nil {
		t.Fatal("Ensure(ifindex 0) succeeded")
	}
	// A directory outside cgroup2 is not a cgroup.
	if _, err := Ensure(t.TempDir(), 5); err == nil {
		t.Fatal("Ensure on a plain directory succeeded")
	}
}

// BenchmarkEnsure compares the three paths of Ensure on one cgroup:
// fresh (load + verify + attach, as without reuse), reuse (find the loaded
// copy + attach) and noop (the right program is already attached). Fresh
// and reuse alternate between two ifindexes so every op really attaches.
func BenchmarkEnsure(b *testing.B) {
	dir := testCgroup(b)
	x, y := uniqueIfindex(), uniqueIfindex()
	var fresh, reuse float64
	perOp := func(b *testing.B) float64 { return float64(b.Elapsed().Nanoseconds()) / float64(b.N) }

	b.Run("fresh", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			ifx := x
			if i%2 == 1 {
				ifx = y
			}
			if r, err := ensure(dir, ifx, false); err != nil || !r.Changed || r.Reused {
				b.Fatal(r, err)
			}
		}
		fresh = perOp(b)
	})
	b.Run("reuse", func(b *testing.B) {
		// Keep both programs loaded so each switch finds one.
		px, _ := Load(x)
		py, _ := Load(y)
		defer px.Close()
		defer py.Close()
		for i := 0; b.Loop(); i++ {
			ifx := x
			if i%2 == 1 {
				ifx = y
			}
			if r, err := Ensure(dir, ifx); err != nil || !r.Changed || !r.Reused {
				b.Fatal(r, err)
			}
		}
		reuse = perOp(b)
		if reuse > 0 {
			b.ReportMetric(fresh/reuse, "fresh/reuse")
		}
		b.ReportMetric(float64(countLoaded()), "progs-loaded")
	})
	b.Run("noop", func(b *testing.B) {
		if _, err := Ensure(dir, x); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if r, err := Ensure(dir, x); err != nil || r.Changed {
				b.Fatal(r, err)
			}
		}
		noop := perOp(b)
		if noop > 0 {
			b.ReportMetric(fresh/noop, "fresh/noop")
			b.ReportMetric(reuse/noop, "reuse/noop")
		}
	})
}

// BenchmarkFindLoaded measures the reuse walk alone with extra unrelated
// programs loaded, to see how it scales with busy hosts.
func BenchmarkFindLoaded(b *testing.B) {
	requireRoot(b)
	for _, extra := range []int{0, 100, 500} {
		// Unrelated programs loaded BEFORE ours (lower IDs), like systemd's
		// at boot, so the walk has to pass all of them.
		var held []*ebpf.Program
		for range extra {
			p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.CGroupSock, License: "GPL",
				Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}})
			if err != nil {
				b.Fatal(err)
			}
			held = append(held, p)
		}
		ifx := uniqueIfindex()
		mine, err := Load(ifx)
		if err != nil {
			b.Fatal(err)
		}
		held = append(held, mine)
		b.Run(fmt.Sprintf("loaded=%d", countLoaded()), func(b *testing.B) {
			for b.Loop() {
				p, err := FindLoaded(ifx)
				if err != nil || p == nil {
					b.Fatal(p, err)
				}
				p.Close()
			}
		})
		b.Run(fmt.Sprintf("load-instead/loaded=%d", countLoaded()), func(b *testing.B) {
			for b.Loop() {
				p, err := Load(ifx)
				if err != nil {
					b.Fatal(err)
				}
				p.Close()
			}
		})
		for _, p := range held {
			p.Close()
		}
	}
}

func countLoaded() int {
	n := 0
	for id := uint32(0); ; n++ {
		next, err := nextProgID(id)
		if err != nil {
			return n
		}
		id = next
	}
}
