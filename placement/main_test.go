package placement

// Test harness. Integration tests need processes that live in a throw-away
// network namespace holding a veth pair, the stand-in for a VRF device on a
// host without the VRF driver (a sock_create program may bind to any
// device). The test binary re-executes itself with PAMVRF_CHILD set; the
// child enters the namespace on its main thread (locked in init, so
// /proc/self/ns/net and /proc/thread-self agree), optionally calls Enter on
// itself, creates sockets and reports what they are bound to as JSON.
//
// `ip netns exec` is not used to start children: it remounts /sys in a new
// mount namespace, which hides the cgroup2 mount on hybrid hosts.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/pam-vrf/pam-vrf/bpf"
	"github.com/pam-vrf/pam-vrf/cgroup"
)

func init() {
	// Keep the main goroutine on the main thread, so a child can switch
	// the thread-group leader's netns. The parent unlocks in TestMain.
	runtime.LockOSThread()
}

func TestMain(m *testing.M) {
	if os.Getenv("PAMVRF_CHILD") != "" {
		os.Exit(childMain())
	}
	runtime.UnlockOSThread()
	pins := bpf.Pins()
	code := m.Run()
	bpf.UnpinExcept(pins) // pins outlive the test devices
	os.Exit(code)
}

type sockReport struct {
	Dev     string `json:"dev"`
	Ifindex int    `json:"ifindex"`
	Err     string `json:"err,omitempty"`
}

type childReport struct {
	Pid     int                   `json:"pid"`
	Err     string                `json:"err,omitempty"`
	Dir     string                `json:"dir,omitempty"`
	Ifindex int                   `json:"ifindex,omitempty"`
	Cgroup  string                `json:"cgroup"` // /proc/self/cgroup v2 path after Enter
	Sockets map[string]sockReport `json:"sockets,omitempty"`
}

var socketKinds = []struct {
	name        string
	family, typ int
	inet        bool
}{
	{"tcp4", unix.AF_INET, unix.SOCK_STREAM, true},
	{"udp4", unix.AF_INET, unix.SOCK_DGRAM, true},
	{"tcp6", unix.AF_INET6, unix.SOCK_STREAM, true},
	{"udp6", unix.AF_INET6, unix.SOCK_DGRAM, true},
	{"unix", unix.AF_UNIX, unix.SOCK_STREAM, false},
}

func childMain() int {
	rep := childReport{Pid: os.Getpid()}
	out := json.NewEncoder(os.Stdout)
	fail := func(format string, a ...any) int {
		rep.Err = fmt.Sprintf(format, a...)
		_ = out.Encode(rep)
		return 0 // the parent judges the report
	}
	if os.Getenv("PAMVRF_BARRIER") != "" {
		// Block until the parent closes the write end: all children start
		// Enter at (nearly) the same moment.
		_, _ = io.Copy(io.Discard, os.NewFile(3, "barrier"))
	}
	ns, err := netns.GetFromName(os.Getenv("PAMVRF_NETNS"))
	if err != nil {
		return fail("open netns: %v", err)
	}
	if err := netns.Set(ns); err != nil {
		return fail("enter netns: %v", err)
	}
	ns.Close()

	if os.Getenv("PAMVRF_PLACE") != "" {
		res, err := Enter(os.Getpid(), os.Getenv("PAMVRF_DEV"), Options{AllowNonVRF: true})
		if err != nil {
			return fail("%v", err)
		}
		rep.Dir, rep.Ifindex = res.Dir, res.Ifindex
	}
	rep.Cgroup, _ = cgroup.ProcPath(os.Getpid())

	if os.Getenv("PAMVRF_SOCKETS") != "" {
		rep.Sockets = map[string]sockReport{}
		for _, k := range socketKinds {
			rep.Sockets[k.name] = probeSocket(k.family, k.typ)
		}
	}
	if err := out.Encode(rep); err != nil {
		return 1
	}
	if os.Getenv("PAMVRF_WAIT") != "" {
		_, _ = io.Copy(io.Discard, os.Stdin) // until the parent is done with us
	}
	return 0
}

func probeSocket(family, typ int) sockReport {
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return sockReport{Err: "socket: " + err.Error()}
	}
	defer unix.Close(fd)
	var r sockReport
	if r.Dev, err = unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE); err != nil {
		r.Err = "SO_BINDTODEVICE: " + err.Error()
	}
	if r.Ifindex, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX); err != nil {
		r.Err += " SO_BINDTOIFINDEX: " + err.Error()
	}
	return r
}

// ---- parent side ----

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, cgroups and BPF programs")
	}
}

// testNet is a named throw-away netns with a veth pair; dev is the VRF
// stand-in (≤15 bytes, unique per run).
type testNet struct {
	ns      string
	dev     string
	ifindex int    // of dev, as first created
	mount   string // cgroup2 mount
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	requireRoot(t)
	mount, err := cgroup.Mount()
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%06x", rand.Uint32N(1<<24))
	tn := &testNet{ns: "pamvrf-" + id, dev: "pv" + id, mount: mount}
	if out, err := exec.Command("ip", "netns", "add", tn.ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", tn.ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", tn.ns, err, out)
		}
	})
	tn.ifindex = tn.addVeth(t)
	// Runs after every child is killed (cleanups are LIFO and children
	// register theirs later).
	t.Cleanup(func() { tn.removeCgroups(t) })
	return tn
}

func (tn *testNet) handle(t *testing.T) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromName(tn.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// addVeth (re)creates the veth pair and returns the VRF stand-in's ifindex.
func (tn *testNet) addVeth(t *testing.T) int {
	t.Helper()
	h := tn.handle(t)
	defer h.Close()
	// A random large ifindex: unique per run, so no program of another
	// test (fresh netns devices all start at 2) matches by accident.
	want := 1<<20 + int(rand.Uint32N(1<<29))
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: tn.dev, Index: want}, PeerName: tn.dev + "p"}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s: %v", tn.dev, err)
	}
	l, err := h.LinkByName(tn.dev)
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().Index != want {
		t.Fatalf("veth %s got ifindex %d, asked for %d", tn.dev, l.Attrs().Index, want)
	}
	return want
}

func (tn *testNet) delVeth(t *testing.T) {
	t.Helper()
	h := tn.handle(t)
	defer h.Close()
	l, err := h.LinkByName(tn.dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel(l); err != nil {
		t.Fatal(err)
	}
}

// vrfDir is where placements of processes started by this test land: the
// test's own cgroup, the netns level, vrf/<dev>.
func (tn *testNet) vrfDir(t *testing.T) string {
	t.Helper()
	own, err := cgroup.ProcPath(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return cgroup.VRFDirNS(tn.mount, own, tn.ns, tn.dev)
}

// removeCgroups moves leftover pids back to the test's own cgroup, then
// removes …/<ns>-ns/vrf/<dev>, …/<ns>-ns/vrf and …/<ns>-ns if empty.
func (tn *testNet) removeCgroups(t *testing.T) {
	own, err := cgroup.ProcPath(os.Getpid())
	if err != nil {
		t.Error(err)
		return
	}
	leaf := tn.vrfDir(t)
	if data, err := os.ReadFile(filepath.Join(leaf, "cgroup.procs")); err == nil {
		for _, p := range strings.Fields(string(data)) {
			pid, _ := strconv.Atoi(p)
			if err := cgroup.Move(filepath.Join(tn.mount, own), pid); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	}
	for _, d := range []string{leaf, filepath.Dir(leaf), filepath.Dir(filepath.Dir(leaf))} {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			if filepath.Base(d) == "vrf" && errors.Is(err, unix.EBUSY) {
				continue // other VRF dirs of a parallel test still in there
			}
			t.Errorf("cleanup: remove %s: %v", d, err)
			return
		}
	}
}

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	rd    *bufio.Reader
	rep   childReport
}

type childOpts struct {
	place, sockets, wait bool
	barrier              *os.File
}

// startChild starts the test binary as a child in tn's netns and reads its
// report. Children that wait are released (and always killed) at cleanup.
func (tn *testNet) startChild(t *testing.T, o childOpts) *child {
	t.Helper()
	c := tn.spawn(t, o)
	tn.readReport(t, c)
	return c
}

func (tn *testNet) spawn(t *testing.T, o childOpts) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PAMVRF_CHILD=1", "PAMVRF_NETNS="+tn.ns, "PAMVRF_DEV="+tn.dev)
	for k, v := range map[string]bool{"PAMVRF_PLACE": o.place, "PAMVRF_SOCKETS": o.sockets, "PAMVRF_WAIT": o.wait} {
		if v {
			cmd.Env = append(cmd.Env, k+"=1")
		}
	}
	if o.barrier != nil {
		cmd.Env = append(cmd.Env, "PAMVRF_BARRIER=1")
		cmd.ExtraFiles = []*os.File{o.barrier}
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	c.rd = bufio.NewReader(stdout)
	return c
}

// readReport reads the child's one-line JSON report (30 s limit).
func (tn *testNet) readReport(t *testing.T, c *child) {
	t.Helper()
	type line struct {
		b   []byte
		err error
	}
	ch := make(chan line, 1)
	go func() { b, err := c.rd.ReadBytes('\n'); ch <- line{b, err} }()
	select {
	case l := <-ch:
		if l.err != nil {
			t.Fatalf("child %d: no report: %v", c.cmd.Process.Pid, l.err)
		}
		if err := json.Unmarshal(l.b, &c.rep); err != nil {
			t.Fatalf("child %d: bad report %q: %v", c.cmd.Process.Pid, l.b, err)
		}
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		t.Fatalf("child %d: no report within 30s", c.cmd.Process.Pid)
	}
}

// inNetns runs fn on a dedicated OS thread switched into tn's netns, so
// Enter resolves the device there (as a PAM caller would in its own netns).
// The thread is discarded afterwards, never reused by other goroutines.
func (tn *testNet) inNetns(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		ns, err := netns.GetFromName(tn.ns)
		if err != nil {
			t.Error(err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			t.Error(err)
			return
		}
		fn()
	}()
	<-done
}

// sleeper starts a process that just exists, to be placed by the test
// process itself.
func sleeper(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// attached asks the kernel via cilium/ebpf (not via package bpf) which
// sock_create programs are attached directly to dir.
func attached(t *testing.T, dir string) []link.AttachedProgram {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachCGroupInetSockCreate})
	if err != nil {
		t.Fatal(err)
	}
	return res.Programs
}

func wantOneProgram(t *testing.T, dir string) ebpf.ProgramID {
	t.Helper()
	progs := attached(t, dir)
	if len(progs) != 1 {
		t.Fatalf("%s: kernel reports %d sock_create programs, want exactly 1", dir, len(progs))
	}
	return progs[0].ID
}

func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
