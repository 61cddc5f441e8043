package netsetup

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/pam-vrf/pam-vrf/netsetup/hostnet"
	"golang.org/x/sys/unix"
)

// Revert restores the state saved by the first apply (BackupPath): releases
// the iface, deletes the VRF if apply created it, restores rules, sysctls,
// files and systemd-resolved, then removes the backup.
func Revert(r *Reader, env *Env, out io.Writer, dryRun bool) error {
	return RevertFrom(r, env, out, dryRun, BackupPath, nil)
}

// RevertFrom restores the state saved at backup (a JSON State). applied is
// the configuration that is live now (nil: read it from ConfigPath). The
// main backup (BackupPath) ends as it was in the saved state: removed after
// a plain revert, kept when a try rolls back on a host applied before.
func RevertFrom(r *Reader, env *Env, out io.Writer, dryRun bool, backup string, applied *Config) error {
	bf, err := r.FS.Stat(backup)
	if err != nil {
		return err
	}
	if !bf.Exists {
		return fmt.Errorf("no backup at %s: nothing to revert (apply never ran, or revert already did)", r.FS.P(backup))
	}
	var old State
	if err := json.Unmarshal([]byte(bf.Content), &old); err != nil {
		return fmt.Errorf("parse %s: %w (restore by hand from the JSON)", r.FS.P(backup), err)
	}
	var cfg Config
	if applied != nil {
		cfg = *applied
	} else if cfg, err = LoadConfigFile(r.FS.P(ConfigPath), Defaults(), false); err != nil {
		return fmt.Errorf("revert needs the applied settings: %w", err)
	}
	if _, offline := env.Svc.(Offline); !offline && env.Svc != nil && !dryRun {
		unlock, err := lockApply(env.FS)
		if err != nil {
			return err
		}
		defer unlock()
		// do not race networkd still configuring the iface (see apply's verify)
		WaitNetworkdIdle(r.FS, r.Net, cfg.Iface, idleWait, out)
	}
	live, err := r.Read(cfg)
	if err != nil {
		return err
	}
	steps := PlanRevert(cfg, &old, live)
	env.observe(Event{Kind: EventPlan, Phase: PhaseRevert, Steps: steps})
	fmt.Fprintf(out, "revert plan (%d steps):\n", len(steps))
	for i, s := range steps {
		fmt.Fprintf(out, "  %2d. %s\n", i+1, s.Desc)
	}
	if dryRun {
		fmt.Fprintln(out, "dry run: nothing changed")
		return nil
	}
	if err := Apply(env, steps); err != nil {
		return err
	}
	fmt.Fprintln(out, "done: reverted")
	return nil
}

// PlanRevert diffs the live state against the saved one.
func PlanRevert(cfg Config, old, live *State) []Step {
	var steps []Step
	vrf, hasVRF := live.link(cfg.VRF)
	_, hadVRF := old.link(cfg.VRF)
	// A manager that took the iface over gives it back (tk.Release), after
	// its files are restored; the VRF goes after that.
	tk := takeoverOf(cfg, live)
	if iface, ok := live.link(cfg.Iface); ok && hasVRF && iface.Master == vrf.Index && tk == nil {
		if o, ok := old.link(cfg.Iface); ok && o.Master == 0 {
			if d := hostDHCP(cfg, live); d.RunsInVRF {
				steps = append(steps, stepClientOutOfVRF(cfg, d.ClientName()))
			}
			steps = append(steps, stepRelease(cfg, old))
		}
	}
	// Other VRFs need the l3mdev rule. One made since apply was set up
	// under our rule order too, with local behind l3mdev: putting local
	// back at 0 would let the default VRF's local addresses shadow its
	// table. VRFs that existed before apply get the order they had.
	others := len(otherVRFs(live, cfg.VRF)) > 0
	newOthers := false
	for _, l := range otherVRFs(live, cfg.VRF) {
		if _, had := old.link(l.Name); !had {
			newOthers = true
		}
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		oldHas := func(pref uint32) bool {
			for _, x := range old.Rules {
				if x.Family == fam && x.IsLocal() && x.Pref == pref {
					return true
				}
			}
			return false
		}
		liveHas := func(pref uint32) bool {
			for _, x := range live.Rules {
				if x.Family == fam && x.IsLocal() && x.Pref == pref {
					return true
				}
			}
			return false
		}
		if oldHas(PrefLocalOrig) && !liveHas(PrefLocalOrig) && !newOthers {
			r := localRule(fam, PrefLocalOrig)
			r.Proto = unix.RTPROT_KERNEL // as the kernel's own; see Rule.Proto
			steps = append(steps, stepRuleAdd("revert-local0-"+famTag(fam), r))
		}
		hasL3 := func(st *State) bool {
			for _, x := range st.Rules {
				if x.Family == fam && x.IsL3mdev() && x.Pref == PrefL3mdev {
					return true
				}
			}
			return false
		}
		// The kernel adds it with the first VRF but never removes it.
		if !hasL3(old) && hasL3(live) && !others {
			steps = append(steps, stepRuleDel("revert-l3mdev-del-"+famTag(fam), Rule{Family: fam, Pref: PrefL3mdev, L3mdev: true, Action: frActToTbl}))
		}
		if !oldHas(PrefLocalNew) && liveHas(PrefLocalNew) && !newOthers {
			steps = append(steps, stepRuleDel("revert-local-del-"+famTag(fam), localRule(fam, PrefLocalNew)))
		}
		for _, g := range guardRules(cfg.VRF, fam) {
			if hasRule(live, g) && !hasRule(old, g) {
				steps = append(steps, stepRuleDel("revert-guard-"+g.Iif+g.Oif+"-"+famTag(fam), g))
			}
		}
	}
	// DNS steering rules: back to the saved set (none before a first apply;
	// a try rolled back on an applied host restores the earlier servers).
	// Only those of our table: pref-99 rules for other tables are the
	// admin's (another VRF's DNS steering), whatever happened to them.
	isDNS := func(x Rule) bool { return isOurDNSRule(x, cfg.Table) }
	dnsKey := func(x Rule) string { return fmt.Sprintf("%d %d %s %d", x.Family, x.Pref, x.Dst, x.Table) }
	oldDNS := map[string]bool{}
	for _, x := range old.Rules {
		if isDNS(x) {
			oldDNS[dnsKey(x)] = true
		}
	}
	liveDNS := map[string]bool{}
	for _, x := range live.Rules {
		if !isDNS(x) {
			continue
		}
		liveDNS[dnsKey(x)] = true
		if !oldDNS[dnsKey(x)] {
			steps = append(steps, stepRuleDel("revert-dns-"+dnsTag(x), x))
		}
	}
	for _, x := range old.Rules {
		if isDNS(x) && !liveDNS[dnsKey(x)] {
			steps = append(steps, stepRuleAdd("revert-dns-add-"+dnsTag(x), x))
		}
	}
	vrfDelete := Step{ID: "revert-vrf-delete", Desc: "delete VRF " + cfg.VRF,
		Do: func(e *Env) error {
			l, err := e.linkByName(cfg.VRF)
			if err != nil {
				return nil
			}
			return wrap(e.Net.H.LinkDel(l), "delete %s", cfg.VRF)
		}}
	if hasVRF && !hadVRF && tk == nil {
		steps = append(steps, vrfDelete)
	}
	// A VRF that stays (it was there before apply) keeps no catch-all
	// route apply gave it; one that goes takes them along.
	if hasVRF && hadVRF {
		for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
			if hasCatchAll(live, cfg, fam) && !hasCatchAll(old, cfg, fam) {
				add := stepCatchAll(cfg, fam)
				steps = append(steps, Step{ID: "revert-catchall-" + famTag(fam), Desc: fmt.Sprintf("delete %s default dev %s metric %d from table %d", famName(fam), cfg.VRF, UnreachableMetric, cfg.Table),
					Do: func(e *Env) error { return deleteCatchAll(e, cfg, fam) }, Undo: add.Do})
			}
		}
	}
	for _, name := range l3mdevSysctls {
		if o := old.Sysctls[name]; o != "" && o != live.Sysctls[name] {
			name := name
			steps = append(steps, Step{ID: "revert-" + name, Desc: fmt.Sprintf("set %s=%s", name, o),
				Do: func(e *Env) error { return e.Sysctl.Set(name, o) }})
		}
	}
	for _, p := range sortedKeys(old.Files) {
		// files read for facts, never written
		if p == BackupPath || p == ResolvedUplink || p == ResolvedStub || hostnet.ReadOnly(p) {
			continue
		}
		o, l := old.Files[p], live.file(p)
		if o.Exists == l.Exists && o.Symlink == l.Symlink && o.Content == l.Content {
			continue
		}
		steps = append(steps, Step{ID: "revert-file:" + p, Desc: "restore " + p,
			Do: func(e *Env) error { return e.FS.Restore(p, o) }, Undo: func(e *Env) error { return e.FS.Restore(p, l) }})
	}
	unitFiles, unitRestarts := planRevertUnits(old, live)
	steps = append(steps, unitFiles...)
	if tk != nil {
		steps = append(steps, stepCmd(tk.RevertReload))
		if o, ok := old.link(cfg.Iface); ok {
			w := settleWant{Iface: cfg.Iface, Table: unix.RT_TABLE_MAIN, Who: tk.Who}
			c := tk.Release
			if o.Master != 0 {
				// enslaved by hand before apply: the restored files do not
				// enslave it, so the manager releases it; any master will do
				w.Master = anyMaster
				c = tk.ReleaseAny
			} else {
				w.Families = defaultFamilies(old, cfg.Iface, w.Table)
			}
			steps = append(steps, stepSettle(c, true, w))
		}
		// The VRF goes once the manager has the iface out of it, as in a
		// rollback (stepArm): deleted while networkd was still moving the
		// iface, it cost networkd the lease (VM: eth0 "configuring" with
		// no IPv4 address for minutes after revert).
		if hasVRF && !hadVRF {
			steps = append(steps, vrfDelete)
		}
	}
	switch {
	case old.ResolvedActive && !live.ResolvedActive:
		steps = append(steps, svcStep("revert-resolved", "enable and start systemd-resolved", []string{"enable", "--now", "systemd-resolved.service"}, nil))
	case old.ResolvedActive && fileDiffers(old.file(ResolvedDropIn), live.file(ResolvedDropIn)):
		steps = append(steps, svcStep("revert-resolved-restart", "restart systemd-resolved (drops the extra listener)", []string{"restart", "systemd-resolved.service"}, nil))
	}
	if live.file(DNSWatchPath).Exists && !old.file(DNSWatchPath).Exists {
		// before its files go: a watch left running would re-apply
		steps = append([]Step{svcStep("revert-dns-watch", "stop "+DNSWatchName, []string{"stop", DNSWatchName}, nil)}, steps...)
	}
	steps = append(steps, planRevertDNSBind(cfg, old, live)...)
	steps = append(steps, svcStep("revert-reload", "systemctl daemon-reload", []string{"daemon-reload"}, nil))
	steps = append(steps, unitRestarts...)
	// sshd keeps the listener it has until restarted: left bound to a VRF
	// that revert deletes, it would accept nothing at all.
	if fileDiffers(old.file(SSHDropIn), live.file(SSHDropIn)) || fileDiffers(old.file(SSHSocketDropIn), live.file(SSHSocketDropIn)) {
		steps = append(steps, sshRestart("revert-ssh", "as before apply", "", live)...)
	}
	if ob := old.file(BackupPath); !ob.Exists {
		steps = append(steps, Step{ID: "revert-backup", Desc: "remove " + BackupPath,
			Do: func(e *Env) error { return e.FS.Remove(BackupPath) }})
	} else if fileDiffers(ob, live.file(BackupPath)) {
		steps = append(steps, Step{ID: "revert-backup", Desc: "restore " + BackupPath + " (the state before the first apply)",
			Do: func(e *Env) error { return e.FS.Restore(BackupPath, ob) }})
	}
	return steps
}

// dnsTag names a DNS steering rule in step IDs: its server, prefixed
// "legacy-" at the pre-1002 preference (both may exist for one server).
func dnsTag(r Rule) string {
	if r.Pref == PrefDNSRuleLegacy {
		return "legacy-" + r.Dst
	}
	return r.Dst
}

// stepRelease takes the iface out of the VRF and restores its saved
// addresses and main-table routes.
func stepRelease(cfg Config, old *State) Step {
	addrs, routes := old.Addrs[cfg.Iface], movableRoutes(old, cfg.Iface)
	return Step{ID: "revert-release", Desc: fmt.Sprintf("release %s from %s, restore its addresses and %d route(s) in main", cfg.Iface, cfg.VRF, len(routes)),
		Do: func(e *Env) error { return releaseToMain(e, cfg, addrs, routes, rebindWant(cfg, old, "")) }}
}

func fileDiffers(a, b FileState) bool {
	return a.Exists != b.Exists || a.Symlink != b.Symlink || a.Content != b.Content
}
