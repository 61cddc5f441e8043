package netsetup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CheckReport is the JSON document of `vrf-netsetup check --json`
// (docs/schema/vrf-netsetup-check.schema.json).
type CheckReport struct {
	SchemaVersion int           `json:"schema_version"`
	Command       string        `json:"command"` // "check"
	OK            bool          `json:"ok"`      // every check passed
	Time          time.Time     `json:"time"`    // when the checks ran (UTC)
	Config        *ReportConfig `json:"config"`
	Passed        int           `json:"passed"`
	Failed        int           `json:"failed"`
	Checks        []CheckResult `json:"checks"`
	// Error: the checks could not run at all (then Checks is empty).
	Error string `json:"error,omitempty"`
}

// NewCheckReport summarises the results of Checker.Run (err: its error).
func NewCheckReport(cfg Config, res []CheckResult, err error, now time.Time) *CheckReport {
	r := &CheckReport{SchemaVersion: SchemaVersion, Command: "check", Time: now.UTC().Truncate(time.Second),
		Config: NewReportConfig(cfg), Checks: []CheckResult{}}
	if err != nil {
		r.Error = err.Error()
		return r
	}
	for _, c := range res {
		if c.OK {
			r.Passed++
		} else {
			r.Failed++
		}
		r.Checks = append(r.Checks, c)
	}
	r.OK = r.Failed == 0
	return r
}

// Metric names of the node_exporter textfile (check --metrics-file).
const (
	MetricCheckOK      = "pam_vrf_check_ok"
	MetricChecksFailed = "pam_vrf_checks_failed"
	MetricCheckRunOK   = "pam_vrf_check_run_ok"
	MetricLastRun      = "pam_vrf_check_last_run_timestamp_seconds"
)

// Metrics renders a CheckReport in the Prometheus text exposition format
// that node_exporter's textfile collector reads: one gauge per check
// (pam_vrf_check_ok{check="...",vrf="..."} 1 or 0), the number of failed
// checks, whether the checks could run at all, and when they ran. Every
// series carries the VRF, so one host can export more than one VRF.
func Metrics(r *CheckReport) []byte {
	var b strings.Builder
	vrf := `vrf="` + labelEscape(r.Config.VRF) + `"`
	gauge := func(name, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
	}
	gauge(MetricCheckOK, "Whether a vrf-netsetup check passed (1) or failed (0); see vrf-netsetup(8) for the checks.")
	for _, c := range r.Checks {
		v := 0
		if c.OK {
			v = 1
		}
		fmt.Fprintf(&b, "%s{check=\"%s\",%s} %d\n", MetricCheckOK, labelEscape(c.Name), vrf, v)
	}
	gauge(MetricChecksFailed, "Number of vrf-netsetup checks that failed.")
	fmt.Fprintf(&b, "%s{%s} %d\n", MetricChecksFailed, vrf, r.Failed)
	gauge(MetricCheckRunOK, "Whether vrf-netsetup check could run at all (0: it stopped with an error and there are no per-check gauges).")
	run := 1
	if r.Error != "" {
		run = 0
	}
	fmt.Fprintf(&b, "%s{%s} %d\n", MetricCheckRunOK, vrf, run)
	gauge(MetricLastRun, "When vrf-netsetup check last ran, in seconds since the epoch.")
	fmt.Fprintf(&b, "%s{%s} %s\n", MetricLastRun, vrf, strconv.FormatInt(r.Time.Unix(), 10))
	return []byte(b.String())
}

// labelEscape escapes a label value of the text format: backslash, double
// quote and newline.
func labelEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// WriteMetricsFile writes Metrics(r) to path atomically (a temp file in the
// same directory, not ending in .prom, renamed over path), mode 0644, so
// node_exporter never reads half a file. The directory must exist: a
// mistyped collector directory is an error, not a new directory nobody reads.
func WriteMetricsFile(path string, r *CheckReport) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil || !fi.IsDir() {
		return fmt.Errorf("metrics file %s: directory %s does not exist (node_exporter's textfile directory, e.g. /var/lib/prometheus/node-exporter)", path, filepath.Dir(abs))
	}
	if err := (FS{}).WriteAtomic(abs, Metrics(r), 0o644); err != nil {
		return fmt.Errorf("metrics file: %w", err)
	}
	syncDir(filepath.Dir(abs))
	return nil
}
