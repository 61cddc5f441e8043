package netsetup

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrRolledBack wraps the failure of a step after a successful rollback.
var ErrRolledBack = errors.New("rolled back")

// Apply runs the steps in order. On the first failure it undoes the steps
// already applied in reverse order and returns an error that says which step
// failed and whether the rollback was complete.
func Apply(env *Env, steps []Step) error {
	out := env.Out
	if out == nil {
		out = io.Discard
	}
	for i, s := range steps {
		fmt.Fprintf(out, "apply  %s\n", s.Desc)
		do := s.Do
		if env.Fault.fails(i + 1) {
			do = func(*Env) error { return errInjected }
		}
		t0 := time.Now()
		err := do(env)
		if d := time.Since(t0); d >= slowWait {
			fmt.Fprintf(out, "       (took %s)\n", d.Round(100*time.Millisecond))
		}
		if err != nil {
			env.observe(Event{Kind: EventFailed, Index: i, Step: s, Err: err})
			fmt.Fprintf(out, "FAILED %s: %v\n", s.Desc, err)
			uerr := rollback(env, out, steps[:i])
			if uerr != nil {
				return fmt.Errorf("step %q failed: %w; ROLLBACK INCOMPLETE: %v (inspect with `vrf-netsetup check`, or restore from %s with `vrf-netsetup revert`)", s.ID, err, uerr, BackupPath)
			}
			return fmt.Errorf("step %q failed: %w; %d earlier step(s) %w", s.ID, err, i, ErrRolledBack)
		}
		env.observe(Event{Kind: EventApplied, Index: i, Step: s})
		if env.Fault.fire(out, i+1, len(steps), s) {
			return ErrFaultKilled
		}
	}
	return nil
}

func rollback(env *Env, out io.Writer, done []Step) error {
	var errs []error
	for i := len(done) - 1; i >= 0; i-- {
		s := done[i]
		if s.Undo == nil {
			continue
		}
		fmt.Fprintf(out, "undo   %s\n", s.Desc)
		if err := s.Undo(env); err != nil {
			env.observe(Event{Kind: EventUndoFailed, Index: i, Step: s, Err: err})
			fmt.Fprintf(out, "FAILED undo %s: %v\n", s.Desc, err)
			errs = append(errs, fmt.Errorf("undo %q: %w", s.ID, err))
			continue
		}
		env.observe(Event{Kind: EventUndone, Index: i, Step: s})
	}
	return errors.Join(errs...)
}
