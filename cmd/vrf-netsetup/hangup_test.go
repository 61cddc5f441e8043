package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The child half of TestSurviveHangup: hang itself up, then report.
func init() {
	mode := os.Getenv("PAMVRF_TEST_HANGUP")
	if mode == "" {
		return
	}
	if mode == "survive" {
		surviveHangup()
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	time.Sleep(100 * time.Millisecond) // the signal is delivered asynchronously
	os.Stdout.WriteString("finished\n")
	os.Exit(0)
}

// An apply whose ssh session ends (SIGHUP) must finish, not stop between
// two steps; the control run shows the signal would have killed it.
func TestSurviveHangup(t *testing.T) {
	for _, mode := range []string{"survive", "control"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PAMVRF_TEST_HANGUP="+mode)
		out, err := cmd.Output()
		finished := err == nil && strings.Contains(string(out), "finished")
		if finished != (mode == "survive") {
			t.Errorf("%s: finished=%v (err %v, output %q)", mode, finished, err, out)
		}
	}
}
