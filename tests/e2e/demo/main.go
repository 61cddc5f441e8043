//go:build vm

// Command demo shows pam-vrf working, step by step, in the test guest:
// the DNS failure of a hand-made management VRF, the fix by vrf-netsetup,
// and an ssh login landing in the mgmt VRF with DNS working.
//
//	make demo
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pam-vrf/pam-vrf/tests/e2e"
	"github.com/pam-vrf/pam-vrf/tests/vm"
)

type narrator struct{ failed int }

func (n *narrator) Step(title, why string) {
	fmt.Printf("\n\033[1m== %s\033[0m\n   %s\n", title, why)
}

func (n *narrator) Command(cmd, stdout, stderr string, code int) {
	fmt.Printf("\n  guest# %s\n", strings.ReplaceAll(cmd, "\n", "\n         "))
	for _, l := range strings.Split(strings.TrimRight(stdout+stderr, "\n"), "\n") {
		if l != "" {
			fmt.Printf("    %s\n", l)
		}
	}
	fmt.Printf("    [exit %d]\n", code)
}

func (n *narrator) Note(text string) { fmt.Printf("  %s\n", text) }

func (n *narrator) Check(name string, ok bool, detail string) {
	if ok {
		fmt.Printf("  \033[32m✔ %s\033[0m\n", name)
		return
	}
	n.failed++
	fmt.Printf("  \033[31m✘ %s\033[0m\n    %s\n", name, detail)
}

func main() {
	build := flag.String("build", "build", "directory with pam_vrf.so and vrf-netsetup")
	debs := flag.String("debs", "", "directory with the .debs to install (default: the bare build artifacts)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	fmt.Println("pam-vrf demo: preparing the Debian bookworm guest (first run builds it with debootstrap)")
	img, err := vm.EnsureImage(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	m, err := vm.Boot(ctx, img, vm.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	defer m.Close()
	n := &narrator{}
	s := &e2e.Scenario{VM: m, Build: *build, Debs: *debs, R: n}
	if err := s.Install(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	s.Before(ctx)
	if s.Reboot(ctx) {
		s.Provision(ctx)
		s.Logins(ctx, "after apply")
	}
	if n.failed > 0 {
		fmt.Printf("\n%d step(s) failed\n", n.failed)
		os.Exit(1)
	}
	fmt.Println("\nDone: alice's ssh shell is bound to VRF mgmt, and names resolve inside and outside the VRF.")
}
