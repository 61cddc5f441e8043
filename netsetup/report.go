package netsetup

import (
	"strings"
	"time"
)

// The machine-readable results of vrf-netsetup (--json). They are an
// interface: field names and meanings only change with SchemaVersion, and
// docs/schema/*.schema.json documents them (the tests validate the real
// output against those files). Adding a field, a check name, a step ID or
// a note keeps the version; consumers ignore fields they do not know.

// SchemaVersion is the "schema_version" of every JSON document vrf-netsetup
// prints. It changes only when a field is removed or renamed or its meaning
// changes.
const SchemaVersion = 1

// Event is what Env.Observe is told: a plan (the steps about to run, or
// that a dry run would run) or the outcome of one step of that plan.
type Event struct {
	Kind  EventKind
	Phase string   // EventPlan: PhaseApply or PhaseRevert
	Steps []Step   // EventPlan: the plan
	Notes []string // EventPlan: what apply prints as "note" lines
	Index int      // step events: index of Step in the last plan
	Step  Step
	Err   error // EventFailed, EventUndoFailed
}

// EventKind says what happened.
type EventKind int

const (
	EventPlan       EventKind = iota // a plan was made
	EventApplied                     // a step's Do succeeded
	EventFailed                      // a step's Do failed (the rollback follows)
	EventUndone                      // the rollback undid a step
	EventUndoFailed                  // the rollback could not undo a step
)

// Phases of a plan: apply's own, or a revert (revert, a try's rollback,
// also the one apply runs first for a stale try).
const (
	PhaseApply  = "apply"
	PhaseRevert = "revert"
)

func (e *Env) observe(ev Event) {
	if e != nil && e.Observe != nil {
		e.Observe(ev)
	}
}

// Step statuses in a Report.
const (
	StepPlanned    = "planned"     // not run: a dry run, or an earlier step failed or was refused
	StepApplied    = "applied"     // done (and not undone)
	StepFailed     = "failed"      // its change failed; the steps before it were rolled back
	StepUndone     = "undone"      // done, then undone by the rollback
	StepUndoFailed = "undo-failed" // done, and the rollback could not undo it
)

// Report is the JSON document of apply, try, revert and confirm --json
// (docs/schema/vrf-netsetup-result.schema.json).
type Report struct {
	SchemaVersion int    `json:"schema_version"`
	Command       string `json:"command"` // apply, try, revert, confirm
	OK            bool   `json:"ok"`
	// Changed: the command changed the host; with DryRun, it would have
	// (the plan is not empty). A failed command reports whether it left
	// changes behind (a step it could not roll back).
	Changed bool          `json:"changed"`
	DryRun  bool          `json:"dry_run"`
	Config  *ReportConfig `json:"config,omitempty"`
	Notes   []string      `json:"notes"`
	Steps   []StepReport  `json:"steps"`
	Try     *TryReport    `json:"try,omitempty"`
	Error   string        `json:"error,omitempty"`
	// Output is what the command prints without --json, line by line.
	Output []string `json:"output"`
}

// ReportConfig is the configuration the command worked with.
type ReportConfig struct {
	VRF   string `json:"vrf"`
	Table uint32 `json:"table"`
	Iface string `json:"iface"`
	DNS   string `json:"dns"`
	SSHD  string `json:"sshd"`
	// Services: the --service units (omitted when none).
	Services []string `json:"services,omitempty"`
}

// StepReport is one planned step and what became of it.
type StepReport struct {
	Phase       string `json:"phase"`
	ID          string `json:"id"`
	Description string `json:"description"`
	Status      string `json:"status"`
	Error       string `json:"error,omitempty"`
}

// TryReport is the try record after try or confirm (TryStatePath).
type TryReport struct {
	Status   string    `json:"status"`
	Started  time.Time `json:"started"`
	Deadline time.Time `json:"deadline"`
	Detail   string    `json:"detail,omitempty"`
}

// NewTryReport summarises a try record (nil for none).
func NewTryReport(ts *TryState) *TryReport {
	if ts == nil {
		return nil
	}
	return &TryReport{Status: ts.Status, Started: ts.Started.UTC(), Deadline: ts.Deadline.UTC(), Detail: ts.Detail}
}

// NewReportConfig is cfg as reported.
func NewReportConfig(cfg Config) *ReportConfig {
	return &ReportConfig{VRF: cfg.VRF, Table: cfg.Table, Iface: cfg.Iface, DNS: cfg.DNS, SSHD: cfg.SSHD, Services: cfg.services()}
}

// Recorder builds a Report from the events of one command: set
// Env.Observe = rec.Observe, run the command, then Finish.
type Recorder struct {
	Report Report
	base   int // index in Report.Steps of the current plan's first step
}

// NewRecorder starts the report of command.
func NewRecorder(command string, dryRun bool) *Recorder {
	return &Recorder{Report: Report{SchemaVersion: SchemaVersion, Command: command, DryRun: dryRun,
		Notes: []string{}, Steps: []StepReport{}, Output: []string{}}}
}

// Observe records one event (Env.Observe).
func (r *Recorder) Observe(ev Event) {
	if ev.Kind == EventPlan {
		r.base = len(r.Report.Steps)
		for _, s := range ev.Steps {
			r.Report.Steps = append(r.Report.Steps, StepReport{Phase: ev.Phase, ID: s.ID, Description: s.Desc, Status: StepPlanned})
		}
		if len(ev.Steps) > 0 {
			r.Report.Notes = append(r.Report.Notes, ev.Notes...)
		}
		return
	}
	i := r.base + ev.Index
	if i < 0 || i >= len(r.Report.Steps) {
		return // a step outside any plan (cannot happen with Apply)
	}
	st := &r.Report.Steps[i]
	switch ev.Kind {
	case EventApplied:
		st.Status = StepApplied
	case EventFailed:
		st.Status = StepFailed
	case EventUndone:
		st.Status = StepUndone
	case EventUndoFailed:
		st.Status = StepUndoFailed
	}
	if ev.Err != nil {
		st.Error = ev.Err.Error()
	}
}

// Finish fills in ok, changed, error and the printed output. changed is
// true when a step's change is in place (applied, or not undone), or, in a
// dry run, when there is a plan; extra covers changes made outside steps
// (confirm).
func (r *Recorder) Finish(err error, output string, extra bool) *Report {
	rep := &r.Report
	rep.OK = err == nil
	if err != nil {
		rep.Error = err.Error()
	}
	rep.Changed = extra
	for _, s := range rep.Steps {
		switch {
		case rep.DryRun:
			rep.Changed = true
		case s.Status == StepApplied, s.Status == StepUndoFailed:
			rep.Changed = true
		}
	}
	rep.Output = []string{}
	for _, l := range strings.Split(strings.TrimRight(output, "\n"), "\n") {
		if l != "" {
			rep.Output = append(rep.Output, l)
		}
	}
	return rep
}
