package netsetup

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeClient runs a script named name with args until the test ends: its
// comm is name and its command line "/bin/sh PATH/name ARGS...", as /proc
// shows a DHCP client.
func fakeClient(t *testing.T, name string, args ...string) int {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nsleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ { // until exec has set comm
		if c, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "comm")); strings.TrimSpace(string(c)) == name {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cmd.Process.Pid
}

// Real processes in /proc: a dhcpcd for the test's interface, one for
// another interface, and a dhcpcd in manager mode (no interface: it serves
// them all) are told apart.
func TestReadDHCPClients(t *testing.T) {
	iface := "pvtest" + strconv.Itoa(os.Getpid()%100000)
	mine := fakeClient(t, "dhcpcd", "-4", "-b", iface)
	fakeClient(t, "dhclient", "-v", "othernic0")
	got := readDHCPClients("/proc", iface)
	found := false
	for _, c := range got {
		if c.PID == mine && c.Name == "dhcpcd" {
			found = true
		}
		if c.Name == "dhclient" {
			t.Errorf("a dhclient for another interface counted: %+v", c)
		}
	}
	if !found {
		t.Errorf("dhcpcd for %s (pid %d) not found: %+v", iface, mine, got)
	}
	manager := fakeClient(t, "dhcpcd", "-q", "-b")
	found = false
	for _, c := range readDHCPClients("/proc", iface) {
		found = found || c.PID == manager
	}
	if !found {
		t.Errorf("dhcpcd in manager mode (pid %d) not counted", manager)
	}
}

// Which host shapes apply refuses (without --force), and that each reason
// names what it found.
func TestUnsupportedHostShapes(t *testing.T) {
	cfg := testCfg()
	for _, tc := range []struct {
		name string
		st   func(*State)
		want string // "" = supported
	}{
		{"networkd", func(s *State) { s.Manager = Manager{Kind: "networkd", Detail: "systemd-networkd: x"} }, ""},
		{"static, nothing running", func(s *State) {}, ""},
		{"ifupdown + dhclient", func(s *State) {
			s.Manager = Manager{Kind: "ifupdown", DHCP: true}
			s.DhclientInstalled = true
			s.DHCPClients = []DHCPClient{{Name: "dhclient", PID: 7}}
		}, ""},
		{"ifupdown + dhcpcd (Debian 13)", func(s *State) {
			s.Manager = Manager{Kind: "ifupdown", DHCP: true}
			s.DHCPClients = []DHCPClient{{Name: "dhcpcd", PID: 8}}
		}, "dhcpcd (pid 8) serves eth0 and pam-vrf has no hook"},
		{"ifupdown DHCP, no dhclient, no dhcpcd", func(s *State) { s.Manager = Manager{Kind: "ifupdown", DHCP: true} }, "neither isc-dhcp-client (dhclient) nor dhcpcd is installed"},
		{"ifupdown + dhcpcd, detected as such", func(s *State) {
			s.Manager = Manager{Kind: "ifupdown-dhcpcd", DHCP: true}
			s.DHCPClients = []DHCPClient{{Name: "dhcpcd", PID: 8}}
		}, ""},
		{"ifupdown + dhcpcd, and udhcpc too", func(s *State) {
			s.Manager = Manager{Kind: "ifupdown-dhcpcd", DHCP: true}
			s.DHCPClients = []DHCPClient{{Name: "dhcpcd", PID: 8}, {Name: "udhcpc", PID: 11}}
		}, "udhcpc (pid 11) serves eth0"},
		{"NetworkManager keyfile", func(s *State) {
			s.Manager = Manager{Kind: "networkmanager", NetworkFile: "/etc/NetworkManager/system-connections/eth0.nmconnection", Connection: "u"}
		}, ""},
		{"NetworkManager keyfile, a port of another VRF", func(s *State) {
			s.Manager = Manager{Kind: "networkmanager", NetworkFile: "/etc/NetworkManager/system-connections/eth0.nmconnection", Connection: "u", Master: "blue"}
		}, "makes it a port of blue"},
		{"NetworkManager keyfile, already our port", func(s *State) {
			s.Manager = Manager{Kind: "networkmanager", NetworkFile: "/etc/NetworkManager/system-connections/eth0.nmconnection", Connection: "u", Master: "mgmt"}
		}, ""},
		{"NetworkManager with dhcp=dhclient", func(s *State) {
			s.Manager = Manager{Kind: "networkmanager", NetworkFile: "/etc/NetworkManager/system-connections/eth0.nmconnection", Connection: "u"}
			s.DHCPClients = []DHCPClient{{Name: "dhclient", PID: 12}}
		}, "dhclient (pid 12) serves eth0"},
		{"NetworkManager running, nothing else", func(s *State) { s.NetworkManagerActive = true }, "NetworkManager is running"},
		{"dhclient by hand next to networkd", func(s *State) {
			s.Manager = Manager{Kind: "networkd"}
			s.DHCPClients = []DHCPClient{{Name: "dhclient", PID: 9}}
		}, "dhclient (pid 9) serves eth0 next to systemd-networkd"},
		{"udhcpc, no manager", func(s *State) { s.DHCPClients = []DHCPClient{{Name: "udhcpc", PID: 10}} }, "udhcpc (pid 10) serves eth0"},
	} {
		st := freshState()
		tc.st(st)
		got := Unsupported(cfg, st)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if got != "" {
			if err := unsupportedError(cfg, got); !strings.Contains(err.Error(), "--force") {
				t.Errorf("%s: the refusal does not name --force: %v", tc.name, err)
			}
		}
	}
}

// dhcpcd rewrites its command line as a process title.
func TestReadDHCPClientsProcessTitle(t *testing.T) {
	root := t.TempDir()
	for pid, title := range map[string]string{"11": "dhcpcd: eth0 [ip4]", "12": "dhcpcd: eth1 [ip4]", "13": "dhcpcd: [manager] [ip4] [ip6]"} {
		os.MkdirAll(filepath.Join(root, pid), 0o755)
		os.WriteFile(filepath.Join(root, pid, "comm"), []byte("dhcpcd\n"), 0o644)
		os.WriteFile(filepath.Join(root, pid, "cmdline"), []byte(title), 0o644)
	}
	got := map[int]bool{}
	for _, c := range readDHCPClients(root, "eth0") {
		got[c.PID] = true
	}
	if !got[11] || got[12] || !got[13] {
		t.Errorf("eth0's clients: %v, want 11 (its own) and 13 (manager mode)", got)
	}
}
