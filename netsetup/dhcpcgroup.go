package netsetup

import (
	"fmt"
	"path"
	"strings"

	"github.com/pam-vrf/pam-vrf/cgroup"
)

// A DHCP client whose hook runs it in the VRF while the iface is a port
// (hostnet DHCP.RunsInVRF: dhcpcd) must leave the VRF before the release:
// the lease it binds again afterwards opens its sockets in the default VRF.
// Its hook does that too, but revert may have removed the hook by then.

// stepClientOutOfVRF moves the client's processes that sit in VRF vrf's
// cgroup (as `ip vrf exec` lays it out) back to the cgroup they came from.
func stepClientOutOfVRF(cfg Config, client string) Step {
	return Step{ID: "dhcp-client-out-of-vrf", Desc: fmt.Sprintf("move %s out of VRF %s's cgroup (its next lease binds in the default VRF)", client, cfg.VRF),
		Do: func(e *Env) error {
			if _, off := e.Svc.(Offline); off {
				return nil
			}
			return clientOutOfVRF(client, cfg.VRF)
		}}
}

func clientOutOfVRF(client, vrf string) error {
	mount, err := cgroup.Mount()
	if err != nil {
		return err
	}
	for _, pid := range commPIDs("/proc", client) {
		base, in, err := inVRFCgroup(pid, vrf)
		if err != nil || !in {
			continue // gone, or not in the VRF
		}
		if err := cgroup.Move(path.Join(mount, base), pid); err != nil {
			return fmt.Errorf("move %s (pid %d) out of VRF %s: %w", client, pid, vrf, err)
		}
	}
	return nil
}

// checkClientInVRF: the client serving the iface runs in the VRF (ok false:
// no such process to check).
func checkClientInVRF(cfg Config, st *State, client string) (CheckResult, bool) {
	var out, in []string
	for _, c := range st.DHCPClients {
		if c.Name != client {
			continue
		}
		_, inVRF, err := inVRFCgroup(c.PID, cfg.VRF)
		if err != nil {
			continue
		}
		if inVRF {
			in = append(in, fmt.Sprint(c.PID))
		} else {
			out = append(out, fmt.Sprint(c.PID))
		}
	}
	switch {
	case len(out) > 0:
		return fail("dhcp client", "ifdown "+cfg.Iface+"; ifup "+cfg.Iface+" (from the console: its hook runs the new "+client+" in the VRF from the start)",
			"%s (pid %s) runs outside VRF %s: the server's unicast replies to its renewals find no socket, so each renewal waits for the broadcast rebind", client, strings.Join(out, " "), cfg.VRF), true
	case len(in) > 0:
		return ok("dhcp client", "%s (pid %s) runs in VRF %s", client, strings.Join(in, " "), cfg.VRF), true
	}
	return CheckResult{}, false
}

// inVRFCgroup: pid sits in vrf's cgroup as `ip vrf exec` lays it out, and
// base is the cgroup that one hangs below (both as paths below the mount).
func inVRFCgroup(pid int, vrf string) (base string, in bool, err error) {
	p, err := cgroup.ProcPath(pid)
	if err != nil {
		return "", false, err
	}
	base, levels := cgroup.VRFLevels(p, "", vrf)
	return base, strings.HasSuffix(p, "/"+path.Join(levels...)), nil
}
