package netsetup

import (
	"bufio"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
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
	ln, err := net.Listen("tcp", addr)
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
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PAMVRF_TEST_FAKE_SSHD=127.0.0.7:0", "PAMVRF_TEST_FAKE_SSHD_NAME="+name)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			t.Fatalf("%s: child: %v", name, err)
		}
		conn, err := net.Dial("tcp", strings.TrimSpace(line))
		if err != nil {
			t.Fatal(err)
		}
		var found []netip.Addr
		for i := 0; i < 50; i++ { // until the child has accepted
			if found = EstablishedSSH("", ""); len(found) > 0 || name != "sshd" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		err = (&Guard{}).Check(cfg, st, steps)
		conn.Close()
		cmd.Process.Kill()
		cmd.Wait()
		if name == "sshd" && (err == nil || !strings.Contains(err.Error(), "held by sshd")) {
			t.Errorf("a connection held by sshd on port %s: guard says %v (found %v)", line, err, found)
		}
		if name == "other" && err != nil && strings.Contains(err.Error(), "held by sshd") {
			t.Errorf("a connection held by a process not named sshd counted: %v", err)
		}
	}
}
