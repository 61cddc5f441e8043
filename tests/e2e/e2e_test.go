//go:build vm

package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pam-vrf/pam-vrf/tests/vm"
)

// testReporter prints one result line per assertion (and the summary at
// the end), so `make e2e` reads as a checklist.
type testReporter struct {
	t              *testing.T
	passed, failed int
	lines          []string
}

func (r *testReporter) Step(title, why string) { say(r.t, "\n== %s\n   %s\n", title, why) }

func (r *testReporter) Note(text string) { say(r.t, "%s\n", text) }

func (r *testReporter) Command(cmd, stdout, stderr string, code int) {
	r.t.Logf("guest$ %s\n[exit %d]\n%s%s", cmd, code, stdout, stderr)
}

func (r *testReporter) Check(name string, ok bool, detail string) {
	r.check(name, ok, "", detail)
}

// CheckWhy is check (Scenario's whyReporter).
func (r *testReporter) CheckWhy(name string, ok bool, why, detail string) {
	r.check(name, ok, why, detail)
}

// check is Check with why, a short reason the summary prints after name.
func (r *testReporter) check(name string, ok bool, why, detail string) {
	line := "ok   " + name
	if ok {
		r.passed++
	} else {
		r.failed++
		line = "FAIL " + name
		// the detail can be a whole script's output
		outcomes.note(r.t, strings.TrimSpace(name+" "+why))
		r.t.Errorf("%s: %s", name, detail)
	}
	r.lines = append(r.lines, line)
	say(r.t, "%s\n", line)
}

// Guest tests run two at a time (guestSlots: two guests are what the
// project's 2-core machines hold), longest first. guestTest marks a test
// as one of them; call it first, before any deadline is set, because it
// blocks until the test's turn comes.
func guestTest(t *testing.T) {
	outcomes.start(t, time.Time{})
	t.Parallel()
	release := guestSlots.acquire(typicalMinutes[t.Name()])
	outcomes.start(t, time.Now())
	t.Cleanup(func() { outcomes.add(t) }) // registered first, so it runs last
	t.Cleanup(release)                    // after the test's own cleanups (its guest's shutdown)
}

// outcomes is what TestMain prints after the last guest test: CI keeps only
// the tail of `make e2e`'s output, and with two guests in parallel a
// failure's details scroll by long before the end.
var outcomes = outcomeLog{why: map[string][]string{}, running: map[string]time.Time{}}

type outcomeLog struct {
	sync.Mutex
	why     map[string][]string  // test name -> its failed checks and fatal errors
	running map[string]time.Time // running, or waiting for its turn (zero)
	done    []outcome
	panics  []string // tests whose guest kernel panicked while they ran
	stalls  []string // what each guest's pamvrf-journalwatch noted
	stalled []string // failed tests whose guest's journal stalled while they ran
}

// stall records what t's guest noted of a journal that stopped taking
// lines, or of a guest that stood still.
func (l *outcomeLog) stall(t *testing.T, lines []string) {
	l.Lock()
	defer l.Unlock()
	if t.Failed() {
		l.stalled = append(l.stalled, t.Name())
	}
	if len(lines) > 4 {
		lines = append(lines[:4], fmt.Sprintf("... and %d more", len(lines)-4))
	}
	l.stalls = append(l.stalls, strings.TrimPrefix(t.Name(), "Test")+": "+strings.Join(lines, "\n      "))
}

// panicked records that t failed with its guest's kernel panicking.
func (l *outcomeLog) panicked(t *testing.T) {
	l.Lock()
	defer l.Unlock()
	l.panics = append(l.panics, t.Name())
}

type outcome struct {
	name   string
	took   time.Duration
	failed bool
	why    []string
}

func (o outcome) String() string {
	return fmt.Sprintf("%s %v", strings.TrimPrefix(o.name, "Test"), o.took.Round(time.Second))
}

// note keeps the first line of a failure of test t.
func (l *outcomeLog) note(t *testing.T, msg string) {
	msg, _, _ = strings.Cut(strings.TrimSpace(msg), "\n")
	if r := []rune(msg); len(r) > 320 {
		msg = string(r[:320]) + "..."
	}
	l.Lock()
	defer l.Unlock()
	l.why[t.Name()] = append(l.why[t.Name()], msg)
}

// start records t as waiting for a guest slot (since zero) or running.
func (l *outcomeLog) start(t *testing.T, since time.Time) {
	l.Lock()
	defer l.Unlock()
	l.running[t.Name()] = since
}

func (l *outcomeLog) add(t *testing.T) {
	l.Lock()
	defer l.Unlock()
	took := time.Since(l.running[t.Name()])
	delete(l.running, t.Name())
	l.done = append(l.done, outcome{t.Name(), took, t.Failed(), l.why[t.Name()]})
}

// print writes the summary, failures last (nearest the end of the log).
func (l *outcomeLog) print() {
	l.Lock()
	defer l.Unlock()
	if len(l.done)+len(l.running) == 0 {
		return
	}
	var ok, bad []string
	var b strings.Builder
	for _, o := range l.done {
		if !o.failed {
			ok = append(ok, o.String())
			continue
		}
		bad = append(bad, o.name)
		fmt.Fprintf(&b, "  FAIL %s\n", o)
		why := o.why
		if len(why) == 0 {
			why = []string{"(no failed check recorded: see the test's log)"}
		}
		for i, w := range why {
			if i == 6 {
				fmt.Fprintf(&b, "       ... and %d more\n", len(why)-i)
				break
			}
			fmt.Fprintf(&b, "       %s\n", w)
		}
	}
	fmt.Printf("\n== e2e summary: %d guest tests, %d passed, %d failed\n  passed: %s\n%s",
		len(l.done), len(ok), len(bad), strings.Join(ok, ", "), b.String())
	for name, since := range l.running {
		if since.IsZero() {
			fmt.Printf("  NOT STARTED %s (waiting for a guest slot)\n", name)
			continue
		}
		fmt.Printf("  STILL RUNNING %s after %v\n", name, time.Since(since).Round(time.Second))
	}
	if len(l.stalls) > 0 {
		// the guest's environment, pass or fail: a failure's why may be here
		fmt.Printf("  guest journal stalls (uptime in s; tests/vm/guest/usr/local/sbin/pamvrf-journalwatch):\n    %s\n", strings.Join(l.stalls, "\n    "))
	}
	// scripts/e2e-run.sh reads these lines
	if len(l.panics) > 0 {
		fmt.Printf("e2e GUEST KERNEL PANIC: %s\n", strings.Join(l.panics, " "))
	}
	if len(l.stalled) > 0 {
		fmt.Printf("e2e GUEST JOURNAL STALLED: %s\n", strings.Join(l.stalled, " "))
	}
	if len(bad) > 0 {
		fmt.Printf("e2e FAILED: %s\n", strings.Join(bad, " "))
	}
}

func TestMain(m *testing.M) {
	// go test's -timeout panics with every goroutine's stack and no test
	// names near the end: print the summary a minute before it does.
	flag.Parse()
	if d := flag.Lookup("test.timeout").Value.(flag.Getter).Get().(time.Duration); d > 2*time.Minute {
		time.AfterFunc(d-time.Minute, func() {
			fmt.Printf("\n== e2e: the -timeout (%v) is a minute away\n", d)
			outcomes.print()
		})
	}
	code := m.Run()
	outcomes.print()
	os.Exit(code)
}

// fatal, fatalf and errorf are t.Fatal, t.Fatalf and t.Errorf that also
// keep the message for the summary.
func fatal(t *testing.T, a ...any) {
	t.Helper()
	outcomes.note(t, fmt.Sprint(a...))
	t.Fatal(a...)
}

func fatalf(t *testing.T, format string, a ...any) {
	t.Helper()
	outcomes.note(t, fmt.Sprintf(format, a...))
	t.Fatalf(format, a...)
}

func errorf(t *testing.T, format string, a ...any) {
	t.Helper()
	outcomes.note(t, fmt.Sprintf(format, a...))
	t.Errorf(format, a...)
}

var sayMu sync.Mutex

// say prints checklist output, each line tagged with the test it belongs
// to, since parallel tests interleave on stdout.
func say(t *testing.T, format string, a ...any) {
	tag := strings.TrimPrefix(t.Name(), "TestE2E")
	if tag == "" {
		tag = "E2E"
	}
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSuffix(fmt.Sprintf(format, a...), "\n"), "\n") {
		if l == "" {
			b.WriteString("\n")
			continue
		}
		fmt.Fprintf(&b, "[%s] %s\n", tag, l)
	}
	sayMu.Lock()
	defer sayMu.Unlock()
	os.Stdout.WriteString(b.String())
}

var imageMu sync.Mutex

// ensureImage builds the guest image once even when parallel tests ask
// for it at the same time (a fresh CI machine has no cached image).
func ensureImage(ctx context.Context) (vm.Image, error) {
	return ensureImageSuite(ctx, vm.DefaultSuite)
}

// ensureImageSuite is ensureImage for a guest of another Debian suite
// (trixie); builds of all suites share the one lock (and the cache's).
func ensureImageSuite(ctx context.Context, suite string) (vm.Image, error) {
	imageMu.Lock()
	defer imageMu.Unlock()
	return vm.EnsureImageSuite(ctx, suite)
}

func buildDir(t *testing.T) string {
	dir := os.Getenv("PAMVRF_BUILD")
	if dir == "" {
		abs, err := filepath.Abs("../../build")
		if err != nil {
			fatal(t, err)
		}
		dir = abs
	}
	for _, f := range []string{"pam_vrf.so", "pam_vrf/core.so", "vrf-netsetup"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			fatalf(t, "missing %s in %s: run make all first", f, dir)
		}
	}
	return dir
}

// bootGuest boots a fresh guest (building the image first if needed) and
// powers it off when the test ends.
func bootGuest(ctx context.Context, t *testing.T) *vm.VM {
	t.Helper()
	return bootGuestSuite(ctx, t, vm.DefaultSuite)
}

// bootGuestSuite is bootGuest with a guest of the given Debian suite.
func bootGuestSuite(ctx context.Context, t *testing.T, suite string) *vm.VM {
	t.Helper()
	img, err := ensureImageSuite(ctx, suite)
	if err != nil {
		fatal(t, err)
	}
	return boot(ctx, t, img)
}

// guestKex is the ssh client configuration of every e2e guest (its logins
// come from netns upstream, inside the guest): curve25519 key exchange.
// Bookworm's OpenSSH 9.2 defaults to sntrup761x25519, which under TCG
// makes a login cost nearly twice as much (12 logins in 4 streams: 31-60 s
// by default, 21-31 s with curve25519, alternated in one guest); trixie's
// mlkem768x25519 costs no more than curve25519. Both sides of every
// comparison (the login rate with and without pam_vrf) pay the same.
const guestKex = "# pam-vrf e2e: cheaper ssh logins under TCG (tests/e2e/e2e_test.go)\nKexAlgorithms curve25519-sha256\n"

// boot boots a guest of img for t with the e2e client configuration and
// powers it off when t ends. If t failed and the guest kernel panicked
// while up, t is marked so: under TCG the emulator now and then panics a
// guest kernel mid-test (seen: a fault at a code patching site,
// inet_ehashfn, in a softirq), and make e2e runs such a test once more
// (scripts/e2e-run.sh), never one that failed otherwise. That cleanup runs
// before Close, which removes the console log.
func boot(ctx context.Context, t *testing.T, img vm.Image) *vm.VM {
	t.Helper()
	m, err := vm.Boot(ctx, img, vm.Config{})
	if err != nil {
		fatal(t, err)
	}
	t.Cleanup(func() { m.Close() })
	t.Cleanup(func() { reportJournalStalls(t, m) })
	t.Cleanup(func() {
		if t.Failed() && m.PanickedWhileUp() {
			outcomes.panicked(t)
			say(t, "e2e: GUEST KERNEL PANIC while the test ran; its failures above follow from it. Console tail:\n%s\n", m.ConsoleTail(40))
		}
	})
	if err := m.WriteFile(ctx, "/etc/ssh/ssh_config.d/pamvrf-e2e-kex.conf", []byte(guestKex), 0o644); err != nil {
		fatal(t, err)
	}
	return m
}

// reportJournalStalls: what the guest's pamvrf-journalwatch noted while t
// ran (a journal that took no line for seconds or minutes stalls every
// daemon that logs, and so leases and RAs), into t's log with the dumps
// it took, and into the summary. Nothing if it noted nothing.
func reportJournalStalls(t *testing.T, m *vm.VM) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _, _, err := m.Run(ctx, "cat /var/lib/pamvrf-journalwatch/stalls 2>/dev/null")
	if err != nil || strings.TrimSpace(out) == "" {
		return
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	outcomes.stall(t, lines)
	detail, _, _, _ := m.Run(ctx, "head -c 20000 /var/lib/pamvrf-journalwatch/detail 2>/dev/null")
	say(t, "e2e: the guest's journal stalled, or the guest stood still (pamvrf-journalwatch):\n  %s\n%s\n",
		strings.Join(lines, "\n  "), detail)
}

// guestScripts returns a runner for shell scripts in m, each prefixed by
// prelude: a line "ok   X" or "FAIL X" of a script's output is one check,
// "| X" a note printed as is; a script that exits non-zero or asserts
// nothing fails "TITLE: script completed". The runner returns stdout.
func guestScripts(ctx context.Context, t *testing.T, m *vm.VM, r *testReporter, prelude string) func(title, script string, limit time.Duration) string {
	return func(title, script string, limit time.Duration) string {
		say(t, "\n== %s\n", title)
		rctx, c := context.WithTimeout(ctx, limit)
		defer c()
		t0 := time.Now()
		out, errOut, code, err := m.Run(rctx, watchdog(limit)+prelude+script)
		t.Logf("guest script %q: exit %d in %v\n%s\n%s", title, code, time.Since(t0).Round(time.Second), out, errOut)
		n := 0
		lines := strings.Split(out, "\n")
		for i, l := range lines {
			switch {
			case strings.HasPrefix(l, "ok   "):
				r.Check(strings.TrimPrefix(l, "ok   "), true, "")
				n++
			case strings.HasPrefix(l, "FAIL "):
				// res's WHY, on the line after, goes to the summary
				why := ""
				if i+1 < len(lines) {
					if w, ok := strings.CutPrefix(lines[i+1], "| why: "); ok {
						why = "(" + w + ")"
					}
				}
				r.check(strings.TrimPrefix(l, "FAIL "), false, why, out)
				n++
			case strings.HasPrefix(l, "| "):
				say(t, "   %s\n", l)
			}
		}
		// the summary says why, and where a killed script was
		why := fmt.Sprintf("(exit %d after %v, %d assertions, last output %q)", code, time.Since(t0).Round(time.Second), n, lastLine(out))
		if err != nil {
			why = fmt.Sprintf("(%v after %v)", err, time.Since(t0).Round(time.Second))
		}
		r.check(title+": script completed", err == nil && code == 0 && n > 0, why, fmt.Sprintf("exit %d, err %v, %d assertions\n%s", code, err, n, errOut))
		if err == nil && code == 124 {
			say(t, "%s", stuckReport(ctx, m))
		}
		return out
	}
}

// watchdog is a script's first lines: 25 s before the guest kills a
// script that ran out of time, what the script is in (its processes, with
// what each waits on), the network and the journal go to its output. The
// report stuckReport makes after the kill cannot show the killed
// processes: a CI log then said where a section hung but not on what.
//
// A vrf-netsetup waits in Go (a poll, a lock) with no child to show for
// it, so the watchdog also names every vrf-netsetup on the guest (the
// rollback unit's is outside the script), the holders of the apply and try
// locks, and asks each of the script's vrf-netsetup processes running for
// a minute or more for its goroutines (SIGQUIT: Go prints every
// goroutine's stack to stderr and exits), printing from the file its
// stderr went to the last lines before the dump and the first goroutines.
// That process is killed a few seconds early; the test has failed by then.
func watchdog(limit time.Duration) string {
	if limit < time.Minute {
		return ""
	}
	return fmt.Sprintf(`( sleep %d
  echo "| stuck: time is nearly up; what the script is in:"
  g=$(ps -o pgid= -p $$ | tr -d ' ')
  { ps -eo pgid,pid,etime,stat,wchan:18,args --forest | awk -v g="$g" 'NR == 1 || $1 == g' | grep -v ' ps -eo '
    echo "--- every vrf-netsetup"; ps -C vrf-netsetup,vrf-netsetup-fa -o pid,pgid,etimes,args
    echo "--- apply lock: $(cat /run/pam-vrf/apply.lock 2>/dev/null)"
    echo "--- try lock: $(cat /run/pam-vrf/try.lock 2>/dev/null)"
    systemctl list-jobs --no-pager | head -n 8
    ip -br addr; ip rule | head -n 12; ip route show table all | grep -E '^default|^unreachable' | head -n 8
    journalctl -o short-monotonic --no-pager -n 40 | grep -v ' pamvrf-jw\[' | tail -n 25 | cut -c1-200
    ps -C vrf-netsetup,vrf-netsetup-fa -o pid=,pgid=,etimes= | while read -r p pg secs; do
      [ "$pg" = "$g" ] && [ "$secs" -ge 60 ] || continue
      f=$(readlink "/proc/$p/fd/2"); kill -QUIT "$p"; sleep 2
      echo "--- goroutines of vrf-netsetup $p (running ${secs}s; its stderr: $f)"
      # what it printed last, then the first goroutines (main's first)
      case "$f" in /*) [ -f "$f" ] && awk '/^SIGQUIT: quit/ { q = NR } { l[NR] = $0 }
        END { if (!q) q = NR + 1; for (i = q - 15; i < q + 160 && i <= NR; i++) if (i > 0 && l[i] !~ /^(r[0-9a-z]+|rip|rflags|[cdefgs]s) +0x|^$/) print l[i] }' "$f" ;; esac
    done
  } 2>&1 | cut -c1-220 | sed 's/^/| stuck: /' ) &
_watchdog=$!
trap 'kill $_watchdog 2>/dev/null' EXIT
`, int((limit-25*time.Second)/time.Second))
}

// stuckReport: what the guest was busy with when a script ran out of
// time (systemd's jobs, our processes and the lock's holder, the journal's
// last lines), for the reader of a CI log.
func stuckReport(ctx context.Context, m *vm.VM) string {
	dctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	out, _, _, err := m.Run(dctx, `echo "--- systemctl list-jobs"; systemctl list-jobs --no-pager | head -n 15
echo "--- processes"; ps -eo pid,etime,args | grep -E '[v]rf-netsetup|[s]ystemctl|[n]etworkctl|[n]mcli|[i]fup|[d]hclient' | head -n 15
echo "--- apply lock: $(cat /run/pam-vrf/apply.lock 2>/dev/null)"
echo "--- journal"; journalctl -o short-monotonic --no-pager -n 45 | grep -v ' pamvrf-jw\[' | tail -n 30 | cut -c1-200`)
	if err != nil {
		return fmt.Sprintf("   (no report on the stuck guest: %v)\n", err)
	}
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		fmt.Fprintf(&b, "   | stuck: %s\n", l)
	}
	return b.String()
}

// lastLine is the last non-empty line of out, cut to 80 characters.
func lastLine(out string) string {
	ls := strings.Split(strings.TrimSpace(out), "\n")
	l := ls[len(ls)-1]
	if r := []rune(l); len(r) > 80 {
		l = string(r[:80]) + "..."
	}
	return l
}

// netsetupGuest boots a fresh guest without the packages, with vrf-netsetup
// built from this tree at /usr/sbin/vrf-netsetup and each further binary
// built with its build flags (name -> flags) pushed to /usr/local/sbin.
// When the test ends it prints "e2e NAME (duration): N passed, M failed"
// and, on failure, the console's tail.
func netsetupGuest(ctx context.Context, t *testing.T, name string, extra map[string][]string) (*vm.VM, *testReporter) {
	t.Helper()
	return netsetupGuestSuite(ctx, t, vm.DefaultSuite, name, extra)
}

// netsetupGuestSuite is netsetupGuest with a guest of the given Debian suite.
func netsetupGuestSuite(ctx context.Context, t *testing.T, suite, name string, extra map[string][]string) (*vm.VM, *testReporter) {
	t.Helper()
	start := time.Now()
	bin := t.TempDir()
	goBuild(t, filepath.Join(bin, "vrf-netsetup"))
	for n, flags := range extra {
		goBuild(t, filepath.Join(bin, n), flags...)
	}
	m := bootGuestSuite(ctx, t, suite)
	if err := m.Push(ctx, filepath.Join(bin, "vrf-netsetup"), "/usr/sbin/vrf-netsetup", 0o755); err != nil {
		fatal(t, err)
	}
	for n := range extra {
		if err := m.Push(ctx, filepath.Join(bin, n), "/usr/local/sbin/"+n, 0o755); err != nil {
			fatal(t, err)
		}
	}
	r := &testReporter{t: t}
	t.Cleanup(func() { // before bootGuest's Close: cleanups run last-in first-out
		if t.Failed() {
			t.Logf("console tail:\n%s", m.ConsoleTail(40))
		}
		say(t, "e2e %s (%v): %d passed, %d failed\n", name, time.Since(start).Round(time.Second), r.passed, r.failed)
	})
	return m, r
}

// rebootChecked reboots m as one step of the checklist ("== title", then
// the check); false when the guest did not come back.
func rebootChecked(ctx context.Context, t *testing.T, m *vm.VM, r *testReporter, title, check string) bool {
	say(t, "\n== %s\n", title)
	err := m.Reboot(ctx)
	r.Check(check, err == nil, fmt.Sprint(err))
	if err == nil {
		cycles := orderingCycles(ctx, m)
		r.Check(title+"/no ordering cycle at boot (systemd deletes a job to break one)", cycles == "", cycles)
	}
	return err == nil
}

// guestScenario boots a guest with the build installed; when the test ends
// it prints "e2e NAME (duration): N passed, M failed" and, on failure, the
// tail of the guest's console.
func guestScenario(ctx context.Context, t *testing.T, name string) *Scenario {
	t.Helper()
	return guestScenarioSuite(ctx, t, vm.DefaultSuite, name)
}

// guestScenarioSuite is guestScenario on a guest of the given Debian suite.
func guestScenarioSuite(ctx context.Context, t *testing.T, suite, name string) *Scenario {
	t.Helper()
	start := time.Now()
	m := bootGuestSuite(ctx, t, suite)
	r := &testReporter{t: t}
	s := &Scenario{VM: m, Build: buildDir(t), Debs: os.Getenv("PAMVRF_DEBS"), R: r}
	t.Cleanup(func() { // before bootGuest's Close: cleanups run last-in first-out
		if t.Failed() {
			t.Logf("console tail:\n%s", m.ConsoleTail(40))
		}
		say(t, "e2e %s (%v): %d passed, %d failed\n", name, time.Since(start).Round(time.Second), r.passed, r.failed)
	})
	if err := s.Install(ctx); err != nil {
		fatal(t, err)
	}
	return s
}

// TestE2E is the whole story on one guest: failure, fix, logins, reboot.
func TestE2E(t *testing.T) {
	guestTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	start := time.Now()
	img, err := ensureImage(ctx)
	if err != nil {
		fatal(t, err)
	}
	say(t, "e2e: image %s (built now: %v) in %v\n", img.Dir, img.Built, time.Since(start).Round(time.Second))
	m := boot(ctx, t, img)
	r := &testReporter{t: t}
	s := &Scenario{VM: m, Build: buildDir(t), Debs: os.Getenv("PAMVRF_DEBS"), R: r, Break: os.Getenv("PAMVRF_E2E_BREAK")}
	if err := s.Install(ctx); err != nil {
		fatal(t, err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("console tail:\n%s", m.ConsoleTail(40))
		}
		say(t, "\ne2e summary (%v):\n  %s\n", time.Since(start).Round(time.Second), strings.Join(r.lines, "\n  "))
		say(t, "e2e: %d passed, %d failed\n", r.passed, r.failed)
	}()

	if s.Break != "" {
		say(t, "e2e: product deliberately broken: %s (assertions are expected to fail)\n", s.Break)
	}
	s.Before(ctx)
	// A clean network for the real provisioning: the hand-made VRF was
	// runtime state only, so a reboot on the same disk removes it.
	if !s.Reboot(ctx) {
		return
	}
	s.Provision(ctx)
	s.Logins(ctx, "after apply")
	if !s.Reboot(ctx) {
		return
	}
	s.WaitOnline(ctx, "after reboot")
	s.Check(ctx, "after reboot")
	s.Logins(ctx, "after reboot")
	s.LoginRate(ctx, 16, rateRounds())
	s.Soak(ctx, soakLogins())
	s.VRFRecreated(ctx)
}

// rateRounds is how many rounds of 16 logins each way LoginRate times: 2
// in make test (a rough figure), 6 with the long soak (make soak), whose
// rate is the one to quote.
func rateRounds() int {
	if soakLogins() >= 100 {
		return 6
	}
	return 2
}

// soakLogins is 500 (the figure) unless PAMVRF_SOAK says otherwise.
func soakLogins() int {
	if n, err := strconv.Atoi(os.Getenv("PAMVRF_SOAK")); err == nil && n > 0 {
		return n
	}
	return 500
}

// TestE2EPackage installs, enables, uses, refuses a dangerous removal of,
// and purges the Debian packages in a fresh guest (debian/tests/
// vm-install-purge.sh prints one ok/FAIL line per assertion).
func TestE2EPackage(t *testing.T) {
	guestTest(t)
	debs := os.Getenv("PAMVRF_DEBS")
	if debs == "" {
		fatal(t, "PAMVRF_DEBS is not set: run through make e2e, which builds the packages")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	m := bootGuest(ctx, t)
	files, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	for _, f := range files {
		if err := m.Push(ctx, f, "/root/debs/"+filepath.Base(f), 0o644); err != nil {
			fatal(t, err)
		}
	}
	if err := m.Push(ctx, "../../debian/tests/vm-install-purge.sh", "/root/vm-install-purge.sh", 0o755); err != nil {
		fatal(t, err)
	}
	out, errOut, code, err := m.Run(ctx, "WITH_APPLY=1 /root/vm-install-purge.sh /root/debs")
	if err != nil {
		fatal(t, err)
	}
	say(t, "%s", out)
	passed, failed := 0, 0
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "ok "):
			passed++
		case strings.HasPrefix(l, "FAIL "):
			failed++
			errorf(t, "%s", l)
		}
	}
	say(t, "e2e package: %d passed, %d failed\n", passed, failed)
	if code != 0 || passed == 0 {
		errorf(t, "vm-install-purge.sh exited %d with %d assertions passed\n%s", code, passed, errOut)
	}
}
