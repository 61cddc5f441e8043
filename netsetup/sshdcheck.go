package netsetup

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"
)

// checkSSHDListen looks at the listening sockets themselves, not at the
// files that should produce them: a drop-in in place proves nothing when
// the listener belongs to systemd (ssh.socket) or sshd was not restarted.
// The listeners are those sshd processes hold and, with socket activation,
// those PID 1 holds on ssh.socket's ports. ok is false when systemd or the
// socket table cannot be asked (--root, tests with fakes).
func (c *Checker) checkSSHDListen(cfg Config, st *State) (CheckResult, bool) {
	ur, isUR := c.Reader.Svc.(UnitReader)
	if !isUR {
		return CheckResult{}, false
	}
	var socketPorts []string
	if st.SSHSocket {
		us, err := ur.ShowUnits([]string{"Listen"}, "ssh.socket")
		if err == nil && len(us) == 1 {
			for _, l := range ipListeners(us[0]["Listen"]) {
				socketPorts = append(socketPorts, portOf(l))
			}
		}
	}
	pids := commPIDs("/proc", "sshd")
	if len(socketPorts) > 0 {
		pids = append(pids, 1)
	}
	socks, err := ProcessSockets(netns.None(), pids)
	if err != nil {
		return fail("sshd listen", "ss -tlnp (see why the socket table cannot be read)", "%v", err), true
	}
	vrf, _ := st.link(cfg.VRF)
	return sshdListenResult(cfg, vrf.Index, socks, socketPorts, func(i int) string { l, _ := st.linkByIndex(i); return l.Name }), true
}

// sshdListenResult: vrfIndex 0 when the VRF does not exist; socketPorts are
// ssh.socket's ports (PID 1's listeners on other ports are other units').
func sshdListenResult(cfg Config, vrfIndex int, socks []ProcSocket, socketPorts []string, name func(int) string) CheckResult {
	names := map[int]string{}
	var listeners []ProcSocket
	for _, s := range socks {
		if s.Proto != "tcp" || s.State != 10 { // TCP_LISTEN
			continue
		}
		if s.PID == 1 && !slices.Contains(socketPorts, portOf(s.Local)) {
			continue
		}
		if s.BoundIf != 0 {
			names[s.BoundIf] = name(s.BoundIf)
		}
		listeners = append(listeners, s)
	}
	var all, unbound []string
	for _, s := range listeners {
		all = append(all, s.String(names))
		if s.BoundIf != vrfIndex || vrfIndex == 0 {
			unbound = append(unbound, s.String(names))
		}
	}
	restart := "systemctl restart ssh.service"
	if len(socketPorts) > 0 {
		restart = "systemctl restart ssh.socket"
	}
	switch {
	case len(listeners) == 0:
		return fail("sshd listen", "systemctl status ssh.service ssh.socket; journalctl -b -u ssh", "nothing listens for ssh (no listening socket held by sshd or ssh.socket)")
	case cfg.SSHD != SSHDVRFOnly:
		return ok("sshd listen", "%s", strings.Join(all, ", "))
	case len(unbound) > 0:
		return fail("sshd listen", restart+" (vrf-netsetup apply re-pins the program first)",
			"sshd mode vrf-only, but %s not bound to %s: it accepts nothing through %s's interfaces", strings.Join(unbound, ", "), cfg.VRF, cfg.VRF)
	}
	return ok("sshd listen", "%s", strings.Join(all, ", "))
}

// portOf: "22", "0.0.0.0:22", "[::]:22" -> "22".
func portOf(l string) string {
	if _, p, err := net.SplitHostPort(l); err == nil {
		return p
	}
	return l
}

// commPIDs: the processes whose comm is name.
func commPIDs(procRoot, name string) []int {
	var out []int
	dirs, _ := filepath.Glob(procRoot + "/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(d + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != name {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			out = append(out, pid)
		}
	}
	return out
}
