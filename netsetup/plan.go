package netsetup

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Plan computes the steps that turn live into desired. It is pure: it reads
// only cfg and live, so recorded states are enough to test it. An empty plan
// means the host has converged.
func Plan(cfg Config, live *State) ([]Step, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// A table that is not free cannot be fixed by a revert: say that first.
	if err := tableConflict(cfg, live); err != nil {
		return nil, err
	}
	if err := refuseReplace(cfg, live); err != nil {
		return nil, err
	}
	net, err := planNet(cfg, live)
	if err != nil {
		return nil, err
	}
	dns := EffectiveDNS(cfg, live)
	sys := planSysctls(cfg, dns, live)
	files, err := planFiles(cfg, dns, live)
	if err != nil {
		return nil, err
	}
	if err := refuseUnits(cfg, live); err != nil {
		return nil, err
	}
	svc, arms := planServices(cfg, dns, live, files)
	dnsRules := append(planDNSRules(cfg, dns, live), planDNSBind(cfg, dns, live)...)

	// A manager that enslaves the iface itself (networkd) does so once it
	// has the files.
	var arm, takeover []Step
	if tk := takeoverOf(cfg, live); tk != nil {
		changed := false
		for _, f := range files {
			changed = changed || (f.File != nil && f.File.Kind == tk.FileKind)
		}
		for _, k := range live.Interrupted {
			changed = changed || k == tk.FileKind
		}
		vrfFileWritten := false
		for _, f := range files {
			vrfFileWritten = vrfFileWritten || (f.File != nil && f.File.Path == tk.VRFFile && !f.File.Remove)
		}
		if changed || needsTakeover(cfg, live) {
			iface, _ := live.link(cfg.Iface)
			vrf, ok := live.link(cfg.VRF)
			// the rollback waits for the iface as it is now: its master,
			// and its default routes where they are
			w := settleWant{Iface: cfg.Iface, Table: unix.RT_TABLE_MAIN, Families: defaultFamilies(live, cfg.Iface, unix.RT_TABLE_MAIN), Who: tk.Who}
			switch {
			case ok && iface.Master == vrf.Index:
				w.Master, w.Table, w.Families = cfg.VRF, cfg.Table, defaultFamilies(live, cfg.Iface, cfg.Table)
			case iface.Master != 0:
				w.Master = anyMaster
			}
			arm = []Step{stepArm(cfg, tk.Arm, ok, w)}
			takeover = []Step{stepTakeover(cfg, live, tk, !ok || iface.Master != vrf.Index, !ok && !vrfFileWritten)}
		}
	}

	var steps []Step
	steps = append(steps, arm...)
	if len(takeover) > 0 {
		// the manager creates the VRF: the steps on the device come after it
		// (module load first; every other net step is idempotent).
		var mod []Step
		for len(net) > 0 && net[0].ID == "module-vrf" {
			mod, net = append(mod, net[0]), net[1:]
		}
		// Pinning the program for ssh.service needs the VRF's ifindex,
		// and sshd (its socket, --service units) must restart into a VRF
		// that exists: they wait until the manager has created it.
		var early, late []Step
		for _, st := range svc {
			if st.AfterVRF {
				late = append(late, st)
			} else {
				early = append(early, st)
			}
		}
		steps = append(steps, mod...)
		steps = append(steps, sys...)
		steps = append(steps, arms...)
		steps = append(steps, files...)
		steps = append(steps, early...)
		// a manager that creates the VRF alone first: the guard steps
		// go between that and the enslave
		if tk := takeoverOf(cfg, live); len(takeover) > 0 && len(tk.CreateVRF.Run) > 0 {
			if _, ok := live.link(cfg.VRF); !ok {
				steps = append(steps, stepCreateVRFBy(cfg, tk.CreateVRF))
				var rest []Step
				for _, s := range net {
					if s.Guard {
						steps = append(steps, s)
					} else {
						rest = append(rest, s)
					}
				}
				net = rest
			}
		}
		steps = append(steps, takeover...)
		steps = append(steps, net...)
		steps = append(steps, dnsRules...)
		steps = append(steps, late...)
	} else {
		var early, late []Step
		for _, f := range files {
			if f.BeforeNet && len(net) > 0 {
				early = append(early, f)
			} else {
				late = append(late, f)
			}
		}
		steps = append(steps, early...)
		steps = append(steps, net...)
		steps = append(steps, dnsRules...)
		steps = append(steps, sys...)
		steps = append(steps, arms...)
		steps = append(steps, late...)
		steps = append(steps, svc...)
	}
	if len(steps) > 0 {
		if b := planBackup(live); b != nil {
			steps = append([]Step{*b}, steps...)
		}
	}
	return steps, nil
}

// PlanError is a state the tool refuses to "fix" on its own.
type PlanError struct{ Msg, Fix string }

func (e *PlanError) Error() string { return fmt.Sprintf("%s (fix: %s)", e.Msg, e.Fix) }
