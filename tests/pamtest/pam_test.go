// Package pamtest drives the real pam_vrf.so through the real libpam, from a
// C process (tests/pamdriver), in throw-away network namespaces where a veth
// device stands in for the VRF (the host kernel has no VRF driver).
//
// It needs root (cgroups, BPF, namespaces) and the artifacts of `make all
// build/test/pam_vrf.so`; PAMVRF_BUILD names their directory. Without it the
// test builds them itself into a temporary directory.
package pamtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pam-vrf/pam-vrf/bpf"
	"github.com/pam-vrf/pam-vrf/cgroup"
)

var (
	prodSO, testSO, driver string
)

func TestMain(m *testing.M) {
	if os.Getenv("PAMVRF_SOCKCHECK") == "1" {
		os.Exit(sockCheck())
	}
	if os.Geteuid() != 0 {
		// A plain `go test ./...` as a user: say why, do not fail.
		fmt.Println("pamtest: skipped: needs root (cgroups, BPF, network namespaces); make test-host runs it")
		os.Exit(0)
	}
	dir := os.Getenv("PAMVRF_BUILD")
	cleanup := func() {}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "pamvrf-build-")
		if err != nil {
			panic(err)
		}
		cleanup = func() { os.RemoveAll(tmp) }
		dir = tmp
		if err := build(dir); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	}
	if err := mountBPFFS(); err != nil {
		fmt.Println("pamtest:", err)
		os.Exit(1)
	}
	prodSO, testSO, driver = filepath.Join(dir, "pam_vrf.so"), filepath.Join(dir, "test", "pam_vrf.so"), filepath.Join(dir, "pamdriver")
	for _, f := range []string{prodSO, testSO, driver, filepath.Join(dir, "pam_vrf", "core.so"), filepath.Join(dir, "test", "pam_vrf", "core.so")} {
		if _, err := os.Stat(f); err != nil {
			fmt.Printf("pamtest: missing artifact %s (run make all build/test/pam_vrf.so build/test/pam_vrf/core.so): %v\n", f, err)
			os.Exit(1)
		}
	}
	pins := bpf.Pins()
	code := m.Run()
	bpf.UnpinExcept(pins) // pins outlive the test devices
	cleanup()
	os.Exit(code)
}

// mountBPFFS mounts the bpffs systemd mounts on every host, if this one has
// none: pam_vrf pins its program there, and the C fast path finds it there.
func mountBPFFS() error {
	var st unix.Statfs_t
	if unix.Statfs(bpf.BPFFSMount, &st) == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if out, err := exec.Command("mount", "-t", "bpf", "-o", "mode=700", "bpf", bpf.BPFFSMount).CombinedOutput(); err != nil {
		return fmt.Errorf("mount bpffs at %s: %v: %s", bpf.BPFFSMount, err, out)
	}
	return nil
}

func build(dir string) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	cmd := exec.Command("make", "-C", root, "BUILD="+dir, "all", dir+"/test/pam_vrf.so", dir+"/test/pam_vrf/core.so")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("build artifacts: %v\n%s", err, out)
	}
	return nil
}

// sockCheck runs inside the session (as the "shell"): it reports its cgroup
// and the device every new inet socket is bound to.
func sockCheck() int {
	cg, _ := os.ReadFile("/proc/self/cgroup")
	for _, l := range strings.Split(string(cg), "\n") {
		if strings.HasPrefix(l, "0::") {
			fmt.Printf("child-cgroup: %s\n", strings.TrimPrefix(l, "0::"))
		}
	}
	for _, s := range []struct {
		name       string
		family, ty int
	}{
		{"tcp4", syscall.AF_INET, syscall.SOCK_STREAM},
		{"udp4", syscall.AF_INET, syscall.SOCK_DGRAM},
		{"tcp6", syscall.AF_INET6, syscall.SOCK_STREAM},
		{"udp6", syscall.AF_INET6, syscall.SOCK_DGRAM},
	} {
		fd, err := syscall.Socket(s.family, s.ty, 0)
		if err != nil {
			fmt.Printf("sock %s error %v\n", s.name, err)
			continue
		}
		dev, err := unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
		syscall.Close(fd)
		if err != nil {
			fmt.Printf("sock %s error %v\n", s.name, err)
			continue
		}
		fmt.Printf("sock %s dev=%q\n", s.name, strings.TrimRight(dev, "\x00"))
	}
	return 0
}

// netns is a throw-away named network namespace holding a veth pair whose
// first end stands in for the VRF device.
type netns struct {
	name, dev string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, len(t.Name())%10)
	n := &netns{name: "pvt" + id, dev: "pv" + id}
	run(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.name).Run()
		removeCgroups(n.name)
	})
	run(t, "ip", "-n", n.name, "link", "add", n.dev, "type", "veth", "peer", "name", n.dev+"p")
	run(t, "ip", "-n", n.name, "link", "set", n.dev, "up")
	return n
}

// removeCgroups deletes the VRF cgroups the test's placements created (they
// are empty once the driver and its children have exited).
func removeCgroups(ns string) {
	mnt, err := cgroup.Mount()
	if err != nil {
		return
	}
	base := filepath.Join(mnt, ns+"-ns")
	dirs, _ := filepath.Glob(filepath.Join(base, "vrf", "*"))
	for _, d := range dirs {
		syscall.Rmdir(d)
	}
	syscall.Rmdir(filepath.Join(base, "vrf"))
	syscall.Rmdir(base)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// stack writes a PAM service directory with one service and a root-owned
// policy file, and returns the directory.
type stack struct {
	dir, policy string
}

func newStack(t *testing.T, service, so, moduleArgs, policy string) *stack {
	t.Helper()
	dir := t.TempDir()
	pol := filepath.Join(dir, "pam_vrf.toml")
	if err := os.WriteFile(pol, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	if moduleArgs == "" {
		moduleArgs = "config=" + pol
	}
	moduleArgs = strings.ReplaceAll(moduleArgs, "{policy}", pol)
	// pam_vrf.so also on the auth and account lines, as a careless admin
	// might put it: those entry points must stay inert C (pam_setcred runs
	// in the forked child of TestForkedChildNeverHangs).
	svc := fmt.Sprintf(`auth     required pam_permit.so
auth     optional %[1]s
account  required pam_permit.so
account  optional %[1]s
session  required pam_permit.so
session  required %[1]s %[2]s
`, so, moduleArgs)
	for _, name := range []string{service, "other"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(svc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &stack{dir: dir, policy: pol}
}

type result struct {
	rc     int
	stdout string
	syslog []string
}

func (r result) has(re string) bool {
	return regexp.MustCompile(re).MatchString(r.stdout)
}

func (r result) logged(re string) bool {
	x := regexp.MustCompile(re)
	for _, l := range r.syslog {
		if x.MatchString(l) {
			return true
		}
	}
	return false
}

// session runs the driver in the namespace: open_session, then this test
// binary as the session's "shell" reporting its sockets, then close.
func (n *netns) session(t *testing.T, s *stack, service, user string, extra ...string) result {
	t.Helper()
	return n.sessionWrapped(t, nil, s, service, user, extra...)
}

// sessionWrapped is session with the driver started through wrap (a command
// prefix, run inside the namespace, that changes the driver's environment,
// e.g. its capabilities or mounts).
func (n *netns) sessionWrapped(t *testing.T, wrap []string, s *stack, service, user string, extra ...string) result {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// nsenter, not `ip netns exec`: the latter mounts a fresh /sys, which
	// hides this host's cgroup2 mount below /sys/fs/cgroup.
	args := append([]string{"nsenter", "--net=/run/netns/" + n.name}, wrap...)
	args = append(args, driver, "-d", s.dir, "-s", service, "-u", user)
	args = append(args, extra...)
	if len(extra) == 0 {
		args = append(args, "--", self)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "PAMVRF_SOCKCHECK=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := result{stdout: stdout.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.rc = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run driver: %v", err)
	}
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		if l, ok := strings.CutPrefix(sc.Text(), "syslog: "); ok {
			r.syslog = append(r.syslog, l)
		}
	}
	logged := r.syslog
	if len(logged) > 20 {
		logged = append(logged[:20:20], fmt.Sprintf("... %d more lines", len(r.syslog)-20))
	}
	t.Logf("driver stdout:\n%s\nsyslog:\n%s", r.stdout, strings.Join(logged, "\n"))
	return r
}

func TestPlacedSessionBindsEverySocket(t *testing.T) {
	n := newNetns(t)
	s := newStack(t, "sshd", testSO, "", fmt.Sprintf("[user.root]\nvrf = %q\n", n.dev))
	r := n.session(t, s, "sshd", "root")
	if r.rc != 0 || !r.has(`open_session: 0 `) {
		t.Fatalf("open_session did not succeed (exit %d)", r.rc)
	}
	// The layout of `ip vrf exec` in a named netns: <base>/<ns>-ns/vrf/<name>.
	wantCg := fmt.Sprintf("/%s-ns/vrf/%s", n.name, n.dev)
	if !r.has(`(?m)^cgroup: .*` + regexp.QuoteMeta(wantCg) + `$`) {
		t.Errorf("caller not in %s", wantCg)
	}
	if !r.has(`(?m)^child-cgroup: .*` + regexp.QuoteMeta(wantCg) + `$`) {
		t.Errorf("session child did not inherit %s", wantCg)
	}
	for _, s := range []string{"tcp4", "udp4", "tcp6", "udp6"} {
		if !r.has(fmt.Sprintf(`sock %s dev="%s"`, s, n.dev)) {
			t.Errorf("%s socket in the session is not bound to %s", s, n.dev)
		}
	}
	if !r.logged(fmt.Sprintf(`user "root" placed in VRF "%s"`, n.dev)) {
		t.Errorf("no auth-log line for the placement")
	}
}

func TestIPVRFIdentifyReportsPlacedSession(t *testing.T) {
	n := newNetns(t)
	s := newStack(t, "sshd", testSO, "", fmt.Sprintf("[user.root]\nvrf = %q\n", n.dev))
	r := n.session(t, s, "sshd", "root", "--", "ip", "vrf", "identify")
	if r.rc != 0 {
		t.Fatalf("driver exit %d", r.rc)
	}
	if !r.has(`(?m)^` + regexp.QuoteMeta(n.dev) + `$`) {
		t.Errorf("ip vrf identify in the session did not print %q", n.dev)
	}
}

func TestUserWithoutRuleIsUntouched(t *testing.T) {
	n := newNetns(t)
	s := newStack(t, "sshd", testSO, "", fmt.Sprintf("[user.alice]\nvrf = %q\n", n.dev))
	r := n.session(t, s, "sshd", "root")
	if r.rc != 0 {
		t.Fatalf("driver exit %d", r.rc)
	}
	if r.has(`/vrf/`) {
		t.Errorf("unmatched user was placed in a VRF cgroup")
	}
	for _, s := range []string{"tcp4", "udp4", "tcp6", "udp6"} {
		if !r.has(fmt.Sprintf(`sock %s dev=""`, s)) {
			t.Errorf("%s socket of an unplaced session is bound", s)
		}
	}
}

func TestServiceNotInListIsUntouched(t *testing.T) {
	n := newNetns(t)
	s := newStack(t, "cron", testSO, "", fmt.Sprintf("[user.root]\nvrf = %q\n", n.dev))
	r := n.session(t, s, "cron", "root")
	if r.rc != 0 || r.has(`/vrf/`) {
		t.Fatalf("cron session was placed or failed (exit %d)", r.rc)
	}
}

// A child forked after open_session calls setcred, close_session and pam_end,
// as sshd's and login's children do; it must never enter the Go runtime, and
// so must finish at once.
func TestForkedChildNeverHangs(t *testing.T) {
	n := newNetns(t)
	s := newStack(t, "sshd", testSO, "", fmt.Sprintf("[user.root]\nvrf = %q\n", n.dev))
	r := n.session(t, s, "sshd", "root", "-f", "100")
	if r.rc != 0 || !r.has(`fork: 100/100 children finished`) {
		t.Fatalf("fork test failed (exit %d)", r.rc)
	}
}

// 10,000 open/close cycles in one process: no fd leak, no thread growth, RSS
// printed and bounded.
func TestTenThousandSessionsInOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("long load test; run without -short")
	}
	n := newNetns(t)
	// debug takes the Go part on every cycle (the C fast path keeps no
	// state between sessions; the Go runtime is where a leak would hide).
	s := newStack(t, "sshd", testSO, "config={policy} debug", fmt.Sprintf("[user.root]\nvrf = %q\n", n.dev))
	r := n.session(t, s, "sshd", "root", "-n", "10000")
	m := regexp.MustCompile(`loop: cycles=(\d+) failed=(\d+) warmup=(\d+) fds=(\d+)/(\d+)/(\d+) threads=(\d+)/(\d+)/(\d+) rss_kb=(\d+)/(\d+)/(\d+) us_per_cycle=([0-9.]+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no loop report (exit %d)", r.rc)
	}
	v := make([]int, len(m))
	for i := 1; i < len(m)-1; i++ {
		v[i], _ = strconv.Atoi(m[i])
	}
	fmt.Printf("pamtest: %d cycles (%s us each): fds %d/%d/%d, threads %d/%d/%d, RSS KiB %d/%d/%d after cycle 1/%d/%d\n",
		v[1], m[13], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[3], v[1])
	if v[2] != 0 {
		t.Errorf("%d of %d cycles failed", v[2], v[1])
	}
	if v[6] != v[4] {
		t.Errorf("fd leak: %d fds after cycle 1, %d after the last", v[4], v[6])
	}
	// The Go runtime may add one M when a syscall (a cgroup.procs write
	// waits for an RCU grace period) blocks past sysmon's hand-off; a leak
	// would add threads per cycle.
	if v[9] > v[8]+1 {
		t.Errorf("threads grew after warm-up: %d -> %d", v[8], v[9])
	}
	if v[12]-v[11] > 1024 {
		t.Errorf("RSS grew by %d KiB after warm-up", v[12]-v[11])
	}
}

// Faults the module must survive: each follows on_error, names the reason in
// the auth log, and never takes the PAM host down.

func TestNoCgroup2FollowsOnError(t *testing.T) {
	mnt, err := cgroup.Mount()
	if err != nil {
		t.Fatal(err)
	}
	n := newNetns(t)
	// A private mount namespace without the cgroup2 mount, as on a host
	// booted with cgroup v1 only.
	hide := []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", "umount -l \"$0\" && exec \"$@\"", mnt}
	for _, onError := range []string{"deny", "allow"} {
		s := newStack(t, "sshd", testSO, "", fmt.Sprintf("on_error = %q\n[user.root]\nvrf = %q\n", onError, n.dev))
		r := n.sessionWrapped(t, hide, s, "sshd", "root")
		if onError == "deny" {
			if r.rc == 0 || !r.has(`VRF `+n.dev+` is not available: no cgroup2 file system is mounted`) {
				t.Errorf("on_error=deny without cgroup2: exit %d, want a denied session with the reason", r.rc)
			}
		} else if r.rc != 0 || !r.has(`sock tcp4 dev=""`) {
			t.Errorf("on_error=allow without cgroup2: exit %d, want an unbound session", r.rc)
		}
		if !r.logged(`cgroup2`) {
			t.Errorf("on_error=%s: auth log does not say cgroup2 is missing", onError)
		}
	}
}

func TestNoBPFPermissionFollowsOnError(t *testing.T) {
	n := newNetns(t)
	// Root without CAP_BPF and CAP_SYS_ADMIN: what lockdown or a confined
	// sshd looks like to the module.
	drop := []string{"setpriv", "--bounding-set", "-bpf,-sys_admin,-perfmon", "--inh-caps", "-bpf,-sys_admin,-perfmon"}
	// Loading needs CAP_BPF, attaching an already-loaded (pinned) program
	// only CAP_NET_ADMIN: make sure no program for this ifindex is pinned
	// from an earlier test (pins are per ifindex, whatever the netns).
	pin := bpf.PinPath(uint32(n.ifindex(t)))
	for _, onError := range []string{"deny", "allow"} {
		os.Remove(pin)
		s := newStack(t, "sshd", testSO, "", fmt.Sprintf("on_error = %q\n[user.root]\nvrf = %q\n", onError, n.dev))
		r := n.sessionWrapped(t, drop, s, "sshd", "root")
		if onError == "deny" {
			if r.rc == 0 || !r.has(`VRF `+n.dev+` is not available: no permission to attach the BPF program`) {
				t.Errorf("on_error=deny without CAP_BPF: exit %d, want a denied session with the reason", r.rc)
			}
		} else if r.rc != 0 || !r.has(`sock tcp4 dev=""`) || r.has(`/vrf/`) {
			t.Errorf("on_error=allow without CAP_BPF: exit %d, want an unbound, unmoved session", r.rc)
		}
		if !r.logged(`no BPF permission`) {
			t.Errorf("on_error=%s: auth log does not say BPF was not permitted", onError)
		}
	}
	// Once a privileged login has loaded and pinned the program, a login
	// without CAP_BPF only attaches it, which CAP_NET_ADMIN allows.
	s := newStack(t, "sshd", testSO, "", fmt.Sprintf("[user.root]\nvrf = %q\n", n.dev))
	if r := n.session(t, s, "sshd", "root"); r.rc != 0 || !r.has(`sock tcp4 dev="`+n.dev+`"`) {
		t.Fatalf("privileged login not placed (exit %d)", r.rc)
	}
	if r := n.sessionWrapped(t, drop, s, "sshd", "root"); r.rc != 0 || !r.has(`sock tcp4 dev="`+n.dev+`"`) {
		t.Errorf("login without CAP_BPF not placed although the program is pinned (exit %d)", r.rc)
	}
}

// ifindex of the stand-in VRF device.
func (n *netns) ifindex(t *testing.T) int {
	t.Helper()
	out := run(t, "ip", "-n", n.name, "-o", "link", "show", "dev", n.dev)
	var idx int
	if _, err := fmt.Sscanf(out, "%d:", &idx); err != nil {
		t.Fatalf("ifindex of %s: %q", n.dev, out)
	}
	return idx
}
