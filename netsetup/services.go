package netsetup

// Daemons in the management VRF: `vrf-netsetup apply --service UNIT`.
//
// Once the management NIC and its default route are in the VRF, a
// single-NIC host's default VRF has no way out: time sync, remote syslog,
// apt, SSSD stop working unless they run in the VRF too. Each named unit
// gets a drop-in, /etc/systemd/system/UNIT.d/pam-vrf.conf, with
// BPFProgram=sock_create:/sys/fs/bpf/pam-vrf/VRF: systemd attaches the
// program apply pins for the VRF's ifindex (stepSSHPin, the program
// `ip vrf exec` would attach) to the unit's cgroup, so every IPv4/IPv6
// socket any process of the unit creates is bound to the VRF.
//
// Why this mechanism, per systemd version:
//   - 249 and later (Debian 12 has 252): BPFProgram=. PID 1 attaches the
//     program, not the daemon, so the unit's sandboxing does not get in the
//     way (ProtectControlGroups=, SystemCallFilter=, User= stay as they
//     are), and it covers every Exec*= process without rewriting them.
//   - 260 added BindNetworkInterface=, which does the same binding with a
//     program of systemd's own. It is not used (yet): BPFProgram= works
//     there as well, and no systemd >= 260 guest exists to test the other
//     path on; one tested mechanism beats two.
//   - Before 249 there is no BPFProgram=: apply refuses, and names the way
//     by hand. The third mechanism, ExecStart= wrapped in `ip vrf exec`
//     (Cumulus' generator, VyOS' overrides), is not offered: it creates a
//     vrf/NAME cgroup below a unit systemd did not delegate, so it needs
//     ProtectControlGroups=no and CAP_BPF in the unit and breaks sandboxed
//     units, and every Exec*= line must be rewritten.
//
// What `ip vrf pids` cannot show: it lists the processes of cgroups named
// …/vrf/NAME (iproute2's layout, which pam_vrf's logins and `ip vrf exec`
// use). A bound unit keeps its own cgroup (system.slice/UNIT), so its
// processes are not listed there, and `ip vrf identify PID` prints nothing
// for them; `vrf-netsetup check` lists them instead, with their sockets as
// the kernel's socket table shows them (the %VRF of ss).
//
// systemd 249 to at least 252 attaches a BPFProgram= only at the first
// start after a daemon-reload; later restarts leave the new cgroup without it
// (systemd issue 26845, seen in the test guest: "Foreign BPF program already
// exists, ignoring"). The drop-in therefore also runs
// `ExecStartPre=-+vrf-netsetup __bind-cgroup VRF`, which attaches the same
// pinned program to the unit's new cgroup when systemd did not
// (bindcgroup.go): an admin's restart, Restart=, a package upgrade keep the
// daemon in the VRF.
//
// Plan, idempotent like the rest: the drop-ins (and removal of ours for
// units no longer listed), daemon-reload when a file changed or systemd has
// not loaded it, then one restart of each running unit whose cgroup does not
// hold a program for the VRF's current ifindex. A second apply restarts
// nothing; a VRF re-created with a new ifindex gets a new pin and restarts
// them again. At boot, units ordered after the boot unit start bound;
// units that start before it (DefaultDependencies=no, e.g.
// systemd-timesyncd, which is Before=sysinit.target) cannot be ordered after
// it without a cycle, so the boot unit's apply restarts them.

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// ServiceDropInName is the file name of our drop-in in every unit's .d dir.
const ServiceDropInName = "pam-vrf.conf"

// MinSystemdBPFProgram is the first systemd with BPFProgram=.
const MinSystemdBPFProgram = 249

// unitDropInPath is where the drop-in binding unit to the VRF lives.
func unitDropInPath(unit string) string {
	return "/etc/systemd/system/" + unit + ".d/" + ServiceDropInName
}

// dropInUnit is the inverse of unitDropInPath ("" for other paths, and for
// the ssh.service drop-in of sshd mode vrf-only, which persist.go owns).
func dropInUnit(p string) string {
	dir, file := path.Split(p)
	if file != ServiceDropInName || p == SSHDropIn || !strings.HasPrefix(dir, "/etc/systemd/system/") {
		return ""
	}
	d := strings.TrimSuffix(strings.TrimPrefix(dir, "/etc/systemd/system/"), "/")
	if !strings.HasSuffix(d, ".service.d") || strings.Contains(d, "/") {
		return ""
	}
	return strings.TrimSuffix(d, ".d")
}

var unitTypes = []string{"service", "socket", "timer", "target", "mount", "automount", "swap", "path", "slice", "scope", "device"}

// refusedByName: units that must not be named, and what to do instead.
var refusedByName = map[string]string{
	"ssh.service":              "sshd has its own setting: --sshd vrf-only (with the lockout guard and a drop-in of its own)",
	"sshd.service":             "sshd has its own setting: --sshd vrf-only (with the lockout guard and a drop-in of its own)",
	UnitName:                   "it is vrf-netsetup's own boot unit, which creates the VRF",
	"systemd-resolved.service": "it stays in the default VRF, which resolves through it, and already reaches its per-link servers through the VRF (see --dns)",
	"systemd-networkd.service": "it configures the interfaces, the management interface included, and binds its DHCP sockets to each interface itself",
	"NetworkManager.service":   "it configures the interfaces, the management interface included, and binds its DHCP sockets to each interface itself",
	"networking.service":       "it configures the interfaces, the management interface included (ifupdown)",
}

// NormalizeUnit turns a --service argument into a service unit name
// ("chrony" -> "chrony.service") or says why it cannot be bound by name.
func NormalizeUnit(s string) (string, error) {
	if s == "" || strings.HasPrefix(s, ".") || strings.ContainsAny(s, "/ \t\n\\") || len(s) > 255 {
		return "", fmt.Errorf("%q is not a systemd unit name", s)
	}
	typ := ""
	if i := strings.LastIndex(s, "."); i > 0 && slices.Contains(unitTypes, s[i+1:]) {
		typ = s[i+1:]
	} else {
		s += ".service"
		typ = "service"
	}
	base := strings.TrimSuffix(s, "."+typ)
	switch typ {
	case "service":
	case "timer":
		return "", fmt.Errorf("%s is a timer, which opens no sockets: name the service it starts (usually %s.service)", s, base)
	case "socket":
		return "", fmt.Errorf("%s is a socket unit, whose sockets systemd opens itself: bind them with BindToDevice= in a drop-in for %s ([Socket] section), not with --service", s, s)
	default:
		return "", fmt.Errorf("%s is a %s unit: only services run daemons whose sockets can be bound", s, typ)
	}
	if strings.HasSuffix(base, "@") {
		return "", fmt.Errorf("%s is a template without an instance: name an instance, e.g. %smgmt.service (systemctl list-units '%s*')", s, base, base)
	}
	if base == "" || strings.HasPrefix(base, "@") {
		return "", fmt.Errorf("%q is not a systemd unit name", s)
	}
	if why, ok := refusedByName[s]; ok {
		return "", fmt.Errorf("%s cannot be named: %s", s, why)
	}
	return s, nil
}

// NormalizeServices normalises and de-duplicates a --service list, keeping
// its order.
func NormalizeServices(in []string) ([]string, error) {
	var out []string
	for _, s := range in {
		u, err := NormalizeUnit(s)
		if err != nil {
			return nil, &FlagError{"service", err.Error()}
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// services is cfg.Services normalised (Validate has accepted them).
func (c Config) services() []string {
	out, _ := NormalizeServices(c.Services)
	return out
}

// needsPin: the program is pinned for ssh.service (vrf-only) and for
// --service units alike.
func needsPin(cfg Config) bool {
	return cfg.SSHD == SSHDVRFOnly || len(cfg.Services) > 0
}

// earlyUnit: a unit that starts before pam-vrf-netsetup.service can run
// (it has DefaultDependencies=no, or is ordered before something the boot
// unit waits for). Ordering it After= the boot unit would be a cycle, and
// systemd breaks cycles by dropping a job, maybe ours.
func earlyUnit(u UnitState) bool {
	if !u.DefaultDependencies {
		return true
	}
	for _, b := range u.Before {
		switch b {
		case "sysinit.target", "basic.target", "local-fs.target", "network-pre.target", "network.target",
			"systemd-networkd.service", "networking.service", "NetworkManager.service", "systemd-resolved.service":
			return true
		}
	}
	return false
}

// renderServiceDropIn: see the package comment of this file for why
// BPFProgram=. Wants=/After= order the unit after the boot unit that pins the
// program: without the pin systemd starts the unit anyway, unbound (it only
// logs the failed load), so Requires= would buy nothing but a daemon that
// does not start when the boot unit fails.
func renderServiceDropIn(cfg Config, unit string, st UnitState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by vrf-netsetup (pam-vrf): --service %s, whose sockets are bound to VRF %s.\n", unit, cfg.VRF)
	fmt.Fprintf(&b, "# The program is pinned by `vrf-netsetup apply` (pam-vrf-netsetup.service at boot).\n")
	if earlyUnit(st) {
		fmt.Fprintf(&b, "# %s starts before pam-vrf-netsetup.service (ordering it after would be a cycle):\n# the boot unit restarts it once the program is pinned.\n", unit)
	} else {
		fmt.Fprintf(&b, "[Unit]\nWants=%[1]s\nAfter=%[1]s\n\n", UnitName)
	}
	fmt.Fprintf(&b, "[Service]\nBPFProgram=sock_create:%s\n", pinPath(cfg.VRF))
	fmt.Fprintf(&b, "# systemd attaches BPFProgram= only at the first start after a daemon-reload\n# (systemd issue 26845); on later (re)starts this attaches the same program.\n%s\n", bindCgroupLine(cfg.VRF))
	return b.String()
}

// serviceFiles are the drop-ins for cfg's units, and the removal of ours
// for units no longer listed.
func serviceFiles(cfg Config, st *State) []fileSpec {
	var fs []fileSpec
	want := cfg.services()
	for _, u := range want {
		fs = append(fs, fileSpec{Path: unitDropInPath(u), Content: renderServiceDropIn(cfg, u, st.Units[u]), Mode: 0o644, Kind: "units"})
	}
	for _, p := range sortedKeys(st.Files) {
		if u := dropInUnit(p); u != "" && !slices.Contains(want, u) && isOurs(st.Files[p]) {
			fs = append(fs, fileSpec{Path: p, Remove: true, Kind: "units"})
		}
	}
	return fs
}

// isOurs: a file apply wrote (its header), as debian/vrf-netsetup.postrm
// decides it too.
func isOurs(f FileState) bool {
	return f.Exists && f.Symlink == "" && strings.HasPrefix(f.Content, "# Written by vrf-netsetup")
}

// refuseUnits: the units apply will not bind, each with what to do.
func refuseUnits(cfg Config, st *State) error {
	units := cfg.services()
	if len(units) == 0 || st.Units == nil {
		return nil // nothing listed, or systemd not inspected (--root)
	}
	if v := st.SystemdVersion; v > 0 && v < MinSystemdBPFProgram {
		return &PlanError{fmt.Sprintf("--service %s: systemd %d has no BPFProgram= (%d and later)", strings.Join(units, " "), v, MinSystemdBPFProgram),
			fmt.Sprintf("upgrade systemd, or bind a unit by hand: a drop-in with ExecStart= prefixed by `ip vrf exec %s` and ProtectControlGroups=no (see vrf-netsetup(8), DAEMONS IN THE VRF)", cfg.VRF)}
	}
	for _, u := range units {
		s, ok := st.Units[u]
		if !ok {
			continue
		}
		switch s.LoadState {
		case "loaded":
		case "not-found":
			return &PlanError{fmt.Sprintf("--service %s: unit %s is not installed (systemd: not-found)", u, u),
				fmt.Sprintf("install the package that ships it, or check the name: systemctl list-unit-files '%s*'", strings.TrimSuffix(u, ".service"))}
		case "masked":
			return &PlanError{fmt.Sprintf("--service %s: unit %s is masked", u, u), "systemctl unmask " + u + ", or leave it out of --service"}
		default:
			return &PlanError{fmt.Sprintf("--service %s: systemd cannot load %s (%s)", u, u, s.LoadState), "systemctl status " + u + "; fix the unit file, or leave it out of --service"}
		}
		for _, so := range s.Sockets {
			if len(so.IPListen) == 0 || (so.ActiveState != "active" && so.UnitFileState != "enabled") {
				continue
			}
			return &PlanError{fmt.Sprintf("--service %s: %s is socket-activated by %s (listens on %s): systemd opens that socket itself, outside %s, so BPFProgram= cannot bind it", u, u, so.Name, strings.Join(so.IPListen, ", "), u),
				fmt.Sprintf("bind the socket instead, with a drop-in for %s: [Socket] BindToDevice=%s (and leave %s out of --service); or run it without socket activation: systemctl disable --now %s && systemctl enable --now %s", so.Name, cfg.VRF, u, so.Name, u)}
		}
		if s.PrivateNetwork || s.NetworkNamespacePath != "" {
			how := "PrivateNetwork=yes"
			if s.NetworkNamespacePath != "" {
				how = "NetworkNamespacePath=" + s.NetworkNamespacePath
			}
			return &PlanError{fmt.Sprintf("--service %s: %s runs in a network namespace of its own (%s), where VRF %s does not exist: its sandboxing defeats the binding", u, u, how, cfg.VRF),
				fmt.Sprintf("leave %s out of --service (it cannot reach the management network anyway), or, if it needs that network, undo %s in a drop-in of your own first", u, how)}
		}
	}
	return nil
}

// planUnitRestarts: one (try-)restart per running unit that is not bound to
// the VRF's program as it will be after this plan (pinned: the pin is
// replaced, so every running unit needs one), and for units whose drop-in
// goes away while they are still bound. A unit with a job queued is left to
// it: systemd starts it from the files reloaded by then.
func planUnitRestarts(cfg Config, st *State, pinned bool) []Step {
	var steps []Step
	want := cfg.services()
	for _, u := range sortedKeys(st.Units) {
		s := st.Units[u]
		if !s.running() || s.Job {
			continue
		}
		listed := slices.Contains(want, u)
		switch {
		case listed && (pinned || !s.Bound):
			r := svcStep("unit-restart:"+u, fmt.Sprintf("restart %s (its sockets bound to %s)", u, cfg.VRF), []string{"try-restart", u}, nil)
			r.AfterVRF = true
			steps = append(steps, r)
		case !listed && s.Bound && isOurs(st.file(unitDropInPath(u))):
			r := svcStep("unit-restart:"+u, fmt.Sprintf("restart %s (no longer bound to %s)", u, cfg.VRF), []string{"try-restart", u}, nil)
			r.AfterVRF = true
			steps = append(steps, r)
		}
	}
	return steps
}

// unitsNeedReload: systemd has not loaded a unit's current files.
func unitsNeedReload(st *State) bool {
	for _, s := range st.Units {
		if s.NeedDaemonReload {
			return true
		}
	}
	return false
}

// planRevertUnits: the drop-ins revert's file restore does not cover (units
// added by a later apply are not in the backup's file list), and one restart
// of every running unit whose drop-in changes, after the daemon-reload.
func planRevertUnits(old, live *State) (files, restarts []Step) {
	for _, p := range sortedKeys(live.Files) {
		u := dropInUnit(p)
		if u == "" {
			continue
		}
		o, known := old.Files[p]
		l := live.Files[p]
		if !known && isOurs(l) {
			files = append(files, Step{ID: "revert-file:" + p, Desc: "remove " + p,
				Do: func(e *Env) error { return e.FS.Restore(p, FileState{}) }, Undo: func(e *Env) error { return e.FS.Restore(p, l) }})
		}
		if (known && !fileDiffers(o, l)) || (!known && !isOurs(l)) {
			continue
		}
		if s, ok := live.Units[u]; ok && s.running() {
			restarts = append(restarts, svcStep("revert-unit-restart:"+u, "restart "+u+" (back to its own settings)", []string{"try-restart", u}, nil))
		}
	}
	return files, restarts
}
