package netsetup

import (
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netns"
)

// The l3mdev accept sysctls: with them on, listening sockets that are not
// bound to a device (sshd in the default VRF) accept connections arriving on
// a VRF slave; the connected socket is then bound to that VRF.
var l3mdevSysctls = []string{"net.ipv4.tcp_l3mdev_accept", "net.ipv4.udp_l3mdev_accept"}

// Sysctl reads and writes /proc/sys in the netns NS. /proc/sys/net resolves
// to the netns of the thread that opens the file, hence inNS.
type Sysctl struct {
	NS netns.NsHandle
	// Proc is the procfs mount, "/proc" unless a test overrides it.
	Proc string
}

func (s Sysctl) path(name string) string {
	proc := s.Proc
	if proc == "" {
		proc = "/proc"
	}
	return proc + "/sys/" + strings.ReplaceAll(name, ".", "/")
}

// Get returns the trimmed value of the sysctl name ("net.ipv4.x").
func (s Sysctl) Get(name string) (string, error) {
	var v string
	err := inNS(s.NS, func() error {
		b, err := os.ReadFile(s.path(name))
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", name, err)
	}
	return v, nil
}

// Set writes value to the sysctl name.
func (s Sysctl) Set(name, value string) error {
	err := inNS(s.NS, func() error {
		return os.WriteFile(s.path(name), []byte(value+"\n"), 0o644)
	})
	if err != nil {
		return fmt.Errorf("write sysctl %s=%s: %w", name, value, err)
	}
	return nil
}
