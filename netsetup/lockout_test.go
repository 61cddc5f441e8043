package netsetup

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The child half of TestLockoutGuardFindsSSHDOnAnyPort: a process named
// like sshd (comm) that accepts one connection and holds it.
func init() {
	addr := os.Getenv("PAMVRF_TEST_FAKE_SSHD")
	if addr == "" {
		return
	}
	if os.Getenv("PAMVRF_TEST_FAKE_SSHD_NAME") == "sshd" {
		// /proc/self/comm names the thread group leader; init runs on it
		if err := os.WriteFile("/proc/self/comm", []byte("sshd"), 0); err != nil {
			os.Exit(3)
		}
	}
	lc := net.ListenConfig{}
	if dev := os.Getenv("PAMVRF_TEST_FAKE_SSHD_BIND"); dev != "" {
		// as sshd in vrf-only mode: its program binds the socket to mgmt
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), dev) })
			return serr
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		os.Exit(4)
	}
	os.Stdout.WriteString(ln.Addr().String() + "\n")
	c, err := ln.Accept()
	if err != nil {
		os.Exit(5)
	}
	defer c.Close()
	time.Sleep(time.Minute) // killed by the test
	os.Exit(0)
}

// The lockout guard counts the connections an sshd holds, on any port
// (sshd on 2222, systemd's ssh.socket on another): a real process named
// sshd, a real TCP connection to it on a random port. The control, the
// same connection held by a process not named sshd, is not counted.
func TestLockoutGuardFindsSSHDOnAnyPort(t *testing.T) {
	cfg := testCfg()
	st := freshState()
	st.Addrs[cfg.Iface] = []Addr{{CIDR: "127.0.0.7/8"}} // only this test connects there
	steps := []Step{{ID: "enslave", Disruptive: true}}
	for _, name := range []string{"sshd", "other"} {
		_, addr := fakeSSHD(t, name, "")
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		var found []netip.Addr
		for i := 0; i < 50; i++ { // until the child has accepted
			if found = EstablishedSSH("", ""); slices.Contains(found, netip.MustParseAddr("127.0.0.7")) || name != "sshd" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		err = (&Guard{}).Check(cfg, st, steps)
		conn.Close()
		if name == "sshd" && (err == nil || !strings.Contains(err.Error(), "held by sshd")) {
			t.Errorf("a connection held by sshd on %s: guard says %v (found %v)", addr, err, found)
		}
		if name == "other" && err != nil && strings.Contains(err.Error(), "held by sshd") {
			t.Errorf("a connection held by a process not named sshd counted: %v", err)
		}
	}
}

// fakeSSHD starts a process named comm listening on 127.0.0.7, bound to
// device bind ("" for none), that accepts one connection and holds it; it
// is killed when the test ends.
func fakeSSHD(t *testing.T, comm, bind string) (pid int, addr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PAMVRF_TEST_FAKE_SSHD=127.0.0.7:0", "PAMVRF_TEST_FAKE_SSHD_NAME="+comm, "PAMVRF_TEST_FAKE_SSHD_BIND="+bind)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("fake sshd: %v", err)
	}
	return cmd.Process.Pid, strings.TrimSpace(line)
}

// check's "sshd listen" line reads the kernel's socket table: a real
// listener bound to a device (lo standing in for the VRF: the host has no
// VRF driver) passes vrf-only, an unbound one fails it with the restart to
// run, and any-vrf takes either.
func TestCheckSSHDListenReadsTheSocketTable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (SO_BINDTODEVICE)")
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	name := func(int) string { return "lo" }
	cfg := testCfg()
	cfg.SSHD = SSHDVRFOnly
	for _, bind := range []string{"lo", ""} {
		pid, addr := fakeSSHD(t, "sshd", bind)
		socks, err := ProcessSockets(netns.None(), []int{pid})
		if err != nil {
			t.Fatal(err)
		}
		r := sshdListenResult(cfg, lo.Index, socks, nil, name)
		if r.OK != (bind == "lo") || !strings.Contains(r.Detail, addr) {
			t.Errorf("vrf-only, listener bound to %q: %s", bind, r)
		}
		if !r.OK && !strings.Contains(r.Fix, "systemctl restart ssh.service") {
			t.Errorf("no restart in the fix: %s", r)
		}
		anyVRF := cfg
		anyVRF.SSHD = SSHDAnyVRF
		if r := sshdListenResult(anyVRF, lo.Index, socks, nil, name); !r.OK {
			t.Errorf("any-vrf, listener bound to %q: %s", bind, r)
		}
	}
	// nothing listening; a VRF that is gone (index 0) binds nothing
	if r := sshdListenResult(cfg, lo.Index, nil, nil, name); r.OK || !strings.Contains(r.Detail, "nothing listens") {
		t.Errorf("no listener: %s", r)
	}
	// socket activation: PID 1's listeners count on ssh.socket's ports only
	socks := []ProcSocket{{PID: 1, Proto: "tcp", State: 10, Local: "[::]:22", BoundIf: lo.Index}, {PID: 1, Proto: "tcp", State: 10, Local: "0.0.0.0:631"}}
	if r := sshdListenResult(cfg, lo.Index, socks, []string{"22"}, name); !r.OK || strings.Contains(r.Detail, "631") {
		t.Errorf("ssh.socket bound, another unit's listener unbound: %s", r)
	}
	socks[0].BoundIf = 0
	if r := sshdListenResult(cfg, lo.Index, socks, []string{"22"}, name); r.OK || !strings.Contains(r.Fix, "restart ssh.socket") {
		t.Errorf("ssh.socket unbound: %s", r)
	}
}
