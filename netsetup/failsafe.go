package netsetup

import (
	"fmt"
	"os"
)

// BootFailsafe is the boot unit's ExecStopPost= ("__boot-failsafe"). When
// the boot unit failed, the network managers may still have put the NIC
// into the VRF (networkd creates and enslaves it from its files), while
// nothing pinned sshd's program or bound ssh.socket: sshd runs unbound.
// In sshd mode vrf-only tcp_l3mdev_accept is persisted as 0, so an
// unbound sshd accepts nothing that arrives through the VRF's interfaces,
// often the only way in. Turning it on lets sshd answer there until the
// cause is mended and the unit restarted (whose apply sets it back).
// result is $SERVICE_RESULT ("success" when the unit merely stops).
func BootFailsafe(result string, sysctl Sysctl, configPath string) (string, error) {
	if result == "" || result == "success" {
		return "", nil
	}
	if cfg, err := LoadConfigFile(configPath, Defaults(), true); err == nil && cfg.SSHD != SSHDVRFOnly {
		return "", nil // any-vrf: accept is on already
	}
	if v, _ := sysctl.Get(l3mdevSysctls[0]); v == "1" {
		return "", nil
	}
	if err := sysctl.Set(l3mdevSysctls[0], "1"); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s failed (%s): set %s=1 so that sshd, which runs unbound, answers through the VRF's interfaces; mend the cause (journalctl -b -u %s) and restart the unit, whose apply sets it back",
		UnitName, result, l3mdevSysctls[0], UnitName), nil
}

// BootFailsafeCommand runs BootFailsafe for the CLI.
func BootFailsafeCommand() (string, error) {
	return BootFailsafe(os.Getenv("SERVICE_RESULT"), Sysctl{}, ConfigPath)
}
