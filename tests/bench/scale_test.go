package bench

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/pam-vrf/pam-vrf/bpf"
)

// checkOneProgram fails unless the kernel reports exactly one sock_create
// program attached to the VRF cgroup dir; returns its id.
func checkOneProgram(b *testing.B, dir string) ebpf.ProgramID {
	b.Helper()
	ids, err := bpf.Attached(dir)
	if err != nil {
		b.Fatalf("query %s: %v", dir, err)
	}
	if len(ids) != 1 {
		b.Fatalf("%s has %d sock_create programs attached, want exactly 1", dir, len(ids))
	}
	return ids[0]
}

// countCgroups counts the cgroup directories below root (root excluded).
func countCgroups(root string) int {
	n := -1
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// programsSince returns how many loaded programs named bpf.ProgramName have
// an id above after, and the highest program id now. Ids only grow, so
// "loaded since" is counted by id, not as a difference of totals: a program
// whose last reference went just before (the warm-up login's, freed after an
// RCU grace period) would otherwise cancel one loaded since.
func programsSince(after ebpf.ProgramID) (n int, highest ebpf.ProgramID) {
	highest = after
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return n, highest
		}
		id = next
		highest = max(highest, id)
		if id <= after {
			continue
		}
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && info.Name == bpf.ProgramName {
			n++
		}
		p.Close()
	}
}

var loopRe = regexp.MustCompile(`loop: cycles=(\d+) failed=(\d+) warmup=(\d+) fds=(\d+)/(\d+)/(\d+) threads=(\d+)/(\d+)/(\d+) rss_kb=(\d+)/(\d+)/(\d+) us_per_cycle=([0-9.]+)`)

// BenchmarkScale: 10,000 sessions opened and closed in one PAM host process
// (driver -n), then 200 sessions opened concurrently by 200 processes, each
// in its own session cgroup (so 200 VRF cgroups), held until all are placed,
// then released together.
func BenchmarkScale(b *testing.B) {
	e := getEnv(b)
	vrf := e.stack(b, vrfStack, e.dev)
	// A policy younger than the racy window has no decision table yet, so
	// its logins take the Go part; a host's steady state is the C part.
	time.Sleep(2100 * time.Millisecond)

	// --- 10,000 cycles in one process.
	sess := e.session(b, "loop")
	out := e.run(b, sess, vrf, "-n", "10000")
	m := loopRe.FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("no loop report:\n%s", tail(out))
	}
	v := make([]int, 13)
	for i := 1; i <= 12; i++ {
		v[i], _ = strconv.Atoi(m[i])
	}
	if v[2] != 0 {
		b.Fatalf("%d of %d cycles failed", v[2], v[1])
	}
	id := checkOneProgram(b, e.vrfDir(sess, e.dev))
	left := countCgroups(sess)
	add(row{"3", fmt.Sprintf("10,000 open/close cycles in one process: time per pam_start..pam_end cycle (mean after %d warm-up)", v[3]), m[13] + " µs", "", "", "", "", "", ""})
	add(row{"3", "  fds after cycle 1 / warm-up / 10,000", fmt.Sprintf("%d / %d / %d", v[4], v[5], v[6]), "", "", "", "", "no growth", passMiss(v[6] == v[4])})
	add(row{"3", "  threads after cycle 1 / warm-up / 10,000", fmt.Sprintf("%d / %d / %d", v[7], v[8], v[9]), "", "", "", "", "≤ +1 after warm-up", passMiss(v[9] <= v[8]+1)})
	grow := v[12] - v[11]
	add(row{"3", "  RSS after cycle 1 / warm-up / 10,000", fmt.Sprintf("%d / %d / %d KiB", v[10], v[11], v[12]), "", "", "", fmt.Sprintf("%+d KiB after warm-up", grow), "< 1 MiB", passMiss(grow < 1024)})
	add(row{"3", "  sock_create programs on the VRF cgroup; cgroups left behind", fmt.Sprintf("1 (id %d); %d (<ns>-ns, vrf, vrf/<dev>)", id, left), "", "", "", "", "exactly 1", "PASS"})

	// --- 200 concurrent sessions from 200 processes, on a fresh device (no
	// program loaded yet: the first loads race).
	const conc = 200
	dev := e.newDev(b)
	defer e.delDev(dev)
	cstack := e.stack(b, vrfStack, dev)
	time.Sleep(2100 * time.Millisecond)
	// Its decision table, as the first login through the Go part writes it.
	warm := e.session(b, "conc-warm")
	e.run(b, warm, cstack, "-t", "1")
	rmTree(warm)
	os.Remove(bpf.PinPath(uint32(ifindexOf(b, e, dev)))) // still no program loaded: the first loads race
	type proc struct {
		sess  string
		stdin io.WriteCloser
		lines chan string
		wait  func() error
	}
	_, idBefore := programsSince(0)
	procs := make([]*proc, conc)
	heldRe := regexp.MustCompile(`^held: rc=(-?\d+) fds=(\d+) threads=(\d+) rss_kb=(\d+) cgroup: (.*)$`)
	start := time.Now()
	for i := range procs {
		p := &proc{sess: e.session(b, fmt.Sprintf("conc-%d", i)), lines: make(chan string, 4)}
		cmd, done := e.cmdIn(b, p.sess, driver, "-d", cstack, "-s", "sshd", "-u", "root", "-w")
		var err error
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			b.Fatal(err)
		}
		so, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		done()
		go func() {
			sc := bufio.NewScanner(so)
			for sc.Scan() {
				p.lines <- sc.Text()
			}
			close(p.lines)
		}()
		p.wait = cmd.Wait
		procs[i] = p
	}
	var maxFds, maxThr, maxRSS int
	for i, p := range procs {
		l, ok := <-p.lines
		hm := heldRe.FindStringSubmatch(l)
		if !ok || hm == nil || hm[1] != "0" {
			b.Fatalf("concurrent session %d did not open: %q", i, l)
		}
		want := strings.TrimPrefix(e.vrfDir(p.sess, dev), mnt)
		if hm[5] != want {
			b.Fatalf("concurrent session %d in %s, want %s", i, hm[5], want)
		}
		f, _ := strconv.Atoi(hm[2])
		t, _ := strconv.Atoi(hm[3])
		r, _ := strconv.Atoi(hm[4])
		maxFds, maxThr, maxRSS = max(maxFds, f), max(maxThr, t), max(maxRSS, r)
	}
	allHeld := time.Since(start)
	ids := map[ebpf.ProgramID]bool{}
	for _, p := range procs {
		ids[checkOneProgram(b, e.vrfDir(p.sess, dev))] = true
	}
	loaded, _ := programsSince(idBefore)
	// Release: close every stdin at once, then every session closes.
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.stdin.Close() })
	}
	wg.Wait()
	for i, p := range procs {
		var last string
		for l := range p.lines {
			last = l
		}
		if err := p.wait(); err != nil || last != "released: rc=0" {
			b.Fatalf("concurrent session %d: exit %v, last line %q", i, err, last)
		}
	}
	leftC := 0
	for _, p := range procs {
		leftC += countCgroups(p.sess)
		rmTree(p.sess)
	}
	add(row{"3", fmt.Sprintf("%d concurrent sessions from %d processes: all placed after", conc, conc), us(float64(allHeld.Microseconds())), "", "", "", "", "", ""})
	add(row{"3", "  sock_create programs per VRF cgroup; distinct program ids; pam_vrf_sock programs loaded by the race", fmt.Sprintf("1 in each of %d; %d; %d", conc, len(ids), loaded), "", "", "", "", "exactly 1 each", passMiss(len(ids) == 1 && loaded == 1)})
	add(row{"3", "  per process while held: max fds / threads / RSS", fmt.Sprintf("%d / %d / %d KiB", maxFds, maxThr, maxRSS), "", "", "", "", "", ""})
	add(row{"3", "  cgroups left behind after all sessions closed", fmt.Sprintf("%d (%d per session: <ns>-ns, vrf, vrf/<dev>)", leftC, leftC/conc), "", "", "", "", "", ""})
	once(b)
}
