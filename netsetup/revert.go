package netsetup

import (
	"encoding/json"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// Revert restores the state saved by the first apply (BackupPath): releases
// the iface, deletes the VRF if apply created it, restores rules, sysctls,
// files and systemd-resolved, then removes the backup.
func Revert(r *Reader, env *Env, out io.Writer, dryRun bool) error {
	bf, err := r.FS.Stat(BackupPath)
	if err != nil {
		return err
	}
	if !bf.Exists {
		return fmt.Errorf("no backup at %s: nothing to revert (apply never ran, or revert already did)", r.FS.P(BackupPath))
	}
	var old State
	if err := json.Unmarshal([]byte(bf.Content), &old); err != nil {
		return fmt.Errorf("parse %s: %w (restore by hand from the JSON)", r.FS.P(BackupPath), err)
	}
	cfg, err := LoadConfigFile(r.FS.P(ConfigPath), Defaults(), false)
	if err != nil {
		return fmt.Errorf("revert needs the applied settings: %w", err)
	}
	live, err := r.Read(cfg)
	if err != nil {
		return err
	}
	steps := PlanRevert(cfg, &old, live)
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
	if iface, ok := live.link(cfg.Iface); ok && hasVRF && iface.Master == vrf.Index {
		if o, ok := old.link(cfg.Iface); ok && o.Master == 0 {
			steps = append(steps, stepRelease(cfg, old))
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
		if oldHas(PrefLocalOrig) && !liveHas(PrefLocalOrig) {
			steps = append(steps, stepRuleAdd("revert-local0-"+famTag(fam), localRule(fam, PrefLocalOrig)))
		}
		if !oldHas(PrefLocalNew) && liveHas(PrefLocalNew) {
			steps = append(steps, stepRuleDel("revert-local-del-"+famTag(fam), localRule(fam, PrefLocalNew)))
		}
	}
	for _, x := range live.Rules {
		if x.Pref == PrefDNSRule && x.Iif == "lo" && x.Table == cfg.Table {
			steps = append(steps, stepRuleDel("revert-dns-"+x.Dst, x))
		}
	}
	if hasVRF && !hadVRF {
		steps = append(steps, Step{ID: "revert-vrf-delete", Desc: "delete VRF " + cfg.VRF,
			Do: func(e *Env) error {
				l, err := e.linkByName(cfg.VRF)
				if err != nil {
					return nil
				}
				return wrap(e.Net.H.LinkDel(l), "delete %s", cfg.VRF)
			}})
	}
	for _, name := range l3mdevSysctls {
		if o := old.Sysctls[name]; o != "" && o != live.Sysctls[name] {
			name := name
			steps = append(steps, Step{ID: "revert-" + name, Desc: fmt.Sprintf("set %s=%s", name, o),
				Do: func(e *Env) error { return e.Sysctl.Set(name, o) }})
		}
	}
	for _, p := range sortedKeys(old.Files) {
		if p == BackupPath || p == ResolvedUplink || p == ResolvedStub {
			continue
		}
		o, l := old.Files[p], live.file(p)
		if o.Exists == l.Exists && o.Symlink == l.Symlink && o.Content == l.Content {
			continue
		}
		steps = append(steps, Step{ID: "revert-file:" + p, Desc: "restore " + p,
			Do: func(e *Env) error { return e.FS.Restore(p, o) }, Undo: func(e *Env) error { return e.FS.Restore(p, l) }})
	}
	if old.ResolvedActive && !live.ResolvedActive {
		steps = append(steps, svcStep("revert-resolved", "enable and start systemd-resolved", []string{"enable", "--now", "systemd-resolved.service"}, nil))
	}
	steps = append(steps, svcStep("revert-reload", "systemctl daemon-reload", []string{"daemon-reload"}, nil))
	steps = append(steps, Step{ID: "revert-backup", Desc: "remove " + BackupPath,
		Do: func(e *Env) error { return e.FS.Remove(BackupPath) }})
	return steps
}

// stepRelease takes the iface out of the VRF and restores its saved
// addresses and main-table routes.
func stepRelease(cfg Config, old *State) Step {
	addrs, routes := old.Addrs[cfg.Iface], movableRoutes(old, cfg.Iface)
	return Step{ID: "revert-release", Desc: fmt.Sprintf("release %s from %s, restore its addresses and %d route(s) in main", cfg.Iface, cfg.VRF, len(routes)),
		Do: func(e *Env) error {
			l, err := e.linkByName(cfg.Iface)
			if err != nil {
				return err
			}
			if err := e.Net.H.LinkSetNoMaster(l); err != nil {
				return fmt.Errorf("release %s: %w", cfg.Iface, err)
			}
			if err := readdAddrs(e, cfg.Iface, addrs); err != nil {
				return err
			}
			for _, r := range routes {
				nr, err := e.nlRoute(r, unix.RT_TABLE_MAIN)
				if err != nil {
					return err
				}
				if err := e.Net.H.RouteReplace(nr); err != nil {
					return fmt.Errorf("restore route %s: %w", r.Dst, err)
				}
			}
			return nil
		}}
}
