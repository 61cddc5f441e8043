// Package bench is `make bench`: it measures pam_vrf.so through a real
// libpam stack (tests/pamdriver, a C program: the Go module is never loaded
// into a Go process), socket creation inside and outside a placed session,
// and behaviour at scale, and prints ONE table where every figure sits next
// to the baseline measured in the same run.
//
// Run as root: go test -run '^$' -bench . -benchtime 2000x ./tests/bench/
// with PAMVRF_BUILD pointing at the artifacts of `make all
// build/test/pam_vrf.so`. The count of -benchtime Nx is the number of
// latency samples per warm scenario; other sample counts derive from it.
//
// Nothing here asserts on time: targets are printed as PASS/MISS. The run
// fails (b.Fatal) only on functional errors: a session that does not open, a
// socket that is not bound in a placed session (or bound outside one), a VRF
// cgroup without exactly one program, a driver that does not finish.
//
// Throw-away state: a named netns pvbench<pid> with veth devices standing in
// for the VRF (the host kernel has no VRF driver), and the "session" cgroups
// <cgroup2>/pvbench-<pid>/… every driver is started in (CLONE_INTO_CGROUP),
// the way sshd's children start in logind's session-N.scope. All removed at
// the end.
package bench

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pam-vrf/pam-vrf/bpf"
	"github.com/pam-vrf/pam-vrf/cgroup"
)

var (
	testSO, benchSO, driver, sockloop string
	shippedSO                         string // the module as packaged: the "not placed" rows load it
	secondSO                          string // a copy of Debian's pam_permit.so: the "floor + a second module" baseline
	samples                           = 2000 // from -benchtime Nx
	mnt                               string // cgroup2 mount
)

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		// go test ./...: nothing here is a test; `make bench` runs it.
		fmt.Println("bench: no benchmark requested (make bench runs them)")
		os.Exit(m.Run())
	}
	if os.Geteuid() != 0 {
		fmt.Println("bench: needs root (cgroups, BPF, network namespaces)")
		os.Exit(1)
	}
	if f := flag.Lookup("test.benchtime"); f != nil {
		if n, err := strconv.Atoi(strings.TrimSuffix(f.Value.String(), "x")); err == nil && strings.HasSuffix(f.Value.String(), "x") && n >= 100 {
			samples = n
		}
	}
	dir := os.Getenv("PAMVRF_BUILD")
	if dir == "" {
		fmt.Println("bench: set PAMVRF_BUILD to the directory of `make all build/test/pam_vrf.so build/test/pam_vrf/core.so build/bench/pam_vrf.so build/bench/pam_vrf/core.so` (make bench does)")
		os.Exit(1)
	}
	testSO, benchSO, driver = filepath.Join(dir, "test", "pam_vrf.so"), filepath.Join(dir, "bench", "pam_vrf.so"), filepath.Join(dir, "pamdriver")
	shippedSO = filepath.Join(dir, "pam_vrf.so")
	for _, f := range []string{testSO, benchSO, shippedSO, driver} {
		if _, err := os.Stat(f); err != nil {
			fmt.Printf("bench: missing artifact %s: %v\n", f, err)
			os.Exit(1)
		}
	}
	if out, err := exec.Command("sh", "-c", `[ "$(stat -f -c %T /sys/fs/bpf)" = bpf_fs ] || mount -t bpf -o mode=700 bpf /sys/fs/bpf`).CombinedOutput(); err != nil {
		// pam_vrf pins its program in the bpffs systemd mounts everywhere.
		fmt.Printf("bench: mount bpffs: %v %s\n", err, out)
		os.Exit(1)
	}
	var err error
	if mnt, err = cgroup.Mount(); err != nil {
		fmt.Println("bench:", err)
		os.Exit(1)
	}
	tmp, err := os.MkdirTemp("", "pamvrf-bench-")
	if err != nil {
		panic(err)
	}
	sockloop = filepath.Join(tmp, "sockloop")
	if out, err := exec.Command("cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", sockloop, "testdata/sockloop.c").CombinedOutput(); err != nil {
		fmt.Printf("bench: build sockloop: %v\n%s", err, out)
		os.Exit(1)
	}
	// A second module that does nothing, built as Debian builds its
	// modules: a copy of pam_permit.so (a copy, because the dynamic linker
	// would hand back the already-loaded pam_permit.so for the same file).
	permit, err := findModule("pam_permit.so")
	if err == nil {
		secondSO = filepath.Join(tmp, "pam_second.so")
		err = copyFile(permit, secondSO)
	}
	if err != nil {
		fmt.Println("bench: a second module:", err)
		os.Exit(1)
	}
	pins := bpf.Pins()
	code := m.Run()
	bpf.UnpinExcept(pins) // pins outlive the bench's devices
	teardown()
	os.RemoveAll(tmp)
	printTable()
	os.Exit(code)
}

// ---- environment: netns, devices, stacks, session cgroups ----

type env struct {
	ns      string // named netns
	dev     string // veth standing in for the VRF (steady-state device)
	cgRoot  string // <mnt>/pvbench-<pid>
	confDir string
	devSeq  int
}

var theEnv *env

func teardown() {
	if theEnv == nil {
		return
	}
	exec.Command("ip", "netns", "del", theEnv.ns).Run()
	rmTree(theEnv.cgRoot)
	os.RemoveAll(theEnv.confDir)
}

// rmTree removes a cgroup directory tree bottom-up (cgroupfs has no
// recursive removal; only empty cgroups can go).
func rmTree(root string) {
	var dirs []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		syscall.Rmdir(dirs[i])
	}
}

func getEnv(b *testing.B) *env {
	b.Helper()
	if theEnv != nil {
		return theEnv
	}
	pid := os.Getpid() % 100000
	e := &env{ns: fmt.Sprintf("pvbench%d", pid), cgRoot: filepath.Join(mnt, fmt.Sprintf("pvbench-%d", pid))}
	theEnv = e // teardown even if setup fails half-way
	must(b, "ip", "netns", "add", e.ns)
	e.dev = e.newDev(b)
	if err := os.MkdirAll(e.cgRoot, 0o755); err != nil {
		b.Fatal(err)
	}
	var err error
	if e.confDir, err = os.MkdirTemp("", "pamvrf-bench-pam-"); err != nil {
		b.Fatal(err)
	}
	return e
}

// newDev adds a fresh veth (new ifindex: no matching program is loaded yet).
func (e *env) newDev(b *testing.B) string {
	e.devSeq++
	d := fmt.Sprintf("pvb%d", e.devSeq)
	e.addDev(b, d)
	return d
}

func (e *env) addDev(b *testing.B, d string) {
	must(b, "ip", "-n", e.ns, "link", "add", d, "type", "veth", "peer", "name", d+"p")
	must(b, "ip", "-n", e.ns, "link", "set", d, "up")
}

func (e *env) delDev(d string) { exec.Command("ip", "-n", e.ns, "link", "del", d).Run() }

// vrfDir is where pam_vrf places a process started in session cgroup sess.
func (e *env) vrfDir(sess, dev string) string {
	return filepath.Join(sess, e.ns+"-ns", "vrf", dev)
}

// session creates a session cgroup <cgRoot>/<name> (like session-N.scope).
func (e *env) session(b *testing.B, name string) string {
	d := filepath.Join(e.cgRoot, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		b.Fatal(err)
	}
	return d
}

func must(b *testing.B, name string, args ...string) {
	b.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Stack kinds.
const (
	floorStack  = "floor"  // pam_permit.so only
	vrfStack    = "vrf"    // pam_permit.so + pam_vrf.so
	execStack   = "exec"   // pam_permit.so + pam_exec.so running placeScript
	secondStack = "second" // pam_permit.so + a copy of it: the price of any second module
)

// placeScript is the usual hand-made alternative: pam_exec runs a shell
// script that places its parent (the PAM caller) where `ip vrf exec` would
// (ip/ipvrf.c vrf_switch): <mnt><own cgroup cut at "/vrf">/<ns>-ns/vrf/NAME,
// mkdir -p, write the pid to cgroup.procs. Built to favour the baseline:
// only shell builtins in steady state (mkdir only when the dir is missing),
// the netns level and VRF name are constants instead of `ip netns identify`,
// pam_exec's type=open_session skips the fork at close_session, and, since a
// script cannot load BPF, NO sock_create program is attached (pam_vrf checks
// and, if needed, attaches one on every open).
const placeScript = `#!/bin/sh
mnt=
while read -r id parent majmin root mp opts rest; do
	case " $rest " in *" - cgroup2 "*) mnt=$mp; break ;; esac
done </proc/self/mountinfo
[ -n "$mnt" ] || exit 1
cg=
while IFS= read -r line; do
	case $line in 0::*) cg=${line#0::} ;; esac
done </proc/$PPID/cgroup
cg=${cg%%/vrf*}
[ "$cg" = / ] && cg=
dir="$mnt$cg/@NS@-ns/vrf/@VRF@"
[ -d "$dir" ] || mkdir -p "$dir" || exit 1
echo $PPID >"$dir/cgroup.procs"
`

// stack writes PAM service "sshd" (the policy acts for sshd and login by default) for kind and VRF device dev into a new
// directory and returns it.
func (e *env) stack(b *testing.B, kind, dev string) string {
	b.Helper()
	dir, err := os.MkdirTemp(e.confDir, kind+"-")
	if err != nil {
		b.Fatal(err)
	}
	lines := "auth required pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\n"
	switch kind {
	case vrfStack:
		pol := filepath.Join(dir, "pam_vrf.toml")
		write(b, pol, fmt.Sprintf("[user.root]\nvrf = %q\n", dev), 0o644)
		lines += fmt.Sprintf("session required %s config=%s\n", testSO, pol)
	case secondStack:
		lines += fmt.Sprintf("session required %s\n", secondSO)
	case execStack:
		sc := filepath.Join(dir, "place.sh")
		s := strings.NewReplacer("@NS@", e.ns, "@VRF@", dev).Replace(placeScript)
		write(b, sc, s, 0o755)
		lines += fmt.Sprintf("session required pam_exec.so type=open_session %s\n", sc)
	}
	write(b, filepath.Join(dir, "sshd"), lines, 0o644)
	write(b, filepath.Join(dir, "other"), lines, 0o644)
	return dir
}

// findModule finds a PAM module of the system's libpam.
func findModule(name string) (string, error) {
	for _, pat := range []string{"/lib/*/security/", "/usr/lib/*/security/", "/lib/security/", "/usr/lib/security/", "/usr/lib64/security/", "/lib64/security/"} {
		if m, _ := filepath.Glob(pat + name); len(m) > 0 {
			return m[0], nil
		}
	}
	return "", fmt.Errorf("%s not found in the PAM module directories", name)
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o755)
}

func write(b *testing.B, p, s string, mode os.FileMode) {
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		b.Fatal(err)
	}
}

// ---- running the driver ----

// cmdIn returns `nsenter --net=<ns> argv...` started directly in cgroup sess.
func (e *env) cmdIn(b *testing.B, sess string, argv ...string) (*exec.Cmd, func()) {
	b.Helper()
	fd, err := syscall.Open(sess, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	// nsenter, not `ip netns exec`: the latter remounts /sys and hides the
	// cgroup2 mount.
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + e.ns}, argv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	return cmd, func() { syscall.Close(fd) }
}

// run runs the driver with args in session cgroup sess; stdout is returned,
// a non-zero exit is fatal (with the driver's stderr).
func (e *env) run(b *testing.B, sess, stackDir string, args ...string) string {
	b.Helper()
	cmd, done := e.cmdIn(b, sess, append([]string{driver, "-d", stackDir, "-s", "sshd", "-u", "root"}, args...)...)
	defer done()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("pamdriver %s (stack %s): %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stackDir, err, tail(stdout.String()), tail(stderr.String()))
	}
	return stdout.String()
}

func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}

// timed parses -t output: open+close and full-cycle samples in µs.
func timed(b *testing.B, out string) (oc, cycle []float64) {
	b.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		l := sc.Text()
		if rest, ok := strings.CutPrefix(l, "samples_oc_us:"); ok {
			oc = floats(b, rest)
		} else if rest, ok := strings.CutPrefix(l, "samples_cycle_us:"); ok {
			cycle = floats(b, rest)
		} else if strings.HasPrefix(l, "time:") && !strings.Contains(l, " failed=0 ") {
			b.Fatalf("driver reports failed cycles: %s", l)
		}
	}
	if len(oc) == 0 || len(oc) != len(cycle) {
		b.Fatalf("no timing samples in driver output:\n%s", tail(out))
	}
	return oc, cycle
}

func floats(b *testing.B, s string) []float64 {
	var v []float64
	for _, f := range strings.Fields(s) {
		x, err := strconv.ParseFloat(f, 64)
		if err != nil {
			b.Fatal(err)
		}
		v = append(v, x)
	}
	return v
}

// ---- statistics and the table ----

// pct is the nearest-rank percentile p (0..100) of v.
func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	k := int(p/100*float64(len(s))+0.999999) - 1
	return s[max(0, min(k, len(s)-1))]
}

func median(v []float64) float64 { return pct(v, 50) }

type row struct {
	section, name       string
	median, p99         string
	baseline, baseValue string
	ratio               string
	target, result      string
}

var table []row

func add(r row) { table = append(table, r) }

func us(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2f ms", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f µs", v)
	default:
		return fmt.Sprintf("%.1f µs", v)
	}
}

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func printTable() {
	if len(table) == 0 {
		return
	}
	slices.SortStableFunc(table, func(x, y row) int { return strings.Compare(x.section, y.section) })
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n\n", machine())
	b.WriteString("| # | measurement | median | p99 | baseline (same run) | baseline median | ratio | target | result |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range table {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.section, r.name, r.median, r.p99, r.baseline, r.baseValue, r.ratio, r.target, r.result)
	}
	fmt.Print(b.String())
	if p := os.Getenv("PAMVRF_BENCH_TABLE"); p != "" {
		os.WriteFile(p, []byte(b.String()), 0o644)
	}
}

func machine() string {
	model := "?"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.*)$`).FindSubmatch(data); m != nil {
			model = string(m[1])
		}
	}
	var u syscall.Utsname
	syscall.Uname(&u)
	rel := make([]byte, 0, len(u.Release))
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	return fmt.Sprintf("Machine: %d CPUs (nproc), %s, kernel %s; %d samples per warm scenario (-benchtime %dx).",
		nproc(), model, rel, samples, samples)
}

func nproc() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// once makes a benchmark body run exactly once per -count: b.Loop is what
// stops the testing package from calling the function again with a larger
// b.N (the sample counts here come from -benchtime, not from b.N).
func once(b *testing.B) {
	for b.Loop() {
	}
	b.ReportMetric(0, "ns/op")
}
