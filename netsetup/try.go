package netsetup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// try/confirm (like `netplan try`): try saves the current state, arms a
// rollback that does not depend on the caller's session, and applies; only
// `vrf-netsetup confirm` from a fresh login keeps the result. Without it the
// rollback (RevertIfUnconfirmed, which reuses RevertFrom) restores network,
// DNS and files after the timeout.
//
// The pending try and its pre-try backup live on disk (/var/lib), not in
// /run: a reboot inside the window kills the timer, but the tried files stay
// and the boot unit would re-apply them, so an unconfirmed try would become
// permanent. The record notes the boot it belongs to (BootID); the next apply
// (the boot unit's, or anyone's) rolls back a pending try from an earlier
// boot or past its deadline first (ResolvePendingTry). Only the lock and the
// rollback log stay in /run.
const (
	TryDir        = "/run/pam-vrf"
	TryStateDir   = "/var/lib/pam-vrf"
	TryStatePath  = TryStateDir + "/try.json"
	TryBackupPath = TryStateDir + "/try-backup.json"
	TryLockPath   = TryDir + "/try.lock"
	// RollbackUnit names the transient systemd timer/service of the rollback.
	RollbackUnit = "pam-vrf-rollback"
)

// Try statuses.
const (
	TryPending        = "pending"
	TryConfirmed      = "confirmed"
	TryRolledBack     = "rolled-back"
	TryRollbackFailed = "rollback-failed"
)

// TryState is TryStatePath.
type TryState struct {
	Status   string    `json:"status"`
	Started  time.Time `json:"started"`
	Deadline time.Time `json:"deadline"`
	Config   Config    `json:"config"`
	// SID is the session of the try process: confirm from the same session
	// proves nothing about new logins.
	SID   int   `json:"sid"`
	Timer Timer `json:"timer"`
	// Boot is the boot the try ran in (BootID): a pending try from another
	// boot lost its timer with the reboot.
	Boot   string    `json:"boot,omitempty"`
	Done   time.Time `json:"done,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Timer identifies an armed rollback for Cancel.
type Timer struct {
	Kind string `json:"kind"`           // "systemd", "process", "fake"
	Unit string `json:"unit,omitempty"` // systemd: the timer unit
	PID  int    `json:"pid,omitempty"`  // process: setsid'd sleeper
	// Start is the process start time (/proc/PID/stat field 22), so a
	// recycled PID is never killed.
	Start string `json:"start,omitempty"`
}

func (t Timer) String() string {
	switch t.Kind {
	case "systemd":
		return "systemd timer " + t.Unit
	case "process":
		return fmt.Sprintf("detached process %d", t.PID)
	}
	return t.Kind
}

// Scheduler runs argv once after a delay, outside the caller's session, so
// the rollback survives the ssh session that ran try.
type Scheduler interface {
	Schedule(after time.Duration, argv []string) (Timer, error)
	Cancel(Timer) error
}

// ExitLockTimeout is vrf-netsetup's exit status for ErrLockTimeout
// (EX_TEMPFAIL).
const ExitLockTimeout = 75

// SystemdRun arms a transient timer with systemd-run (exec'ing systemd-run
// and systemctl is acceptable here, as for the other service actions).
type SystemdRun struct{ Unit string }

func (s SystemdRun) unit() string {
	if s.Unit == "" {
		return RollbackUnit
	}
	return s.Unit
}

func (s SystemdRun) Schedule(after time.Duration, argv []string) (Timer, error) {
	u := s.unit()
	// a failed earlier run would block the unit name
	_ = exec.Command("systemctl", "reset-failed", u+".timer", u+".service").Run()
	// A rollback that found a lock held past lockWait changed nothing and
	// exits ExitLockTimeout: systemd starts it again, for as long as it
	// takes, rather than leave the unconfirmed try applied.
	args := []string{"--unit=" + u, "--description=pam-vrf: roll back an unconfirmed vrf-netsetup try",
		"--collect", fmt.Sprintf("--on-active=%dms", after.Milliseconds()), "--timer-property=AccuracySec=100ms",
		fmt.Sprintf("--property=RestartForceExitStatus=%d", ExitLockTimeout), "--property=RestartSec=30s", "--"}
	cmd := exec.Command("systemd-run", append(args, argv...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return Timer{}, fmt.Errorf("systemd-run: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return Timer{Kind: "systemd", Unit: u + ".timer"}, nil
}

func (s SystemdRun) Cancel(t Timer) error {
	out, err := exec.Command("systemctl", "stop", t.Unit).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl stop %s: %w: %s", t.Unit, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Detached is the fallback without systemd: a child in its own session
// (setsid, not waited for, stdio on Log) that sleeps and then execs argv.
// Self is the argv prefix that does that: Self + [seconds] + argv
// (vrf-netsetup's hidden "__delay" command).
type Detached struct {
	Self []string
	Log  string // file for the child's output ("" = /dev/null)
}

func (d Detached) Schedule(after time.Duration, argv []string) (Timer, error) {
	args := append(append(append([]string{}, d.Self...), strconv.FormatFloat(after.Seconds(), 'f', 3, 64)), argv...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out := "/dev/null"
	if d.Log != "" {
		out = d.Log
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return Timer{}, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return Timer{}, fmt.Errorf("start rollback process: %w", err)
	}
	t := Timer{Kind: "process", PID: cmd.Process.Pid, Start: procStart(cmd.Process.Pid)}
	// the child outlives us (re-parented to init); reap it if we are still
	// around when it ends so no zombie stays behind meanwhile
	go func() { _ = cmd.Wait() }()
	return t, nil
}

func (d Detached) Cancel(t Timer) error {
	if t.PID <= 0 || procStart(t.PID) != t.Start {
		return nil // gone already (or the PID is someone else's now)
	}
	if t.PID == os.Getpid() || t.PID == unix.Getpgrp() {
		return nil // the rollback itself (the sleeper exec'd it)
	}
	if err := unix.Kill(-t.PID, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill rollback process %d: %w", t.PID, err)
	}
	return nil
}

// procStart is field 22 of /proc/PID/stat ("" when the process is gone).
func procStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 20 {
		return ""
	}
	return f[19] // fields after "(comm)" start at 3
}

// lockTry takes the try lock (flock; released when the process dies).
func lockTry(fs FS) (func(), error) {
	f, err := flockPath(fs.P(TryLockPath), 0o700, lockWait)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}

// flockPath opens (creating it and its directory, dirMode) and locks p
// exclusively; closing the file releases the lock. It waits at most
// lockWait: a holder that hangs (a stuck daemon reload under it) must
// not wedge every later apply, revert and hook behind it unseen. The
// holder writes its pid and command line into the file, so the error
// names it.
func flockPath(p string, dirMode os.FileMode, wait time.Duration) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(p), dirMode); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	told := false
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if errors.Is(err, unix.EWOULDBLOCK) && wait == 0 {
			f.Close()
			return nil, errLockBusy
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			holder, _ := os.ReadFile(p)
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, lockTimeout(fmt.Sprintf("lock %s: still held after %v by %s (a vrf-netsetup that hangs: see its journal, or kill it); nothing changed", p, wait, holderName(holder)))
			}
			return nil, fmt.Errorf("lock %s: %w", p, err)
		}
		if !told {
			// a wait of minutes must not look like a hang
			holder, _ := os.ReadFile(p)
			fmt.Fprintf(os.Stderr, "vrf-netsetup: waiting (up to %v) for %s, held by %s\n", wait, p, holderName(holder))
			told = true
		}
		time.Sleep(lockPoll)
	}
	me := fmt.Sprintf("pid %d (%s)", os.Getpid(), strings.Join(os.Args, " "))
	if f.Truncate(0) == nil {
		_, _ = f.WriteAt([]byte(me+"\n"), 0)
	}
	return f, nil
}

// ErrLockTimeout: a wait for the apply or try lock gave up while another
// process still held it, before anything changed. Retrying later is right
// (the rollback timer's unit restarts on it: SystemdRun).
var ErrLockTimeout = errors.New("lock wait timed out")

type lockTimeout string

func (e lockTimeout) Error() string      { return string(e) }
func (lockTimeout) Is(target error) bool { return target == ErrLockTimeout }

// lockWait bounds a wait for the apply or try lock: longer than any
// apply takes under TCG (a NetworkManager takeover waits up to 90 s).
var lockWait = 5 * time.Minute

const lockPoll = 100 * time.Millisecond

func holderName(b []byte) string {
	if s := strings.TrimSpace(string(b)); s != "" {
		return s
	}
	return "an unknown process"
}

// ReadTryState returns the try state (nil when no try ever ran since boot).
func ReadTryState(fs FS) (*TryState, error) {
	b, err := os.ReadFile(fs.P(TryStatePath))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ts TryState
	if err := json.Unmarshal(b, &ts); err != nil {
		return nil, fmt.Errorf("parse %s: %w", fs.P(TryStatePath), err)
	}
	return &ts, nil
}

func writeTryState(fs FS, ts *TryState) error {
	b, _ := json.MarshalIndent(ts, "", "  ")
	if err := fs.WriteAtomic(TryStatePath, append(b, '\n'), 0o600); err != nil {
		return err
	}
	syncDir(fs.P(TryStateDir)) // the record must survive a power cut
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// bootID is this boot's random id ("" when unreadable); tests replace it.
var bootID = func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// otherBoot: the try ran in an earlier boot (its timer is gone).
func (ts *TryState) otherBoot() bool {
	b := bootID()
	return ts.Boot != "" && b != "" && ts.Boot != b
}

// staleReason says why a pending try can no longer be confirmed ("" while
// it can): the host rebooted since (the timer died with it), or its
// deadline passed without the timer running.
func (ts *TryState) staleReason(boot string, now time.Time) string {
	switch {
	case ts.Boot != "" && boot != "" && ts.Boot != boot:
		return "the host rebooted before confirm (the rollback timer did not survive it)"
	case now.After(ts.Deadline):
		return fmt.Sprintf("its deadline %s passed and the rollback timer did not run", ts.Deadline.Format(time.DateTime))
	}
	return ""
}

// Tryer is `vrf-netsetup try`.
type Tryer struct {
	Runner  *Runner
	Sched   Scheduler
	Timeout time.Duration
	// Rollback is the command the timer runs (vrf-netsetup revert --if-unconfirmed).
	Rollback []string
	SID      int
	Now      func() time.Time
	// Stuck runs when the apply has not returned tryStuckAfter past the
	// rollback deadline (nil: stuckExit).
	Stuck func(deadline time.Time, after time.Duration)
}

// tryStuckAfter: how long past its deadline a try's apply may still run.
// The rollback timer fires at the deadline and waits up to lockWait for
// the try lock this process holds; an apply stuck longer than that would
// make it give up and leave the unconfirmed settings in place. So the try
// process ends itself first, and the waiting rollback restores the pre-try
// state (as after a try killed at any step). Every apply wait is bounded
// well below this; a legitimate apply never gets here.
var tryStuckAfter = 4 * time.Minute

// stuckExit ends a stuck try: what every goroutine was doing goes to
// stderr (the journal, or the admin's terminal), then the process exits,
// which releases the try and apply locks.
func stuckExit(deadline time.Time, after time.Duration) {
	fmt.Fprintf(os.Stderr, "vrf-netsetup try: the apply is still running %v after the rollback deadline %s (stuck): exiting, so that the armed rollback (vrf-netsetup revert --if-unconfirmed) restores the previous state. What it was doing:\n",
		after, deadline.Format(time.TimeOnly))
	buf := make([]byte, 1<<20)
	os.Stderr.Write(buf[:runtime.Stack(buf, true)])
	os.Exit(4)
}

func (t *Tryer) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Try applies cfg with the rollback armed.
func (t *Tryer) Try(cfg Config) error {
	r := t.Runner
	fs := r.Env.FS
	unlock, err := lockTry(fs)
	if err != nil {
		return err
	}
	defer unlock()
	if ts, err := ReadTryState(fs); err != nil {
		return err
	} else if ts != nil && ts.Status == TryPending {
		return fmt.Errorf("a try is already pending (rollback at %s): confirm it (vrf-netsetup confirm) or roll it back (vrf-netsetup revert --if-unconfirmed) first", ts.Deadline.Format(time.TimeOnly))
	} else if ts != nil && ts.Status == TryRollbackFailed {
		// a new try would overwrite the pre-try backup still needed
		return fmt.Errorf("the rollback of the try of %s failed (%s): retry it (vrf-netsetup revert --if-unconfirmed) or keep the current state (vrf-netsetup confirm) first", ts.Started.Format(time.DateTime), ts.Detail)
	}
	var ts *TryState
	var watch *time.Timer // the stuck-apply watch, armed with the rollback
	defer func() {
		if watch != nil {
			watch.Stop()
		}
	}()
	r.GuardWarnOnly = true
	r.Prepare = func(st *State, _ []Step) error {
		data, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		if err := fs.WriteAtomic(TryBackupPath, append(data, '\n'), 0o600); err != nil {
			return fmt.Errorf("save the pre-try state: %w", err)
		}
		tm, err := t.Sched.Schedule(t.Timeout, t.Rollback)
		if err != nil {
			_ = fs.Remove(TryBackupPath)
			return fmt.Errorf("arm the rollback: %w (nothing changed)", err)
		}
		start := t.now()
		ts = &TryState{Status: TryPending, Started: start, Deadline: start.Add(t.Timeout), Config: cfg, SID: t.SID, Timer: tm, Boot: bootID()}
		if err := writeTryState(fs, ts); err != nil {
			_ = t.Sched.Cancel(tm)
			_ = fs.Remove(TryBackupPath)
			return err
		}
		fmt.Fprintf(r.Out, "armed  rollback at %s (in %s) via %s: saved the current state to %s\n",
			ts.Deadline.Format(time.TimeOnly), t.Timeout, tm, TryBackupPath)
		stuck := t.Stuck
		if stuck == nil {
			stuck = stuckExit
		}
		deadline, after := ts.Deadline, tryStuckAfter
		if f := r.Env.Fault; f != nil && f.StuckAfter > 0 {
			after = f.StuckAfter
		}
		watch = time.AfterFunc(deadline.Sub(t.now())+after, func() { stuck(deadline, after) })
		return nil
	}
	err = r.ApplyChanged(cfg)
	switch {
	case errors.Is(err, ErrNothingToDo):
		fmt.Fprintln(r.Out, "try: nothing changed, so there is nothing to confirm")
		return nil
	case ts == nil:
		return err // failed before anything changed
	case err == nil:
		fmt.Fprintf(r.Out, `try: applied, NOT confirmed yet.
  To keep it, log in again (a NEW ssh session proves that logins still work) and run:
      vrf-netsetup confirm
  Otherwise everything (network, DNS, files) is rolled back at %s (in %s).
  Roll back now: vrf-netsetup revert --if-unconfirmed
`, ts.Deadline.Format(time.TimeOnly), t.Timeout)
		return nil
	case errors.Is(err, ErrRolledBack):
		// apply undid its own steps: nothing to confirm or roll back
		cerr := t.Sched.Cancel(ts.Timer)
		ts.Status, ts.Done, ts.Detail = TryRolledBack, t.now(), "apply failed and rolled back: "+err.Error()
		_ = writeTryState(fs, ts)
		_ = fs.Remove(TryBackupPath)
		if cerr != nil {
			fmt.Fprintf(r.Out, "note   could not cancel the rollback (%v): it will find nothing to do\n", cerr)
		}
		return fmt.Errorf("%w (try cancelled: nothing to confirm)", err)
	default:
		return fmt.Errorf("%w\ntry: the rollback stays armed: it restores the previous state at %s unless you run vrf-netsetup confirm", err, ts.Deadline.Format(time.TimeOnly))
	}
}

// ErrConfirmSameSession: confirm from the session that ran try.
var ErrConfirmSameSession = errors.New("confirm from a new login: this session ran try, and it staying alive proves nothing about new ssh logins (log in again, or pass --force)")

// Confirm keeps a pending try: cancels the rollback and drops the pre-try
// backup. sid is the caller's session; force skips the fresh-login check.
func Confirm(fs FS, sched Scheduler, out io.Writer, sid int, force bool) error {
	unlock, err := lockTry(fs)
	if err != nil {
		return err
	}
	defer unlock()
	ts, err := ReadTryState(fs)
	if err != nil {
		return err
	}
	switch {
	case ts == nil:
		return errors.New("no try to confirm (run vrf-netsetup try first)")
	case ts.Status == TryConfirmed:
		fmt.Fprintf(out, "already confirmed at %s\n", ts.Done.Format(time.TimeOnly))
		return nil
	case ts.Status == TryRollbackFailed:
		// the admin's way out of a failed rollback: keep what is there
		ts.Status, ts.Done, ts.Detail = TryConfirmed, time.Now(), "confirmed after a failed rollback ("+ts.Detail+")"
		if err := writeTryState(fs, ts); err != nil {
			return err
		}
		_ = fs.Remove(TryBackupPath)
		fmt.Fprintf(out, "confirmed: keeping the configuration as it is now (the rollback of the try of %s had failed); apply works again\n", ts.Started.Format(time.TimeOnly))
		return nil
	case ts.Status != TryPending:
		return fmt.Errorf("too late: the try of %s ended at %s (%s): %s", ts.Started.Format(time.TimeOnly), ts.Done.Format(time.TimeOnly), ts.Status, ts.Detail)
	case ts.otherBoot():
		return errors.New("too late: the host rebooted during the try, which ends it; roll it back with vrf-netsetup revert --if-unconfirmed (the next apply does that too), then try again")
	case ts.SID == sid && !force:
		return ErrConfirmSameSession
	}
	if err := sched.Cancel(ts.Timer); err != nil {
		// the rollback still fires but finds the try confirmed
		fmt.Fprintf(out, "note   could not cancel the rollback (%v): it will find the try confirmed and do nothing\n", err)
	}
	ts.Status, ts.Done, ts.Detail = TryConfirmed, time.Now(), "confirmed"
	if err := writeTryState(fs, ts); err != nil {
		return err
	}
	_ = fs.Remove(TryBackupPath)
	fmt.Fprintf(out, "confirmed: keeping the configuration applied at %s (VRF %s, %s); rollback cancelled\n", ts.Started.Format(time.TimeOnly), ts.Config.VRF, ts.Config.Iface)
	return nil
}

// RevertIfUnconfirmed is what the rollback timer runs: when a try is still
// pending it restores the pre-try state (network, DNS, files) with
// RevertFrom; otherwise it does nothing. Run by hand it also retries a
// rollback that failed.
func RevertIfUnconfirmed(r *Reader, env *Env, sched Scheduler, out io.Writer, dryRun bool) error {
	unlock, err := lockTry(env.FS)
	if err != nil {
		return err
	}
	defer unlock()
	ts, err := ReadTryState(env.FS)
	if err != nil {
		return err
	}
	if ts == nil || (ts.Status != TryPending && ts.Status != TryRollbackFailed) {
		st := "none"
		if ts != nil {
			st = ts.Status
		}
		fmt.Fprintf(out, "nothing to do: no unconfirmed try (last try: %s)\n", st)
		return nil
	}
	why := "not confirmed before the deadline"
	if ts.Status == TryRollbackFailed {
		why = "retrying the failed rollback (" + ts.Detail + ")"
	} else if ts.otherBoot() {
		why = ts.staleReason(bootID(), time.Now())
	}
	return rollbackTry(r, env, sched, out, dryRun, ts, why)
}

// rollbackTry restores the pre-try state of ts (held under the try lock)
// and records the outcome. A failed rollback is recorded as
// rollback-failed with TryBackupPath kept: apply then refuses to re-apply
// the tried settings until the admin retries (revert --if-unconfirmed) or
// keeps them (confirm).
func rollbackTry(r *Reader, env *Env, sched Scheduler, out io.Writer, dryRun bool, ts *TryState, why string) error {
	fmt.Fprintf(out, "rollback: the try of %s was not confirmed (deadline %s): %s: restoring the previous state\n", ts.Started.Format(time.TimeOnly), ts.Deadline.Format(time.TimeOnly), why)
	err := RevertFrom(r, env, out, dryRun, TryBackupPath, &ts.Config)
	if dryRun {
		return err
	}
	if sched != nil && ts.Status == TryPending && !ts.otherBoot() {
		_ = sched.Cancel(ts.Timer) // run by hand before the deadline
	}
	ts.Done = time.Now()
	if err != nil {
		ts.Status, ts.Detail = TryRollbackFailed, err.Error()
		_ = writeTryState(env.FS, ts)
		return fmt.Errorf("rollback: %w (the pre-try state stays in %s; retry with vrf-netsetup revert --if-unconfirmed, or keep the current state with vrf-netsetup confirm)", err, TryBackupPath)
	}
	ts.Status, ts.Detail = TryRolledBack, why+": rolled back"
	if err := writeTryState(env.FS, ts); err != nil {
		return err
	}
	_ = env.FS.Remove(TryBackupPath)
	fmt.Fprintln(out, "rollback: done, the previous network and DNS configuration is back")
	return nil
}

// ResolvePendingTry runs before every apply on the live system (the boot
// unit's included). The settings on disk during a try are the tried ones,
// so apply must not simply (re-)apply them:
//   - no try, or a confirmed or rolled-back one: nothing to do (false, nil);
//   - a pending try from an earlier boot (its timer died with the reboot)
//     or past its deadline: it is rolled back now, by the same code as
//     revert --if-unconfirmed, and (true, nil) tells the caller to re-read
//     the settings, which are the pre-try ones again;
//   - a pending try inside its window: refused (confirm it or roll it back);
//   - a failed rollback: refused, so the unconfirmed settings are never
//     re-applied behind the admin's back and a failing rollback is not
//     retried at every boot; the error says how to resolve it.
//
// With dryRun the rollback plan is printed and nothing changes.
func ResolvePendingTry(r *Reader, env *Env, sched Scheduler, out io.Writer, dryRun bool, now time.Time) (bool, error) {
	ts, err := ReadTryState(env.FS)
	if err != nil || ts == nil || (ts.Status != TryPending && ts.Status != TryRollbackFailed) {
		return false, err
	}
	unlock, err := lockTry(env.FS)
	if err != nil {
		return false, err
	}
	defer unlock()
	if ts, err = ReadTryState(env.FS); err != nil || ts == nil {
		return false, err
	}
	switch ts.Status {
	case TryRollbackFailed:
		return false, fmt.Errorf("not applying: the rollback of the unconfirmed try of %s failed at %s (%s); the pre-try state is in %s: retry with vrf-netsetup revert --if-unconfirmed, or keep the current settings with vrf-netsetup confirm",
			ts.Started.Format(time.DateTime), ts.Done.Format(time.DateTime), ts.Detail, TryBackupPath)
	case TryPending:
	default:
		return false, nil // finished while we waited for the lock
	}
	why := ts.staleReason(bootID(), now)
	if why == "" {
		return false, fmt.Errorf("a try is pending (rollback at %s): confirm it (vrf-netsetup confirm) or roll it back (vrf-netsetup revert --if-unconfirmed) before apply", ts.Deadline.Format(time.TimeOnly))
	}
	if _, offline := env.Svc.(Offline); !offline && env.Svc != nil && r.Net != nil {
		// at boot networkd may still be bringing the iface up
		WaitNetworkdIdle(r.FS, r.Net, ts.Config.Iface, idleWait, out)
	}
	if dryRun {
		fmt.Fprintf(out, "note   apply first rolls back the unconfirmed try of %s: %s\n", ts.Started.Format(time.DateTime), why)
	}
	if err := rollbackTry(r, env, sched, out, dryRun, ts, why); err != nil {
		return false, err
	}
	return true, nil
}

// HostScheduler arms the rollback with systemd-run when systemd runs the
// host (/run/systemd/system, as sd_booted(3)), else with a Detached child
// of self (vrf-netsetup's path); Cancel follows the kind the timer has.
func HostScheduler(self string) Scheduler {
	return hostSched{det: Detached{Self: []string{self, "__delay"}, Log: TryDir + "/rollback.log"}}
}

type hostSched struct{ det Detached }

func (h hostSched) Schedule(after time.Duration, argv []string) (Timer, error) {
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		if _, err := exec.LookPath("systemd-run"); err == nil {
			return SystemdRun{}.Schedule(after, argv)
		}
	}
	return h.det.Schedule(after, argv)
}

func (h hostSched) Cancel(t Timer) error {
	switch t.Kind {
	case "systemd":
		return SystemdRun{}.Cancel(t)
	case "process":
		return h.det.Cancel(t)
	}
	return nil
}

// ApplyLockPath serializes apply and revert between processes. A DHCP
// client's hook (dhcpcd's) starts apply in the background at each lease,
// also while the apply that enslaved the iface waits for that lease.
const ApplyLockPath = "/run/pam-vrf/apply.lock"

// applyLock is held by this process depth times: apply and revert call
// each other (try's rollback), and a second flock on a new descriptor of
// the same file would wait for the first.
var applyLock struct {
	depth int
	f     *os.File
}

// errLockBusy: the lock is held and the caller asked not to wait.
var errLockBusy = errors.New("held by another vrf-netsetup")

// lockApply takes the apply lock (flock; released when the process dies).
func lockApply(fs FS) (func(), error) { return lockApplyWait(fs, lockWait) }

// lockApplyWait is lockApply waiting at most wait (0: errLockBusy at once
// when another process holds it).
func lockApplyWait(fs FS, wait time.Duration) (func(), error) {
	if applyLock.depth == 0 {
		f, err := flockPath(fs.P(ApplyLockPath), 0o755, wait)
		if err != nil {
			return nil, err
		}
		applyLock.f = f
	}
	applyLock.depth++
	return func() {
		if applyLock.depth--; applyLock.depth == 0 {
			applyLock.f.Close()
			applyLock.f = nil
		}
	}, nil
}
