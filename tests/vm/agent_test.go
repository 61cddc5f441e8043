package vm

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAgentProtocol runs the real guest agent script on the host over a
// socketpair (instead of the virtio-serial port) and drives it with the VM client
// code: framing, binary safety, exit codes, timeouts, PUT. No VM needed.
func TestAgentProtocol(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	host := os.NewFile(uintptr(fds[0]), "host")
	guest := os.NewFile(uintptr(fds[1]), "guest")
	defer host.Close()

	dir := t.TempDir()
	agent := exec.Command("bash", filepath.Join("guest", "usr", "local", "sbin", "pamvrf-agent"))
	agent.Env = append(os.Environ(), "PAMVRF_AGENT_FD3=1", "PAMVRF_AGENT_DIR="+filepath.Join(dir, "agent"))
	agent.ExtraFiles = []*os.File{guest} // fd 3
	var agentErr bytes.Buffer
	agent.Stderr = &agentErr
	agent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	agent.WaitDelay = time.Second
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	guest.Close()
	defer func() {
		syscall.Kill(-agent.Process.Pid, syscall.SIGKILL) // the agent's own process group
		agent.Wait()
		if t.Failed() {
			t.Logf("agent stderr: %s", agentErr.String())
		}
	}()

	v := &VM{conn: host, frames: make(chan frame, 64), exited: make(chan struct{}), qemu: &exec.Cmd{}}
	go v.readLoop(host, v.frames)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// garbage before sync must be ignored
	host.Write([]byte("NOISE 1 2\nRUN x notanumber 5\n"))
	if err := v.sync(ctx); err != nil {
		t.Fatal(err)
	}

	out, errOut, code, err := v.Run(ctx, "echo out; echo err >&2; printf 'tail\\r\\n\\x00x'; exit 3")
	if err != nil || code != 3 || out != "out\ntail\r\n\x00x" || errOut != "err\n" {
		t.Fatalf("run: out=%q err=%q code=%d %v", out, errOut, code, err)
	}
	if out, _, code, _ := v.Run(ctx, "true"); out != "" || code != 0 {
		t.Fatalf("emsocketpair output: %q %d", out, code)
	}

	data := make([]byte, 100000)
	for i := range data {
		data[i] = byte(i * 31)
	}
	target := filepath.Join(dir, "sub dir", "file's")
	if err := v.WriteFile(ctx, target, data, 0o751); err != nil {
		t.Fatal(err)
	}
	got, err := v.ReadFile(ctx, target)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes: %v", len(got), err)
	}
	if st, err := os.Stat(target); err != nil || st.Mode().Perm() != 0o751 {
		t.Fatalf("stat: %v %v", st.Mode(), err)
	}
	// a failing PUT keeps the stream in sync
	if err := v.WriteFile(ctx, "/proc/no/such/dir/x", []byte("abc\nPING 1 0\n"), 0o644); err == nil {
		t.Fatal("put into /proc succeeded")
	}
	if out, _, _, err := v.Run(ctx, "echo still-in-sync"); err != nil || out != "still-in-sync\n" {
		t.Fatalf("after failed put: %q %v", out, err)
	}

	tctx, tcancel := context.WithTimeout(ctx, 3*time.Second)
	defer tcancel()
	t0 := time.Now()
	if _, _, code, err := v.Run(tctx, "sleep 20"); err != nil || code != 124 {
		t.Fatalf("timeout: code %d %v", code, err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	if out, _, _, err := v.Run(ctx, "echo "+strings.Repeat("y", 5000)); err != nil || len(out) != 5001 {
		t.Fatalf("long line: %d %v", len(out), err)
	}
}
