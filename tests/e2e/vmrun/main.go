//go:build vm

// Command vmrun boots the test guest, installs build/pam_vrf.so and
// build/vrf-netsetup, runs each script argument (a file, or "-" for stdin)
// as root in the guest, printing its output, and powers the guest off. A
// script argument of "@reboot" reboots the guest on the same disk instead.
// For developers chasing a VM-only problem:
//
//	go run -tags vm ./tests/e2e/vmrun -build build [-suite trixie] probe.sh @reboot after.sh
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pam-vrf/pam-vrf/tests/e2e"
	"github.com/pam-vrf/pam-vrf/tests/vm"
)

type printer struct{}

func (printer) Step(title, why string) {}
func (printer) Command(cmd, stdout, stderr string, code int) {
	fmt.Printf("%s%s[exit %d]\n", stdout, stderr, code)
}
func (printer) Check(name string, ok bool, detail string) {}
func (printer) Note(text string)                          { fmt.Println(text) }

func main() {
	build := flag.String("build", "build", "directory with pam_vrf.so and vrf-netsetup")
	suite := flag.String("suite", "bookworm", "Debian suite of the guest (bookworm, trixie)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	img, err := vm.EnsureImageSuite(ctx, *suite)
	if err != nil {
		fail(err)
	}
	m, err := vm.Boot(ctx, img, vm.Config{})
	if err != nil {
		fail(err)
	}
	defer m.Close()
	s := &e2e.Scenario{VM: m, Build: *build, R: printer{}}
	if err := s.Install(ctx); err != nil {
		fail(err)
	}
	for _, arg := range flag.Args() {
		if arg == "@reboot" {
			fmt.Println("=== reboot")
			if err := m.Reboot(ctx); err != nil {
				fail(err)
			}
			continue
		}
		var script []byte
		if arg == "-" {
			script, err = io.ReadAll(os.Stdin)
		} else {
			script, err = os.ReadFile(arg)
		}
		if err != nil {
			fail(err)
		}
		fmt.Printf("=== %s\n", arg)
		out, errOut, code, err := m.Run(ctx, string(script))
		if err != nil {
			fail(err)
		}
		fmt.Printf("%s%s[exit %d]\n", out, errOut, code)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "vmrun:", err)
	os.Exit(1)
}
