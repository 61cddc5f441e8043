package netsetup

import (
	"io"
	"time"

	"github.com/vishvananda/netlink"
)

// Step is one idempotent change. Plan builds them from a State diff; Apply
// runs Do in order and, when one fails, the Undo of every step already done
// in reverse order, so a failure never leaves a half-configured network.
type Step struct {
	ID   string // stable identifier, e.g. "rule-local-add-v4" (tests compare these)
	Desc string // one human line for the printed plan
	Do   func(*Env) error
	Undo func(*Env) error // nil: nothing to undo
	// Disruptive marks steps that can cut connections through the iface
	// (enslaving); the lockout guard looks for it.
	Disruptive bool
	// AfterVRF marks steps that need the VRF device to exist (a program
	// pinned for its ifindex, a listener or daemon restarted into it): on
	// networkd hosts, where networkd creates the device, the plan puts them
	// after the takeover.
	AfterVRF bool
	// Guard marks the steps that keep VRF lookups in the VRF table
	// (catch-all routes, guard rules, the l3mdev rule): in place before the
	// iface is enslaved, also where the manager enslaves it
	// (Takeover.CreateVRF).
	Guard bool
	// BeforeNet marks file steps the network steps need in place (a DHCP
	// client's hook that reacts to the enslave).
	BeforeNet bool
	// File is what a file step writes, links or removes; nil for others.
	File *StepFile
	// RouteMove marks a step that moves a route from main to the VRF table.
	RouteMove bool
	// Follow marks a step that tracks what the host's manager changes at
	// any moment (the nameservers it learns): one still pending after
	// apply is applied by verify, not reported as a failed apply.
	Follow bool
}

// StepFile describes a file step: the engine picks the daemons to reload
// and the manager's takeover from it, never from the step's ID.
type StepFile struct {
	Path   string
	Kind   string // persist.go fileSpec.Kind: whose file it is
	Remove bool
}

// Env is what steps act on.
type Env struct {
	Net    *Net
	FS     FS
	Sysctl Sysctl
	Svc    ServiceManager
	Mod    ModuleLoader
	Out    io.Writer
	// SettleTimeout bounds waits for systemd-networkd (0 = DefaultSettleTimeout).
	SettleTimeout time.Duration
	// Fault is test-only fault injection (fault.go); nil in production.
	Fault *Fault
	// Observe, when set, is told every plan and step outcome (the JSON
	// report of vrf-netsetup --json; report.go).
	Observe func(Event)
}

// linkByName is a small helper for steps that need the live ifindex (it can
// change between plan and apply, e.g. a VRF created by an earlier step).
func (e *Env) linkByName(name string) (netlink.Link, error) {
	return e.Net.H.LinkByName(name)
}
