package bench

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
)

var sockRe = regexp.MustCompile(`(?m)^sock (\w+) dev="([^"]*)" n=\d+ median_ns=(\d+) p99_ns=(\d+) mean_ns=(\d+)$`)

type sockRun map[string][3]float64 // kind -> median, p99, mean (ns)

func parseSock(b *testing.B, out, wantDev string) sockRun {
	b.Helper()
	r := sockRun{}
	for _, m := range sockRe.FindAllStringSubmatch(out, -1) {
		if m[2] != wantDev {
			b.Fatalf("%s socket bound to %q, want %q:\n%s", m[1], m[2], wantDev, out)
		}
		var v [3]float64
		for i := range v {
			v[i], _ = strconv.ParseFloat(m[3+i], 64)
		}
		r[m[1]] = v
	}
	if len(r) != 4 {
		b.Fatalf("sockloop output incomplete:\n%s", out)
	}
	return r
}

// BenchmarkSocket: socket()+close() for TCP/UDP over IPv4/IPv6 in a process
// placed by pam_vrf.so (the session's "shell", forked by the driver after
// open_session, so the cgroup's sock_create program runs on every socket) vs
// the same helper unplaced in the same netns and the same session cgroup.
// Runs alternate placed/unplaced in ABBA order; the overhead is the median
// over rounds of the paired ratio of per-run medians.
func BenchmarkSocket(b *testing.B) {
	e := getEnv(b)
	vrf := e.stack(b, vrfStack, e.dev)
	sess := e.session(b, "sock")
	const rounds = 10
	n := samples * 25 // socket+close pairs per kind per run
	var placed, unplaced []sockRun
	runPlaced := func() {
		placed = append(placed, parseSock(b, e.run(b, sess, vrf, "--", sockloop, fmt.Sprint(n)), e.dev))
	}
	runUnplaced := func() {
		cmd, done := e.cmdIn(b, sess, sockloop, fmt.Sprint(n))
		defer done()
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("sockloop: %v\n%s", err, out)
		}
		unplaced = append(unplaced, parseSock(b, string(out), ""))
	}
	for r := 0; r < rounds; r++ {
		if r%2 == 0 {
			runPlaced()
			runUnplaced()
		} else {
			runUnplaced()
			runPlaced()
		}
	}
	for _, k := range []string{"tcp4", "udp4", "tcp6", "udp6"} {
		var pm, pp, um, up, ratio []float64
		for i := range placed {
			pm, pp = append(pm, placed[i][k][0]), append(pp, placed[i][k][1])
			um, up = append(um, unplaced[i][k][0]), append(up, unplaced[i][k][1])
			ratio = append(ratio, placed[i][k][0]/unplaced[i][k][0])
		}
		over := (median(ratio) - 1) * 100
		add(row{"2", fmt.Sprintf("socket()+close() %s, placed (bound to the VRF by the cgroup program)", k),
			ns(median(pm)), ns(median(pp)), "same, unplaced, same netns", fmt.Sprintf("%s (p99 %s)", ns(median(um)), ns(median(up))),
			fmt.Sprintf("%+.1f%% overhead", over), "≤ +5%", passMiss(over <= 5)})
	}
	once(b)
}

func ns(v float64) string { return fmt.Sprintf("%.0f ns", v) }
