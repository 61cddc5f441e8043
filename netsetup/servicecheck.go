package netsetup

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// checkServices: one line per unit named by --service: loaded with our
// drop-in, running (or a oneshot waiting for its next run), its cgroup
// holding the program for the VRF's ifindex, and every IP socket its
// processes hold bound to the VRF in the kernel's socket table.
func (c *Checker) checkServices(cfg Config, st *State, apply string) []CheckResult {
	units := cfg.services()
	if len(units) == 0 {
		return nil
	}
	vrf, hasVRF := st.link(cfg.VRF)
	names := map[int]string{}
	for _, l := range st.Links {
		names[l.Index] = l.Name
	}
	var rs []CheckResult
	for _, u := range units {
		name := "service " + u
		restart := "systemctl restart " + u + " (or " + apply + ")"
		s, known := st.Units[u]
		pin := "sock_create:" + pinPath(cfg.VRF)
		switch {
		case !known:
			rs = append(rs, fail(name, "run check on the host itself", "systemd was not asked about %s", u))
			continue
		case s.LoadState != "loaded":
			rs = append(rs, fail(name, "install it, or leave it out of --service ("+apply+")", "%s is %s", u, s.LoadState))
			continue
		case !slices.Contains(s.DropInPaths, unitDropInPath(u)) || !slices.Contains(s.BPFProgram, pin):
			rs = append(rs, fail(name, apply+" (writes "+unitDropInPath(u)+", then systemctl daemon-reload)", "systemd has not loaded %s with BPFProgram=%s", unitDropInPath(u), pin))
			continue
		case !hasVRF || vrf.Kind != "vrf":
			rs = append(rs, fail(name, apply, "VRF %s does not exist: %s cannot be bound to it", cfg.VRF, u))
			continue
		case s.ActiveState == "failed":
			rs = append(rs, fail(name, "systemctl status "+u+"; journalctl -u "+u, "%s failed (%s)", u, s.Result))
			continue
		case !s.running() && s.Type == "oneshot":
			rs = append(rs, ok(name, "%s is a oneshot, not running now (last result %s); BPFProgram= is loaded, so its next run is bound to %s", u, orDash(s.Result), cfg.VRF))
			continue
		case !s.running():
			rs = append(rs, fail(name, "systemctl start "+u, "%s is %s", u, s.ActiveState))
			continue
		case !s.Bound:
			rs = append(rs, fail(name, restart, "%s runs, but no program on its cgroup %s binds sockets to %s (ifindex %d): it started before the program was pinned, or before %s was re-created", u, s.ControlGroup, cfg.VRF, vrf.Index, cfg.VRF))
			continue
		}
		socks, err := ProcessSockets(c.Reader.Net.NS, s.PIDs)
		if err != nil {
			rs = append(rs, fail(name, "run check as root", "%v", err))
			continue
		}
		var good, bad []string
		for _, so := range socks {
			in := so.BoundIf == vrf.Index
			if l, ok := st.linkByIndex(so.BoundIf); ok && l.Master == vrf.Index {
				in = true // bound to a port of the VRF: still in it
			}
			if in {
				good = append(good, so.String(names))
			} else {
				bad = append(bad, so.String(names))
			}
		}
		pids := fmt.Sprint(s.PIDs)
		switch {
		case len(bad) > 0:
			rs = append(rs, fail(name, restart, "%s (pids %s) has sockets outside %s: %s", u, strings.Trim(pids, "[]"), cfg.VRF, strings.Join(bad, ", ")))
		case len(good) == 0:
			rs = append(rs, ok(name, "active, pids %s in %s, bound to %s; no IP socket open right now", strings.Trim(pids, "[]"), s.ControlGroup, cfg.VRF))
		default:
			rs = append(rs, ok(name, "active, pids %s in %s; sockets: %s", strings.Trim(pids, "[]"), s.ControlGroup, strings.Join(good, ", ")))
		}
	}
	return rs
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// routeDaemon is a daemon that needs a way out of the host.
type routeDaemon struct {
	unit  string
	what  string
	timer string // the unit runs from this timer; it counts when the timer is active
}

// routeDaemons: the usual daemons that stop working when the default VRF
// loses its default route (issue: time sync, syslog forwarding, apt,
// unattended upgrades, SSSD, SNMP).
var routeDaemons = []routeDaemon{
	{unit: "systemd-timesyncd.service", what: "NTP"},
	{unit: "chrony.service", what: "NTP"},
	{unit: "chronyd.service", what: "NTP"},
	{unit: "ntpsec.service", what: "NTP"},
	{unit: "ntp.service", what: "NTP"},
	{unit: "openntpd.service", what: "NTP"},
	{unit: "apt-daily.service", what: "apt package lists", timer: "apt-daily.timer"},
	{unit: "apt-daily-upgrade.service", what: "unattended upgrades", timer: "apt-daily-upgrade.timer"},
	{unit: "unattended-upgrades.service", what: "unattended upgrades"},
	{unit: "sssd.service", what: "LDAP/AD users and groups"},
	{unit: "rsyslog.service", what: "syslog forwarding"},
	{unit: "snmpd.service", what: "SNMP traps"},
}

// rsyslogForward matches a forwarding action: legacy `*.* @host` (UDP),
// `@@host` (TCP), or `action(type="omfwd" ...)`.
var rsyslogForward = regexp.MustCompile(`(?m)^[^#\n]*(\s@@?\[?[A-Za-z0-9_.:-]+|type\s*=\s*"omfwd")`)

// checkRouteDaemons: when the default VRF has no default route (apply moved
// it into the VRF), the active daemons that need one and run outside the VRF,
// each with the --service that fixes it.
func (c *Checker) checkRouteDaemons(cfg Config, apply string) CheckResult {
	const name = "daemons outside the VRF"
	var via []string
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, err := retryDump(func() ([]netlink.Route, error) {
			return c.Reader.Net.H.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return fail(name, "run check as root", "list main-table routes: %v", err)
		}
		for _, r := range rs {
			if (r.Dst == nil || isDefaultDst(r)) && r.Type == unix.RTN_UNICAST {
				via = append(via, famName(fam))
				break
			}
		}
	}
	if len(via) > 0 {
		return ok(name, "the default VRF has a default route (%s): daemons outside %s can reach the network", strings.Join(via, ", "), cfg.VRF)
	}
	ur, isUR := c.Reader.Svc.(UnitReader)
	if !isUR {
		return ok(name, "the default VRF has no default route; systemd not asked (offline)")
	}
	var units []string
	for _, d := range routeDaemons {
		units = append(units, d.unit)
		if d.timer != "" {
			units = append(units, d.timer)
		}
	}
	props, err := ur.ShowUnits([]string{"Id", "LoadState", "ActiveState"}, units...)
	if err != nil {
		return fail(name, "run check on the host itself", "the default VRF has no default route, and systemd cannot be asked which daemons need one: %v", err)
	}
	// by unit name: its state and its real name (chronyd.service is an
	// alias of chrony.service on Debian: one daemon, named once)
	state, id := map[string]string{}, map[string]string{}
	for i, u := range units {
		if i < len(props) && props[i]["LoadState"] == "loaded" {
			state[u], id[u] = props[i]["ActiveState"], props[i]["Id"]
		}
	}
	listed := cfg.services()
	var need []string
	add := slices.Clone(listed)
	for _, d := range routeDaemons {
		u := id[d.unit]
		if u == "" || slices.Contains(add, u) {
			continue // not installed, listed, or named already
		}
		in := state[d.unit] == "active" || (d.timer != "" && state[d.timer] == "active")
		what := d.what
		if d.unit == "rsyslog.service" && in {
			fwd := c.rsyslogForwards()
			if fwd == "" {
				continue // local logging only: needs no route
			}
			what = "forwards to " + fwd
		}
		if in {
			need = append(need, fmt.Sprintf("%s (%s)", u, what))
			add = append(add, u)
		}
	}
	if len(need) == 0 {
		return ok(name, "the default VRF has no default route; none of the daemons known to need one runs outside %s", cfg.VRF)
	}
	fix := apply
	for _, u := range add {
		fix += " --service " + u
	}
	return fail(name, fix, "the default VRF has no default route, and these active units need one but run outside VRF %s: %s", cfg.VRF, strings.Join(need, ", "))
}

// rsyslogForwards: the first forwarding target in rsyslog's configuration
// ("" when it only logs locally).
func (c *Checker) rsyslogForwards() string {
	files := append([]string{"/etc/rsyslog.conf"}, c.Reader.FS.Glob("/etc/rsyslog.d/*.conf")...)
	for _, f := range files {
		st, err := c.Reader.FS.Stat(f)
		if err != nil || !st.Exists {
			continue
		}
		if m := rsyslogForward.FindStringSubmatch(st.Content); m != nil {
			return strings.TrimSpace(m[1]) + " in " + f
		}
	}
	return ""
}

// servicesFlags: the --service flags that repeat cfg's list.
func servicesFlags(cfg Config) string {
	s := ""
	for _, u := range cfg.services() {
		s += " --service " + u
	}
	return s
}
