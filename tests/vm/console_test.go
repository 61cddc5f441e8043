package vm

import (
	"os"
	"path/filepath"
	"testing"
)

// Only a panic in the console log's last boot counts: a guest that
// panicked once and then booted is not retried again.
func TestPanickedLastBoot(t *testing.T) {
	log := filepath.Join(t.TempDir(), "console.log")
	panicBoot := "\n" + bootMarker + "T1 =====\n[ 1.8] Kernel panic - not syncing: Fatal exception in interrupt\n"
	okBoot := "\n" + bootMarker + "T2 =====\n[ 1.8] Run /init as init process\n"
	for _, c := range []struct {
		log  string
		want bool
	}{
		{panicBoot, true},
		{panicBoot + okBoot, false},
		{okBoot + panicBoot, true},
		{okBoot, false},
	} {
		if err := os.WriteFile(log, []byte(c.log), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := panickedLastBoot(log); got != c.want {
			t.Errorf("%q: %v, want %v", c.log, got, c.want)
		}
	}
}
