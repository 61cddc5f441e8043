package bench

import (
	"fmt"
	"os"
	"strings"
	"testing"
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
		add(row{"1", fmt.Sprintf("open+close, pam_vrf.so warm steady state, %s", what), us(median(v)), us(pct(v, 99)),
			fmt.Sprintf("pam_exec script, %s", what), fmt.Sprintf("%s (p99 %s)", us(median(base)), us(pct(base, 99))),
			fmt.Sprintf("%.1fx cheaper", ratio), "≥ 20x", passMiss(ratio >= 20)})
	}

	// New-process scenarios.
	n := max(samples/10, 20)
	newDev := []string{}
	defer func() {
		for _, d := range newDev {
			e.delDev(d)
		}
	}()
	cy := map[string][]float64{}
	ocNew := map[string][]float64{}
	kinds := []string{"floor", "vrf login", "exec login", "vrf first"}
	for i := 0; i < n; i++ {
		for j := range kinds {
			k := kinds[(i+j)%len(kinds)]
			sess := e.session(b, fmt.Sprintf("new-%d-%d", i, j))
			stack, dev := "", e.dev
			switch k {
			case "floor":
				stack = stacks[floorStack]
			case "vrf login":
				stack = stacks[vrfStack]
			case "exec login":
				stack = stacks[execStack]
			case "vrf first":
				dev = e.newDev(b)
				newDev = append(newDev, dev)
				stack = e.stack(b, vrfStack, dev)
			}
			o, c := timed(b, e.run(b, sess, stack, "-t", "1"))
			ocNew[k] = append(ocNew[k], o...)
			cy[k] = append(cy[k], c...)
			if strings.HasPrefix(k, "vrf") {
				checkOneProgram(b, e.vrfDir(sess, dev))
			}
			rmTree(sess)
			if k == "vrf first" {
				// Free the program (its cgroup is gone) so the next sample
				// is a first load again.
				e.delDev(dev)
				newDev = newDev[:len(newDev)-1]
				os.RemoveAll(stack)
			}
		}
	}
	add(row{"1", "new process, pam_start..pam_end, floor: pam_permit.so only", us(median(cy["floor"])), us(pct(cy["floor"], 99)), "", "", "", "", ""})
	for _, k := range []string{"vrf login", "vrf first"} {
		v, base := cy[k], cy["exec login"]
		what := "new process first login (new session cgroup, program already loaded: reuse + attach)"
		if k == "vrf first" {
			what = "new process, FIRST-EVER placement (new device: program load + verifier + attach)"
		}
		add(row{"1", "pam_start..pam_end, pam_vrf.so, " + what, us(median(v)), us(pct(v, 99)),
			"pam_exec script, new process, new session cgroup", us(median(base)),
			ratioStr(median(base), median(v)), "", ""})
		add(row{"1", "  of which open+close", us(median(ocNew[k])), us(pct(ocNew[k], 99)),
			"pam_exec open+close", us(median(ocNew["exec login"])), ratioStr(median(ocNew["exec login"]), median(ocNew[k])), "", ""})
	}
	once(b)
}

func ratioStr(base, v float64) string {
	if v <= base {
		return fmt.Sprintf("%.1fx cheaper", base/v)
	}
	return fmt.Sprintf("%.1fx dearer", v/base)
}
