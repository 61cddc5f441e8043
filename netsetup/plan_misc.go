package netsetup

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/pam-vrf/pam-vrf/netsetup/hostnet"
	"golang.org/x/sys/unix"
)

// desiredSysctls: tcp on for sshd any-vrf; udp on for any-vrf and whenever
// DNS traffic is steered into the VRF or served by the resolved listener
// (replies arrive on a VRF slave for a socket that is not VRF-bound).
func desiredSysctls(cfg Config, dns string, st *State) (tcp, udp string) {
	tcp, udp = "0", "0"
	if cfg.SSHD == SSHDAnyVRF {
		tcp, udp = "1", "1"
	}
	// dhcpRuleServers: the lease's nameservers are steered in mode none too
	if dns == DNSStatic || dns == DNSResolved || len(dhcpRuleServers(cfg, st)) > 0 {
		udp = "1"
	}
	return tcp, udp
}

func planSysctls(cfg Config, dns string, st *State) []Step {
	tcp, udp := desiredSysctls(cfg, dns, st)
	var steps []Step
	for name, want := range map[string]string{l3mdevSysctls[0]: tcp, l3mdevSysctls[1]: udp} {
		old := st.Sysctls[name]
		if old == want {
			continue
		}
		name, want := name, want
		steps = append(steps, Step{ID: "sysctl-" + name, Desc: fmt.Sprintf("set %s=%s (now %q)", name, want, old),
			Do: func(e *Env) error { return e.Sysctl.Set(name, want) },
			Undo: func(e *Env) error {
				if old == "" {
					return nil
				}
				return e.Sysctl.Set(name, old)
			}})
	}
	// map order is random; keep plans stable for printing and tests
	if len(steps) == 2 && steps[0].ID > steps[1].ID {
		steps[0], steps[1] = steps[1], steps[0]
	}
	return steps
}

// dnsRuleServers are the servers whose queries from the default VRF are
// steered into the VRF table (Cumulus: `ip rule add pref 99 to NS iif lo
// lookup TABLE`; here after the l3mdev rule, see PrefDNSRule): servers the admin named with --nameserver, and in resolved
// mode resolved's global DNS= servers (resolved itself runs in the default
// VRF). Harvested servers are steered only when the host reaches them
// through the iface (mgmtServers): others may be data-plane servers, which
// the default VRF reaches on its own.
// Per-link servers of the enslaved link need no rule: resolved sends to them
// with IP_UNICAST_IF=iface, and the kernel routes a slave's oif in its VRF.
func dnsRuleServers(cfg Config, dns string, st *State) []string {
	var src []string
	switch dns {
	case DNSStatic:
		src = cfg.Nameservers
		if len(src) == 0 {
			src = mgmtServers(cfg, st, st.Upstream)
		}
	case DNSResolved:
		src = cfg.Nameservers
		if len(src) == 0 {
			src = resolvedAdminDNS(st)
		}
	}
	var out []string
	for _, s := range src {
		if a, ok := resolvedServerAddr(s); ok && !a.IsLoopback() {
			out = append(out, a.String())
		}
	}
	return out
}

// mgmtServers: the servers whose best route (main table, or the VRF table
// once the iface is enslaved) leaves through the iface. Once the iface is
// in the VRF the default VRF has no route to them: its resolver (sudo,
// PAM, logging in the default VRF) would time out on every lookup. The VRF
// table's catch-all route counts as the iface's: while the iface's own
// routes are gone for a moment (a lease or an RA not back yet) the
// decision must not flip, or apply would delete the rule and, on networkd
// hosts, rewrite the VRF's .network file.
func mgmtServers(cfg Config, st *State, servers []string) []string {
	var out []string
	for _, s := range servers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		if r, ok := bestRoute(st, a, unix.RT_TABLE_MAIN, cfg.Table); ok && (r.Dev == cfg.Iface || r.Table == cfg.Table && r.Dev == cfg.VRF) {
			out = append(out, s)
		}
	}
	return out
}

// bestRoute: the unicast route of st's tables for a: longest prefix, then
// lowest metric.
func bestRoute(st *State, a netip.Addr, tables ...uint32) (Route, bool) {
	fam := unix.AF_INET
	if a.Is6() {
		fam = unix.AF_INET6
	}
	var best Route
	bits := -1
	for _, r := range st.Routes {
		if r.Family != fam || r.Type != unix.RTN_UNICAST || !slices.Contains(tables, r.Table) {
			continue
		}
		p, err := netip.ParsePrefix(r.Dst)
		if r.Dst == "default" {
			p, err = netip.PrefixFrom(a, 0).Masked(), nil
		}
		if err != nil || !p.Contains(a) {
			continue
		}
		if p.Bits() > bits || (p.Bits() == bits && r.Metric < best.Metric) {
			best, bits = r, p.Bits()
		}
	}
	return best, bits >= 0
}

// resolvedServerAddr is the address of one DNS= entry, which resolved
// allows with a port, an interface and a TLS server name
// (resolved.conf(5): 192.0.2.1:53%eth0#dns.example, [2001:db8::1]:53%eth0#dns.example).
// Read as a bare address, such a server was left unsteered and the default
// VRF lost DNS. The rule is per address: port and interface do not matter.
func resolvedServerAddr(s string) (netip.Addr, bool) {
	s, _, _ = strings.Cut(s, "#")
	s, _, _ = strings.Cut(s, "%")
	if a, err := netip.ParseAddr(s); err == nil {
		return a, true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), true
	}
	return netip.Addr{}, false
}

func hostPrefix(ip string) string {
	a := netip.MustParseAddr(ip)
	return netip.PrefixFrom(a, a.BitLen()).String()
}

func dnsRule(cfg Config, ip string) Rule {
	a := netip.MustParseAddr(ip)
	fam := unix.AF_INET
	if a.Is6() {
		fam = unix.AF_INET6
	}
	return Rule{Family: fam, Pref: PrefDNSRule, Table: cfg.Table, Dst: hostPrefix(ip), Iif: "lo", Action: frActToTbl}
}

// steeredServers: the nameservers (and DHCP servers) the steering rules
// move into the VRF.
func steeredServers(cfg Config, dns string, st *State) []string {
	return append(dnsRuleServers(cfg, dns, st), dhcpRuleServers(cfg, st)...)
}

func planDNSRules(cfg Config, dns string, st *State) []Step {
	want := map[string]Rule{}
	for _, s := range steeredServers(cfg, dns, st) {
		r := dnsRule(cfg, s)
		want[r.Dst] = r
	}
	// Only our own shape in our table: an admin's pref-99 rules for other
	// tables (another VRF's DNS steering) or for a subnet are not ours.
	have := map[string]bool{}
	var stale []Step
	for _, r := range st.Rules {
		if !isOurDNSRule(r, cfg.Table) {
			continue
		}
		if _, ok := want[r.Dst]; ok && r.Pref == PrefDNSRule {
			have[r.Dst] = true
			continue
		}
		del := stepRuleDel("rule-dns-del-"+dnsTag(r), r)
		del.Follow = true
		stale = append(stale, del)
	}
	// New rules first: a server moving from pref 99 is steered throughout.
	var steps []Step
	for _, k := range sortedKeys(want) {
		if !have[k] {
			add := stepRuleAdd("rule-dns-"+k, want[k])
			add.Follow = true
			steps = append(steps, add)
		}
	}
	return append(steps, stale...)
}

// planServices adds the daemon actions the file changes need.
// The second result goes before the file steps: the steps that do nothing
// but whose undo, run after the files are restored, puts the daemons back
// on them (stepSSHArm, resolvedArm).
func planServices(cfg Config, dns string, st *State, files []Step) ([]Step, []Step) {
	changed := map[string]bool{}
	for _, f := range files {
		if f.File != nil {
			changed[f.File.Kind] = true
		}
	}
	for _, k := range st.Interrupted {
		changed[k] = true // an interrupted apply may have written them already
	}
	var steps []Step
	pinned := false
	if needsPin(cfg) {
		vrf, ok := st.link(cfg.VRF)
		if !ok || !st.SSHPin.Exists || st.SSHPin.Ifindex != vrf.Index {
			steps = append(steps, stepSSHPin(cfg))
			pinned = true
			changed["ssh"] = cfg.SSHD == SSHDVRFOnly
		}
	}
	if changed["unit"] || changed["ssh"] || changed["units"] || changed[kindDNSWatch] || unitsNeedReload(st) {
		steps = append(steps, svcStep("daemon-reload", "systemctl daemon-reload", []string{"daemon-reload"}, nil))
	}
	if changed[kindDNSWatch] {
		// undo: a new watch stops; one that ran before (an upgrade) keeps
		// running, with its restored files at the next daemon-reload
		var undo []string
		if !st.file(DNSWatchPath).Exists {
			undo = []string{"stop", DNSWatchName}
		}
		steps = append(steps, svcStep("dns-watch", "restart "+DNSWatchName+" (steers new nameservers into the VRF)",
			[]string{"restart", DNSWatchName}, undo))
	}
	steps = append(steps, planUnitRestarts(cfg, st, pinned)...)
	var arm []Step
	if changed["ssh"] {
		dev := ""
		if cfg.SSHD == SSHDVRFOnly {
			dev = cfg.VRF
		}
		steps = append(steps, sshRestart("ssh", "bound to "+cfg.VRF, dev, st)...)
		arm = []Step{stepSSHArm(st)}
	}
	if a := resolvedArm(dns, st, changed, files); a != nil {
		arm = append(arm, *a)
	}
	// any kind's, as an interrupted apply may have left them on a host
	// whose manager has changed since
	for _, b := range hostnet.Backends() {
		if tk := b.Takeover(st.Manager, target(cfg)); tk != nil && changed[tk.FileKind] {
			steps = append(steps, stepCmd(tk.Reload))
		}
	}
	switch dns {
	case DNSStatic:
		if st.ResolvedActive {
			steps = append(steps, svcStep("resolved-stop", "stop and disable systemd-resolved (its 127.0.0.53 stub is bound to lo, unreachable from the VRF)",
				[]string{"disable", "--now", "systemd-resolved.service"}, []string{"enable", "--now", "systemd-resolved.service"}))
		}
	case DNSResolved:
		if !st.ResolvedActive {
			steps = append(steps, svcStep("resolved-start", "enable and start systemd-resolved",
				[]string{"enable", "--now", "systemd-resolved.service"}, []string{"disable", "--now", "systemd-resolved.service"}))
		} else if changed["resolved"] {
			// no undo of its own: resolvedArm, planned with it, restarts
			// resolved once the files are back (a restart here would still
			// read our drop-in)
			steps = append(steps, svcStep("resolved-restart", "restart systemd-resolved (new listener "+cfg.ResolvedListener+")",
				[]string{"restart", "systemd-resolved.service"}, nil))
		}
	}
	return steps, arm
}

func svcStep(id, desc string, do, undo []string) Step {
	s := Step{ID: "svc-" + id, Desc: desc,
		Do: func(e *Env) error { return e.Svc.Run(do[0], do[1:]...) }}
	if undo != nil {
		s.Undo = func(e *Env) error { return e.Svc.Run(undo[0], undo[1:]...) }
	}
	return s
}

// planBackup saves the pre-apply state once (the first apply on a host is
// the one worth reverting to); later applies keep it.
func planBackup(st *State) *Step {
	if st.file(BackupPath).Exists {
		return nil
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil
	}
	return &Step{ID: "backup", Desc: "save the pre-apply state to " + BackupPath,
		Do:   func(e *Env) error { return e.FS.WriteAtomic(BackupPath, append(data, '\n'), 0o600) },
		Undo: func(e *Env) error { return e.FS.Remove(BackupPath) }}
}

// Notes are printed with the plan: facts the admin should know that are not
// steps.
func Notes(cfg Config, st *State) []string {
	n := []string{DNSReason(cfg, st), "interface manager: " + st.Manager.Detail}
	n = append(n, backend(st).Notes(st.Manager, target(cfg))...)
	if EffectiveDNS(cfg, st) == DNSStatic && len(cfg.Nameservers) == 0 && len(st.Upstream) > 0 {
		n = append(n, "nameservers harvested: "+strings.Join(st.Upstream, " "))
	}
	return n
}

// stepSSHArm does nothing when applied. Undone, it runs last in the
// rollback, once the ssh drop-ins are back as they were: a reload and a
// restart of whatever owns sshd's listener, so that a failed apply never
// leaves sshd stopped (a socket restart that failed) or bound to a VRF the
// rollback deletes (the restarts' own undo runs before the files return).
func stepSSHArm(st *State) Step {
	return Step{ID: "ssh-arm", Desc: "(on failure: systemctl daemon-reload and restart sshd's listener with the restored files)",
		Do: func(*Env) error { return nil },
		Undo: func(e *Env) error {
			if err := e.Svc.Run("daemon-reload"); err != nil {
				return err
			}
			if st.SSHSocket {
				return restartSSHSocket(e)
			}
			return e.Svc.Run("restart-no-block", "ssh.service")
		}}
}

// restartSSHSocket restarts ssh.socket unbound, as the rollback leaves it.
// An ssh.service the socket started (Accept=no: any login since the plan
// may have) holds the listening fd, and the socket cannot bind again while
// it runs ("Job failed", VM): it is stopped first (KillMode=process, open
// sessions stay); the next connection starts it again.
func restartSSHSocket(e *Env) error { return restartSocketAfterService(e, "restart", "ssh.socket") }

// restartSocketAfterService stops ssh.service, then runs the socket's
// restart (verb and its arguments: "restart ssh.socket", or the bound
// variant that waits for the device).
func restartSocketAfterService(e *Env, verb string, args ...string) error {
	if err := e.Svc.Run("stop", "ssh.service"); err != nil {
		return err
	}
	return e.Svc.Run(verb, args...)
}

// resolvedArm: while /etc/resolv.conf is ours and resolved has no DNS= of
// its own, resolved imports the file's nameservers (our listener, or the
// static servers) as its global DNS, and it keeps them when the file
// becomes its own stub again. So a rollback that restores resolv.conf or
// resolved's drop-in ends with a restart of resolved, once both are back
// (a restart's own undo runs while our drop-in is still in place). Seen in
// the VM: a fault before the resolved restart left "Global: 127.0.0.153",
// a listener that no longer existed.
func resolvedArm(dns string, st *State, changed map[string]bool, files []Step) *Step {
	if !st.ResolvedActive || (dns != DNSResolved && dns != DNSStatic) {
		return nil
	}
	touched := changed["resolved"]
	for _, f := range files {
		touched = touched || (f.File != nil && f.File.Path == ResolvConf)
	}
	if !touched {
		return nil
	}
	return &Step{ID: "resolved-arm", Desc: "(on failure: restart systemd-resolved once resolv.conf and its drop-in are restored)",
		Do:   func(*Env) error { return nil },
		Undo: func(e *Env) error { return e.Svc.Run("restart", "systemd-resolved.service") }}
}

// sshRestart gives sshd's listener its new binding (why) without touching
// open sessions, and leaves whichever unit owns the listener in charge.
// Debian's ssh.service has KillMode=process: a restart keeps the sessions.
// With socket activation the listener is ssh.socket's: restarting
// ssh.service would start a second sshd next to the socket. Per-connection
// sshds (Accept=yes) are units of their own and stay; a socket-triggered
// ssh.service (Accept=no) holds the listening fd, so it is stopped first
// (the next connection starts it again on the new socket), whatever the
// plan saw: any login since then (Ansible's next connection) may have
// started it, and the socket restart would fail behind it.
// dev: the device ssh.socket's drop-in binds it to ("" for none).
func sshRestart(id, why, dev string, st *State) []Step {
	var steps []Step
	if !st.SSHSocket {
		steps = []Step{svcStep(id+"-restart", "restart ssh.service (listener "+why+"; open sessions stay)", []string{"restart-no-block", "ssh.service"}, []string{"restart-no-block", "ssh.service"})}
	} else {
		do := []string{"restart", "ssh.socket"}
		if dev != "" {
			do = []string{"restart-bound-socket", "ssh.socket", dev}
		}
		steps = append(steps, Step{ID: "svc-" + id + "-socket-restart",
			Desc: "stop ssh.service and restart ssh.socket (listener " + why + "; ssh.service is left to socket activation; open sessions stay)",
			Do:   func(e *Env) error { return restartSocketAfterService(e, do[0], do[1:]...) },
			Undo: restartSSHSocket})
	}
	for i := range steps {
		steps[i].AfterVRF = true
	}
	return steps
}
