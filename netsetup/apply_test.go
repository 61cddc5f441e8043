package netsetup

import (
	"strings"
	"testing"
	"time"
)

// A slow step says how long it took, so an apply that takes minutes shows
// where they went; a quick one adds no line.
func TestApplyNotesSlowSteps(t *testing.T) {
	defer func(d time.Duration) { slowWait = d }(slowWait)
	slowWait = 50 * time.Millisecond
	var out strings.Builder
	steps := []Step{
		{ID: "quick", Desc: "quick step", Do: func(*Env) error { return nil }},
		{ID: "slow", Desc: "slow step", Do: func(*Env) error { time.Sleep(80 * time.Millisecond); return nil }},
	}
	if err := Apply(&Env{Out: &out}, steps); err != nil {
		t.Fatal(err)
	}
	want := "apply  quick step\napply  slow step\n       (took "
	if !strings.HasPrefix(out.String(), want) {
		t.Fatalf("output:\n%s\nwant it to start with:\n%s", out.String(), want)
	}
	if strings.Count(out.String(), "took") != 1 {
		t.Fatalf("only the slow step is timed:\n%s", out.String())
	}
}
