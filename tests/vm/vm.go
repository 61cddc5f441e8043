// Package vm boots the pam-vrf test guest (Debian bookworm by default, or
// another suite such as trixie; cloud kernel with vrf.ko) under QEMU/TCG
// and drives it over a virtio-serial agent: the guest has no NIC, every test
// network lives inside it (see README.md).
//
// Typical use:
//
//	img, err := vm.EnsureImage(ctx)
//	m, err := vm.Boot(ctx, img, vm.Config{})
//	defer m.Close()
//	out, errOut, code, err := m.Run(ctx, "ip -br link")
package vm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Facts about the guest network built at every boot (guest/usr/local/sbin/pamvrf-testnet).
const (
	GuestAddr4     = "192.0.2.10"   // eth0, static DHCP lease
	GuestAddr6     = "2001:db8::10" // eth0, static
	UpstreamAddr4  = "192.0.2.1"    // netns upstream: gateway, DNS, HTTP
	UpstreamAddr6  = "2001:db8::1"
	UpstreamNetns  = "upstream"
	GuestIface     = "eth0"
	GuestMAC       = "52:54:00:12:34:10"
	MirrorName     = "mirror.test"             // -> 192.0.2.1 / 2001:db8::1
	MirrorPath     = "/dists/bookworm/Release" // of the bookworm guest; MirrorPathFor(suite)
	MirrorRelease  = "Origin: pam-vrf-test\nLabel: pam-vrf test mirror\nSuite: bookworm\nCodename: bookworm\n"
	DefaultSuite   = "bookworm"              // EnsureImage's guest
	GuestSSHKey    = "/root/.ssh/id_ed25519" // same key as Image.SSHKey(), inside the guest
	PAMModuleDir   = "/usr/lib/x86_64-linux-gnu/security"
	AgentPortName  = "pamvrf.agent"
	defaultMemory  = "1G"
	defaultCPUs    = 1 // see Config.CPUs
	bootTimeout    = 120 * time.Second
	defaultRunTime = 5 * time.Minute
)

// MirrorPathFor is the path of the test mirror's Release file in a guest of
// suite (build-image.sh writes one for the guest's own suite only).
func MirrorPathFor(suite string) string { return "/dists/" + suite + "/Release" }

// MirrorReleaseFor is what MirrorPathFor(suite) serves.
func MirrorReleaseFor(suite string) string {
	return "Origin: pam-vrf-test\nLabel: pam-vrf test mirror\nSuite: " + suite + "\nCodename: " + suite + "\n"
}

// Config tunes one VM. The zero value is usable.
type Config struct {
	Cache  string // image cache; default $PAMVRF_VM_CACHE or ~/.cache/pam-vrf/vm
	Memory string // QEMU -m; default 1G
	// CPUs is QEMU's -smp: 1 unless set here or by $PAMVRF_VM_CPUS. Two
	// guests at once on a 2-core machine (make e2e) each ran a third
	// faster with one vCPU than with two (TestE2EIfupdownStatic twice
	// side by side: 147 s against 217 s; most likely four vCPU threads on
	// two cores spinning on locks whose holder is descheduled). One vCPU
	// also leaves no other CPU to race the kernel's code patching, which
	// under TCG has panicked guests (see scripts/e2e-run.sh).
	CPUs    int
	Console io.Writer // optional copy of the serial console (always logged to a file too)
	// KeepRunDir keeps the run directory (overlay, console log) after Close.
	// Also enabled by PAMVRF_VM_KEEP=1.
	KeepRunDir bool
	// ExtraAppend is appended to the kernel command line.
	ExtraAppend string
	// Accel is QEMU's -accel; default $PAMVRF_VM_ACCEL or "tcg" (KVM hangs on
	// the project's machines). With "kvm" the guest gets -cpu host.
	Accel string
	// BootTimeout bounds each boot (QEMU start to agent + systemd ready);
	// default $PAMVRF_VM_BOOT_TIMEOUT (a Go duration) or 120 s.
	BootTimeout time.Duration
}

// Image is a built guest image in the cache.
type Image struct {
	Dir   string // cache directory of this image
	Suite string // Debian suite of the guest (bookworm, trixie)
	Built bool   // true if EnsureImage had to build it
	// Debootstrapped is true if the build also had to debootstrap (fully cold).
	Debootstrapped bool
	Kernel         string
	Initrd         string
	Disk           string // raw ext4 base image; never written (runs use a qcow2 overlay)
	Facts          map[string]string
}

// SSHKey is the host path of the private key authorized for root, alice and bob.
// Inside the guest the same key is at GuestSSHKey.
func (img Image) SSHKey() string { return filepath.Join(img.Dir, "id_ed25519") }

// CacheDir returns the image cache directory.
func CacheDir() string {
	if d := os.Getenv("PAMVRF_VM_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "/root"
	}
	return filepath.Join(home, ".cache", "pam-vrf", "vm")
}

// BuildScript returns the path of build-image.sh ($PAMVRF_VM_BUILD_SCRIPT overrides).
func BuildScript() string {
	if p := os.Getenv("PAMVRF_VM_BUILD_SCRIPT"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "build-image.sh")
}

// EnsureImage builds the bookworm image (or reuses it from the default
// cache). Build logs go to stderr.
func EnsureImage(ctx context.Context) (Image, error) {
	return EnsureImageAt(ctx, CacheDir(), os.Stderr)
}

// EnsureImageSuite is EnsureImage for a guest of another Debian suite, one
// that build-image.sh has a package list for (guest/packages.SUITE.list):
// "trixie". Each suite has its own cache entries.
func EnsureImageSuite(ctx context.Context, suite string) (Image, error) {
	return EnsureImageSuiteAt(ctx, CacheDir(), suite, os.Stderr)
}

// EnsureImageAt is EnsureImage with an explicit cache directory and log writer.
func EnsureImageAt(ctx context.Context, cache string, log io.Writer) (Image, error) {
	return EnsureImageSuiteAt(ctx, cache, DefaultSuite, log)
}

// EnsureImageSuiteAt is EnsureImageSuite with an explicit cache directory
// and log writer.
func EnsureImageSuiteAt(ctx context.Context, cache, suite string, log io.Writer) (Image, error) {
	if log == nil {
		log = io.Discard
	}
	if suite == "" {
		suite = DefaultSuite
	}
	// the suite goes as the argument, which wins over a PAMVRF_VM_SUITE
	// left in the environment: EnsureImage always means bookworm
	cmd := exec.CommandContext(ctx, "bash", BuildScript(), suite)
	cmd.Env = append(os.Environ(), "PAMVRF_VM_CACHE="+cache)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = log
	if err := cmd.Run(); err != nil {
		return Image{}, fmt.Errorf("vm: build-image.sh: %w", err)
	}
	img := Image{Suite: suite}
	for _, line := range strings.Split(out.String(), "\n") {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "IMAGE_DIR="); ok {
				img.Dir = v
			} else if v, ok := strings.CutPrefix(f, "BUILT="); ok {
				img.Built = v == "1"
			} else if v, ok := strings.CutPrefix(f, "DEBOOTSTRAP="); ok {
				img.Debootstrapped = v == "1"
			}
		}
	}
	if img.Dir == "" {
		return Image{}, fmt.Errorf("vm: build-image.sh printed no IMAGE_DIR: %q", out.String())
	}
	img.Kernel = filepath.Join(img.Dir, "vmlinuz")
	img.Initrd = filepath.Join(img.Dir, "initrd.img")
	img.Disk = filepath.Join(img.Dir, "disk.img")
	img.Facts = map[string]string{}
	if b, err := os.ReadFile(filepath.Join(img.Dir, "info")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				img.Facts[k] = v
			}
		}
	}
	for _, p := range []string{img.Kernel, img.Initrd, img.Disk, img.SSHKey()} {
		if _, err := os.Stat(p); err != nil {
			return Image{}, fmt.Errorf("vm: image incomplete: %w", err)
		}
	}
	return img, nil
}

// VM is a running guest. Methods are safe for concurrent use but serialized.
type VM struct {
	img    Image
	cfg    Config
	runDir string

	overlay    string
	consoleLog string
	sock       string

	// BootDuration is the time from starting QEMU to the agent answering
	// and systemd reporting running/degraded, for the last (re)boot.
	BootDuration time.Duration

	mu sync.Mutex // serializes requests
	// up: the current boot got as far as the agent answering; upPanics:
	// earlier boots that got that far and then panicked
	up       bool
	upPanics int
	qemu     *exec.Cmd
	exited   chan struct{} // closed when qemu exits
	conLog   *os.File
	conn     io.ReadWriteCloser
	frames   chan frame
	rdErr    error // set before frames is closed
	nextID   uint64
	closed   bool
}

type frame struct {
	kind   string // "PONG" or "RES"
	id     string
	code   int
	stdout []byte
	stderr []byte
}

// Boot starts a fresh VM from img on a new qcow2 overlay and waits until the
// agent answers and systemd has finished booting.
func Boot(ctx context.Context, img Image, cfg Config) (*VM, error) {
	if cfg.Memory == "" {
		cfg.Memory = defaultMemory
	}
	if cfg.CPUs <= 0 {
		cfg.CPUs = defaultCPUs
		if n, err := strconv.Atoi(os.Getenv("PAMVRF_VM_CPUS")); err == nil && n > 0 {
			cfg.CPUs = n
		}
	}
	if os.Getenv("PAMVRF_VM_KEEP") == "1" {
		cfg.KeepRunDir = true
	}
	if cfg.Accel == "" {
		cfg.Accel = os.Getenv("PAMVRF_VM_ACCEL")
		if cfg.Accel == "" {
			cfg.Accel = "tcg"
		}
	}
	if cfg.BootTimeout <= 0 {
		cfg.BootTimeout = bootTimeout
		if d, err := time.ParseDuration(os.Getenv("PAMVRF_VM_BOOT_TIMEOUT")); err == nil && d > 0 {
			cfg.BootTimeout = d
		}
	}
	dir, err := os.MkdirTemp("", "pamvrf-vm-")
	if err != nil {
		return nil, err
	}
	v := &VM{
		img:        img,
		cfg:        cfg,
		runDir:     dir,
		overlay:    filepath.Join(dir, "run.qcow2"),
		consoleLog: filepath.Join(dir, "console.log"),
		sock:       filepath.Join(dir, "agent.sock"),
	}
	qi := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", img.Disk, "-F", "raw", v.overlay)
	if out, err := qi.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("vm: qemu-img create: %v: %s", err, out)
	}
	if err := v.startBoot(ctx); err != nil {
		v.kill()
		if !cfg.KeepRunDir {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	return v, nil
}

// startBoot is start, once more when the guest never came up far enough
// for the agent to answer. Seen under TCG with two guests on two cores: a
// kernel panic in the timer interrupt 1.8 s into boot, before init ran,
// and a guest that printed nothing at all for the whole boot timeout. Those
// are the emulator's, not the code under test's, which runs after the
// agent answers; a second failure fails the test, as does a panic or a
// failed unit after the agent answered.
func (v *VM) startBoot(ctx context.Context) error {
	err := v.start(ctx)
	var na *noAgentError
	if err == nil || ctx.Err() != nil || !errors.As(err, &na) {
		return err
	}
	v.kill()
	why := "the agent never answered"
	if panickedLastBoot(v.consoleLog) {
		why = "the guest kernel panicked while booting"
	}
	fmt.Fprintf(os.Stderr, "vm: %s (console: %s); booting once more\n", why, v.consoleLog)
	return v.start(ctx)
}

// noAgentError: the boot failed before the guest's agent answered.
type noAgentError struct{ err error }

func (e *noAgentError) Error() string { return e.err.Error() }
func (e *noAgentError) Unwrap() error { return e.err }

// bootMarker starts each boot's part of the console log.
const bootMarker = "===== pamvrf-vm: qemu start "

// panickedLastBoot: the console log's last boot has a kernel panic.
func panickedLastBoot(consoleLog string) bool {
	b, err := os.ReadFile(consoleLog)
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndex(s, bootMarker); i >= 0 {
		s = s[i:]
	}
	return strings.Contains(s, "Kernel panic - not syncing")
}

// RunDir is the directory holding the overlay, console log and agent socket.
func (v *VM) RunDir() string { return v.runDir }

// ConsoleLog is the path of the serial console log (all boots appended).
func (v *VM) ConsoleLog() string { return v.consoleLog }

// Image returns the image this VM was booted from.
func (v *VM) Image() Image { return v.img }

func (v *VM) start(ctx context.Context) error {
	t0 := time.Now()
	if v.up && panickedLastBoot(v.consoleLog) {
		v.upPanics++
	}
	v.up = false
	con, err := os.OpenFile(v.consoleLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(con, "\n%s%s =====\n", bootMarker, t0.Format(time.RFC3339))
	v.conLog = con
	os.Remove(v.sock)
	appendLine := "root=/dev/vda rw console=ttyS0 panic=-1 mitigations=off tsc=reliable loglevel=4 systemd.show_status=auto"
	if v.cfg.ExtraAppend != "" {
		appendLine += " " + v.cfg.ExtraAppend
	}
	cpu := "max"
	if v.cfg.Accel == "kvm" {
		cpu = "host"
	}
	args := []string{
		"-accel", v.cfg.Accel, "-cpu", cpu,
		"-m", v.cfg.Memory, "-smp", strconv.Itoa(v.cfg.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
		"-no-reboot", // a guest reboot exits qemu; Reboot relaunches on the same overlay
		"-nic", "none",
		"-kernel", v.img.Kernel, "-initrd", v.img.Initrd, "-append", appendLine,
		"-drive", "file=" + v.overlay + ",format=qcow2,if=virtio,cache=unsafe,discard=unmap",
		"-serial", "stdio",
		"-device", "virtio-rng-pci",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=agent,path=" + v.sock + ",server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=" + AgentPortName,
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	var w io.Writer = con
	if v.cfg.Console != nil {
		w = io.MultiWriter(con, v.cfg.Console)
	}
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		con.Close()
		return fmt.Errorf("vm: start qemu: %w", err)
	}
	v.qemu = cmd
	v.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) {
		c.Wait()
		close(done)
	}(cmd, v.exited)

	bctx, cancel := context.WithTimeout(ctx, v.cfg.BootTimeout)
	defer cancel()
	if err := v.connect(bctx); err != nil {
		return v.bootErr(&noAgentError{err})
	}
	if err := v.sync(bctx); err != nil {
		return v.bootErr(&noAgentError{err})
	}
	out, _, code, err := v.run(bctx, "systemctl is-system-running --wait", 0)
	state := strings.TrimSpace(out)
	if err != nil {
		return v.bootErr(fmt.Errorf("waiting for systemd: %w", err))
	}
	if state != "running" && state != "degraded" {
		failed, _, _, _ := v.run(bctx, "systemctl --failed --no-legend --plain", 0)
		return v.bootErr(fmt.Errorf("systemd state %q (exit %d); failed units: %s", state, code, strings.TrimSpace(failed)))
	}
	v.BootDuration = time.Since(t0)
	v.up = true
	return nil
}

// PanickedWhileUp reports whether the guest kernel panicked after a boot
// had come up (agent answering): while the test's own commands ran, not
// during a boot that startBoot retried. Call it once the guest is idle
// (a test's cleanup).
func (v *VM) PanickedWhileUp() bool {
	return v.upPanics > 0 || (v.up && panickedLastBoot(v.consoleLog))
}

func (v *VM) bootErr(err error) error {
	return fmt.Errorf("vm: boot: %w\n--- console tail (%s) ---\n%s", err, v.consoleLog, v.ConsoleTail(40))
}

// ConsoleTail returns the last n lines of the serial console log.
func (v *VM) ConsoleTail(n int) string {
	b, err := os.ReadFile(v.consoleLog)
	if err != nil {
		return "(no console log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (v *VM) connect(ctx context.Context) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "unix", v.sock)
		if err == nil {
			v.conn = c
			v.frames = make(chan frame, 64)
			go v.readLoop(c, v.frames)
			return nil
		}
		select {
		case <-v.exited:
			return fmt.Errorf("qemu exited: %v", v.qemu.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("connecting to agent socket: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (v *VM) readLoop(c io.Reader, frames chan<- frame) {
	defer close(frames)
	r := bufio.NewReaderSize(c, 1<<16)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			v.rdErr = err
			return
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "PONG":
			frames <- frame{kind: "PONG", id: f[1]}
		case len(f) == 5 && f[0] == "RES":
			code, e1 := strconv.Atoi(f[2])
			no, e2 := strconv.Atoi(f[3])
			ne, e3 := strconv.Atoi(f[4])
			if e1 != nil || e2 != nil || e3 != nil || no < 0 || ne < 0 {
				continue
			}
			fr := frame{kind: "RES", id: f[1], code: code, stdout: make([]byte, no), stderr: make([]byte, ne)}
			if _, err := io.ReadFull(r, fr.stdout); err != nil {
				v.rdErr = err
				return
			}
			if _, err := io.ReadFull(r, fr.stderr); err != nil {
				v.rdErr = err
				return
			}
			frames <- fr
		}
	}
}

func (v *VM) newID() string {
	v.nextID++
	return fmt.Sprintf("%d-%d", time.Now().UnixNano()%1e9, v.nextID)
}

// wait returns the next frame of kind with id, skipping stale ones.
func (v *VM) wait(ctx context.Context, kind, id string) (frame, error) {
	for {
		select {
		case f, ok := <-v.frames:
			if !ok {
				return frame{}, fmt.Errorf("agent connection closed: %v", v.rdErr)
			}
			if f.kind == kind && f.id == id {
				return f, nil
			}
		case <-v.exited:
			return frame{}, fmt.Errorf("qemu exited: %v", v.qemu.ProcessState)
		case <-ctx.Done():
			return frame{}, ctx.Err()
		}
	}
}

// sync pings until the agent answers.
func (v *VM) sync(ctx context.Context) error {
	for {
		id := v.newID()
		if _, err := fmt.Fprintf(v.conn, "PING %s 0\n", id); err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := v.wait(pctx, "PONG", id)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("agent did not answer: %w", ctx.Err())
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

func (v *VM) request(ctx context.Context, header string, payload []byte) (frame, error) {
	if v.conn == nil {
		return frame{}, errors.New("vm: not running")
	}
	id := v.newID()
	h := strings.Replace(header, "{id}", id, 1)
	h = strings.Replace(h, "{len}", strconv.Itoa(len(payload)), 1)
	if _, err := io.WriteString(v.conn, h+"\n"); err != nil {
		return frame{}, err
	}
	if _, err := v.conn.Write(payload); err != nil {
		return frame{}, err
	}
	return v.wait(ctx, "RES", id)
}

// guestTimeout derives the guest-side timeout: max when given, else ctx's
// deadline (slightly shorter, so the guest kills the script and its output
// still comes back), else defaultRunTime. A ctx deadline always bounds it; a
// caller that sets a longer deadline than the default gets it (the fault
// script of TestE2ENetsetup was cut at 5 minutes despite its 6-minute limit).
func guestTimeout(ctx context.Context, max time.Duration) int {
	d := defaultRunTime
	dl, hasDeadline := ctx.Deadline()
	if hasDeadline {
		d = time.Until(dl) - 2*time.Second
	}
	if max > 0 && (!hasDeadline || max < d) {
		d = max
	}
	s := int(d / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// Run runs script with bash as root in the guest (stdin /dev/null, cwd /).
// code is the script's exit status (124 = killed by the guest-side timeout,
// which is derived from ctx's deadline, 5 minutes without one); err reports
// transport failures only.
func (v *VM) Run(ctx context.Context, script string) (stdout, stderr string, code int, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.run(ctx, script, 0)
}

func (v *VM) run(ctx context.Context, script string, max time.Duration) (string, string, int, error) {
	f, err := v.request(ctx, fmt.Sprintf("RUN {id} {len} %d", guestTimeout(ctx, max)), []byte(script))
	if err != nil {
		return "", "", -1, fmt.Errorf("vm: run: %w", err)
	}
	return string(f.stdout), string(f.stderr), f.code, nil
}

// MustRun is Run that turns a non-zero exit into an error carrying the output.
func (v *VM) MustRun(ctx context.Context, script string) (string, error) {
	out, errOut, code, err := v.Run(ctx, script)
	if err != nil {
		return out, err
	}
	if code != 0 {
		return out, fmt.Errorf("guest script exited %d\n--- script ---\n%s\n--- stdout ---\n%s--- stderr ---\n%s", code, script, out, errOut)
	}
	return out, nil
}

// Push copies a host file into the guest (atomically: temp file + rename),
// creating parent directories, with the given permission bits.
func (v *VM) Push(ctx context.Context, localPath, guestPath string, mode os.FileMode) error {
	data, err := os.ReadFile(localPath)
	if err != nil {
		return err
	}
	return v.WriteFile(ctx, guestPath, data, mode)
}

// WriteFile writes data to guestPath like Push.
func (v *VM) WriteFile(ctx context.Context, guestPath string, data []byte, mode os.FileMode) error {
	if !filepath.IsAbs(guestPath) {
		return fmt.Errorf("vm: push: guest path %q is not absolute", guestPath)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	hdr := fmt.Sprintf("PUT {id} {len} %o %s", mode.Perm(), base64.StdEncoding.EncodeToString([]byte(guestPath)))
	f, err := v.request(ctx, hdr, data)
	if err != nil {
		return fmt.Errorf("vm: push %s: %w", guestPath, err)
	}
	if f.code != 0 {
		return fmt.Errorf("vm: push %s: exit %d: %s", guestPath, f.code, f.stderr)
	}
	return nil
}

// Guest paths where an admin installs the project's artifacts by hand.
const (
	GuestPAMModule = PAMModuleDir + "/pam_vrf.so"
	GuestPAMCore   = PAMModuleDir + "/pam_vrf/core.so" // the Go part the module loads in open_session
	GuestNetsetup  = "/usr/sbin/vrf-netsetup"
)

// InstallBuild installs build/pam_vrf.so (with pam_vrf/core.so) and build/vrf-netsetup from
// buildDir the way an admin would (copy to the PAM module dir and /usr/sbin).
// Missing files are skipped; it returns the guest paths installed.
func (v *VM) InstallBuild(ctx context.Context, buildDir string) ([]string, error) {
	var done []string
	for _, a := range []struct {
		name, dst string
		mode      os.FileMode
	}{
		{"pam_vrf.so", GuestPAMModule, 0o644},
		{"pam_vrf/core.so", GuestPAMCore, 0o644},
		{"vrf-netsetup", GuestNetsetup, 0o755},
	} {
		src := filepath.Join(buildDir, a.name)
		if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := v.Push(ctx, src, a.dst, a.mode); err != nil {
			return done, err
		}
		done = append(done, a.dst)
	}
	return done, nil
}

// InstallDeb pushes a .deb into the guest and installs it with dpkg -i (the
// guest has no package mirror: the package's dependencies must already be
// installed). It returns dpkg's output.
func (v *VM) InstallDeb(ctx context.Context, debPath string) (string, error) {
	dst := "/var/cache/pamvrf-test/" + filepath.Base(debPath)
	if err := v.Push(ctx, debPath, dst, 0o644); err != nil {
		return "", err
	}
	out, errOut, code, err := v.Run(ctx, "DEBIAN_FRONTEND=noninteractive dpkg -i "+shellQuote(dst)+" 2>&1")
	if err != nil {
		return out, err
	}
	if code != 0 {
		return out, fmt.Errorf("vm: dpkg -i %s: exit %d: %s%s", filepath.Base(debPath), code, out, errOut)
	}
	return out, nil
}

// ReadFile returns the content of a guest file.
func (v *VM) ReadFile(ctx context.Context, guestPath string) ([]byte, error) {
	out, errOut, code, err := v.Run(ctx, "cat -- "+shellQuote(guestPath))
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return nil, fmt.Errorf("vm: read %s: %s", guestPath, strings.TrimSpace(errOut))
	}
	return []byte(out), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Reboot reboots the guest on the same disk (overlay) and waits for the agent
// and systemd again. QEMU runs with -no-reboot, so the guest's reboot ends
// QEMU and a new QEMU is started on the same overlay.
func (v *VM) Reboot(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return errors.New("vm: closed")
	}
	if err := v.shutdown(ctx, "systemctl --no-block reboot", 90*time.Second); err != nil {
		return fmt.Errorf("vm: reboot: %w", err)
	}
	if err := v.startBoot(ctx); err != nil {
		v.kill()
		return err
	}
	return nil
}

// shutdown asks the guest to stop and waits for QEMU to exit (kills it after timeout).
func (v *VM) shutdown(ctx context.Context, script string, timeout time.Duration) error {
	var err error
	if v.conn != nil {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, _, _, err = v.run(rctx, script, 0)
		cancel()
	}
	select {
	case <-v.exited:
		err = nil
	case <-time.After(timeout):
		err = fmt.Errorf("guest did not stop within %v (killed); run error: %v", timeout, err)
	case <-ctx.Done():
		err = ctx.Err()
	}
	v.kill()
	return err
}

// kill stops QEMU (if still running) and releases the connection.
func (v *VM) kill() {
	if v.conn != nil {
		v.conn.Close()
		v.conn = nil
	}
	if v.qemu != nil && v.qemu.Process != nil {
		select {
		case <-v.exited:
		default:
			v.qemu.Process.Kill()
			<-v.exited
		}
	}
	if v.conLog != nil {
		v.conLog.Close()
		v.conLog = nil
	}
}

// Close powers the guest off (killing QEMU after 30 s) and removes the run
// directory (overlay, console log) unless KeepRunDir/PAMVRF_VM_KEEP=1.
func (v *VM) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil
	}
	v.closed = true
	err := v.shutdown(context.Background(), "systemctl --no-block poweroff", 30*time.Second)
	if !v.cfg.KeepRunDir {
		os.RemoveAll(v.runDir)
	}
	return err
}
