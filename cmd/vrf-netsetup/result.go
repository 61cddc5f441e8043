package main

// The results of apply, try, revert and confirm for automation: --json
// prints one netsetup.Report (docs/schema/vrf-netsetup-result.schema.json)
// instead of the text, and --exit-changed makes a success that changed the
// host exit ExitChanged instead of 0.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/pam-vrf/pam-vrf/netsetup"
)

// Exit statuses (vrf-netsetup(8) EXIT STATUS).
const (
	ExitOK      = 0 // success; with --exit-changed: success, nothing changed
	ExitFailed  = 1 // failure, or a failed check
	ExitUsage   = 2 // usage error: nothing was read or changed
	ExitChanged = 3 // --exit-changed only: success, and the host was changed (dry run: would be)
	// ExitLockTimeout: another vrf-netsetup held the apply or try lock
	// past the wait; nothing changed, retry later.
	ExitLockTimeout = netsetup.ExitLockTimeout
)

// errChanged is how a command asks run() for ExitChanged; it is not a
// failure and prints nothing.
var errChanged = errors.New("changed")

// result runs body, the command proper, with a Recorder hooked into its
// Env (setup), and turns what it recorded into the output and the exit
// status: with --json the text output is captured and printed inside the
// report; with --exit-changed a success that changed the host (or, with
// --dry-run, would) is errChanged. A failure is the body's error (exit 1;
// run prints it to stderr, with --json too).
func (o *options) result(cmd string, stdout io.Writer, body func(out io.Writer) error) error {
	o.rec = netsetup.NewRecorder(cmd, o.dryRun)
	if cmd == "apply" || cmd == "try" {
		o.rec.Report.Config = netsetup.NewReportConfig(o.cfg)
	}
	out, captured := stdout, &bytes.Buffer{}
	if o.js {
		out = captured
	}
	err := body(out)
	rep := o.rec.Finish(err, captured.String(), o.extraChanged)
	if o.js {
		printJSON(stdout, rep)
	}
	if err == nil && rep.Changed && o.exitChanged {
		return errChanged
	}
	return err
}

// printJSON prints one indented JSON document. A write error is ignored:
// try keeps going when its session (and stdout) is gone.
func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "->" in step descriptions stays readable
	_ = enc.Encode(v)
}
