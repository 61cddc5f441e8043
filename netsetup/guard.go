package netsetup

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Guard refuses to enslave the interface that carries the caller's own ssh
// connection: enslaving cycles the device and moves its routes, and a
// session in the default VRF loses its path (Cumulus/ifupdown2 even kill such
// sessions on purpose). The admin can override with --force or run from the
// console.
type Guard struct {
	// SSHConnection is $SSH_CONNECTION ("client cport server sport").
	SSHConnection string
	// ProcNet is where tcp/tcp6 are read ("/proc/net"; per netns of the reader).
	ProcNet string
	// ProcRoot is where sshd processes are looked for ("/proc").
	ProcRoot string
	// SSHPort is the local port counted when no sshd process can be seen
	// (22).
	SSHPort int
}

// Check returns an error when steps would enslave cfg.Iface while an ssh
// connection terminates on one of its addresses.
func (g *Guard) Check(cfg Config, st *State, steps []Step) error {
	disruptive := false
	for _, s := range steps {
		disruptive = disruptive || s.Disruptive
	}
	if !disruptive {
		return nil
	}
	local := map[netip.Addr]bool{}
	for _, a := range st.Addrs[cfg.Iface] {
		if p, err := netip.ParsePrefix(a.CIDR); err == nil {
			local[p.Addr()] = true
		}
	}
	why := ""
	if f := strings.Fields(g.SSHConnection); len(f) == 4 {
		if a, err := netip.ParseAddr(f[2]); err == nil && local[a.Unmap()] {
			why = fmt.Sprintf("your ssh session (SSH_CONNECTION %s -> %s:%s) uses %s", f[0], f[2], f[3], cfg.Iface)
		}
	}
	if why == "" {
		// The connections sshd holds, on whatever port it (or systemd's
		// ssh.socket) listens; port 22 only when no sshd can be seen.
		conns, where := EstablishedSSH(g.ProcRoot, g.ProcNet), "held by sshd"
		if conns == nil {
			port := g.SSHPort
			if port == 0 {
				port = 22
			}
			conns, where = EstablishedOnPort(g.ProcNet, port), fmt.Sprintf("to port %d", port)
		}
		n := 0
		for _, c := range conns {
			if local[c] {
				n++
			}
		}
		if n > 0 {
			why = fmt.Sprintf("%d established ssh connection(s) %s on %s's addresses", n, where, cfg.Iface)
		}
	}
	if why == "" {
		return nil
	}
	return &PlanError{
		Msg: fmt.Sprintf("refusing to enslave %s to %s: %s; enslaving drops connections through it", cfg.Iface, cfg.VRF, why),
		Fix: "run from the console or another interface, or pass --force (as Cumulus does, existing sessions through " + cfg.Iface + " will likely hang)",
	}
}

// EstablishedOnPort lists local addresses of ESTABLISHED TCP sockets whose
// local port is port, from /proc/net/tcp and tcp6.
func EstablishedOnPort(procNet string, port int) []netip.Addr {
	return established(procNet, func(p int, _ string) bool { return p == port })
}

// EstablishedSSH lists local addresses of ESTABLISHED TCP sockets that an
// sshd process holds (comm "sshd", or "sshd-session" since OpenSSH 9.8),
// whatever the port; nil when no sshd process is seen (not running, or
// /proc hides other users' processes).
func EstablishedSSH(procRoot, procNet string) []netip.Addr {
	inodes := sshdSockets(procRoot)
	if len(inodes) == 0 {
		return nil
	}
	out := established(procNet, func(_ int, inode string) bool { return inodes[inode] })
	if out == nil {
		out = []netip.Addr{} // sshd seen, no connection: not "unknown"
	}
	return out
}

// sshdSockets: the inodes of the sockets open in sshd processes.
func sshdSockets(procRoot string) map[string]bool {
	if procRoot == "" {
		procRoot = "/proc"
	}
	inodes := map[string]bool{}
	for _, pid := range append(commPIDs(procRoot, "sshd"), commPIDs(procRoot, "sshd-session")...) {
		for _, ino := range socketInodes(procRoot, pid) {
			inodes[strconv.FormatUint(uint64(ino), 10)] = true
		}
	}
	return inodes
}

// established lists the local addresses of ESTABLISHED sockets in
// /proc/net/tcp and tcp6 that match (local port, inode).
func established(procNet string, match func(port int, inode string) bool) []netip.Addr {
	if procNet == "" {
		procNet = "/proc/net"
	}
	var out []netip.Addr
	for _, f := range []string{"tcp", "tcp6"} {
		fh, err := os.Open(procNet + "/" + f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			w := strings.Fields(sc.Text())
			if len(w) < 4 || w[3] != "01" { // 01 = TCP_ESTABLISHED
				continue
			}
			inode := ""
			if len(w) > 9 {
				inode = w[9]
			}
			a, p, ok := parseProcAddr(w[1])
			if ok && match(p, inode) {
				out = append(out, a)
			}
		}
		fh.Close()
	}
	return out
}

// parseProcAddr decodes "0100007F:0016" (address words in host byte order,
// little-endian on every arch we ship) into an address and port.
func parseProcAddr(s string) (netip.Addr, int, bool) {
	h, pt, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.ParseUint(pt, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.Addr{}, 0, false
	}
	for i := 0; i < len(b); i += 4 { // each 32-bit word is little-endian
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	a, _ := netip.AddrFromSlice(b)
	return a.Unmap(), int(port), true
}
