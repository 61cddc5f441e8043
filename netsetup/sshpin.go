package netsetup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pam-vrf/pam-vrf/bpf"
)

// SSHPin is the pinned sock_create program ssh.service's BPFProgram= uses in
// sshd mode vrf-only. bpffs pins and /run vanish at reboot together, so the
// boot unit re-pins before ssh.service starts (it is ordered Before= it).
type SSHPin struct {
	Exists  bool `json:"exists"`
	Ifindex int  `json:"ifindex"` // VRF ifindex baked into the pinned program
}

func pinPath(vrf string) string      { return BPFPinDir + "/" + vrf }
func pinIndexPath(vrf string) string { return "/run/pam-vrf/" + vrf + ".ifindex" }

func readSSHPin(hostRoot, vrf string) SSHPin {
	if hostRoot == "" {
		hostRoot = "/"
	}
	var p SSHPin
	if _, err := os.Stat(filepath.Join(hostRoot, pinPath(vrf))); err == nil {
		p.Exists = true
	}
	if b, err := os.ReadFile(filepath.Join(hostRoot, pinIndexPath(vrf))); err == nil {
		p.Ifindex, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	return p
}

// stepSSHPin loads the iproute2-equivalent program for the VRF's current
// ifindex (package bpf) and pins it, replacing an older pin.
func stepSSHPin(cfg Config) Step {
	return Step{ID: "ssh-pin", AfterVRF: true, Desc: fmt.Sprintf("pin the sock_create program binding sockets to %s at %s (for ssh.service BPFProgram=)", cfg.VRF, pinPath(cfg.VRF)),
		Do: func(e *Env) error {
			l, err := e.linkByName(cfg.VRF)
			if err != nil {
				return fmt.Errorf("find %s: %w", cfg.VRF, err)
			}
			idx := l.Attrs().Index
			prog, err := bpf.Load(uint32(idx))
			if err != nil {
				return fmt.Errorf("load sock_create program for %s: %w", cfg.VRF, err)
			}
			defer prog.Close()
			if err := os.MkdirAll(BPFPinDir, 0o700); err != nil {
				return fmt.Errorf("create %s (is bpffs mounted at /sys/fs/bpf?): %w", BPFPinDir, err)
			}
			os.Remove(pinPath(cfg.VRF))
			if err := prog.Pin(pinPath(cfg.VRF)); err != nil {
				return fmt.Errorf("pin %s: %w", pinPath(cfg.VRF), err)
			}
			if err := os.MkdirAll(filepath.Dir(pinIndexPath(cfg.VRF)), 0o755); err != nil {
				return err
			}
			return os.WriteFile(pinIndexPath(cfg.VRF), []byte(strconv.Itoa(idx)+"\n"), 0o644)
		},
		Undo: func(e *Env) error {
			os.Remove(pinIndexPath(cfg.VRF))
			return ignoreNotExist(os.Remove(pinPath(cfg.VRF)))
		}}
}

func ignoreNotExist(err error) error {
	if os.IsNotExist(err) {
		return nil
	}
	return err
}
