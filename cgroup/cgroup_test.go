package cgroup

import (
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Recorded from this build host (systemd hybrid layout, cgroup2 under
// /sys/fs/cgroup/unified).
const mountinfoHybrid = `22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
23 22 0:5 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

// Stock Debian 12 (pure unified hierarchy).
const mountinfoUnified = `21 26 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 21 0:6 / /sys/kernel/security rw,nosuid,nodev,noexec,relatime shared:8 - securityfs securityfs rw
26 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
28 21 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
29 21 0:25 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:10 - pstore pstore rw
99 28 0:24 / /mnt/second rw,relatime shared:9 - cgroup2 cgroup2 rw
`

// cgroup v1 only: no cgroup2 anywhere; a mount point literally named
// "cgroup2" must not fool the parser.
const mountinfoNone = `22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /cgroup2 rw,relatime - tmpfs cgroup2 rw
`

// A mount point with a space and a backslash (kernel escapes them as octal).
const mountinfoEscaped = `22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
50 22 0:40 / /srv/my\040cgroups\134v2 rw,relatime shared:30 master:2 - cgroup2 none rw
`

func TestParseMountinfo(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            error
	}{
		{"hybrid", mountinfoHybrid, "/sys/fs/cgroup/unified", nil},
		{"unified, first wins", mountinfoUnified, "/sys/fs/cgroup", nil},
		{"none", mountinfoNone, "", ErrNoCgroup2},
		{"empty", "", "", ErrNoCgroup2},
		{"escaped", mountinfoEscaped, `/srv/my cgroups\v2`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMountinfo(strings.NewReader(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:          "/a b",
		`/tab\011x`:        "/tab\tx",
		`/nl\012`:          "/nl\n",
		`/bs\134`:          `/bs\`,
		`/short\04`:        `/short\04`,
		`/noesc\9999`:      `/noesc\9999`,
		`/plain`:           "/plain",
		`\040\040end`:      "  end",
		`/multi\040a\040b`: "/multi a b",
	} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMountLive(t *testing.T) {
	m, err := Mount()
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	if _, err := os.Stat(filepath.Join(m, "cgroup.procs")); err != nil {
		t.Fatalf("Mount() = %q, but no cgroup.procs there: %v", m, err)
	}
}

func TestParseProcCgroup(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            bool
	}{
		{"unified root", "0::/\n", "/", false},
		{"unified session", "0::/user.slice/user-1000.slice/session-3.scope\n", "/user.slice/user-1000.slice/session-3.scope", false},
		{"hybrid", "9:name=systemd:/\n4:memory:/process_api/b75c\n1:cpu:/\n0::/system.slice/ssh.service\n", "/system.slice/ssh.service", false},
		{"no newline", "0::/a/vrf/mgmt", "/a/vrf/mgmt", false},
		{"v1 only", "9:name=systemd:/\n1:cpu:/\n", "", true},
		{"malformed", "0::relative\n", "", true},
		{"empty", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcCgroup([]byte(tc.in))
			if tc.err {
				if err == nil {
					t.Fatalf("got %q, want error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := parseProcCgroup([]byte("1:cpu:/\n")); !errors.Is(err, ErrNoCgroup2) {
		t.Errorf("v1-only error %v does not wrap ErrNoCgroup2", err)
	}
}

func TestProcPathSelf(t *testing.T) {
	p, err := ProcPath(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p, "/") {
		t.Fatalf("ProcPath(self) = %q", p)
	}
	if _, err := ProcPath(-5); err == nil {
		t.Fatal("ProcPath(-5) succeeded")
	}
}

func TestVRFDir(t *testing.T) {
	const m = "/sys/fs/cgroup"
	for _, tc := range []struct {
		name, mount, proc, netns, vrf, want string
	}{
		{"root base", m, "/", "", "mgmt", "/sys/fs/cgroup/vrf/mgmt"},
		{"hybrid mount", "/sys/fs/cgroup/unified", "/", "", "mgmt", "/sys/fs/cgroup/unified/vrf/mgmt"},
		{"systemd session", m, "/user.slice/user-1000.slice/session-4.scope", "", "mgmt",
			"/sys/fs/cgroup/user.slice/user-1000.slice/session-4.scope/vrf/mgmt"},
		{"already in a vrf", m, "/user.slice/user-1000.slice/session-4.scope/vrf/other", "", "mgmt",
			"/sys/fs/cgroup/user.slice/user-1000.slice/session-4.scope/vrf/mgmt"},
		{"already in same vrf", m, "/user.slice/session-4.scope/vrf/mgmt", "", "mgmt",
			"/sys/fs/cgroup/user.slice/session-4.scope/vrf/mgmt"},
		{"in default vrf dir", m, "/user.slice/session-4.scope/vrf", "", "mgmt",
			"/sys/fs/cgroup/user.slice/session-4.scope/vrf/mgmt"},
		// strstr quirk: "/vrfd.service" contains "/vrf", so the whole
		// base is cut there, exactly like iproute2.
		{"strstr quirk", m, "/system.slice/vrfd.service", "", "mgmt", "/sys/fs/cgroup/system.slice/vrf/mgmt"},
		{"strstr quirk at top", m, "/vrfd.slice/x.scope", "", "mgmt", "/sys/fs/cgroup/vrf/mgmt"},
		{"root vrf", m, "/vrf/blue", "", "mgmt", "/sys/fs/cgroup/vrf/mgmt"},
		{"netns level", m, "/user.slice/session-4.scope", "red", "mgmt",
			"/sys/fs/cgroup/user.slice/session-4.scope/red-ns/vrf/mgmt"},
		{"netns level root", m, "/", "red", "mgmt", "/sys/fs/cgroup/red-ns/vrf/mgmt"},
		{"netns level not doubled", m, "/user.slice/session-4.scope/red-ns/vrf/blue", "red", "mgmt",
			"/sys/fs/cgroup/user.slice/session-4.scope/red-ns/vrf/mgmt"},
		{"netns level of another ns kept", m, "/s.scope/blue-ns/vrf/x", "red", "mgmt",
			"/sys/fs/cgroup/s.scope/blue-ns/red-ns/vrf/mgmt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := VRFDirNS(tc.mount, tc.proc, tc.netns, tc.vrf)
			if got != tc.want {
				t.Fatalf("VRFDirNS(%q, %q, %q, %q) = %q, want %q", tc.mount, tc.proc, tc.netns, tc.vrf, got, tc.want)
			}
			if tc.netns == "" {
				if got2 := VRFDir(tc.mount, tc.proc, tc.vrf); got2 != got {
					t.Fatalf("VRFDir = %q, VRFDirNS = %q", got2, got)
				}
			}
		})
	}
}

func TestNetnsNameLookup(t *testing.T) {
	dir := t.TempDir()
	// Missing directory: silently no name.
	if n, err := netnsName(filepath.Join(dir, "absent")); err != nil || n != "" {
		t.Fatalf("absent run dir: %q, %v", n, err)
	}
	// Entries that are not our namespace are ignored, a matching one wins.
	if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := netnsName(dir); err != nil || n != "" {
		t.Fatalf("no match: %q, %v", n, err)
	}
	// All threads of the test process share one netns, so a symlink to
	// /proc/self/ns/net stats like a bind mount of our namespace.
	if err := os.Symlink("/proc/self/ns/net", filepath.Join(dir, "mine")); err != nil {
		t.Fatal(err)
	}
	if n, err := netnsName(dir); err != nil || n != "mine" {
		t.Fatalf("match: %q, %v; want \"mine\"", n, err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates cgroups")
	}
}

func TestMoveLive(t *testing.T) {
	requireRoot(t)
	mount, err := Mount()
	if err != nil {
		t.Fatal(err)
	}
	parent, err := ProcPath(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	name := "pamvrf-cgtest-" + strconv.Itoa(os.Getpid())
	dir := VRFDir(mount, parent, name)

	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// Killed and reaped: the cgroup is empty and can go.
		_ = os.Remove(dir)
		_ = os.Remove(filepath.Dir(dir)) // .../vrf, only if empty
	})

	if err := Move(dir, cmd.Process.Pid); err != nil {
		t.Fatalf("Move: %v", err)
	}
	got, err := ProcPath(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimPrefix(dir, mount); got != want {
		t.Fatalf("child cgroup = %q, want %q", got, want)
	}
	// Idempotent: moving again into the same cgroup is fine.
	if err := Move(dir, cmd.Process.Pid); err != nil {
		t.Fatalf("second Move: %v", err)
	}
	// A vanished pid is an error that names the cgroup.
	if err := Move(dir, 1<<22+7); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Move(bogus pid) = %v", err)
	}
}

func TestProcPathOutsideNamespaceRefused(t *testing.T) {
	for _, in := range []string{"0::/../../user.slice\n", "0::/a/../b\n", "0::/a/./b\n"} {
		if _, err := parseProcCgroup([]byte(in)); !errors.Is(err, ErrOutside) {
			t.Errorf("%q: %v, want ErrOutside", in, err)
		}
	}
	if p, err := parseProcCgroup([]byte("0::/\n")); err != nil || p != "/" {
		t.Errorf("root cgroup: %q %v", p, err)
	}
}

func TestVRFLevelsMatchVRFDirNS(t *testing.T) {
	for _, tc := range []struct{ proc, netns, vrf, base, levels string }{
		{"/user.slice/s.scope", "", "mgmt", "/user.slice/s.scope", "vrf/mgmt"},
		{"/user.slice/s.scope/vrf/mgmt", "", "", "/user.slice/s.scope", "vrf"},
		{"/", "", "mgmt", "/", "vrf/mgmt"},
		{"/x/blue-ns/vrf/red", "blue", "green", "/x", "blue-ns/vrf/green"},
		{"/system.slice/vrfd.service", "", "mgmt", "/system.slice", "vrf/mgmt"},
	} {
		base, levels := VRFLevels(tc.proc, tc.netns, tc.vrf)
		if base != tc.base || strings.Join(levels, "/") != tc.levels {
			t.Errorf("VRFLevels(%q, %q, %q) = %q %q, want %q %q", tc.proc, tc.netns, tc.vrf, base, levels, tc.base, tc.levels)
		}
		if got, want := path.Join("/m", base, strings.Join(levels, "/")), VRFDirNS("/m", tc.proc, tc.netns, tc.vrf); got != want {
			t.Errorf("levels give %q, VRFDirNS %q", got, want)
		}
	}
}
