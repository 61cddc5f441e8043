package netsetup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Fault is test-only fault injection for Apply. Only a binary built with
// `-tags netsetupfault` ever sets it (cmd/vrf-netsetup/fault_on.go reads
// VRF_NETSETUP_FAULT there; release builds compile fault_off.go, which
// ignores the variable), so it cannot fire in production by accident.
type Fault struct {
	// KillAfter N (1-based): once step N has succeeded, Apply calls Exit
	// without rolling anything back, as if the process had been SIGKILLed or
	// the power had failed right after that step.
	KillAfter int
	// FailAt N (1-based): step N fails instead of running, so Apply rolls
	// back steps 1..N-1, as after any real failure there.
	FailAt int
	// HangAfter N (1-based): once step N has succeeded, Apply blocks for
	// good, as a step whose reply never comes would; a try then ends
	// itself StuckAfter past its deadline (tryStuckAfter without a fault).
	HangAfter  int
	StuckAfter time.Duration
	Exit       func(code int) // nil: os.Exit
}

// FaultExitCode is the exit status of an injected kill (128+SIGKILL).
const FaultExitCode = 137

// FaultEnv is the variable a netsetupfault build reads: "kill-after-step:N",
// "fail-at-step:N" or "hang-after-step:N".
const FaultEnv = "VRF_NETSETUP_FAULT"

// ParseFault parses a FaultEnv value ("" = no fault).
func ParseFault(v string) (*Fault, error) {
	if v == "" {
		return nil, nil
	}
	kind, num, _ := strings.Cut(v, ":")
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 {
		kind = ""
	}
	switch kind {
	case "fail-at-step":
		return &Fault{FailAt: n}, nil
	case "kill-after-step":
		return &Fault{KillAfter: n}, nil
	case "hang-after-step":
		return &Fault{HangAfter: n, StuckAfter: hangStuckAfter}, nil
	}
	return nil, fmt.Errorf("invalid %s=%q: want kill-after-step:N, fail-at-step:N or hang-after-step:N (N >= 1)", FaultEnv, v)
}

// errInjected is the failure of the step FailAt names.
var errInjected = errors.New("fault injection: this step fails")

// fails reports whether step i (1-based) is the one to fail.
func (f *Fault) fails(i int) bool { return f != nil && f.FailAt == i }

// ErrFaultKilled is returned by Apply when a fake Exit returned.
var ErrFaultKilled = errors.New("fault injection: killed (no rollback)")

// hangStuckAfter: a hung try's grace in the fault build (a guest test
// waits through it).
const hangStuckAfter = 20 * time.Second

// fire reports whether the fault went off after step i of total.
func (f *Fault) fire(out io.Writer, i, total int, s Step) bool {
	if f != nil && f.HangAfter == i {
		fmt.Fprintf(out, "FAULT  hangs after step %d/%d (%s)\n", i, total, s.ID)
		for {
			time.Sleep(time.Hour)
		}
	}
	if f == nil || f.KillAfter != i {
		return false
	}
	fmt.Fprintf(out, "FAULT  killed after step %d/%d (%s): no rollback\n", i, total, s.ID)
	if f.Exit != nil {
		f.Exit(FaultExitCode)
		return true
	}
	os.Exit(FaultExitCode)
	return true
}
