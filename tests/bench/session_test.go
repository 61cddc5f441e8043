package bench

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pam-vrf/pam-vrf/bpf"
	"github.com/pam-vrf/pam-vrf/fastpath"
)

// BenchmarkSessionOpen: cost of pam_open_session + pam_close_session through
// libpam (timed inside the C driver with CLOCK_MONOTONIC), for
//
//	floor  pam_permit.so only;
//	vrf    pam_permit.so + pam_vrf.so;
//	exec   pam_permit.so + pam_exec.so running placeScript (the baseline).
//
// Warm (one PAM host process, many cycles; the VRF cgroup and its program
// already exist):
//
//	"placed": the process is still in the VRF cgroup from the previous
//	cycle (a host process that opens sessions repeatedly);
//	"moved": before each cycle (untimed) the driver moves itself back to
//	its session cgroup, so every open really migrates it (-b).
//
// New process (one sample per process, timed pam_start..pam_end: dlopen of
// the module, Go runtime start, cilium/ebpf feature probes, program lookup,
// attach, mkdir, move; what each sshd connection pays since each is a
// fresh process in a fresh session cgroup):
//
//	"login": fresh process, fresh session cgroup (so a new VRF cgroup and an
//	attach), program for the device already loaded (reused);
//	"first ever": the same with a device no program exists for yet (load +
//	verifier).
//
// Runs are interleaved (round-robin, order rotated per round) so drift on a
// noisy machine hits every scenario alike.
func BenchmarkSessionOpen(b *testing.B) {
	e := getEnv(b)
	stacks := map[string]string{
		floorStack: e.stack(b, floorStack, e.dev),
		vrfStack:   e.stack(b, vrfStack, e.dev),
		execStack:  e.stack(b, execStack, e.dev),
	}
	home := e.session(b, "warm")
	// A host's steady state is the C fast path, which needs the policy's
	// decision table: a policy younger than the racy window gets none yet,
	// so let it settle, then one login writes the table.
	time.Sleep(2100 * time.Millisecond)
	e.run(b, home, stacks[vrfStack], "-t", "1")

	// Warm scenarios: rounds x perRound cycles each, the first warm cycles
	// of every process dropped.
	type warm struct {
		name, stack string
		moved       bool
	}
	scen := []warm{
		{"floor", floorStack, false},
		{"vrf placed", vrfStack, false},
		{"exec placed", execStack, false},
		{"vrf moved", vrfStack, true},
		{"exec moved", execStack, true},
	}
	const rounds, drop = 10, 10
	perRound := samples / rounds
	oc := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		for i := range scen {
			s := scen[(i+r)%len(scen)]
			args := []string{"-t", fmt.Sprint(perRound + drop)}
			if s.moved {
				args = append(args, "-b", home)
			}
			v, _ := timed(b, e.run(b, home, stacks[s.stack], args...))
			oc[s.name] = append(oc[s.name], v[drop:]...)
		}
	}
	// Functional check: the warm placements went where ip vrf exec would.
	vrfDir := e.vrfDir(home, e.dev)
	checkOneProgram(b, vrfDir)

	floor := median(oc["floor"])
	add(row{"1", "open+close, floor: pam_permit.so only (warm)", us(floor), us(pct(oc["floor"], 99)), "", "", "", "", ""})
	for _, k := range []string{"placed", "moved"} {
		v, base := oc["vrf "+k], oc["exec "+k]
		ratio := median(base) / median(v)
		what := "already in the VRF cgroup"
		if k == "moved" {
			what = "migrated into it every cycle"
		}
		// The steady state of a process that opens sessions repeatedly is
		// the first: it stays in the VRF cgroup. The second adds a cgroup
		// migration per cycle to both sides, shown, with no target.
		target, result := "≥ 50x", passMiss(ratio >= 50)
		if k == "moved" {
			target, result = "", ""
		}
		add(row{"1", fmt.Sprintf("open+close, pam_vrf.so warm steady state, %s", what), us(median(v)), us(pct(v, 99)),
			fmt.Sprintf("pam_exec script, %s", what), fmt.Sprintf("%s (p99 %s)", us(median(base)), us(pct(base, 99))),
			fmt.Sprintf("%.1fx cheaper", ratio), target, result})
	}

	newProcess(b, e)
	once(b)
}

// newProcess: one sample per fresh driver process, timed pam_start..pam_end
// (dlopen of the stack, the module's work, pam_end), which is what every
// sshd connection pays. Each process starts in a "pre" cgroup and joins a
// fresh session cgroup by migration right before it (-b), as logind's move
// of sshd's child does just before pam_vrf runs: a cgroup migration that
// comes within an RCU grace period of another is cheap, one that does not
// waits for a grace period (cgroup_threadgroup_rwsem), several ms here,
// whoever makes it; starting the process directly in the session cgroup
// (CLONE_INTO_CGROUP) would charge that wait to pam_vrf's move.
//
//	floor       pam_permit.so only
//	floor+move  the same, plus the bare kernel part of a placement done by
//	            the driver itself inside the timed open: mkdir + move
//	login       pam_vrf.so (C fast path): device check, program from its
//	            pin, mkdir, attach, move, verify
//	login (traced)  the same with the bench build, which times each step
//	            and logs it: the decomposition row (its clock reads and
//	            extra log line are not in the "login" row)
//	group       the same, decided by a group rule (NSS asked in a thread of
//	            the C part's, joined before the session is held)
//	floor+move+groups  floor+move plus the bare group lookup (getpwnam_r,
//	            getgrouplist, getgrnam_r, inline): the group row's baseline
//	login (Go)  the same through the Go part (its decision table removed
//	            before each sample): the cost the fast path avoids
//	first       a device no program is pinned for yet: load + verifier + pin
//	second      pam_permit.so + a copy of it: what any second module on the
//	            stack costs (the baseline of the two "not placed" rows)
//	no rule     pam_vrf.so, a user with no rule (decided in C)
//	not acted   pam_vrf.so, a service not in the policy's services
//	debian      Debian 12's sshd service (debian_test.go): the stack an
//	            unplaced ssh login really loads (the baseline of the next)
//	debian+vrf  the same with pam_vrf.so added as its pam-auth-update
//	            profile adds it, a user with no rule
//	exec        pam_exec running placeScript (the hand-made baseline)
//
// Runs are interleaved, in a new random order every round (fixed seed):
// what one kind leaves the kernel to finish lands on the next sample, and a
// fixed order would give it always to the same kind. "first" deletes a
// device and every placed kind removes a cgroup with a program attached,
// work the kernel finishes asynchronously; with the order only rotated, "no
// rule" always followed "first" and read 1.17x the do-nothing module while
// "not acted", doing the same work, read 1.07x in the same run.
func newProcess(b *testing.B, e *env) {
	pre := e.session(b, "pre")
	stacks := map[string]string{
		"floor":             e.stack(b, floorStack, e.dev),
		"floor+move":        e.stack(b, floorStack, e.dev),
		"floor+move+groups": e.stack(b, floorStack, e.dev),
		"second":            e.stack(b, secondStack, e.dev),
		"login":             e.moduleStack(b, testSO, e.dev, fmt.Sprintf("[user.root]\nvrf = %q\n", e.dev)),
		"login (traced)":    e.moduleStack(b, benchSO, e.dev, fmt.Sprintf("[user.root]\nvrf = %q\n", e.dev)),
		"login (Go)":        e.moduleStack(b, testSO, e.dev, fmt.Sprintf("[user.root]\nvrf = %q\n", e.dev)),
		"group":             e.moduleStack(b, testSO, e.dev, fmt.Sprintf("[group.root]\nvrf = %q\n", e.dev)),
		// A login the module leaves alone never reaches the code the
		// test and bench builds change (any device as a VRF, timing):
		// these two load the module as packaged.
		"no rule":    e.moduleStack(b, shippedSO, e.dev, fmt.Sprintf("[user.alice]\nvrf = %q\n", e.dev)),
		"not acted":  e.moduleStack(b, shippedSO, e.dev, fmt.Sprintf("services = [\"login\"]\n[user.root]\nvrf = %q\n", e.dev)),
		"exec":       e.stack(b, execStack, e.dev),
		"debian":     e.debianStack(b, ""),
		"debian+vrf": e.debianStack(b, fmt.Sprintf("[user.alice]\nvrf = %q\n", e.dev)),
		// One device name, re-created with a new ifindex for every sample:
		// the policy (and its table) stays, only the program is new.
		"first": e.moduleStack(b, testSO, firstDev, fmt.Sprintf("[user.root]\nvrf = %q\n", firstDev)),
	}
	e.addDev(b, firstDev)
	// The Go part writes each policy's decision table at its first login;
	// a policy younger than the racy window gets none yet.
	time.Sleep(2100 * time.Millisecond)
	for _, k := range []string{"login", "login (traced)", "group", "no rule", "not acted", "first", "debian+vrf"} {
		e.runNew(b, pre, e.session(b, "warm-"+k), stacks[k])
	}
	debianModules := e.checkDebianStacks(b, e.session(b, "debian-check"), stacks["debian"], stacks["debian+vrf"])
	kinds := []string{"floor", "debian", "floor+move", "floor+move+groups", "second", "debian+vrf", "login", "login (traced)", "group", "login (Go)", "first", "no rule", "not acted", "exec"}
	rng := rand.New(rand.NewPCG(1, 2))
	n := max(samples/10, 20)
	cy, oc := map[string][]float64{}, map[string][]float64{}
	threads, rss := map[string][]float64{}, map[string][]float64{}
	steps := map[string][]float64{}
	for i := 0; i < n; i++ {
		for _, j := range rng.Perm(len(kinds)) {
			k := kinds[j]
			sess := e.session(b, fmt.Sprintf("new-%d-%d", i, j))
			stack, dev, extra := stacks[k], e.dev, []string{}
			switch k {
			case "floor+move":
				// The same levels pam_vrf makes: <ns>-ns/vrf/<dev>.
				extra = []string{"-m", e.vrfDir(sess, e.dev)}
			case "floor+move+groups":
				extra = []string{"-m", e.vrfDir(sess, e.dev), "-g", "root"}
			case "login (Go)":
				os.Remove(fastpath.PolicyFile(fastpath.Dir, filepath.Join(stack, "pam_vrf.toml")))
			case "first":
				// A new ifindex: no program for it yet. The old one's pin
				// goes too (it would stay until reboot, see bpf.PinDir).
				dev = firstDev
				os.Remove(bpf.PinPath(uint32(ifindexOf(b, e, dev))))
				e.delDev(dev)
				e.addDev(b, dev)
			}
			out, errOut := e.runNew(b, pre, sess, stack, extra...)
			o, c := timed(b, out)
			oc[k], cy[k] = append(oc[k], o...), append(cy[k], c...)
			th, kb := heldStats(out)
			threads[k], rss[k] = append(threads[k], th), append(rss[k], kb)
			if strings.HasPrefix(k, "login") || k == "first" || k == "group" {
				checkOneProgram(b, e.vrfDir(sess, dev))
			}
			if k == "login (traced)" {
				for name, v := range traceSteps(errOut) {
					steps[name] = append(steps[name], v)
				}
			}
			rmTree(sess)
		}
	}
	floor, bare := median(cy["floor"]), median(cy["floor+move"])
	add(row{"1", "new process, pam_start..pam_end, floor: pam_permit.so only", us(floor), us(pct(cy["floor"], 99)), "", "", "", "", ""})
	add(row{"1", "new process, floor + the bare mkdir -p <ns>-ns/vrf/<dev> + move of itself (no module)", us(bare), us(pct(cy["floor+move"], 99)), "", "", "", "", ""})
	bareGroups := median(cy["floor+move+groups"])
	add(row{"1", "new process, floor + bare mkdir + move + the bare group lookup (getpwnam_r, getgrouplist, getgrnam_r)", us(bareGroups), us(pct(cy["floor+move+groups"], 99)), "", "", "", "", ""})
	for _, t := range []struct {
		k, what, target, baseName string
		base, limit               float64
	}{
		{"login", "new process login, program already loaded (C fast path)", "≤ 2x", "floor + bare mkdir + move", bare, 2},
		{"group", "new process login by a group rule (C fast path, NSS in a thread), program already loaded", "≤ 2x", "floor + bare mkdir + move + bare group lookup", bareGroups, 2},
		{"first", "new process, FIRST-EVER placement (new device: load + verifier + pin)", "≤ 3x", "floor + bare mkdir + move", bare, 3},
	} {
		r := median(cy[t.k]) / t.base
		add(row{"1", "pam_start..pam_end, pam_vrf.so, " + t.what, us(median(cy[t.k])), us(pct(cy[t.k], 99)),
			t.baseName + ", same run", us(t.base), fmt.Sprintf("%.2fx", r), t.target, passMiss(r <= t.limit)})
	}
	add(row{"1", "pam_start..pam_end, pam_vrf.so, new process login through the Go part (what the fast path avoids)",
		us(median(cy["login (Go)"])), us(pct(cy["login (Go)"], 99)), "floor + bare mkdir + move, same run", us(bare),
		fmt.Sprintf("%.2fx", median(cy["login (Go)"])/bare), "", ""})
	// A login the module leaves alone, against the same stack with a
	// module that does nothing in its place: loading any second module
	// costs a new process a few mappings and relocations (the "second"
	// row's ratio to the floor), whatever that module does.
	second := median(cy["second"])
	add(row{"1", "new process, floor + a second module that does nothing (a copy of Debian's pam_permit.so)", us(second), us(pct(cy["second"], 99)),
		"floor, same run", us(floor), fmt.Sprintf("%.2fx", second/floor), "", ""})
	for _, k := range []string{"no rule", "not acted"} {
		r := median(cy[k]) / second
		what := map[string]string{"no rule": "a user with no rule", "not acted": "a service the module does not act for"}[k]
		ok := r <= 1.1 && median(threads[k]) == median(threads["floor"])
		add(row{"1", fmt.Sprintf("pam_start..pam_end, pam_vrf.so loaded, not placed: %s (threads %.0f, floor %.0f; %.2fx the floor)", what, median(threads[k]), median(threads["floor"]), median(cy[k])/floor),
			us(median(cy[k])), us(pct(cy[k], 99)), "floor + a second module that does nothing, same run", us(second), fmt.Sprintf("%.2fx", r), "≤ 1.1x, no extra threads", passMiss(ok)})
	}
	// The same login on the stack it really meets: Debian's sshd service.
	deb := median(cy["debian"])
	var left []string
	for _, x := range debianLeftOut {
		left = append(left, x.short)
	}
	add(row{"1", fmt.Sprintf("new process, Debian 12's sshd PAM service without pam_vrf (modules loaded: %s; left out: %s)",
		strings.Join(debianModules, ", "), strings.Join(left, ", ")),
		us(deb), us(pct(cy["debian"], 99)), "floor, same run", us(floor), fmt.Sprintf("%.2fx", deb/floor), "", ""})
	{
		k := "debian+vrf"
		r := median(cy[k]) / deb
		ok := r <= 1.1 && median(threads[k]) == median(threads["debian"])
		add(row{"1", fmt.Sprintf("pam_start..pam_end, pam_vrf.so loaded, not placed: a user with no rule, on Debian 12's sshd PAM service (%+.0f µs; threads %.0f, without pam_vrf %.0f)",
			median(cy[k])-deb, median(threads[k]), median(threads["debian"])),
			us(median(cy[k])), us(pct(cy[k], 99)), "the same service without pam_vrf.so, same run", us(deb), fmt.Sprintf("%.2fx", r), "≤ 1.1x, no extra threads", passMiss(ok)})
	}
	add(row{"1", "pam_start..pam_end, pam_exec placeScript, new process", us(median(cy["exec"])), us(pct(cy["exec"], 99)),
		"pam_vrf.so login, same run", us(median(cy["login"])), ratioStr(median(cy["login"]), median(cy["exec"])), "", ""})
	added := median(rss["login"]) - median(rss["floor"])
	add(row{"1", "RSS added to the session process by a placed login (C fast path)", fmt.Sprintf("%+.0f KiB", added), "",
		"floor, same run", fmt.Sprintf("%.0f KiB", median(rss["floor"])), "", "≤ 1024 KiB", passMiss(added <= 1024)})
	addedGo := median(rss["login (Go)"]) - median(rss["floor"])
	add(row{"1", "  the same through the Go part", fmt.Sprintf("%+.0f KiB", addedGo), "", "", "", "", "", ""})

	// Where the time of a login goes (medians of the bench build's own
	// timestamps; "load" is the extra pam_start..open time over the floor).
	traced := "login (traced)"
	if len(steps["decide"]) < len(cy[traced]) {
		b.Fatalf("the bench build logged its step times in %d of %d logins (want a trace_us line in each)", len(steps["decide"]), len(cy[traced]))
	}
	load := median(sub(cy[traced], oc[traced])) - median(sub(cy["floor"], oc["floor"]))
	parts := []string{fmt.Sprintf("load %s", us(load))}
	sum := load
	for _, name := range []string{"decide", "device+program", "mkdir", "attach", "move", "verify"} {
		v := median(steps[name])
		sum += v
		parts = append(parts, fmt.Sprintf("%s %s", name, us(v)))
	}
	add(row{"1", "  decomposition of a login (C fast path, medians): " + strings.Join(parts, ", "), us(sum),
		"", "login (bench build) minus floor", us(median(cy[traced]) - floor), "", "", ""})
}

// moduleStack is a vrf stack with the given policy using module file so.
func (e *env) moduleStack(b *testing.B, so, dev, policy string) string {
	b.Helper()
	dir := e.stack(b, vrfStack, dev)
	pol := filepath.Join(dir, "pam_vrf.toml")
	write(b, pol, policy, 0o644)
	for _, f := range []string{"sshd", "other"} {
		p := filepath.Join(dir, f)
		old, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		write(b, p, strings.ReplaceAll(string(old), testSO, so), 0o644)
	}
	return dir
}

// runNew runs one timed cycle in a fresh driver that starts in pre and
// joins sess by migration; it returns stdout and stderr.
func (e *env) runNew(b *testing.B, pre, sess, stackDir string, extra ...string) (string, string) {
	b.Helper()
	args := append([]string{driver, "-d", stackDir, "-s", "sshd", "-u", "root", "-t", "1", "-b", sess}, extra...)
	cmd, done := e.cmdIn(b, pre, args...)
	defer done()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("pamdriver (stack %s): %v\nstdout:\n%s\nstderr:\n%s", stackDir, err, tail(stdout.String()), tail(stderr.String()))
	}
	return stdout.String(), stderr.String()
}

var heldRe = regexp.MustCompile(`threads=(\d+) rss_kb=(\d+)`)

func heldStats(out string) (threads, rssKB float64) {
	if m := heldRe.FindStringSubmatch(out); m != nil {
		t, _ := strconv.ParseFloat(m[1], 64)
		r, _ := strconv.ParseFloat(m[2], 64)
		return t, r
	}
	return -1, -1
}

var traceRe = regexp.MustCompile(`trace_us: (.*)`)

// traceSteps parses the bench module's "trace_us: step=µs ..." line.
func traceSteps(stderr string) map[string]float64 {
	m := traceRe.FindStringSubmatch(stderr)
	if m == nil {
		return nil
	}
	out := map[string]float64{}
	for _, f := range strings.Fields(m[1]) {
		k, v, ok := strings.Cut(f, "=")
		if x, err := strconv.ParseFloat(v, 64); ok && err == nil {
			out[k] = x
		}
	}
	return out
}

func sub(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// firstDev is the device of the first-ever scenario.
const firstDev = "pvbfirst"

func ifindexOf(b *testing.B, e *env, dev string) int {
	b.Helper()
	out, err := exec.Command("ip", "-n", e.ns, "-o", "link", "show", "dev", dev).Output()
	var idx int
	if _, serr := fmt.Sscanf(string(out), "%d:", &idx); err != nil || serr != nil {
		b.Fatalf("ifindex of %s: %v %q", dev, err, out)
	}
	return idx
}

func ratioStr(base, v float64) string {
	if v <= base {
		return fmt.Sprintf("%.1fx cheaper", base/v)
	}
	return fmt.Sprintf("%.1fx dearer", v/base)
}
