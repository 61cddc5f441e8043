package netsetup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestNetworkdAdminState(t *testing.T) {
	root := t.TempDir()
	fs := FS{Root: root}
	if s := networkdAdminState(fs, 2); s != "" {
		t.Errorf("no file: %q", s)
	}
	p := filepath.Join(root, networkdLinksDir)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(p, "2"), []byte("# This is private data. Do not parse.\nADMIN_STATE=configuring\nOPER_STATE=routable\n"), 0o644)
	if s := networkdAdminState(fs, 2); s != "configuring" || !networkdBusy(s) {
		t.Errorf("state %q", s)
	}
	for _, s := range []string{"configured", "failed", "unmanaged", ""} {
		if networkdBusy(s) {
			t.Errorf("%q counted as busy", s)
		}
	}
}

func TestDefaultFamilies(t *testing.T) {
	st := freshState()
	if f := defaultFamilies(st, "eth0", 1000); len(f) != 2 || f[0] != unix.AF_INET || f[1] != unix.AF_INET6 {
		t.Errorf("fresh host: %v", f)
	}
	// hand-made VRF before apply: v6 RA route flushed, v4 default in the
	// VRF table, DHCP address still there
	st.Routes = []Route{{Family: unix.AF_INET, Table: 1000, Dst: "default", Gw: "192.0.2.1", Dev: "eth0", Type: unix.RTN_UNICAST}}
	if f := defaultFamilies(st, "eth0", 1000); len(f) != 1 || f[0] != unix.AF_INET {
		t.Errorf("hand-made VRF: %v", f)
	}
	st.Routes = nil
	st.Addrs["eth0"] = []Addr{{CIDR: "192.0.2.10/24", Dynamic: true}}
	if f := defaultFamilies(st, "eth0", 1000); len(f) != 1 || f[0] != unix.AF_INET {
		t.Errorf("DHCP address only: %v", f)
	}
}

// TestNetworkdPickup: the wait after a reconfigure ends once networkd is
// configuring the link, or has rewritten its state file (a rename) and
// left it alone for pickupQuiet; it is bounded when networkd never does.
func TestNetworkdPickup(t *testing.T) {
	root := t.TempDir()
	fs := FS{Root: root}
	dir := filepath.Join(root, networkdLinksDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "2")
	write := func(state string) { // as networkd does: a new file renamed over
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, []byte("ADMIN_STATE="+state+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		state    string
		min, max time.Duration
	}{
		{"configuring", 250 * time.Millisecond, 1200 * time.Millisecond},            // busy: at once
		{"configured", 300*time.Millisecond + pickupQuiet, 3500 * time.Millisecond}, // done already: after the quiet time
	} {
		write("configured")
		before := networkdStamp(fs, 2)
		if before == "" {
			t.Fatal("no stamp for an existing state file")
		}
		go func() { time.Sleep(300 * time.Millisecond); write(c.state) }()
		t0 := time.Now()
		var out strings.Builder
		waitNetworkdPickup(fs, 2, before, 5*time.Second, &out)
		if d := time.Since(t0); d < c.min || d > c.max || out.Len() != 0 {
			t.Errorf("rewritten %s: waited %v, said %q; want %v..%v and nothing", c.state, d, out.String(), c.min, c.max)
		}
	}
	// never rewritten: bounded, and said
	t0 := time.Now()
	var out strings.Builder
	waitNetworkdPickup(fs, 2, networkdStamp(fs, 2), 400*time.Millisecond, &out)
	if d := time.Since(t0); d < 400*time.Millisecond || d > 3*time.Second || !strings.Contains(out.String(), "did not start") {
		t.Errorf("waited %v, said %q; want the bound and a note", d, out.String())
	}
}
