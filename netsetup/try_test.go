package netsetup

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type fakeSched struct {
	scheduled []string
	cancelled int
}

func (f *fakeSched) Schedule(after time.Duration, argv []string) (Timer, error) {
	f.scheduled = append(f.scheduled, after.String()+" "+strings.Join(argv, " "))
	return Timer{Kind: "fake"}, nil
}

func (f *fakeSched) Cancel(Timer) error { f.cancelled++; return nil }

func (h *faultHost) tryer(s Scheduler) *Tryer {
	return &Tryer{Runner: h.runner(), Sched: s, Timeout: 30 * time.Second, SID: 100,
		Rollback: []string{"vrf-netsetup", "revert", "--if-unconfirmed"}}
}

func tryStatus(t *testing.T, h *faultHost) string {
	ts, err := ReadTryState(FS{Root: h.root})
	if err != nil || ts == nil {
		t.Fatalf("try state %v %v", ts, err)
	}
	return ts.Status
}

// TestTryConfirm: try arms the rollback before the first step, confirm from
// the same session is refused, from another one cancels it and keeps the
// state; the rollback then has nothing to do.
func TestTryConfirm(t *testing.T) {
	h := newHost(t, false)
	cfg := faultCfg()
	before := h.snap(t, false)
	s := &fakeSched{}
	if err := h.tryer(s).Try(cfg); err != nil {
		t.Fatal(err)
	}
	if len(s.scheduled) != 1 || s.scheduled[0] != "30s vrf-netsetup revert --if-unconfirmed" || tryStatus(t, h) != TryPending {
		t.Fatalf("scheduled %v, status %s", s.scheduled, tryStatus(t, h))
	}
	applied := h.snap(t, false)
	if applied == before {
		t.Fatal("try changed nothing")
	}
	if err := h.tryer(s).Try(cfg); err == nil || !strings.Contains(err.Error(), "already pending") {
		t.Fatalf("second try: %v", err)
	}
	fs := FS{Root: h.root}
	if err := Confirm(fs, s, os.Stderr, 100, false); !errors.Is(err, ErrConfirmSameSession) {
		t.Fatalf("confirm from the try session: %v", err)
	}
	if err := Confirm(fs, s, os.Stderr, 200, false); err != nil {
		t.Fatal(err)
	}
	if s.cancelled != 1 || tryStatus(t, h) != TryConfirmed {
		t.Fatalf("cancelled %d status %s", s.cancelled, tryStatus(t, h))
	}
	if f, _ := fs.Stat(TryBackupPath); f.Exists {
		t.Error("pre-try backup left after confirm")
	}
	r := h.runner()
	var out strings.Builder
	if err := RevertIfUnconfirmed(r.Reader, r.Env, s, &out, false); err != nil || !strings.Contains(out.String(), "nothing to do") {
		t.Fatalf("rollback after confirm: %v %q", err, out.String())
	}
	if got := h.snap(t, false); got != applied {
		t.Errorf("confirmed state changed:\n%s", lineDiff(applied, got))
	}
	if err := Confirm(fs, s, os.Stderr, 200, false); err != nil {
		t.Fatalf("second confirm: %v", err)
	}
}

// TestTryRollback: an unconfirmed try rolls back rules, sysctls and files
// to the state before the try, on a fresh host (main backup removed) and on
// one applied before with other settings (main backup kept); a late confirm
// says so.
func TestTryRollback(t *testing.T) {
	for _, appliedBefore := range []bool{false, true} {
		h := newHost(t, false)
		cfg := faultCfg()
		if appliedBefore {
			c := cfg
			c.Nameservers = []string{"192.0.2.54"}
			if err := h.runner().Apply(c); err != nil {
				t.Fatal(err)
			}
		}
		before := h.snap(t, false)
		s := &fakeSched{}
		if err := h.tryer(s).Try(cfg); err != nil {
			t.Fatal(err)
		}
		if h.snap(t, false) == before {
			t.Fatal("try changed nothing")
		}
		r := h.runner()
		if err := RevertIfUnconfirmed(r.Reader, r.Env, s, os.Stderr, false); err != nil {
			t.Fatalf("rollback (applied before: %v): %v", appliedBefore, err)
		}
		if got := h.snap(t, false); got != before {
			t.Errorf("applied before %v: state after rollback differs:\n%s", appliedBefore, lineDiff(before, got))
		}
		if tryStatus(t, h) != TryRolledBack {
			t.Errorf("status %s", tryStatus(t, h))
		}
		err := Confirm(FS{Root: h.root}, s, os.Stderr, 200, false)
		if err == nil || !strings.Contains(err.Error(), "too late") {
			t.Errorf("late confirm: %v", err)
		}
	}
}

// TestTryFailedApplyDisarms: a try whose apply fails and rolls back itself
// cancels the timer; nothing is left to confirm.
func TestTryFailedApplyDisarms(t *testing.T) {
	h := newHost(t, false)
	s := &fakeSched{}
	tr := h.tryer(s)
	tr.Runner.plan = func(c Config, st *State) ([]Step, error) {
		steps, err := hostPlan(c, st)
		return append(steps, Step{ID: "boom", Desc: "injected failure", Do: func(*Env) error { return errors.New("injected") }}), err
	}
	before := h.snap(t, false)
	err := tr.Try(faultCfg())
	if !errors.Is(err, ErrRolledBack) || s.cancelled != 1 || tryStatus(t, h) != TryRolledBack {
		t.Fatalf("err %v cancelled %d status %s", err, s.cancelled, tryStatus(t, h))
	}
	if got := h.snap(t, false); got != before {
		t.Errorf("state differs:\n%s", lineDiff(before, got))
	}
}

// TestTryStuckApplyEnds: an apply still running tryStuckAfter past the
// rollback deadline calls Stuck (the process exits, releasing the locks the
// waiting rollback needs); one that returns in time never does.
func TestTryStuckApplyEnds(t *testing.T) {
	defer func(d time.Duration) { tryStuckAfter = d }(tryStuckAfter)
	tryStuckAfter = 200 * time.Millisecond
	h := newHost(t, false)
	s := &fakeSched{}
	tr := h.tryer(s)
	tr.Timeout = 100 * time.Millisecond
	release := make(chan struct{})
	var once sync.Once
	// without a watch the step would hang the test: it gives up after 5 s
	time.AfterFunc(5*time.Second, func() { once.Do(func() { close(release) }) })
	stuck := make(chan time.Time, 1)
	tr.Stuck = func(deadline time.Time, _ time.Duration) { stuck <- deadline; once.Do(func() { close(release) }) }
	planned := false
	tr.Runner.plan = func(c Config, st *State) ([]Step, error) {
		steps, err := hostPlan(c, st)
		if !planned { // verify re-plans: hang only in the apply
			planned = true
			steps = append(steps, Step{ID: "hang", Desc: "a step that hangs", Do: func(*Env) error { <-release; return nil }})
		}
		return steps, err
	}
	start := time.Now()
	if err := tr.Try(faultCfg()); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-stuck:
		ts, _ := ReadTryState(FS{Root: h.root})
		if !d.Equal(ts.Deadline) {
			t.Errorf("Stuck got deadline %v, the try's is %v", d, ts.Deadline)
		}
		if waited := time.Since(start); waited < 300*time.Millisecond {
			t.Errorf("Stuck after %v, before deadline + tryStuckAfter", waited)
		}
	default:
		t.Fatal("the hung apply returned without Stuck")
	}

	// an apply that returns in time: the watch is stopped with it
	h2 := newHost(t, false)
	tr2 := h2.tryer(&fakeSched{})
	tr2.Timeout = 50 * time.Millisecond
	fired := make(chan bool, 1)
	tr2.Stuck = func(time.Time, time.Duration) { fired <- true }
	if err := tr2.Try(faultCfg()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(tryStuckAfter + 200*time.Millisecond)
	if len(fired) != 0 {
		t.Error("Stuck ran after the apply had returned")
	}
}

// TestTryEndedMidApplyRollsBack: a try whose process ends after any step
// (stuckExit, a kill) leaves the rollback armed, and the rollback restores
// the pre-try state.
func TestTryEndedMidApplyRollsBack(t *testing.T) {
	for _, n := range []int{1, 3, 6} {
		h := newHost(t, false)
		before := h.snap(t, false)
		s := &fakeSched{}
		tr := h.tryer(s)
		tr.Runner.Env.Fault = &Fault{KillAfter: n, Exit: func(int) {}}
		if err := tr.Try(faultCfg()); !errors.Is(err, ErrFaultKilled) || tryStatus(t, h) != TryPending || s.cancelled != 0 {
			t.Fatalf("ended after step %d: err %v status %s cancelled %d", n, err, tryStatus(t, h), s.cancelled)
		}
		r := h.runner()
		if err := RevertIfUnconfirmed(r.Reader, r.Env, s, os.Stderr, false); err != nil {
			t.Fatalf("rollback after step %d: %v", n, err)
		}
		if got := h.snap(t, false); got != before {
			t.Errorf("ended after step %d: state after rollback differs:\n%s", n, lineDiff(before, got))
		}
	}
}

// TestStuckExit: the real stuckExit prints why and every goroutine, and
// exits non-zero (run in a child: it ends the process).
func TestStuckExit(t *testing.T) {
	if os.Getenv("PAMVRF_STUCK_CHILD") == "1" {
		stuckExit(time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local), 4*time.Minute)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestStuckExit$")
	cmd.Env = append(os.Environ(), "PAMVRF_STUCK_CHILD=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Fatalf("child: %v (want exit status 4)\n%s", err, stderr.String())
	}
	for _, want := range []string{"still running 4m0s after the rollback deadline 03:04:05 (stuck): exiting", "revert --if-unconfirmed", "goroutine ", "netsetup.TestStuckExit"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestDetachedScheduler: the no-systemd fallback runs the command in its own
// session after the delay, and Cancel stops it before.
func TestDetachedScheduler(t *testing.T) {
	dir := t.TempDir()
	d := Detached{Self: []string{"/bin/sh", "-c", `sleep "$1"; shift; exec "$@"`, "sh"}, Log: filepath.Join(dir, "log")}
	fired := filepath.Join(dir, "fired")
	tm, err := d.Schedule(300*time.Millisecond, []string{"/bin/touch", fired})
	if err != nil {
		t.Fatal(err)
	}
	if sid, _ := unix.Getsid(tm.PID); sid != tm.PID {
		t.Errorf("rollback process %d in session %d, not its own", tm.PID, sid)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(fired); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("detached command never ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancelled := filepath.Join(dir, "cancelled")
	tm, err = d.Schedule(700*time.Millisecond, []string{"/bin/touch", cancelled})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := d.Cancel(tm); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	if _, err := os.Stat(cancelled); err == nil {
		t.Fatal("cancelled command ran")
	}
	if err := d.Cancel(tm); err != nil { // gone: no error, nothing killed
		t.Fatal(err)
	}
}

// TestRestorePrunesDropInDir: undoing a drop-in removes the directory apply
// created for it, never one that holds other files.
func TestRestorePrunesDropInDir(t *testing.T) {
	fs := FS{Root: t.TempDir()}
	p := "/etc/systemd/network/20-eth0.network.d/pam-vrf.conf"
	other := "/etc/systemd/system/ssh.service.d/local.conf"
	for _, f := range []string{p, other, "/etc/systemd/system/ssh.service.d/pam-vrf.conf"} {
		if err := fs.WriteAtomic(f, []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.Restore(p, FileState{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fs.P(filepath.Dir(p))); !os.IsNotExist(err) {
		t.Errorf("empty drop-in dir kept: %v", err)
	}
	if err := fs.Restore("/etc/systemd/system/ssh.service.d/pam-vrf.conf", FileState{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fs.P(other)); err != nil {
		t.Errorf("other drop-in gone: %v", err)
	}
}

// fakeBoot makes bootID return id for the rest of the test.
func fakeBoot(t *testing.T, id string) {
	old := bootID
	bootID = func() string { return id }
	t.Cleanup(func() { bootID = old })
}

// TestTryRebootRollsBack: the try record and its backup are on disk, not in
// /run; after a reboot inside the window (/run wiped, timer gone, new boot
// id) the next apply rolls the try back instead of re-applying it, once;
// a confirm after the reboot is too late.
func TestTryRebootRollsBack(t *testing.T) {
	for _, appliedBefore := range []bool{false, true} {
		h := newHost(t, false)
		fakeBoot(t, "boot-1")
		cfg := faultCfg()
		if appliedBefore {
			c := cfg
			c.Nameservers = []string{"192.0.2.54"}
			if err := h.runner().Apply(c); err != nil {
				t.Fatal(err)
			}
		}
		before := h.snap(t, false)
		s := &fakeSched{}
		tr := h.tryer(s)
		tr.Timeout = 300 * time.Second
		if err := tr.Try(cfg); err != nil {
			t.Fatal(err)
		}
		fs := FS{Root: h.root}
		for _, p := range []string{TryStatePath, TryBackupPath} {
			if !strings.HasPrefix(p, "/var/lib/") {
				t.Fatalf("%s is not persistent", p)
			}
			if f, _ := fs.Stat(p); !f.Exists {
				t.Fatalf("%s missing after try", p)
			}
		}
		r := h.runner()
		// same boot, inside the window: apply refuses, nothing changes
		if _, err := ResolvePendingTry(r.Reader, r.Env, s, os.Stderr, false, time.Now()); err == nil || !strings.Contains(err.Error(), "a try is pending") {
			t.Fatalf("apply during the window: %v", err)
		}
		if tryStatus(t, h) != TryPending {
			t.Fatal("apply inside the window touched the try")
		}
		// reboot
		if err := os.RemoveAll(filepath.Join(h.root, "run")); err != nil {
			t.Fatal(err)
		}
		fakeBoot(t, "boot-2")
		var out strings.Builder
		rolled, err := ResolvePendingTry(r.Reader, r.Env, s, &out, false, time.Now())
		if err != nil || !rolled {
			t.Fatalf("apply after reboot: rolled %v err %v\n%s", rolled, err, out.String())
		}
		if got := h.snap(t, false); got != before {
			t.Errorf("applied before %v: state after the boot rollback differs:\n%s", appliedBefore, lineDiff(before, got))
		}
		ts, _ := ReadTryState(fs)
		if ts.Status != TryRolledBack || !strings.Contains(ts.Detail, "rebooted") {
			t.Errorf("after the boot rollback: %+v", ts)
		}
		if s.cancelled != 0 {
			t.Error("cancelled a timer of an earlier boot")
		}
		if f, _ := fs.Stat(TryBackupPath); f.Exists {
			t.Error("pre-try backup left after the rollback")
		}
		if c := (&Checker{Reader: r.Reader}).checkTry(); !c.OK || !strings.Contains(c.Detail, "no try pending") {
			t.Errorf("check after the rollback: %s", c)
		}
		if rolled, err := ResolvePendingTry(r.Reader, r.Env, s, os.Stderr, false, time.Now()); rolled || err != nil {
			t.Errorf("second apply: rolled %v err %v", rolled, err)
		}
		if err := Confirm(fs, s, os.Stderr, 200, false); err == nil || !strings.Contains(err.Error(), "too late") {
			t.Errorf("confirm after the rollback: %v", err)
		}
	}
}

// TestTryStaleStates: a pending try from an earlier boot cannot be
// confirmed; check flags it; a try past its deadline whose timer never ran
// is rolled back by apply in the same boot.
func TestTryStaleStates(t *testing.T) {
	h := newHost(t, false)
	fakeBoot(t, "boot-1")
	before := h.snap(t, false)
	s := &fakeSched{}
	if err := h.tryer(s).Try(faultCfg()); err != nil {
		t.Fatal(err)
	}
	fs := FS{Root: h.root}
	r := h.runner()
	fakeBoot(t, "boot-2")
	if err := Confirm(fs, s, os.Stderr, 200, true); err == nil || !strings.Contains(err.Error(), "rebooted") {
		t.Fatalf("confirm after reboot: %v", err)
	}
	if c := (&Checker{Reader: r.Reader}).checkTry(); c.OK || !strings.Contains(c.Detail, "rebooted") {
		t.Errorf("check of a try from an earlier boot: %s", c)
	}
	fakeBoot(t, "boot-1")
	if c := (&Checker{Reader: r.Reader}).checkTry(); !c.OK || !strings.Contains(c.Detail, "pending") {
		t.Errorf("check of a pending try: %s", c)
	}
	var out strings.Builder
	if rolled, err := ResolvePendingTry(r.Reader, r.Env, s, &out, true, time.Now().Add(time.Hour)); !rolled || err != nil || !strings.Contains(out.String(), "dry run") {
		t.Fatalf("dry run past the deadline: %v %v\n%s", rolled, err, out.String())
	}
	if tryStatus(t, h) != TryPending {
		t.Fatal("dry run changed the try")
	}
	rolled, err := ResolvePendingTry(r.Reader, r.Env, s, os.Stderr, false, time.Now().Add(time.Hour))
	if !rolled || err != nil {
		t.Fatalf("apply past the deadline: %v %v", rolled, err)
	}
	if got := h.snap(t, false); got != before {
		t.Errorf("state differs:\n%s", lineDiff(before, got))
	}
	if ts, _ := ReadTryState(fs); ts.Status != TryRolledBack || !strings.Contains(ts.Detail, "deadline") || s.cancelled != 1 {
		t.Errorf("after the rollback: %+v, cancelled %d", ts, s.cancelled)
	}
}

// TestTryBootRollbackFails: a rollback that fails at boot is recorded,
// keeps the pre-try backup and makes apply refuse (neither re-applying the
// tried settings nor retrying at every boot); revert --if-unconfirmed
// retries it, and confirm is the other way out.
func TestTryBootRollbackFails(t *testing.T) {
	for _, resolve := range []string{"retry", "confirm"} {
		h := newHost(t, false)
		fakeBoot(t, "boot-1")
		before := h.snap(t, false)
		s := &fakeSched{}
		if err := h.tryer(s).Try(faultCfg()); err != nil {
			t.Fatal(err)
		}
		applied := h.snap(t, false)
		fs := FS{Root: h.root}
		good, _ := fs.Stat(TryBackupPath)
		if err := fs.WriteAtomic(TryBackupPath, []byte("{broken"), 0o600); err != nil {
			t.Fatal(err)
		}
		fakeBoot(t, "boot-2")
		r := h.runner()
		rolled, err := ResolvePendingTry(r.Reader, r.Env, s, os.Stderr, false, time.Now())
		if rolled || err == nil || !strings.Contains(err.Error(), "revert --if-unconfirmed") {
			t.Fatalf("failing boot rollback: rolled %v err %v", rolled, err)
		}
		if tryStatus(t, h) != TryRollbackFailed {
			t.Fatalf("status %s", tryStatus(t, h))
		}
		if f, _ := fs.Stat(TryBackupPath); !f.Exists {
			t.Fatal("pre-try backup removed after a failed rollback")
		}
		if err := h.tryer(s).Try(faultCfg()); err == nil || !strings.Contains(err.Error(), "rollback of the try") {
			t.Fatalf("new try over a failed rollback: %v", err)
		}
		// next boot: apply refuses, no new attempt, nothing changes
		fakeBoot(t, "boot-3")
		rolled, err = ResolvePendingTry(r.Reader, r.Env, s, os.Stderr, false, time.Now())
		if rolled || err == nil || !strings.Contains(err.Error(), "not applying") {
			t.Fatalf("apply after a failed rollback: rolled %v err %v", rolled, err)
		}
		if got := h.snap(t, false); got != applied {
			t.Errorf("state changed:\n%s", lineDiff(applied, got))
		}
		if c := (&Checker{Reader: r.Reader}).checkTry(); c.OK {
			t.Errorf("check after a failed rollback: %s", c)
		}
		switch resolve {
		case "retry":
			if err := fs.Restore(TryBackupPath, good); err != nil {
				t.Fatal(err)
			}
			if err := RevertIfUnconfirmed(r.Reader, r.Env, s, os.Stderr, false); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if got := h.snap(t, false); got != before {
				t.Errorf("state after the retried rollback differs:\n%s", lineDiff(before, got))
			}
			if tryStatus(t, h) != TryRolledBack {
				t.Errorf("status %s", tryStatus(t, h))
			}
		case "confirm":
			if err := Confirm(fs, s, os.Stderr, 100, false); err != nil {
				t.Fatal(err)
			}
			if tryStatus(t, h) != TryConfirmed {
				t.Errorf("status %s", tryStatus(t, h))
			}
			if f, _ := fs.Stat(TryBackupPath); f.Exists {
				t.Error("backup left after confirm")
			}
		}
		if rolled, err := ResolvePendingTry(r.Reader, r.Env, s, os.Stderr, false, time.Now()); rolled || err != nil {
			t.Errorf("%s: apply afterwards: %v %v", resolve, rolled, err)
		}
	}
}

// TestLockWaitIsBoundedAndNamesTheHolder: a second locker gives up after
// lockWait with the holder's pid and command line, and gets the lock once
// the holder lets go.
func TestLockWaitIsBoundedAndNamesTheHolder(t *testing.T) {
	defer func(d time.Duration) { lockWait = d }(lockWait)
	lockWait = 300 * time.Millisecond
	p := filepath.Join(t.TempDir(), "run", "apply.lock")
	held, err := flockPath(p, 0o755, lockWait)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err = flockPath(p, 0o755, lockWait) // a new open file description: flock conflicts
	want := fmt.Sprintf("held after 300ms by pid %d (", os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) || time.Since(t0) > 5*time.Second {
		t.Fatalf("second lock: %v after %v, want an error containing %q", err, time.Since(t0), want)
	}
	if !errors.Is(err, ErrLockTimeout) {
		t.Errorf("a lock wait that gave up is not ErrLockTimeout: %v", err)
	}
	held.Close()
	again, err := flockPath(p, 0o755, lockWait)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again.Close()
}
