package netsetup

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pam-vrf/pam-vrf/netsetup/hostnet"
	"github.com/vishvananda/netlink"
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

// reconfigureSvc stands in for networkd: every networkctl-reconfigure
// rewrites the link's state file (state, "configured" if empty), and from
// the call numbered routeAt on (0: never) the link also gets its DHCP
// default route in main.
type reconfigureSvc struct {
	fakeSvc
	t       *testing.T
	n       *Net
	file    string
	state   string
	routeAt int
	calls   int
}

func (f *reconfigureSvc) Run(verb string, args ...string) error {
	f.fakeSvc.Run(verb, args...)
	if verb != "networkctl-reconfigure" {
		return nil
	}
	f.calls++
	tmp := f.file + ".tmp"
	state := f.state
	if state == "" {
		state = "configured"
	}
	if err := os.WriteFile(tmp, []byte("ADMIN_STATE="+state+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, f.file); err != nil {
		f.t.Fatal(err)
	}
	if f.routeAt > 0 && f.calls == f.routeAt {
		l, _ := f.n.H.LinkByName("eth0")
		_, dst, _ := net.ParseCIDR("0.0.0.0/0")
		if err := f.n.H.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Gw: net.ParseIP("10.9.0.2")}); err != nil {
			f.t.Fatal(err)
		}
	}
	return nil
}

// TestRunSettledAsksAgain: a link networkd reports configured but without
// its default route halfway through the settle time gets the reconfigure
// once more (networkd's DHCP client gone quiet after a rollback's pass
// left the test guests without IPv4); a link that settles is asked once,
// and one that never does is asked twice and only warned about. A link
// with its route whose state stays "configuring" is asked once: a second
// reconfigure would race networkd's pass.
func TestRunSettledAsksAgain(t *testing.T) {
	_, n := newNS(t)
	vethPair(t, n, "eth0", "peer0", -1)
	addAddr(t, n, "eth0", "10.9.0.1/24")
	l, err := n.H.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, networkdLinksDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, fmt.Sprint(l.Attrs().Index))
	w := settleWant{Iface: "eth0", Table: unix.RT_TABLE_MAIN, Families: []int{unix.AF_INET}}
	c := hostnet.Cmd{ID: "revert-networkd-reconfigure", Run: [][]string{{"networkctl-reload"}, {"networkctl-reconfigure", "eth0"}}}
	for _, tc := range []struct {
		name          string
		state         string
		routeAt       int
		calls         int
		note, settled bool
		warn          string
	}{
		{"settles at once", "", 1, 1, false, true, ""},
		{"quiet until asked again", "", 2, 2, true, true, ""},
		{"never", "", 0, 2, true, false, "no ipv4 default route via eth0 in table main"},
		{"route there, still configuring", "configuring", 1, 1, false, false, "networkd setup state of eth0 is configuring"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = n.H.RouteDel(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}})
			if err := os.WriteFile(file, []byte("ADMIN_STATE=configured\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			svc := &reconfigureSvc{t: t, n: n, file: file, state: tc.state, routeAt: tc.routeAt}
			var out strings.Builder
			e := &Env{Net: n, FS: FS{Root: root}, Svc: svc, Out: &out, SettleTimeout: 2 * time.Second}
			if err := runSettled(e, c, w); err != nil {
				t.Fatalf("runSettled: %v\n%s", err, out.String())
			}
			if svc.calls != tc.calls {
				t.Errorf("reconfigure ran %d time(s), want %d\n%s", svc.calls, tc.calls, out.String())
			}
			if got := strings.Contains(out.String(), "networkctl reconfigure eth0 once more"); got != tc.note {
				t.Errorf("note of the second ask: %v, want %v\n%s", got, tc.note, out.String())
			}
			if got := strings.Contains(out.String(), "networkd settled in"); got != tc.settled {
				t.Errorf("settled: %v, want %v\n%s", got, tc.settled, out.String())
			}
			if !tc.settled && !strings.Contains(out.String(), "WARN   networkd did not settle within 2s: "+tc.warn) {
				t.Errorf("no warning naming what is missing (%s):\n%s", tc.warn, out.String())
			}
		})
	}
}
