//go:build vm

package bench

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pam-vrf/pam-vrf/tests/e2e"
	"github.com/pam-vrf/pam-vrf/tests/vm"
)

type quiet struct{}

func (quiet) Step(title, why string)                       {}
func (quiet) Command(cmd, stdout, stderr string, code int) {}
func (quiet) Check(name string, ok bool, detail string)    {}
func (quiet) Note(text string)                             { fmt.Println(text) }

// BenchmarkVMNetsetup (make bench-vm): vrf-netsetup apply on an already
// converged host and check, wall time, in the QEMU guest of tests/vm (the
// only place with a VRF driver). The guest script (vm-netsetup.sh) proves
// the applies were a read-only no-op: no netlink notification of its own
// while they ran, identical link/addr/route/rule/sysctl state, no file
// changed under /etc or /run/systemd/{network,resolve}, no unit restarted.
// The guest runs under TCG (emulated CPU): absolute times are slow.
func BenchmarkVMNetsetup(b *testing.B) {
	const n = 20
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	img, err := vm.EnsureImage(ctx)
	if err != nil {
		b.Fatal(err)
	}
	m, err := vm.Boot(ctx, img, vm.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	s := &e2e.Scenario{VM: m, Build: os.Getenv("PAMVRF_BUILD"), R: quiet{}}
	if err := s.Install(ctx); err != nil {
		b.Fatal(err)
	}
	script, err := os.ReadFile("vm-netsetup.sh")
	if err != nil {
		b.Fatal(err)
	}
	out, errOut, code, err := m.Run(ctx, fmt.Sprintf("N=%d\n%s", n, script))
	if err != nil || code != 0 || !strings.Contains(out, "BENCH-DONE") {
		b.Fatalf("guest script: exit %d, %v\n%s%s", code, err, tail(out), tail(errOut))
	}
	get := func(key string) []float64 {
		var v []float64
		for _, mm := range regexp.MustCompile(`(?m)^`+key+`=(\d+)$`).FindAllStringSubmatch(out, -1) {
			x, _ := strconv.ParseFloat(mm[1], 64)
			v = append(v, x)
		}
		return v
	}
	one := func(key string) int {
		v := get(key)
		if len(v) != 1 {
			b.Fatalf("no %s in guest output:\n%s", key, tail(out))
		}
		return int(v[0])
	}
	apply, check := get("apply_us"), get("check_us")
	if len(apply) != n || len(check) != n {
		b.Fatalf("want %d apply and check samples:\n%s", n, tail(out))
	}
	mon, diff, files := one("monitor_lines"), one("state_diff_lines"), one("files_changed")
	if mon != 0 || diff != 0 || files != 0 {
		b.Fatalf("apply on a converged host was not a read-only no-op: %d netlink notifications, %d state diff lines, %d files changed:\n%s", mon, diff, files, tail(out))
	}
	kern := regexp.MustCompile(`(?m)^kernel=(\S+)`).FindStringSubmatch(out)
	guest := "guest"
	if kern != nil {
		guest = "guest kernel " + kern[1] + ", QEMU TCG"
	}
	add(row{"4", fmt.Sprintf("vrf-netsetup apply on a converged host (%s, %d runs)", guest, n), us(median(apply)), us(pct(apply, 99)), "", "", "", "read-only no-op",
		fmt.Sprintf("PASS (0 own netlink events of %d seen, state identical, 0 files changed)", one("monitor_all_lines"))})
	add(row{"4", fmt.Sprintf("vrf-netsetup check (%s, %d runs)", guest, n), us(median(check)), us(pct(check, 99)), "", "", "", "", ""})
	once(b)
}
