package netsetup

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// validateSchema checks v, marshalled as vrf-netsetup prints it, against
// docs/schema/<name>, and that it decodes into a fresh T with unknown
// fields refused (the Go types and the schema say the same).
func validateSchema[T any](t *testing.T, name string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(filepath.Join("..", "docs", "schema", name))
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("%s does not describe this document: %#v\n%s", name, err, data)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var back T
	if err := dec.Decode(&back); err != nil {
		t.Errorf("round trip: %v", err)
	}
}

func statuses(r *Report) string {
	var s []string
	for _, st := range r.Steps {
		s = append(s, st.ID+"="+st.Status)
	}
	return strings.Join(s, " ")
}

// fakeStep does nothing; failDo/failUndo make its Do/Undo fail, noUndo
// gives it none.
func fakeStep(id string, failDo, failUndo, noUndo bool) Step {
	s := Step{ID: id, Desc: "step " + id,
		Do: func(*Env) error {
			if failDo {
				return errors.New(id + " broke")
			}
			return nil
		},
		Undo: func(*Env) error {
			if failUndo {
				return errors.New(id + " cannot be undone")
			}
			return nil
		}}
	if noUndo {
		s.Undo = nil
	}
	return s
}

// TestRecorderStatuses: every way a step can end, and what "changed" says
// about the host afterwards, validated against the documented schema.
func TestRecorderStatuses(t *testing.T) {
	for _, c := range []struct {
		name    string
		steps   []Step
		dryRun  bool
		want    string
		ok      bool
		changed bool
	}{
		{"all applied", []Step{fakeStep("a", false, false, false), fakeStep("b", false, false, false)}, false,
			"a=applied b=applied", true, true},
		{"nothing to do", nil, false, "", true, false},
		{"dry run", []Step{fakeStep("a", false, false, false), fakeStep("b", false, false, false)}, true,
			"a=planned b=planned", true, true},
		{"clean rollback", []Step{fakeStep("a", false, false, false), fakeStep("b", false, false, false), fakeStep("c", true, false, false), fakeStep("d", false, false, false)}, false,
			"a=undone b=undone c=failed d=planned", false, false},
		{"incomplete rollback", []Step{fakeStep("a", false, false, false), fakeStep("b", false, true, false), fakeStep("c", true, false, false)}, false,
			"a=undone b=undo-failed c=failed", false, true},
		{"step without undo stays applied", []Step{fakeStep("a", false, false, true), fakeStep("c", true, false, false)}, false,
			"a=applied c=failed", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := NewRecorder("apply", c.dryRun)
			env := &Env{Observe: rec.Observe}
			var out bytes.Buffer
			env.Out = &out
			env.observe(Event{Kind: EventPlan, Phase: PhaseApply, Steps: c.steps, Notes: []string{"a note"}})
			var err error
			if !c.dryRun {
				err = Apply(env, c.steps)
			}
			rep := rec.Finish(err, out.String(), false)
			if got := statuses(rep); got != c.want || rep.OK != c.ok || rep.Changed != c.changed {
				t.Errorf("got %q ok=%v changed=%v, want %q ok=%v changed=%v", got, rep.OK, rep.Changed, c.want, c.ok, c.changed)
			}
			for _, s := range rep.Steps {
				if (s.Status == StepFailed || s.Status == StepUndoFailed) != (s.Error != "") {
					t.Errorf("step %s: status %s with error %q", s.ID, s.Status, s.Error)
				}
			}
			if (len(c.steps) > 0) != (len(rep.Notes) > 0) {
				t.Errorf("notes %q for %d steps (notes come with a plan)", rep.Notes, len(c.steps))
			}
			if !c.dryRun && len(c.steps) > 0 && len(rep.Output) == 0 {
				t.Errorf("no output lines")
			}
			validateSchema[Report](t, "vrf-netsetup-result.schema.json", rep)
		})
	}
}

// TestReportApplyRevertInNetns: the reports of a real dry run, apply,
// converged apply and revert (the steps this host can run: no VRF driver
// here, see hostPlan), each valid against the schema.
func TestReportApplyRevertInNetns(t *testing.T) {
	h := newHost(t, true)
	cfg := faultCfg()
	run := func(cmd string, dry bool, f func(r *Runner) error) *Report {
		t.Helper()
		r := h.runner()
		var out bytes.Buffer
		r.Out, r.Env.Out, r.DryRun = &out, &out, dry
		rec := NewRecorder(cmd, dry)
		rec.Report.Config = NewReportConfig(cfg)
		r.Env.Observe = rec.Observe
		rep := rec.Finish(f(r), out.String(), false)
		validateSchema[Report](t, "vrf-netsetup-result.schema.json", rep)
		return rep
	}
	apply := func(r *Runner) error { return r.Apply(cfg) }

	before := h.snapshot(t)
	rep := run("apply", true, apply)
	if !rep.OK || !rep.Changed || !rep.DryRun || len(rep.Steps) < 5 || strings.Contains(statuses(rep), "=applied") {
		t.Errorf("dry run: %+v", rep)
	}
	if h.snapshot(t) != before {
		t.Errorf("the dry run changed the host")
	}
	n := len(rep.Steps)

	rep = run("apply", false, apply)
	if !rep.OK || !rep.Changed || len(rep.Steps) != n || strings.Count(statuses(rep), "=applied") != n {
		t.Errorf("apply: %s %+v", statuses(rep), rep)
	}
	if rep.Steps[0].Phase != PhaseApply || !strings.HasPrefix(rep.Output[len(rep.Output)-1], "done: applied") {
		t.Errorf("apply: %+v", rep)
	}

	rep = run("apply", false, apply)
	if !rep.OK || rep.Changed || len(rep.Steps) != 0 || len(rep.Notes) != 0 || !strings.HasPrefix(rep.Output[0], "nothing to do") {
		t.Errorf("second apply: %+v", rep)
	}

	rep = run("revert", false, func(r *Runner) error { return Revert(r.Reader, r.Env, r.Out, false) })
	if !rep.OK || !rep.Changed || len(rep.Steps) == 0 || strings.Count(statuses(rep), "=applied") != len(rep.Steps) || rep.Steps[0].Phase != PhaseRevert {
		t.Errorf("revert: %s %+v", statuses(rep), rep)
	}
	rep = run("revert", false, func(r *Runner) error { return Revert(r.Reader, r.Env, r.Out, false) })
	if rep.OK || rep.Changed || !strings.Contains(rep.Error, "no backup") {
		t.Errorf("second revert: %+v", rep)
	}
}

// TestCheckReportAndMetrics: the check report of a real (failing) check
// and of made-up healthy, failing and could-not-run results validate
// against the schema, and promtool accepts their metrics.
func TestCheckReportAndMetrics(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	cfg := testCfg()
	healthy := []CheckResult{ok("driver", "vrf module loaded"), ok("device", "mgmt is a VRF"), ok("dns stub trap", `"quoted" \ back`)}
	broken := append(append([]CheckResult{}, healthy...), fail("resolver", "vrf-netsetup apply ...", "no nameserver"))
	for _, c := range []struct {
		name     string
		res      []CheckResult
		err      error
		ok       bool
		failed   int
		perCheck int
	}{
		{"healthy", healthy, nil, true, 0, 3},
		{"broken", broken, nil, false, 1, 4},
		{"could not run", nil, errors.New("read live state: boom"), false, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep := NewCheckReport(cfg, c.res, c.err, now)
			if rep.OK != c.ok || rep.Failed != c.failed || len(rep.Checks) != c.perCheck {
				t.Errorf("report %+v", rep)
			}
			validateSchema[CheckReport](t, "vrf-netsetup-check.schema.json", rep)
			m := string(Metrics(rep))
			if got := strings.Count(m, "\n"+MetricCheckOK+"{"); got != c.perCheck {
				t.Errorf("%d %s samples, want %d:\n%s", got, MetricCheckOK, c.perCheck, m)
			}
			for _, want := range []string{
				MetricLastRun + `{vrf="mgmt"} 1795428000` + "\n",
				MetricChecksFailed + `{vrf="mgmt"} ` + string(rune('0'+c.failed)) + "\n",
			} {
				if !strings.Contains(m, want) {
					t.Errorf("missing %q in\n%s", want, m)
				}
			}
			if c.name == "healthy" && !strings.Contains(m, MetricCheckOK+`{check="dns stub trap",vrf="mgmt"} 1`) {
				t.Errorf("label with a space:\n%s", m)
			}
			if run := MetricCheckRunOK + `{vrf="mgmt"} 0`; strings.Contains(m, run) != (c.err != nil) {
				t.Errorf("run_ok:\n%s", m)
			}
			promtoolCheck(t, m)
		})
	}
}

// TestMetricsFileAtomic: the file is replaced whole, mode 0644, no temp
// file left behind; a missing directory is an error, not created.
func TestMetricsFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pam-vrf.prom")
	rep := NewCheckReport(testCfg(), []CheckResult{ok("driver", "x")}, nil, time.Now())
	for i := 0; i < 2; i++ {
		if err := WriteMetricsFile(p, rep); err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v %v", fi.Mode(), err)
	}
	if err := WriteMetricsFile(filepath.Join(dir, "nodir", "x.prom"), rep); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nodir")); err == nil {
		t.Errorf("created the directory")
	}
}

// promtoolCheck runs `promtool check metrics` (Debian's prometheus
// package; scripts/install-deps.sh test installs it) on a metrics text.
func promtoolCheck(t *testing.T, metrics string) {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Errorf("promtool not found: install Debian's prometheus package (scripts/install-deps.sh test)")
		return
	}
	cmd := exec.Command(p, "check", "metrics")
	cmd.Stdin = strings.NewReader(metrics)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\n--- metrics ---\n%s", err, out, metrics)
	}
}
