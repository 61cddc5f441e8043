package netsetup

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/pam-vrf/pam-vrf/netsetup/hostnet"
)

// ApplyMarker exists while apply runs its steps. It lists the service kinds
// the plan reloads/restarts; an apply that dies (SIGKILL, crash) leaves it
// behind, and the next apply re-runs those service actions even though the
// files are already in place (state.go: Interrupted). It lives in /run: after
// a power loss every daemon starts fresh from the files anyway.
const ApplyMarker = "/run/pam-vrf/apply-interrupted"

// Runner ties reader, plan, guard, apply and verify together for the CLI.
type Runner struct {
	Reader *Reader
	Env    *Env
	Out    io.Writer
	DryRun bool
	Force  bool // skip the lockout guard and the host-shape refusal (Unsupported)
	Quiet  bool // print nothing when there is nothing to do
	Guard  *Guard
	// GuardWarnOnly: print the guard's refusal as a note and go ahead
	// (try: the rollback timer is the safety net).
	GuardWarnOnly bool
	// Prepare runs after the guard, right before the first step, with the
	// state the plan was made from (try arms its rollback there).
	Prepare func(st *State, steps []Step) error
	// Reload, when the settings came from a file (--config), reads them
	// again once apply holds the lock: an apply a hook started while
	// another one ran must not bring back what that one's rollback (or a
	// revert) undid. gone: the file no longer exists, nothing to apply.
	Reload func() (cfg Config, gone bool, err error)
	// DNSOnly: apply only the nameserver steps (steering rules, connect
	// hooks; Step.Follow) and only while the VRF is up with the iface in
	// it: the nameserver watch's apply, which must never redo, or undo,
	// what an admin left (a failed boot unit, a half-reverted host).
	DNSOnly bool

	plan func(Config, *State) ([]Step, error) // nil: Plan (tests narrow it)
}

// ErrNothingToDo is returned by Runner.Apply when the host has converged
// and Prepare was not called.
var ErrNothingToDo = errors.New("nothing to do")

// Apply is plan -> print -> apply -> verify.
func (r *Runner) Apply(cfg Config) error {
	err := r.apply(cfg)
	if errors.Is(err, ErrNothingToDo) {
		return nil
	}
	return err
}

// ApplyChanged is Apply, but says ErrNothingToDo when the host had converged.
func (r *Runner) ApplyChanged(cfg Config) error { return r.apply(cfg) }

func (r *Runner) apply(cfg Config) error {
	plan := r.plan
	if plan == nil {
		plan = Plan
	}
	if r.DNSOnly {
		plan = dnsOnlyPlan(plan, r.Out)
	}
	_, offline := r.Env.Svc.(Offline)
	if !offline && r.Env.Svc != nil && !r.DryRun {
		wait := lockWait
		if r.DNSOnly {
			// an apply or revert running now steers the nameservers
			// itself (its verify re-plans) or removes the steering: the
			// watch neither waits for it nor makes it wait
			wait = 0
		}
		unlock, err := lockApplyWait(r.Env.FS, wait)
		if errors.Is(err, errLockBusy) {
			if !r.Quiet {
				fmt.Fprintln(r.Out, "nothing to do: another vrf-netsetup holds the apply lock")
			}
			return ErrNothingToDo
		}
		if err != nil {
			return err
		}
		defer unlock()
		if r.Reload != nil {
			c, gone, err := r.Reload()
			if err != nil {
				return err
			}
			if gone {
				if !r.Quiet {
					fmt.Fprintln(r.Out, "nothing to do: the settings file is gone (a revert or a failed apply's rollback removed it)")
				}
				return ErrNothingToDo
			}
			cfg = c
		}
	}
	// The waits for the manager below are for a full apply (the boot
	// race, our own reconfigure); --dns-only changes nothing networkd or a
	// DHCP client does, and must not hold the lock while they work.
	waitManager := !offline && r.Env.Svc != nil && !r.DNSOnly
	if waitManager {
		// At boot the unit can run while networkd is still enslaving the
		// iface / running DHCP: read the state once networkd is done.
		WaitNetworkdIdle(r.Reader.FS, r.Reader.Net, cfg.Iface, idleWait, r.Out)
	}
	st, err := r.Reader.Read(cfg)
	if err != nil {
		return fmt.Errorf("read live state: %w", err)
	}
	// At boot the unit can run before dhcpcd has its lease (ifup returns
	// while dhcpcd still probes the address): the plan would wait for no
	// route after the enslave and miss the lease's server. Read the state
	// once the lease is there.
	if waitManager && hostDHCP(cfg, st).RoutesByHook && !hasV4(st, cfg.Iface) &&
		WaitIPv4(r.Reader.Net, cfg.Iface, idleWait) {
		if st, err = r.Reader.Read(cfg); err != nil {
			return fmt.Errorf("read live state: %w", err)
		}
	}
	// At boot, a manager that sets the iface up after its unit is
	// "started" (NetworkManager): read the state once it is done. Other
	// applies (a hook's at each lease, an admin's) find it done already.
	if tk := takeoverOf(cfg, st); !offline && r.Env.Svc != nil && tk != nil && len(tk.Idle.Run) > 0 && runningIn(UnitName) {
		if runCmd(tk.Idle)(r.Env) == nil {
			if st, err = r.Reader.Read(cfg); err != nil {
				return fmt.Errorf("read live state: %w", err)
			}
		}
	}
	steps, err := plan(cfg, st)
	if err != nil {
		return err
	}
	r.Env.observe(Event{Kind: EventPlan, Phase: PhaseApply, Steps: steps, Notes: Notes(cfg, st)})
	if len(steps) == 0 {
		if !r.Quiet {
			fmt.Fprintf(r.Out, "nothing to do: VRF %s with %s is configured\n", cfg.VRF, cfg.Iface)
		}
		if len(st.Interrupted) > 0 && !r.DryRun && !r.DNSOnly {
			_ = r.Env.FS.Remove(ApplyMarker)
		}
		return ErrNothingToDo
	}
	if len(st.Interrupted) > 0 {
		fmt.Fprintf(r.Out, "note   an earlier apply was interrupted (%s exists): its service actions run again (%s)\n", ApplyMarker, strings.Join(st.Interrupted, " "))
	}
	for _, n := range Notes(cfg, st) {
		fmt.Fprintf(r.Out, "note   %s\n", n)
	}
	fmt.Fprintf(r.Out, "plan (%d steps):\n", len(steps))
	for i, s := range steps {
		fmt.Fprintf(r.Out, "  %2d. %s\n", i+1, s.Desc)
	}
	// A host apply cannot keep configured is refused before anything
	// changes, except by the boot unit: it runs only where an apply was
	// accepted (with --force, on such a host) and must not fail each boot.
	if why := Unsupported(cfg, st); why != "" {
		switch {
		case r.Force:
			fmt.Fprintf(r.Out, "note   --force: applying although %s\n", why)
		case r.DryRun || runningIn(UnitName) || r.DNSOnly:
			fmt.Fprintf(r.Out, "note   not kept configured here: %s\n", why)
		default:
			return unsupportedError(cfg, why)
		}
	}
	if r.DryRun {
		fmt.Fprintln(r.Out, "dry run: nothing changed")
		return nil
	}
	if !r.Force && r.Guard != nil {
		if err := r.Guard.Check(cfg, st, steps); err != nil {
			if !r.GuardWarnOnly {
				return err
			}
			fmt.Fprintf(r.Out, "note   lockout guard: %v; going ahead because the rollback is armed\n", err)
		}
	}
	if r.Prepare != nil {
		if err := r.Prepare(st, steps); err != nil {
			return err
		}
	}
	// --dns-only takes no service steps: the marker stays for apply
	marked := len(st.Interrupted) > 0 && !r.DNSOnly
	if kinds := serviceKinds(steps, st.Interrupted, takeoverOf(cfg, st)); len(kinds) > 0 && !offline && !r.DNSOnly {
		if err := r.Env.FS.WriteAtomic(ApplyMarker, []byte(strings.Join(kinds, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		marked = true
	}
	err = Apply(r.Env, steps)
	if errors.Is(err, ErrFaultKilled) {
		return err // a fake kill: leave everything as a real one would
	}
	if marked {
		_ = r.Env.FS.Remove(ApplyMarker)
	}
	if err != nil {
		return err
	}
	// Verify: re-read and re-plan; a converged host has an empty plan.
	// Only once networkd is done with the iface: our reload/reconfigure
	// can leave it configuring still (a second pass after an interrupted
	// apply, seen in the VM), and a verify or a revert racing it saw, or
	// left, the link half configured.
	if waitManager {
		WaitNetworkdIdle(r.Reader.FS, r.Reader.Net, cfg.Iface, idleWait, r.Out)
	}
	var st2 *State
	var left []Step
	replan := func() error {
		var err error
		if st2, err = r.Reader.Read(cfg); err != nil {
			return fmt.Errorf("verify: read live state: %w", err)
		}
		if left, err = plan(cfg, st2); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		return nil
	}
	if err := replan(); err != nil {
		return err
	}
	// dhcpcd adds the routes of each RA to main again (it saw them go) and
	// its hook moves them into the VRF table a moment later: a verify that
	// read in between waits for the hook instead of failing.
	for deadline := time.Now().Add(hookMoveWait); len(left) > 0 && allSteps(left, isRouteMove) && hostDHCP(cfg, st2).RoutesByHook && time.Now().Before(deadline); {
		time.Sleep(settlePoll)
		if err := replan(); err != nil {
			return err
		}
	}
	// A nameserver the manager learnt (or dropped) while apply ran, e.g.
	// NetworkManager writing an RA's RDNSS into resolv.conf a moment after
	// the plan was made: steer it now, a bounded number of times.
	for round := 0; round < followRounds && len(left) > 0 && allSteps(left, isFollow); round++ {
		fmt.Fprintf(r.Out, "note   the host's nameservers changed during apply: %d more step(s)\n", len(left))
		for _, s := range left {
			fmt.Fprintf(r.Out, "       %s\n", s.Desc)
		}
		env := *r.Env
		env.Fault = nil // the fault build's step numbers are the plan's
		if err := Apply(&env, left); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if err := replan(); err != nil {
			return err
		}
	}
	if len(left) > 0 {
		msg := ""
		for _, s := range left {
			msg += "\n  " + s.Desc
		}
		return fmt.Errorf("verify: %d step(s) still pending after apply (something else changed the state; run `vrf-netsetup check`):%s", len(left), msg)
	}
	fmt.Fprintf(r.Out, "done: applied %d steps, verified\n", len(steps))
	return nil
}

// hookMoveWait bounds verify's wait for a DHCP client's hook to move the
// routes the client just added to main.
const hookMoveWait = 10 * time.Second

// followRounds bounds verify's passes over Follow steps: a manager that
// changes its nameservers faster than that is reported, not chased.
const followRounds = 3

// dnsOnlyPlan narrows plan to its nameserver steps, and to none unless
// the VRF is up with the iface enslaved (steering into a table nothing
// routes would blackhole the default VRF's DNS). The other pending steps
// are named once: they are apply's.
func dnsOnlyPlan(plan func(Config, *State) ([]Step, error), out io.Writer) func(Config, *State) ([]Step, error) {
	told := false
	return func(cfg Config, st *State) ([]Step, error) {
		steps, err := plan(cfg, st)
		if err != nil {
			return nil, err
		}
		var dns []Step
		other := 0
		for _, s := range steps {
			if s.Follow {
				dns = append(dns, s)
			} else if s.ID != "backup" {
				other++
			}
		}
		why := ""
		switch vrf, ok := st.Links[cfg.VRF]; {
		case !ok || vrf.Kind != "vrf" || !vrf.Up:
			why = fmt.Sprintf("VRF %s is not up", cfg.VRF)
		case st.Links[cfg.Iface].Master != vrf.Index:
			why = fmt.Sprintf("%s is not in VRF %s", cfg.Iface, cfg.VRF)
		}
		if !told && (other > 0 || why != "" && len(dns) > 0) {
			told = true
			if why != "" {
				fmt.Fprintf(out, "note   --dns-only: %s; the nameserver steps wait for it\n", why)
			}
			if other > 0 {
				fmt.Fprintf(out, "note   --dns-only: %d other step(s) pending, not taken here (vrf-netsetup check names them; vrf-netsetup apply takes them)\n", other)
			}
		}
		if why != "" {
			return nil, nil
		}
		return dns, nil
	}
}

func isFollow(s Step) bool    { return s.Follow }
func isRouteMove(s Step) bool { return s.RouteMove }

// allSteps reports whether every step satisfies ok.
func allSteps(steps []Step, ok func(Step) bool) bool {
	for _, s := range steps {
		if !ok(s) {
			return false
		}
	}
	return true
}

// serviceKinds: the file kinds (persist.go fileSpec.Kind) whose daemons the
// plan reloads or restarts, plus "ssh" for the sshd listener pin and the
// manager's kind for its takeover (tk, nil: none). Kinds an interrupted
// earlier apply left (old) are kept.
func serviceKinds(steps []Step, old []string, tk *hostnet.Takeover) []string {
	set := map[string]bool{}
	for _, k := range old {
		set[k] = true
	}
	for _, s := range steps {
		switch {
		case s.File != nil:
			if s.File.Kind != "" {
				set[s.File.Kind] = true
			}
		case s.ID == "svc-ssh-restart":
			set["ssh"] = true
		case tk != nil && s.ID == tk.Enslave.ID:
			set[tk.FileKind] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
