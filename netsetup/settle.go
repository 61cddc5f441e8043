package netsetup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// networkd publishes each link's state in /run/systemd/netif/links/<ifindex>
// (the files sd-network reads; ADMIN_STATE is networkctl's SETUP column).
const networkdLinksDir = "/run/systemd/netif/links/"

// DefaultSettleTimeout bounds every wait for systemd-networkd.
const DefaultSettleTimeout = 60 * time.Second

const settlePoll = 200 * time.Millisecond

const anyMaster = "*"

// networkdAdminState returns ADMIN_STATE of the link ("" if networkd has not
// written the file: not running, or the link is unknown to it).
func networkdAdminState(fs FS, ifindex int) string {
	_, state := networkdLink(fs, ifindex)
	return state
}

// networkdStamp identifies the version of networkd's state file for the
// link ("" when there is none).
func networkdStamp(fs FS, ifindex int) string {
	stamp, _ := networkdLink(fs, ifindex)
	return stamp
}

// networkdLink reads networkd's state file for the link once: its version
// (inode and mtime: networkd writes a new file and renames it over the old
// one at every change) and ADMIN_STATE, both of the same file.
func networkdLink(fs FS, ifindex int) (stamp, state string) {
	f, err := os.Open(fs.P(fmt.Sprintf("%s%d", networkdLinksDir, ifindex)))
	if err != nil {
		return "", ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", ""
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	stamp = fmt.Sprintf("%d/%d", ino, fi.ModTime().UnixNano())
	b, _ := io.ReadAll(io.LimitReader(f, 1<<16))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ADMIN_STATE="); ok {
			return stamp, strings.TrimSpace(v)
		}
	}
	return stamp, ""
}

// pickupWait bounds the wait for networkd to start on a reconfigure.
const pickupWait = 10 * time.Second

// waitNetworkdPickup waits (bounded) until networkd has started on the
// command just sent: the link's state file is no longer the version
// before and networkd is configuring the link, or it has been rewritten
// and left alone for pickupQuiet (a pass over before the first look).
// After the bound it goes on, noting it: the settle that follows still
// waits for the result.
func waitNetworkdPickup(fs FS, ifindex int, before string, wait time.Duration, out io.Writer) {
	deadline := time.Now().Add(wait)
	last, since := before, time.Time{}
	for {
		stamp, state := networkdLink(fs, ifindex)
		if stamp != before {
			if networkdBusy(state) {
				return
			}
			if stamp != last {
				last, since = stamp, time.Now()
			} else if time.Since(since) >= pickupQuiet {
				return
			}
		}
		if time.Now().After(deadline) {
			if out != nil {
				fmt.Fprintf(out, "note   networkd did not start on link %d within %s; going on\n", ifindex, wait)
			}
			return
		}
		time.Sleep(pickupPoll)
	}
}

// pickupQuiet: a state file rewritten and unchanged this long means the
// pass is over (networkd writes it at every step of one).
const pickupQuiet = time.Second

const pickupPoll = 20 * time.Millisecond

// networkdBusy: networkd is still working on the link.
func networkdBusy(state string) bool {
	switch state {
	case "pending", "initialized", "configuring":
		return true
	}
	return false
}

// settleWant is what "networkd is done with the iface" means for a step.
type settleWant struct {
	Iface string
	// Master is the device the iface must be enslaved to ("" = no master,
	// anyMaster = don't care).
	Master string
	// Table and Families: a unicast default route through Iface must exist
	// in Table for each family (the DHCP/RA routes networkd installs).
	Table    uint32
	Families []int
	// Who: the manager waited for, when not networkd (a DHCP client whose
	// hook adds the routes): networkd's link state is not asked then.
	Who string
}

func (w settleWant) who() string {
	if w.Who == "" {
		return "networkd"
	}
	return w.Who
}

func (w settleWant) String() string {
	m := "no master"
	if w.Master == anyMaster {
		m = "(any master)"
	} else if w.Master != "" {
		m = "enslaved to " + w.Master
	}
	var fams []string
	for _, f := range w.Families {
		fams = append(fams, famName(f))
	}
	s := fmt.Sprintf("%s %s, networkd setup state configured", w.Iface, m)
	if w.Who != "" {
		s = fmt.Sprintf("%s %s", w.Iface, m)
	}
	if len(fams) > 0 {
		s += fmt.Sprintf(", %s default route(s) in table %s", strings.Join(fams, "+"), tableName(w.Table))
	}
	return s
}

func tableName(t uint32) string {
	if t == unix.RT_TABLE_MAIN {
		return "main"
	}
	return fmt.Sprint(t)
}

// settleStatus reports which parts of w are missing right now.
func settleStatus(e *Env, w settleWant) (missing []string, state string, critical bool) {
	l, err := e.linkByName(w.Iface)
	if err != nil {
		return []string{w.Iface + " is gone"}, "", true
	}
	state = networkdAdminState(e.FS, l.Attrs().Index)
	master := l.Attrs().MasterIndex
	switch {
	case w.Master == "" && master != 0:
		missing, critical = append(missing, w.Iface+" still has a master"), true
	case w.Master == anyMaster:
	case w.Master != "":
		m, err := e.linkByName(w.Master)
		if err != nil || m.Attrs().Index != master {
			missing, critical = append(missing, w.Iface+" is not enslaved to "+w.Master), true
		}
	}
	if w.Who == "" && state != "configured" {
		missing = append(missing, "networkd setup state of "+w.Iface+" is "+orNone(state))
		critical = critical || state == "failed" || state == "unmanaged"
	}
	for _, fam := range w.Families {
		rs, err := e.Net.H.RouteListFiltered(fam, &netlink.Route{Table: int(w.Table)}, netlink.RT_FILTER_TABLE)
		found := false
		for _, r := range rs {
			if err == nil && r.Type == unix.RTN_UNICAST && r.LinkIndex == l.Attrs().Index && (r.Dst == nil || isDefaultDst(r)) {
				found = true
			}
		}
		if !found {
			missing = append(missing, fmt.Sprintf("no %s default route via %s in table %s", famName(fam), w.Iface, tableName(w.Table)))
		}
	}
	return missing, state, critical
}

func isDefaultDst(r netlink.Route) bool {
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

func orNone(s string) string {
	if s == "" {
		return "unknown (no " + networkdLinksDir + " file)"
	}
	return s
}

// waitNetworkd polls until w holds or the timeout passes. Missing default
// routes at the timeout are a warning (the lease may come later; `check`
// reports it); a wrong master or a failed link is an error.
func waitNetworkd(e *Env, w settleWant) error {
	if _, off := e.Svc.(Offline); off {
		return nil
	}
	return settleReport(e, w, settlePolls(e, w, settleTimeout(e)))
}

// settleResult is what a settle wait saw last.
type settleResult struct {
	missing  []string
	state    string
	critical bool
	// stateOnly: all that is missing is networkd's "configured" (master
	// and default routes are in place)
	stateOnly bool
	took      time.Duration
	timeout   time.Duration
}

// settlePolls polls until w holds or timeout passes.
func settlePolls(e *Env, w settleWant, timeout time.Duration) settleResult {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		missing, state, critical := settleStatus(e, w)
		if len(missing) == 0 || time.Now().After(deadline) {
			// the state's entry is the only one that is neither the
			// master's (critical) nor a route's
			stateOnly := len(missing) == 1 && !critical && w.Who == "" && state != "configured"
			return settleResult{missing: missing, state: state, critical: critical, stateOnly: stateOnly, took: time.Since(start), timeout: timeout}
		}
		time.Sleep(settlePoll)
	}
}

// settleReport prints a settle's outcome and says whether it fails the
// step (see waitNetworkd).
func settleReport(e *Env, w settleWant, r settleResult) error {
	if len(r.missing) == 0 {
		if e.Out != nil {
			fmt.Fprintf(e.Out, "       %s settled in %.1fs: %s\n", w.who(), r.took.Seconds(), w)
		}
		return nil
	}
	msg := fmt.Sprintf("%s did not settle within %s: %s", w.who(), r.timeout, strings.Join(r.missing, "; "))
	if r.critical && w.Who != "" {
		return errors.New(msg)
	}
	if r.critical {
		return fmt.Errorf("%s (networkd state %s; see journalctl -u systemd-networkd)", msg, orNone(r.state))
	}
	if e.Out != nil {
		fmt.Fprintf(e.Out, "WARN   %s (continuing; see `vrf-netsetup check`)\n", msg)
	}
	return nil
}

// WaitNetworkdIdle waits (bounded) while networkd is still configuring the
// iface, so a read of the live state does not race it (at boot the unit runs
// while networkd enslaves the iface and runs DHCP). It returns at once when
// networkd does not know the iface. A wait of more than a few seconds is
// noted on out (nil: silent), naming the state networkd was in: an apply
// that takes minutes must say where they went.
func WaitNetworkdIdle(fs FS, n *Net, iface string, timeout time.Duration, out io.Writer) {
	l, err := n.H.LinkByName(iface)
	if err != nil {
		return
	}
	start := time.Now()
	deadline := start.Add(timeout)
	state := networkdAdminState(fs, l.Attrs().Index)
	for networkdBusy(state) && time.Now().Before(deadline) {
		time.Sleep(settlePoll)
		state = networkdAdminState(fs, l.Attrs().Index)
	}
	waited := time.Since(start)
	switch {
	case out == nil || waited < slowWait:
	case networkdBusy(state):
		fmt.Fprintf(out, "note   networkd was still %s %s after %s; going on (see networkctl status %s)\n", state, iface, waited.Round(time.Second), iface)
	default:
		fmt.Fprintf(out, "note   waited %s for networkd to finish with %s\n", waited.Round(100*time.Millisecond), iface)
	}
}

// slowWait: a wait or a step that takes longer is noted in the output.
var slowWait = 5 * time.Second

// WaitIPv4 waits (bounded) until iface has an IPv4 address that is not
// link-local; false when it has none at the timeout.
func WaitIPv4(n *Net, iface string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if l, err := n.H.LinkByName(iface); err == nil {
			as, _ := n.H.AddrList(l, netlink.FAMILY_V4)
			for _, a := range as {
				if !a.IP.IsLinkLocalUnicast() {
					return true
				}
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(settlePoll)
	}
}

// defaultFamilies: the families in which st has a unicast default route
// through iface (in main or in table), plus IPv4 when the iface holds a
// dynamic (DHCP) IPv4 address: the routes networkd must re-create.
func defaultFamilies(st *State, iface string, table uint32) []int {
	has := map[int]bool{}
	for _, r := range st.Routes {
		if r.Dev == iface && r.Dst == "default" && r.Type == unix.RTN_UNICAST && (r.Table == unix.RT_TABLE_MAIN || r.Table == table) {
			has[r.Family] = true
		}
	}
	for _, a := range st.Addrs[iface] {
		if a.Dynamic && !strings.Contains(a.CIDR, ":") {
			has[unix.AF_INET] = true
		}
	}
	var out []int
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		if has[f] {
			out = append(out, f)
		}
	}
	return out
}

func settleTimeout(e *Env) time.Duration {
	if e == nil || e.SettleTimeout == 0 {
		return DefaultSettleTimeout
	}
	return e.SettleTimeout
}

// idleWait bounds the wait before reading the state: long enough for the
// boot race (networkd enslaving and running DHCP, a few seconds under TCG)
// and for the second pass networkd makes after an interrupted apply (more
// than 20 s in a TCG guest next to another: a verify and a revert that
// raced it left eth0 without its lease until a reboot), short for an iface
// networkd will never finish (VRF deleted under it).
const idleWait = 45 * time.Second
