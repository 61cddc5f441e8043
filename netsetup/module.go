package netsetup

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// ModuleLoader loads the VRF driver.
type ModuleLoader interface {
	Load(m ModuleState) error
}

// Modprobe execs `modprobe vrf`. A pure-Go finit_module would have to
// resolve dependencies, decompress .ko.xz/.ko.zst and honour modprobe.d
// blacklists; modprobe already does all that correctly, so this is the one
// place we exec a tool (allowed for driver loading only).
type Modprobe struct{}

func (Modprobe) Load(m ModuleState) error {
	if !m.Available {
		return fmt.Errorf("the VRF driver (vrf.ko) is not installed for kernel %s: %s", m.Release, modulePackageHint(m.Release))
	}
	out, err := exec.Command("modprobe", "vrf").CombinedOutput()
	if err != nil {
		return fmt.Errorf("modprobe vrf: %w: %s (%s)", err, strings.TrimSpace(string(out)), modulePackageHint(m.Release))
	}
	return nil
}

// modulePackageHint names the distro package that ships vrf.ko.
func modulePackageHint(release string) string {
	data, _ := os.ReadFile("/etc/os-release")
	if strings.Contains(string(data), "ID=ubuntu") {
		return "install linux-modules-extra-" + release
	}
	return "install linux-image-" + release + " (Debian ships vrf.ko in the kernel image package) and reboot into it"
}
