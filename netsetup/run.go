package netsetup

import (
	"fmt"
	"io"
)

// Runner ties reader, plan, guard, apply and verify together for the CLI.
type Runner struct {
	Reader *Reader
	Env    *Env
	Out    io.Writer
	DryRun bool
	Force  bool // skip the lockout guard
	Quiet  bool // print nothing when there is nothing to do
	Guard  *Guard
}

// Apply is plan -> print -> apply -> verify.
func (r *Runner) Apply(cfg Config) error {
	if _, off := r.Env.Svc.(Offline); !off && r.Env.Svc != nil {
		// At boot the unit can run while networkd is still enslaving the
		// iface / running DHCP: read the state once networkd is done.
		WaitNetworkdIdle(r.Reader.FS, r.Reader.Net, cfg.Iface, idleWait)
	}
	st, err := r.Reader.Read(cfg)
	if err != nil {
		return fmt.Errorf("read live state: %w", err)
	}
	steps, err := Plan(cfg, st)
	if err != nil {
		return err
	}
	if len(steps) == 0 {
		if !r.Quiet {
			fmt.Fprintf(r.Out, "nothing to do: VRF %s with %s is configured\n", cfg.VRF, cfg.Iface)
		}
		return nil
	}
	for _, n := range Notes(cfg, st) {
		fmt.Fprintf(r.Out, "note   %s\n", n)
	}
	fmt.Fprintf(r.Out, "plan (%d steps):\n", len(steps))
	for i, s := range steps {
		fmt.Fprintf(r.Out, "  %2d. %s\n", i+1, s.Desc)
	}
	if r.DryRun {
		fmt.Fprintln(r.Out, "dry run: nothing changed")
		return nil
	}
	if !r.Force && r.Guard != nil {
		if err := r.Guard.Check(cfg, st, steps); err != nil {
			return err
		}
	}
	if err := Apply(r.Env, steps); err != nil {
		return err
	}
	// Verify: re-read and re-plan; a converged host has an empty plan.
	st2, err := r.Reader.Read(cfg)
	if err != nil {
		return fmt.Errorf("verify: read live state: %w", err)
	}
	left, err := Plan(cfg, st2)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
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
