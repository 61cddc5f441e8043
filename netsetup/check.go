package netsetup

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pam-vrf/pam-vrf/config"
	"golang.org/x/sys/unix"
)

// CheckResult is one line of `vrf-netsetup check`.
type CheckResult struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// String: "ok   name: detail" or "FAIL name: detail (fix: ...)".
func (c CheckResult) String() string {
	if c.OK {
		return fmt.Sprintf("ok   %s: %s", c.Name, c.Detail)
	}
	return fmt.Sprintf("FAIL %s: %s (fix: %s)", c.Name, c.Detail, c.Fix)
}

// Checker runs the health checks.
type Checker struct {
	Reader *Reader
	// ProcRoot is where mountinfo is read ("/proc").
	ProcRoot string
	// DNSTimeout per query; 0 = 4s.
	DNSTimeout time.Duration
	// PolicyPath is the PAM policy ("" = config.DefaultPath under the root).
	PolicyPath string
	// KernelRelease overrides uname -r (tests).
	KernelRelease string
	// firewall runs nft/iptables-save (tests: recorded output); nil = the
	// tools, in Reader.Net's netns.
	firewall *fwHost
}

func ok(name, format string, a ...any) CheckResult {
	return CheckResult{Name: name, OK: true, Detail: fmt.Sprintf(format, a...)}
}

func fail(name, fix, format string, a ...any) CheckResult {
	return CheckResult{Name: name, Detail: fmt.Sprintf(format, a...), Fix: fix}
}

// Run returns every check result; the caller exits 1 if any failed.
func (c *Checker) Run(cfg Config) ([]CheckResult, error) {
	st, err := c.Reader.Read(cfg)
	if err != nil {
		return nil, err
	}
	dns := EffectiveDNS(cfg, st)
	apply := "vrf-netsetup apply --vrf " + cfg.VRF + " --table " + fmt.Sprint(cfg.Table) + " --iface " + cfg.Iface
	var rs []CheckResult
	add := func(r CheckResult) { rs = append(rs, r) }

	vrf, hasVRF := st.link(cfg.VRF)
	switch {
	case st.Module.Loaded || (hasVRF && vrf.Kind == "vrf"):
		add(ok("driver", "vrf module loaded"))
	case st.Module.Available:
		add(fail("driver", "modprobe vrf", "vrf module not loaded (available for %s)", st.Module.Release))
	default:
		add(fail("driver", modulePackageHint(st.Module.Release), "vrf.ko not installed for kernel %s", st.Module.Release))
	}

	switch {
	case !hasVRF:
		add(fail("device", apply, "%s does not exist", cfg.VRF))
	case vrf.Kind != "vrf":
		add(fail("device", "delete it or choose another --vrf", "%s is a %s, not a VRF", cfg.VRF, vrf.Kind))
	case vrf.Table != cfg.Table:
		add(fail("device", fmt.Sprintf("--table %d", vrf.Table), "%s uses table %d, expected %d", cfg.VRF, vrf.Table, cfg.Table))
	case !vrf.Up:
		add(fail("device", "ip link set "+cfg.VRF+" up", "%s (table %d) is down", cfg.VRF, vrf.Table))
	default:
		add(ok("device", "%s is a VRF, table %d, up", cfg.VRF, vrf.Table))
	}

	add(checkTable(cfg, st))

	iface, hasIface := st.link(cfg.Iface)
	switch {
	case !hasIface:
		add(fail("enslaved", "check --iface", "%s does not exist", cfg.Iface))
	case !hasVRF || iface.Master != vrf.Index:
		add(fail("enslaved", apply, "%s is not enslaved to %s", cfg.Iface, cfg.VRF))
	default:
		add(ok("enslaved", "%s is in %s", cfg.Iface, cfg.VRF))
	}
	if why := Unsupported(cfg, st); why != "" {
		add(fail("manager", "let systemd-networkd, netplan, NetworkManager (a keyfile connection) or ifupdown (with isc-dhcp-client or dhcpcd) manage "+cfg.Iface+", or a static address", "%s", why))
	} else {
		add(ok("manager", "%s", st.Manager.Detail))
	}
	if d := hostDHCP(cfg, st); d.RunsInVRF && hasIface && hasVRF && iface.Master == vrf.Index {
		if r, ok := checkClientInVRF(cfg, st, d.ClientName()); ok {
			add(r)
		}
	}

	// Per family the management network has: an IPv6-only one has no IPv4
	// default route to find (and one with neither is checked for IPv4).
	v6 := hasGlobalV6(st, cfg.Iface)
	if hasV4(st, cfg.Iface) || !v6 {
		add(c.checkDefault(cfg, st, unix.AF_INET, apply))
	}
	if v6 {
		add(c.checkDefault(cfg, st, unix.AF_INET6, apply))
	}

	var missing []string
	want := vrfAddrs(cfg, dns)
	for _, a := range want {
		if !st.hasAddr(cfg.VRF, a) {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		add(fail("loopback", apply, "%s lacks %s", cfg.VRF, strings.Join(missing, " ")))
	} else {
		add(ok("loopback", "%s has %s", cfg.VRF, strings.Join(want, " ")))
	}

	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		add(checkRuleOrder(cfg, st, fam, apply))
	}

	tcp, udp := desiredSysctls(cfg, dns, st)
	for i, want := range []string{tcp, udp} {
		name := l3mdevSysctls[i]
		if got := st.Sysctls[name]; got != want {
			add(fail("sysctl "+name, "sysctl -w "+name+"="+want+" (persisted by apply in "+SysctlConf+")", "%s=%q, want %s for sshd %s / dns %s", name, got, want, cfg.SSHD, dns))
		} else {
			add(ok("sysctl "+name, "%s", got))
		}
	}
	if cfg.SSHD == SSHDVRFOnly {
		if f := st.file(SSHSocketDropIn); st.SSHSocket && !(f.Exists && strings.Contains(f.Content, "BindToDevice="+cfg.VRF+"\n")) {
			add(fail("sshd", apply+" --sshd vrf-only", "ssh.socket (socket-activated sshd) is active and %s does not bind it: its listener is not bound to %s", SSHSocketDropIn, cfg.VRF))
		} else if f := st.file(SSHDropIn); f.Exists && strings.Contains(f.Content, "BPFProgram=sock_create:") {
			how := "ssh.service bound to %s via %s"
			if st.SSHSocket {
				how += " and the ssh.socket listener via " + SSHSocketDropIn
			}
			add(ok("sshd", how, cfg.VRF, SSHDropIn))
		} else {
			add(fail("sshd", apply+" --sshd vrf-only", "%s missing: sshd is not bound to %s", SSHDropIn, cfg.VRF))
		}
	}

	apply += servicesFlags(cfg)
	for _, r := range c.checkServices(cfg, st, apply) {
		add(r)
	}
	if cfg.SSHD == SSHDVRFOnly || st.SSHService || st.SSHSocket {
		if r, ok := c.checkSSHDListen(cfg, st); ok {
			add(r)
		}
	}
	if cfg.Iface != "" {
		add(c.checkFirewall(cfg, st))
	}
	add(c.checkRouteDaemons(cfg, apply))
	add(c.checkCgroup())
	add(c.checkStubTrap(cfg, st, dns, hasVRF))
	for _, r := range c.checkDNS(cfg, st, hasVRF) {
		add(r)
	}
	if r, ok := c.checkDNSPaths(cfg, st, dns, hasVRF); ok {
		add(r)
	}
	add(c.checkPAM())
	add(c.checkPolicy())
	add(c.checkTry())
	if r, ok := c.checkBootUnit(); ok {
		add(r)
	}
	add(checkConverged(cfg, st, apply))
	return rs, nil
}

// checkTry reports the try record (try.go): a pending try is fine while
// its rollback is armed; one the rollback no longer covers (the host
// rebooted, or the deadline passed) or whose rollback failed is not.
func (c *Checker) checkTry() CheckResult {
	ts, err := ReadTryState(c.Reader.FS)
	switch {
	case err != nil:
		return fail("try", "inspect "+TryStatePath, "%v", err)
	case ts == nil:
		return ok("try", "no try pending (none recorded)")
	case ts.Status == TryRollbackFailed:
		return fail("try", "vrf-netsetup revert --if-unconfirmed (retry), or vrf-netsetup confirm (keep)",
			"the rollback of the unconfirmed try of %s failed: %s; apply refuses until this is resolved", ts.Started.Format(time.DateTime), ts.Detail)
	case ts.Status == TryPending:
		if why := ts.staleReason(bootID(), time.Now()); why != "" {
			return fail("try", "vrf-netsetup revert --if-unconfirmed (apply does it first too)",
				"the try of %s is unconfirmed and %s", ts.Started.Format(time.DateTime), why)
		}
		return ok("try", "pending: rolled back at %s unless confirmed (vrf-netsetup confirm from a new login)", ts.Deadline.Format(time.TimeOnly))
	}
	return ok("try", "no try pending (last: %s at %s)", ts.Status, ts.Done.Format(time.DateTime))
}

// checkBootUnit: a boot unit that failed leaves the host as the network
// managers made it at boot (the VRF half set up, sshd and --service units
// unbound), which the other lines show piecemeal; this names the cause.
// ok is false when systemd cannot be asked (--root, no systemd).
func (c *Checker) checkBootUnit() (CheckResult, bool) {
	ur, isUR := c.Reader.Svc.(UnitReader)
	if !isUR {
		return CheckResult{}, false
	}
	us, err := ur.ShowUnits([]string{"LoadState", "ActiveState", "Result"}, UnitName)
	if err != nil || len(us) != 1 {
		return CheckResult{}, false
	}
	return bootUnitResult(us[0]), true
}

func bootUnitResult(u map[string]string) CheckResult {
	switch {
	case u["LoadState"] != "loaded":
		return fail("boot unit", "vrf-netsetup apply (it installs the unit)", "%s is %s: nothing re-applies the VRF at boot", UnitName, u["LoadState"])
	case u["ActiveState"] == "failed":
		return fail("boot unit", "journalctl -b -u "+UnitName+", mend the cause, then systemctl restart "+UnitName,
			"%s failed at this boot (result %s): the VRF may be half set up, sshd and --service units unbound", UnitName, u["Result"])
	}
	return ok("boot unit", "%s %s", UnitName, u["ActiveState"])
}

// checkConverged: what apply would still do. After an interrupted apply
// (SIGKILL, crash, power loss) this names the missing pieces, including the
// service actions the marker records. The config file itself is left out:
// check's own flags (--query-name) may differ from the persisted ones.
func checkConverged(cfg Config, st *State, apply string) CheckResult {
	steps, err := Plan(cfg, st)
	if err != nil {
		return fail("converged", "see the error", "apply cannot plan: %v", err)
	}
	var left []string
	for _, s := range steps {
		if s.ID == "backup" || (s.File != nil && s.File.Path == ConfigPath && !s.File.Remove) {
			continue
		}
		left = append(left, s.Desc)
	}
	if len(left) == 0 {
		return ok("converged", "apply has nothing to do")
	}
	why := ""
	if len(st.Interrupted) > 0 {
		why = " (an apply was interrupted: " + ApplyMarker + ")"
	}
	return fail("converged", apply, "apply would still run %d step(s)%s: %s", len(left), why, strings.Join(left, "; "))
}

// checkTable: no other VRF shares our table, and, while our VRF does not
// exist, nothing foreign is in it (what apply would refuse: tableConflict).
func checkTable(cfg Config, st *State) CheckResult {
	if err := tableConflict(cfg, st); err != nil {
		return fail("table", err.Fix, "%s", err.Msg)
	}
	others := otherVRFs(st, cfg.VRF)
	var names []string
	for _, l := range others {
		names = append(names, fmt.Sprintf("%s (table %d)", l.Name, l.Table))
	}
	also := ""
	if len(names) > 0 {
		also = "; other VRFs: " + strings.Join(names, ", ")
	}
	if _, has := st.link(cfg.VRF); has {
		return ok("table", "table %d is used by VRF %s only%s", cfg.Table, cfg.VRF, also)
	}
	return ok("table", "no other VRF uses table %d%s", cfg.Table, also)
}

func (c *Checker) checkDefault(cfg Config, st *State, fam int, apply string) CheckResult {
	name := "default route " + famName(fam)
	for _, r := range st.Routes {
		if r.Table == cfg.Table && r.Family == fam && r.Dst == "default" && r.Type == unix.RTN_UNICAST && !isCatchAll(r, cfg) {
			return ok(name, "table %d: default via %s dev %s", cfg.Table, r.Gw, r.Dev)
		}
	}
	for _, r := range st.Routes {
		if r.Table == unix.RT_TABLE_MAIN && r.Family == fam && r.Dst == "default" && r.Dev == cfg.Iface {
			return fail(name, apply, "default via %s dev %s is in main, not table %d", r.Gw, r.Dev, cfg.Table)
		}
	}
	return fail(name, "renew the DHCP lease of "+cfg.Iface+" or add it: ip route add default via GW dev "+cfg.Iface+fmt.Sprintf(" table %d", cfg.Table), "no default route in table %d", cfg.Table)
}

func hasV4(st *State, iface string) bool {
	for _, a := range st.Addrs[iface] {
		if p, err := netip.ParsePrefix(a.CIDR); err == nil && p.Addr().Is4() && !p.Addr().IsLinkLocalUnicast() {
			return true
		}
	}
	return false
}

func hasGlobalV6(st *State, iface string) bool {
	for _, a := range st.Addrs[iface] {
		if p, err := netip.ParsePrefix(a.CIDR); err == nil && p.Addr().Is6() && p.Addr().IsGlobalUnicast() {
			return true
		}
	}
	return false
}

func checkRuleOrder(cfg Config, st *State, fam int, apply string) CheckResult {
	name := "rules " + famName(fam)
	l3, local := -1, -1
	for _, r := range st.Rules {
		if r.Family != fam {
			continue
		}
		if r.IsL3mdev() && (l3 < 0 || int(r.Pref) < l3) {
			l3 = int(r.Pref)
		}
		if r.IsLocal() && (local < 0 || int(r.Pref) < local) {
			local = int(r.Pref)
		}
	}
	switch {
	case l3 < 0:
		return fail(name, apply, "no l3mdev rule")
	case local < 0:
		return fail(name, fmt.Sprintf("ip -%s rule add pref %d lookup local", famTag(fam)[1:], PrefLocalNew), "no local rule (local addresses are unreachable!)")
	case local < l3:
		return fail(name, apply, "local (pref %d) before l3mdev (pref %d): VRF lookups are shadowed by default-VRF local addresses", local, l3)
	}
	for _, g := range guardRules(cfg.VRF, fam) {
		if !hasRule(st, g) {
			return fail(name, apply, "no rule %q: lookups for VRF %s that miss table %d fall through to the main table (management traffic leaves the VRF)", g.String(), cfg.VRF, cfg.Table)
		}
	}
	if !hasCatchAll(st, cfg, fam) {
		return fail(name, apply, "table %d has no catch-all route (default dev %s metric %d): lookups for VRF %s that miss the table fall through to the main table (management traffic leaves the VRF)", cfg.Table, cfg.VRF, UnreachableMetric, cfg.VRF)
	}
	return ok(name, "l3mdev pref %d before local pref %d; VRF %s guarded at pref %d and by its catch-all route", l3, local, cfg.VRF, PrefVRFGuard)
}

// checkCgroup: ip vrf exec / pam_vrf need cgroup2; on kernels < 5.15 an
// active v1 net_cls or net_prio hierarchy disables cgroup2 socket matching
// (fixed by 8520e224f547).
func (c *Checker) checkCgroup() CheckResult {
	proc := c.ProcRoot
	if proc == "" {
		proc = "/proc"
	}
	data, err := os.ReadFile(proc + "/self/mountinfo")
	if err != nil {
		return fail("cgroup2", "mount /proc", "read mountinfo: %v", err)
	}
	cg2, v1 := "", []string{}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, found := strings.Cut(line, " - ")
		if !found {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		if qf[0] == "cgroup2" && cg2 == "" {
			cg2 = pf[4]
		}
		if qf[0] == "cgroup" {
			for _, o := range strings.Split(qf[2], ",") {
				if o == "net_cls" || o == "net_prio" {
					v1 = append(v1, o+" at "+pf[4])
				}
			}
		}
	}
	if cg2 == "" {
		return fail("cgroup2", "boot with systemd.unified_cgroup_hierarchy=1 or mount -t cgroup2 none /sys/fs/cgroup/unified", "no cgroup2 mount")
	}
	rel := c.KernelRelease
	if rel == "" {
		var uts unix.Utsname
		_ = unix.Uname(&uts)
		rel = unix.ByteSliceToString(uts.Release[:])
	}
	if len(v1) > 0 && kernelBefore(rel, 5, 15) {
		return fail("cgroup2", "boot with cgroup_no_v1=net_cls,net_prio", "cgroup2 at %s, but kernel %s has cgroup v1 %s, which disables cgroup2 socket matching", cg2, rel, strings.Join(v1, ", "))
	}
	return ok("cgroup2", "mounted at %s", cg2)
}

func kernelBefore(rel string, major, minor int) bool {
	var a, b int
	if n, _ := fmt.Sscanf(rel, "%d.%d", &a, &b); n != 2 {
		return false
	}
	return a < major || (a == major && b < minor)
}

func (c *Checker) checkStubTrap(cfg Config, st *State, dns string, hasVRF bool) CheckResult {
	servers, _ := resolvConfServers(st.file(ResolvConf).Content)
	for _, s := range servers {
		if s == stubAddr && hasVRF {
			return fail("dns stub trap", "vrf-netsetup apply ... --dns static (or --dns resolved)",
				"%s points at %s, which systemd-resolved binds to lo: processes in VRF %s cannot reach it", ResolvConf, stubAddr, cfg.VRF)
		}
	}
	if !hasVRF {
		return ok("dns stub trap", "VRF %s not present (the trap needs a VRF)", cfg.VRF)
	}
	return ok("dns stub trap", "%s does not use the lo-bound stub %s", ResolvConf, stubAddr)
}

// checkPAM: pam_vrf.so in the sshd session stack, after pam_systemd (which
// moves the session into its scope; placing the process before that would be
// undone).
func (c *Checker) checkPAM() CheckResult {
	stack := pamSessionStack(c.Reader.FS, "sshd", 0)
	vrfAt, sysdAt := -1, -1
	for i, m := range stack {
		if strings.HasSuffix(m, "pam_vrf.so") && vrfAt < 0 {
			vrfAt = i
		}
		if strings.HasSuffix(m, "pam_systemd.so") && sysdAt < 0 {
			sysdAt = i
		}
	}
	switch {
	case vrfAt < 0:
		return fail("pam", "pam-auth-update --enable vrf (or add `session required pam_vrf.so` after pam_systemd.so in /etc/pam.d/common-session)", "pam_vrf.so not in the sshd session stack")
	case sysdAt > vrfAt:
		return fail("pam", "move pam_vrf.so after pam_systemd.so", "pam_vrf.so runs before pam_systemd.so, which then moves the session out of the VRF cgroup")
	}
	return ok("pam", "pam_vrf.so in the sshd session stack (after pam_systemd.so)")
}

// pamSessionStack expands /etc/pam.d/<svc> session lines and @include.
func pamSessionStack(fs FS, svc string, depth int) []string {
	if depth > 5 {
		return nil
	}
	f, err := os.Open(fs.P(filepath.Join("/etc/pam.d", svc)))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) == 0 || strings.HasPrefix(w[0], "#") {
			continue
		}
		switch {
		case w[0] == "@include" && len(w) > 1:
			out = append(out, pamSessionStack(fs, w[1], depth+1)...)
		case (w[0] == "session" || w[0] == "-session") && len(w) > 2:
			if w[1] == "include" || w[1] == "substack" {
				out = append(out, pamSessionStack(fs, w[2], depth+1)...)
				continue
			}
			mod := w[2]
			if strings.HasPrefix(w[1], "[") { // [value=action ...] may contain spaces
				for i := 1; i < len(w); i++ {
					if strings.HasSuffix(w[i], "]") && i+1 < len(w) {
						mod = w[i+1]
						break
					}
				}
			}
			out = append(out, mod)
		}
	}
	return out
}

func (c *Checker) checkPolicy() CheckResult {
	p := c.PolicyPath
	if p == "" {
		p = c.Reader.FS.P(config.DefaultPath)
	}
	// the module's own Load: ownership, mode, directories, strict parse
	pol, err := config.Load(p)
	file := ""
	if p != config.DefaultPath {
		file = " --file " + p
	}
	switch {
	case err != nil:
		return fail("policy", "vrf-netsetup policy edit"+file+" (installs it root-owned, mode 0644, only if it parses); details: vrf-netsetup policy check "+p, "%v", err)
	case !pol.Exists:
		return fail("policy", "vrf-netsetup policy edit"+file+" (e.g. default = \"mgmt\")", "%s missing: pam_vrf.so leaves every session alone", p)
	}
	return ok("policy", "%s is valid (vrf-netsetup policy check %s for details)", p, p)
}
