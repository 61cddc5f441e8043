package dnsbind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pam-vrf/pam-vrf/bpf"
	"github.com/pam-vrf/pam-vrf/cgroup"
)

// The helper is this test binary run again inside the test cgroup and a
// network namespace of its own: it makes the devices, opens the sockets
// of every case, connects them and prints the device each ends up bound to.
func TestMain(m *testing.M) {
	if os.Getenv("DNSBIND_HELPER") == "1" {
		if err := helper(); err != nil {
			fmt.Println("helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// cases: name, family, type, destination, device bound before connect.
var cases = []struct {
	name, dst, prebound string
	family, typ         int
}{
	{"udp4 server:53", "192.0.2.1:53", "", unix.AF_INET, unix.SOCK_DGRAM},
	{"tcp4 server:53", "192.0.2.1:53", "", unix.AF_INET, unix.SOCK_STREAM},
	{"tcp4 server:853", "192.0.2.1:853", "", unix.AF_INET, unix.SOCK_STREAM},
	{"udp4 server:80", "192.0.2.1:80", "", unix.AF_INET, unix.SOCK_DGRAM},
	{"udp4 other:53", "192.0.2.9:53", "", unix.AF_INET, unix.SOCK_DGRAM},
	{"udp4 server:53 bound to dnsb1", "192.0.2.1:53", "dnsb1", unix.AF_INET, unix.SOCK_DGRAM},
	{"tcp6 server:53", "[2001:db8::1]:53", "", unix.AF_INET6, unix.SOCK_STREAM},
	{"udp6 other:53", "[2001:db8::9]:53", "", unix.AF_INET6, unix.SOCK_DGRAM},
}

func helper() error {
	runtime.LockOSThread()
	for _, n := range []string{"dnsb0", "dnsb1"} {
		if err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: n}}); err != nil {
			// no dummy driver: a veth pair names both
			if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dnsb0"}, PeerName: "dnsb1"}); err != nil {
				return err
			}
			break
		}
	}
	if os.Getenv("DNSBIND_WAIT") == "1" {
		// hand the test this netns's cookie; it attaches, then says go
		fmt.Printf("cookie=%d\n", NetnsCookie())
		if _, err := fmt.Scanln(new(string)); err != nil {
			return err
		}
	}
	for _, c := range cases {
		fd, err := unix.Socket(c.family, c.typ|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return err
		}
		if c.prebound != "" {
			if err := unix.BindToDevice(fd, c.prebound); err != nil {
				return err
			}
		}
		ap := netip.MustParseAddrPort(c.dst)
		var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
		if c.family == unix.AF_INET {
			sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
		}
		_ = unix.Connect(fd, sa) // no route: unreachable, after the hook ran
		dev, _ := unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
		fmt.Printf("%s=%s\n", c.name, dev)
		unix.Close(fd)
	}
	return nil
}

// run starts the helper in cg and returns case name -> bound device.
func run(t *testing.T, cg string) map[string]string {
	t.Helper()
	return runWith(t, cg, nil)
}

// runWith is run; with before set, the helper first tells its netns's
// cookie, and before(cookie) runs before it opens the sockets.
func runWith(t *testing.T, cg string, before func(cookie uint64)) map[string]string {
	t.Helper()
	f, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DNSBIND_HELPER=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd()), Unshareflags: syscall.CLONE_NEWNET}
	var out []byte
	if before == nil {
		out, err = cmd.CombinedOutput()
	} else {
		cmd.Env = append(cmd.Env, "DNSBIND_WAIT=1")
		in, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err = cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var cookie uint64
		if _, err := fmt.Fscanf(stdout, "cookie=%d\n", &cookie); err != nil {
			t.Fatalf("helper's cookie: %v", err)
		}
		before(cookie)
		fmt.Fprintln(in, "go")
		out, _ = io.ReadAll(stdout)
		err = cmd.Wait()
	}
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		got[k] = v
	}
	return got
}

func testCgroup(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs and creates cgroups")
	}
	mount, err := cgroup.Mount()
	if err != nil {
		t.Fatal(err)
	}
	own, err := cgroup.ProcPath(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mount, own, fmt.Sprintf("pamvrf-dnsbind-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	return dir
}

func pinDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(bpf.BPFFSMount, fmt.Sprintf("pamvrf-dnsbind-test-%d", os.Getpid()))
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Skipf("no bpffs at %s: %v", bpf.BPFFSMount, err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func want(t *testing.T, stage string, got map[string]string, bound ...string) {
	t.Helper()
	isBound := map[string]string{"udp4 server:53 bound to dnsb1": "dnsb1"}
	for _, b := range bound {
		isBound[b] = "dnsb0"
	}
	for _, c := range cases {
		if got[c.name] != isBound[c.name] {
			t.Errorf("%s: %s bound to %q, want %q", stage, c.name, got[c.name], isBound[c.name])
		}
	}
}

// TestEnsureBindsNameserverConnects: real sockets in a cgroup with the
// programs attached: connects to a listed server on 53/853, TCP and UDP,
// IPv4 and IPv6, are bound to the device; other ports, other servers and
// sockets already bound are not. Updating the servers swaps the program
// in place; undo and Remove leave the sockets unbound again.
func TestEnsureBindsNameserverConnects(t *testing.T) {
	cg := testCgroup(t)
	pins := pinDir(t)
	want(t, "nothing attached", run(t, cg))

	servers := addrs("192.0.2.1", "2001:db8::1")
	undo, err := Ensure(cg, pins, "mgmt", "dnsb0", servers, 0)
	if err != nil {
		t.Fatalf("Ensure: %+v", err)
	}
	want(t, "attached", run(t, cg), "udp4 server:53", "tcp4 server:53", "tcp4 server:853", "tcp6 server:53")
	for _, fam := range Families {
		tag, err := Tag(pins, "mgmt", fam)
		if err != nil || !Matches(tag, fam, "dnsb0", servers, 0) {
			t.Fatalf("family %d after Ensure: tag %q (%v) is not the program for the servers", fam, tag, err)
		}
	}

	// other servers: the programs are replaced in place, the old servers
	// no longer bound, and no IPv6 server: that family's link goes
	other := addrs("192.0.2.9")
	if tag, _ := Tag(pins, "mgmt", unix.AF_INET); tag == "" || Matches(tag, unix.AF_INET, "dnsb0", other, 0) || Matches(tag, unix.AF_INET, "other0", servers, 0) || Matches(tag, unix.AF_INET, "dnsb0", servers, 7) {
		t.Errorf("tag %q matches other servers or another device", tag)
	}
	undo2, err := Ensure(cg, pins, "mgmt", "dnsb0", other, 0)
	if err != nil {
		t.Fatalf("Ensure other: %+v", err)
	}
	want(t, "updated", run(t, cg), "udp4 other:53")
	if _, err := os.Stat(PinPath(pins, "mgmt", unix.AF_INET6)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("IPv6 link still pinned with no IPv6 server: %v", err)
	}
	// its undo puts the first set back
	if err := undo2(); err != nil {
		t.Fatalf("undo of the update: %v", err)
	}
	want(t, "update undone", run(t, cg), "udp4 server:53", "tcp4 server:53", "tcp4 server:853", "tcp6 server:53")
	if err := undo(); err != nil {
		t.Fatalf("undo: %v", err)
	}
	want(t, "undone", run(t, cg))

	if _, err := Ensure(cg, pins, "mgmt", "dnsb0", servers, 0); err != nil {
		t.Fatal(err)
	}
	if err := Remove(pins, "mgmt"); err != nil {
		t.Fatal(err)
	}
	want(t, "removed", run(t, cg))
	for _, fam := range Families {
		if tag, err := Tag(pins, "mgmt", fam); tag != "" || err != nil {
			t.Errorf("family %d after Remove: tag %q, %v", fam, tag, err)
		}
	}
}

// A device that does not exist (the VRF deleted): connects go ahead,
// unbound.
func TestEnsureMissingDeviceLeavesSocketsAlone(t *testing.T) {
	cg := testCgroup(t)
	pins := pinDir(t)
	if _, err := Ensure(cg, pins, "gone", "nosuchdev", addrs("192.0.2.1"), 0); err != nil {
		t.Fatal(err)
	}
	defer Remove(pins, "gone")
	want(t, "device missing", run(t, cg))
}

// The hooks of the root cgroup run for every netns: limited to this
// test's, they leave the helper's (a netns of its own) alone.
func TestEnsureOtherNetnsLeftAlone(t *testing.T) {
	cookie := NetnsCookie()
	if cookie == 0 {
		t.Skip("no SO_NETNS_COOKIE (kernel before 5.14)")
	}
	cg := testCgroup(t)
	pins := pinDir(t)
	if _, err := Ensure(cg, pins, "mgmt", "dnsb0", addrs("192.0.2.1"), cookie); err != nil {
		t.Fatalf("%+v", err)
	}
	defer Remove(pins, "mgmt")
	want(t, "another netns", run(t, cg))

	// limited to the helper's own netns: bound there
	got := runWith(t, cg, func(c uint64) {
		if _, err := Ensure(cg, pins, "mgmt", "dnsb0", addrs("192.0.2.1"), c); err != nil {
			t.Fatalf("%+v", err)
		}
	})
	want(t, "its own netns", got, "udp4 server:53", "tcp4 server:53", "tcp4 server:853")
}

func TestProbe(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs")
	}
	if err := Probe(); err != nil {
		t.Fatalf("%+v", err)
	}
}

func TestInstructionsRefuseBadNames(t *testing.T) {
	for _, d := range []string{"", "sixteen-chars-xx"} {
		if _, err := Instructions(unix.AF_INET, d, addrs("192.0.2.1"), 0); err == nil {
			t.Errorf("device %q accepted", d)
		}
	}
}

// A pinned link someone detached (bpftool link detach) cannot be updated:
// Ensure attaches a new one in its place instead of failing every apply.
func TestEnsureReplacesADetachedLink(t *testing.T) {
	cg := testCgroup(t)
	pins := pinDir(t)
	if _, err := Ensure(cg, pins, "mgmt", "dnsb0", addrs("192.0.2.1"), 0); err != nil {
		t.Fatal(err)
	}
	l, err := link.LoadPinnedLink(PinPath(pins, "mgmt", unix.AF_INET), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = l.Detach()
	l.Close()
	if err != nil {
		t.Skipf("kernel cannot detach a cgroup link (BPF_LINK_DETACH, 5.9+): %v", err)
	}
	want(t, "detached", run(t, cg))
	if _, err := Ensure(cg, pins, "mgmt", "dnsb0", addrs("192.0.2.9"), 0); err != nil {
		t.Fatalf("Ensure over a detached link: %+v", err)
	}
	want(t, "attached anew", run(t, cg), "udp4 other:53")
}

// portWord is what the kernel's load of user_port gives: htons(port) as a
// 16-bit value, zero-extended.
func TestPortWord(t *testing.T) {
	var want uint32 = 0x3500 // htons(53) on a little-endian machine
	if binary.NativeEndian.Uint16([]byte{0, 1}) == 1 {
		want = 0x0035 // big-endian: htons is the identity
	}
	if got := portWord(53); got != want {
		t.Fatalf("portWord(53) = %#x, want %#x", got, want)
	}
}
