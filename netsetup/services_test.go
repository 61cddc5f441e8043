package netsetup

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pam-vrf/pam-vrf/bpf"
	"github.com/pam-vrf/pam-vrf/cgroup"
	"golang.org/x/sys/unix"
)

func TestNormalizeUnit(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{in: "chrony", want: "chrony.service"},
		{in: "rsyslog.service", want: "rsyslog.service"},
		{in: "openvpn@mgmt", want: "openvpn@mgmt.service"},
		{in: "foo.bar", want: "foo.bar.service"},
		{in: "apt-daily.timer", err: "name the service it starts (usually apt-daily.service)"},
		{in: "ssh.socket", err: "BindToDevice= in a drop-in for ssh.socket"},
		{in: "getty@.service", err: "getty@.service is a template without an instance: name an instance, e.g. getty@mgmt.service"},
		{in: "getty@", err: "template without an instance"},
		{in: "ssh", err: "--sshd vrf-only"},
		{in: "systemd-resolved", err: "stays in the default VRF"},
		{in: "pam-vrf-netsetup.service", err: "boot unit"},
		{in: "multi-user.target", err: "is a target unit"},
		{in: "a/b", err: "not a systemd unit name"},
		{in: "", err: "not a systemd unit name"},
		{in: ".service", err: "not a systemd unit name"},
	} {
		got, err := NormalizeUnit(c.in)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("NormalizeUnit(%q) = %q, %v; want %q", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("NormalizeUnit(%q) = %q, %v; want error containing %q", c.in, got, err, c.err)
		}
	}
	got, err := NormalizeServices([]string{"chrony", "chrony.service", "rsyslog"})
	if err != nil || !slices.Equal(got, []string{"chrony.service", "rsyslog.service"}) {
		t.Errorf("NormalizeServices: %v %v", got, err)
	}
	var fe *FlagError
	if _, err := NormalizeServices([]string{"chrony", "x.timer"}); !errors.As(err, &fe) || fe.Flag != "service" {
		t.Errorf("NormalizeServices with a timer: %v, want a --service FlagError", err)
	}
	cfg := testCfg()
	cfg.Services = []string{"getty@.service"}
	if err := cfg.Validate(); !errors.As(err, &fe) || fe.Flag != "service" {
		t.Errorf("Validate: %v, want a --service FlagError", err)
	}
}

func TestDropInUnit(t *testing.T) {
	for p, want := range map[string]string{
		unitDropInPath("chrony.service"): "chrony.service",
		SSHDropIn:                        "", // persist.go's
		"/etc/systemd/system/chrony.service.d/other.conf":      "",
		"/etc/systemd/network/eth0.network.d/pam-vrf.conf":     "",
		"/etc/systemd/system/x.service.d/sub/pam-vrf.conf":     "",
		"/etc/systemd/system/openvpn@a.service.d/pam-vrf.conf": "openvpn@a.service",
	} {
		if got := dropInUnit(p); got != want {
			t.Errorf("dropInUnit(%s) = %q, want %q", p, got, want)
		}
	}
}

// runningUnit is chrony as systemctl show reports it on Debian 12.
func runningUnit() UnitState {
	return UnitState{LoadState: "loaded", ActiveState: "active", Type: "forking", DefaultDependencies: true,
		Before: []string{"time-sync.target", "multi-user.target", "shutdown.target"}, ControlGroup: "/system.slice/chrony.service", PIDs: []int{812, 813}}
}

func TestPlanServices(t *testing.T) {
	cfg := testCfg()
	st := converge(t, cfg, freshState())
	cfg.Services = []string{"chrony.service", "apt-daily.service"}
	st.SystemdVersion = 252
	oneshot := UnitState{LoadState: "loaded", ActiveState: "inactive", Type: "oneshot", DefaultDependencies: true}
	st.Units = map[string]UnitState{"chrony.service": runningUnit(), "apt-daily.service": oneshot}

	steps := unitSteps(mustPlan(t, cfg, st))
	want := []string{
		"file-write:" + unitDropInPath("chrony.service") + ":units",
		"file-write:" + unitDropInPath("apt-daily.service") + ":units",
		"svc-daemon-reload",
		"svc-unit-restart:chrony.service", // running, not bound; the oneshot is not started
	}
	got := ids(steps)
	if !slices.Equal(got, want) {
		t.Fatalf("plan %v\nwant %v", got, want)
	}
	var dropIn string
	for _, f := range mustDesired(t, cfg, st) {
		if f.Path == unitDropInPath("chrony.service") {
			dropIn = f.Content
		}
	}
	for _, w := range []string{"[Unit]\nWants=pam-vrf-netsetup.service\nAfter=pam-vrf-netsetup.service\n", "[Service]\nBPFProgram=sock_create:/sys/fs/bpf/pam-vrf/mgmt\n"} {
		if !strings.Contains(dropIn, w) {
			t.Errorf("chrony drop-in lacks %q:\n%s", w, dropIn)
		}
	}

	// What a successful apply leaves: files in place, loaded, unit bound.
	st = converge(t, cfg, st)
	c := st.Units["chrony.service"]
	c.Bound = true
	st.Units["chrony.service"] = c
	if steps := unitSteps(mustPlan(t, cfg, st)); len(steps) != 0 {
		t.Fatalf("second apply still does: %v", ids(steps))
	}

	// The VRF re-created (new ifindex): a new pin, and every running unit
	// restarts onto it even though its cgroup still holds the old program.
	st.SSHPin.Ifindex = 99
	got = ids(unitSteps(mustPlan(t, cfg, st)))
	if !slices.Contains(got, "ssh-pin") || !slices.Contains(got, "svc-unit-restart:chrony.service") {
		t.Errorf("after a new ifindex: %v, want ssh-pin and a restart of chrony", got)
	}
	st.SSHPin.Ifindex = 3

	// A restart queued (the boot unit's --no-block restart): left to systemd.
	c.Bound, c.Job = false, true
	st.Units["chrony.service"] = c
	if steps := unitSteps(mustPlan(t, cfg, st)); len(steps) != 0 {
		t.Errorf("unit with a queued job: %v, want nothing", ids(steps))
	}

	// systemd has not loaded the drop-in (an apply killed before daemon-reload).
	c.Job, c.Bound, c.NeedDaemonReload = false, false, true
	st.Units["chrony.service"] = c
	if got := ids(unitSteps(mustPlan(t, cfg, st))); !slices.Equal(got, []string{"svc-daemon-reload", "svc-unit-restart:chrony.service"}) {
		t.Errorf("drop-in not loaded: %v", got)
	}

	// Dropped from the list: our drop-in goes, the unit restarts unbound.
	c.NeedDaemonReload, c.Bound = false, true
	st.Units["chrony.service"] = c
	cfg.Services = []string{"apt-daily.service"}
	got = ids(unitSteps(mustPlan(t, cfg, st)))
	if !slices.Equal(got, []string{"file-remove:" + unitDropInPath("chrony.service") + ":units", "svc-daemon-reload", "svc-unit-restart:chrony.service"}) {
		t.Errorf("chrony dropped from --service: %v", got)
	}
}

// unitSteps: the steps about systemd units (drop-ins, pin, reload,
// restarts); the network steps are plan_test.go's business.
func unitSteps(steps []Step) []Step {
	var out []Step
	for _, s := range steps {
		if strings.HasPrefix(s.ID, "file-write:/etc/systemd/system/") || strings.HasPrefix(s.ID, "file-remove:/etc/systemd/system/") ||
			strings.HasPrefix(s.ID, "svc-") || s.ID == "ssh-pin" {
			out = append(out, s)
		}
	}
	return out
}

func mustDesired(t *testing.T, cfg Config, st *State) []fileSpec {
	t.Helper()
	fs, err := desiredFiles(cfg, EffectiveDNS(cfg, st), st)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// An early unit (systemd-timesyncd: DefaultDependencies=no,
// Before=sysinit.target) is not ordered after the boot unit: that would be
// an ordering cycle.
func TestServiceDropInEarlyUnit(t *testing.T) {
	cfg := testCfg()
	ts := UnitState{LoadState: "loaded", ActiveState: "active", DefaultDependencies: false, Before: []string{"time-set.target", "sysinit.target", "shutdown.target"}}
	d := renderServiceDropIn(cfg, "systemd-timesyncd.service", ts)
	if strings.Contains(d, "After=") || strings.Contains(d, "Wants=") || !strings.Contains(d, "BPFProgram=sock_create:/sys/fs/bpf/pam-vrf/mgmt") {
		t.Errorf("early unit drop-in:\n%s", d)
	}
	ts.DefaultDependencies = true // Before=sysinit.target alone decides too
	if earlyUnit(ts) != true || earlyUnit(runningUnit()) != false {
		t.Errorf("earlyUnit: timesyncd %v, chrony %v", earlyUnit(ts), earlyUnit(runningUnit()))
	}
}

func TestRefuseUnits(t *testing.T) {
	cfg := testCfg()
	base := converge(t, cfg, freshState())
	for _, c := range []struct {
		name string
		unit UnitState
		ver  int
		msg  string
		fix  string
	}{
		{name: "not installed", unit: UnitState{LoadState: "not-found", ActiveState: "inactive"}, msg: "unit snmpd.service is not installed", fix: "systemctl list-unit-files 'snmpd*'"},
		{name: "masked", unit: UnitState{LoadState: "masked"}, msg: "is masked", fix: "systemctl unmask snmpd.service"},
		{name: "socket-activated", unit: UnitState{LoadState: "loaded", Sockets: []SocketUnit{{Name: "snmpd.socket", ActiveState: "active", IPListen: []string{"0.0.0.0:161"}}}},
			msg: "is socket-activated by snmpd.socket (listens on 0.0.0.0:161)", fix: "[Socket] BindToDevice=mgmt"},
		{name: "private network", unit: UnitState{LoadState: "loaded", PrivateNetwork: true}, msg: "network namespace of its own (PrivateNetwork=yes)", fix: "leave snmpd.service out of --service"},
		{name: "netns path", unit: UnitState{LoadState: "loaded", NetworkNamespacePath: "/run/netns/x"}, msg: "(NetworkNamespacePath=/run/netns/x)", fix: "undo NetworkNamespacePath=/run/netns/x"},
		{name: "old systemd", unit: UnitState{LoadState: "loaded"}, ver: 247, msg: "systemd 247 has no BPFProgram=", fix: "ip vrf exec mgmt"},
	} {
		cfg.Services = []string{"snmpd.service"}
		st := *base
		st.SystemdVersion = c.ver
		if st.SystemdVersion == 0 {
			st.SystemdVersion = 252
		}
		st.Units = map[string]UnitState{"snmpd.service": c.unit}
		_, err := Plan(cfg, &st)
		var pe *PlanError
		if !errors.As(err, &pe) || !strings.Contains(pe.Msg, c.msg) || !strings.Contains(pe.Fix, c.fix) {
			t.Errorf("%s: %v; want a refusal %q with fix %q", c.name, err, c.msg, c.fix)
		}
	}
	// rsyslog is triggered by syslog.socket, a Unix socket: not refused;
	// nor is a service whose IP socket unit is disabled and inactive.
	cfg.Services = []string{"rsyslog.service"}
	st := *base
	st.SystemdVersion = 252
	st.Units = map[string]UnitState{"rsyslog.service": {LoadState: "loaded", ActiveState: "active", DefaultDependencies: true,
		Sockets: []SocketUnit{{Name: "syslog.socket", ActiveState: "active", UnitFileState: "static"}, {Name: "x.socket", ActiveState: "inactive", UnitFileState: "disabled", IPListen: []string{"514"}}}}}
	if _, err := Plan(cfg, &st); err != nil {
		t.Errorf("rsyslog refused: %v", err)
	}
}

func TestPlanRevertUnits(t *testing.T) {
	cfg := testCfg()
	old := freshState()
	live := converge(t, cfg, freshState())
	p := unitDropInPath("chrony.service")
	live.Files[p] = FileState{Exists: true, Content: renderServiceDropIn(cfg, "chrony.service", runningUnit())}
	mine := "/etc/systemd/system/foo.service.d/pam-vrf.conf" // same name, the admin's
	live.Files[mine] = FileState{Exists: true, Content: "[Service]\nNice=5\n"}
	live.Units = map[string]UnitState{"chrony.service": runningUnit(), "foo.service": runningUnit()}
	got := ids(PlanRevert(cfg, old, live))
	iRemove, iReload, iRestart := slices.Index(got, "revert-file:"+p), slices.Index(got, "svc-revert-reload"), slices.Index(got, "svc-revert-unit-restart:chrony.service")
	if iRemove < 0 || iReload < 0 || iRestart < 0 || !(iRemove < iReload && iReload < iRestart) {
		t.Errorf("revert: %v; want the drop-in removed, daemon-reload, then chrony restarted", got)
	}
	if slices.Contains(got, "revert-file:"+mine) || slices.Contains(got, "svc-revert-unit-restart:foo.service") {
		t.Errorf("revert touches a drop-in that is not ours: %v", got)
	}
}

func TestParseSystemctl(t *testing.T) {
	out := "Id=chrony.service\nLoadState=loaded\nBPFProgram=sock_create:/sys/fs/bpf/pam-vrf/mgmt\nBPFProgram=egress:/sys/fs/bpf/x\n\n" +
		"Id=snmpd.service\nLoadState=not-found\nBPFProgram=\n"
	got := parseShow([]byte(out))
	if len(got) != 2 || got[0]["BPFProgram"] != "sock_create:/sys/fs/bpf/pam-vrf/mgmt egress:/sys/fs/bpf/x" || got[1]["LoadState"] != "not-found" {
		t.Errorf("parseShow: %#v", got)
	}
	if j := parseJobs("1234 chrony.service restart waiting\n17 pam-vrf-netsetup.service start running\n"); !j["chrony.service"] || !j[UnitName] || len(j) != 2 {
		t.Errorf("parseJobs: %v", j)
	}
	if v, err := parseSystemdVersion("systemd 252 (252.38-1~deb12u1)\n+PAM +AUDIT\n"); v != 252 || err != nil {
		t.Errorf("parseSystemdVersion: %d %v", v, err)
	}
	if _, err := parseSystemdVersion("elogind 246"); err == nil {
		t.Error("parseSystemdVersion accepted elogind")
	}
	if l := ipListeners("[::]:22 (Stream) /run/systemd/journal/syslog (Datagram) 514 (Datagram) @abstract (Stream)"); !slices.Equal(l, []string{"[::]:22", "514"}) {
		t.Errorf("ipListeners: %v", l)
	}
}

// The socket table as check reads it: real sockets of this process in a
// throw-away netns, some bound to a device (what the VRF program does at
// socket creation), one not.
func TestProcessSocketsAndCheck(t *testing.T) {
	ns, n := newNS(t)
	vethPair(t, n, "mgmt", "mgmt-peer", -1) // stands in for the VRF device (no vrf.ko here)
	l, _ := n.H.LinkByName("mgmt")
	addAddr(t, n, "mgmt", "198.51.100.1/24")
	idx := l.Attrs().Index

	var fds []int
	open := func(typ int, bind bool, port int) {
		err := inNS(ns, func() error {
			fd, err := unix.Socket(unix.AF_INET, typ, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			if bind {
				if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "mgmt"); err != nil {
					return err
				}
			}
			if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{198, 51, 100, 1}}); err != nil {
				return err
			}
			if typ == unix.SOCK_STREAM {
				return unix.Listen(fd, 1)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	open(unix.SOCK_DGRAM, true, 3123)
	open(unix.SOCK_STREAM, true, 3124)

	socks, err := ProcessSockets(ns, []int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, s := range socks {
		found[s.Proto+" "+s.Local] = s.BoundIf
	}
	if found["udp 198.51.100.1:3123"] != idx || found["tcp 198.51.100.1:3124"] != idx {
		t.Fatalf("sockets %v, want both bound to ifindex %d", socks, idx)
	}

	// check: the unit is this test process, "mgmt" a VRF of that ifindex.
	pids, err := cgroupPIDs(ownCgroup(t))
	if err != nil || !slices.Contains(pids, os.Getpid()) {
		t.Fatalf("cgroupPIDs of our own cgroup: %v %v", pids, err)
	}
	cfg := testCfg()
	cfg.Services = []string{"pamvrf-test.service"}
	st := &State{Links: map[string]Link{"mgmt": {Name: "mgmt", Index: idx, Kind: "vrf", Up: true}},
		Units: map[string]UnitState{"pamvrf-test.service": {LoadState: "loaded", ActiveState: "active", Bound: true, ControlGroup: "/test.scope",
			DropInPaths: []string{unitDropInPath("pamvrf-test.service")}, BPFProgram: []string{"sock_create:" + pinPath("mgmt")}, PIDs: []int{os.Getpid()}}}}
	c := &Checker{Reader: &Reader{Net: n}}
	rs := c.checkServices(cfg, st, "vrf-netsetup apply")
	if len(rs) != 1 || !rs[0].OK || !strings.Contains(rs[0].Detail, "udp 198.51.100.1:3123%mgmt") {
		t.Fatalf("check with bound sockets: %+v", rs)
	}
	open(unix.SOCK_DGRAM, false, 3125) // a socket made before the program was attached
	rs = c.checkServices(cfg, st, "vrf-netsetup apply")
	if rs[0].OK || !strings.Contains(rs[0].Detail, "sockets outside mgmt: udp 198.51.100.1:3125") || !strings.Contains(rs[0].Fix, "systemctl restart pamvrf-test.service") {
		t.Fatalf("check with an unbound socket: %+v", rs[0])
	}
	// not bound by the program, not loaded: each its own failure
	u := st.Units["pamvrf-test.service"]
	u.Bound = false
	st.Units["pamvrf-test.service"] = u
	if rs = c.checkServices(cfg, st, "x"); rs[0].OK || !strings.Contains(rs[0].Detail, "no program on its cgroup") {
		t.Errorf("unbound cgroup: %+v", rs[0])
	}
	u.BPFProgram = nil
	st.Units["pamvrf-test.service"] = u
	if rs = c.checkServices(cfg, st, "x"); rs[0].OK || !strings.Contains(rs[0].Detail, "has not loaded") {
		t.Errorf("drop-in not loaded: %+v", rs[0])
	}
}

func ownCgroup(t *testing.T) string {
	t.Helper()
	mount, err := cgroup.Mount()
	if err != nil {
		t.Skip(err)
	}
	p, err := cgroup.ProcPath(os.Getpid())
	if err != nil {
		t.Skip(err)
	}
	return filepath.Join(mount, p)
}

// The ExecStartPre= of the drop-ins: attaches the pinned program to a
// cgroup once, as systemd does (ALLOW_MULTI), and leaves it alone after.
func TestBindCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (BPF, cgroups)")
	}
	dir := filepath.Join(ownCgroup(t), "pamvrf-bindcgroup-test")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup below our own: %v", err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	prog, err := bpf.Load(1)
	if err != nil {
		t.Skipf("cannot load the program: %v", err)
	}
	defer prog.Close()
	fsdir := t.TempDir() // a bpffs of our own: the host's /sys/fs/bpf stays untouched
	if err := unix.Mount("bpf", fsdir, "bpf", 0, "mode=700"); err != nil {
		t.Skipf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(fsdir, unix.MNT_DETACH) })
	pin := filepath.Join(fsdir, "mgmt")
	if err := prog.Pin(pin); err != nil {
		t.Fatalf("pin: %v", err)
	}

	if _, err := bindCgroup(dir, pin+"-missing"); err == nil || !strings.Contains(err.Error(), "vrf-netsetup apply pins it") {
		t.Errorf("missing pin: %v", err)
	}
	for i, want := range []bool{true, false} {
		got, err := bindCgroup(dir, pin)
		if err != nil || got != want {
			t.Fatalf("bindCgroup #%d = %v, %v; want %v", i+1, got, err, want)
		}
	}
	a, err := bpf.Query(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Programs) != 1 || a.Flags != unix.BPF_F_ALLOW_MULTI {
		t.Errorf("after two binds: %d program(s), flags %#x; want 1 with BPF_F_ALLOW_MULTI", len(a.Programs), a.Flags)
	}
	if ok, _ := bpf.BindsTo(a.Programs[0], 1); !ok {
		t.Errorf("attached program %d does not bind to ifindex 1", a.Programs[0])
	}
}
