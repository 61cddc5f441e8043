package netsetup

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pam-vrf/pam-vrf/netsetup/hostnet"
)

// The engine's side of hostnet: what it hands the host's backend and the
// steps it builds from what the backend returns. Whatever differs between
// kinds of host (networkd, ifupdown, NetworkManager, ...) is in hostnet,
// one file a kind.

// Manager says which tool configures the management interface (hostnet).
type Manager = hostnet.Manager

// DHCPClient is a DHCP client process that serves the management NIC.
type DHCPClient = hostnet.DHCPClient

// DetectManager inspects the files under fs (and the unit state) for iface.
func DetectManager(fs FS, svc ServiceManager, iface string) Manager {
	_, offline := svc.(Offline)
	return hostnet.Detect(hostnet.Host{Glob: fs.Glob, Units: svc, Offline: offline,
		Read: func(p string) (string, string, bool) {
			st, err := fs.Stat(p)
			return st.Content, st.Symlink, err == nil
		}}, iface)
}

// readDHCPClients: the DHCP client processes under procRoot serving iface.
func readDHCPClients(procRoot, iface string) []DHCPClient {
	return hostnet.ReadDHCPClients(procRoot, iface, func(comm string) []int { return commPIDs(procRoot, comm) })
}

// backend is the host's kind of manager.
func backend(st *State) hostnet.Backend { return hostnet.For(st.Manager) }

// target is cfg as the backends see it.
func target(cfg Config) hostnet.Target {
	return hostnet.Target{Iface: cfg.Iface, VRF: cfg.VRF, Table: cfg.Table, ConfigPath: ConfigPath,
		CatchAllMetric: UnreachableMetric, DNSRulePref: PrefDNSRule}
}

// vrfTarget adds what the VRF device carries, for files that declare it:
// its addresses and the DNS servers steered into it.
func vrfTarget(cfg Config, addrs, dnsServers []string) hostnet.Target {
	t := target(cfg)
	t.Addrs = addrs
	for _, s := range dnsServers {
		t.DNSRules = append(t.DNSRules, hostPrefix(s))
	}
	return t
}

// takeoverOf: how the host's manager creates the VRF and enslaves the iface
// (nil: the engine does).
func takeoverOf(cfg Config, st *State) *hostnet.Takeover {
	return backend(st).Takeover(st.Manager, target(cfg))
}

// backendFiles: every backend's files, in detection order.
// read returns a file's content (nil: only the paths are wanted).
func backendFiles(m Manager, t hostnet.Target, read func(string) string) []hostnet.File {
	var fs []hostnet.File
	for _, b := range hostnet.Backends() {
		fs = append(fs, b.Files(m, t, read)...)
	}
	return fs
}

// Unsupported says why apply's changes would not last on this host ("":
// they do): a manager or DHCP client that would undo them.
func Unsupported(cfg Config, st *State) string {
	why := backend(st).Refusals(st.Manager, hostnet.Facts{Iface: cfg.Iface, VRF: cfg.VRF, DHCPClients: st.DHCPClients,
		NetworkManagerActive: st.NetworkManagerActive, DhclientInstalled: st.DhclientInstalled})
	return strings.Join(why, "; ")
}

// unsupportedError is apply's refusal; the fix names what is supported.
func unsupportedError(cfg Config, why string) error {
	return &PlanError{
		Msg: "this host's network setup is not one apply can keep configured: " + why,
		Fix: "let systemd-networkd (netplan included), NetworkManager (a keyfile connection) or ifupdown (with isc-dhcp-client or dhcpcd) manage " + cfg.Iface + ", or give it a static address; or pass --force to apply anyway, knowing the change lasts until that tool next touches " + cfg.Iface,
	}
}

// hostDHCP: the DHCP client serving the iface, as far as DNS and the
// steering rules are concerned (hostnet.DHCP).
func hostDHCP(cfg Config, st *State) hostnet.DHCP {
	return backend(st).DHCP(st.Manager, cfg.Iface, func(p string) string { return st.file(p).Content })
}

// dhcpRuleServers: the server of the current lease and the nameservers it
// gave, where the DHCP client cannot be bound to the VRF: all steered into
// it (see EffectiveDNS).
func dhcpRuleServers(cfg Config, st *State) []string { return hostDHCP(cfg, st).Servers }

// stepArm does nothing when applied but note the l3mdev rules; undone, it
// runs c last in a rollback, once the manager's files are restored, waits
// until the manager has set the iface up again as w says, and then, when
// the VRF did not exist before (vrfExisted false), deletes the device the
// manager may have created (networkd keeps a netdev whose .netdev is
// gone) and the l3mdev rules the kernel added with it. Deleting the VRF
// while the manager still moves the iface out of it cost networkd the
// lease (seen in the VM: no IPv4 in main after the rollback).
func stepArm(cfg Config, c hostnet.Cmd, vrfExisted bool, w settleWant) Step {
	var before []Rule
	return Step{ID: c.ID, Desc: c.Desc,
		Do: func(e *Env) error { before = l3mdevRules(e); return nil },
		Undo: func(e *Env) error {
			err := runSettled(e, c, w)
			if !vrfExisted {
				err = errors.Join(err, dropVRF(e, cfg, before))
			}
			return err
		}}
}

// stepSettle runs c, then waits until the manager is done with the iface
// as w says.
func stepSettle(c hostnet.Cmd, disruptive bool, w settleWant) Step {
	return Step{ID: c.ID, Desc: c.Desc, Disruptive: disruptive,
		Do: func(e *Env) error { return runSettled(e, c, w) }}
}

// runSettled runs c, then waits until the manager is done with the iface
// as w says. With networkd it first waits for networkd to start on c's
// last command (a reconfigure or a restart): networkd answers before it
// starts on the link, and until then the state an earlier pass left (a
// reload's) reads as settled, so the settle, the verify or the rollback
// step after it raced the pass still to come.
//
// A link networkd has not finished with halfway through the settle time,
// and not failed either, gets c's last command once more if a default
// route is still missing: networkd's DHCP client can go quiet after a pass
// (seen in the test guests, after rollbacks and reverts: eth0
// "configuring" with no IPv4 lease for minutes while the server answered
// others), and a rollback or a revert that leaves it so takes the host off
// its management network. A link whose routes are all in place and that
// networkd merely still calls "configuring" (an IPv6 SLAAC address still
// to come, seen under TCG) is not asked again: that reconfigure would only
// race networkd's pass, and one that did (an apply after an interrupted
// one, in the test guest) left eth0 without its IPv4 lease until a reboot.
func runSettled(e *Env, c hostnet.Cmd, w settleWant) error {
	_, off := e.Svc.(Offline)
	if err := runPickedUp(e, c.Run, w); err != nil {
		return err
	}
	if off {
		return nil
	}
	if w.Who != "" {
		return waitNetworkd(e, w)
	}
	timeout := settleTimeout(e)
	first := settlePolls(e, w, timeout/2)
	if len(first.missing) == 0 {
		return settleReport(e, w, first)
	}
	if first.critical || first.stateOnly { // a master still to change, a failed link, or the routes there: the rest of the time
		rest := settlePolls(e, w, timeout-first.took)
		rest.took, rest.timeout = rest.took+first.took, timeout
		return settleReport(e, w, rest)
	}
	if e.Out != nil {
		fmt.Fprintf(e.Out, "note   networkd not done with %s after %s (%s): %s once more\n",
			w.Iface, first.took.Round(time.Second), strings.Join(first.missing, "; "), commandLine(c.Run[len(c.Run)-1]))
	}
	if err := runPickedUp(e, c.Run[len(c.Run)-1:], w); err != nil {
		return err
	}
	return waitNetworkd(e, w)
}

// runPickedUp runs the commands; with networkd (w.Who "") it waits after
// the last for networkd to start on the iface (waitNetworkdPickup).
func runPickedUp(e *Env, run [][]string, w settleWant) error {
	_, off := e.Svc.(Offline)
	for i, args := range run {
		ifindex, before := -1, ""
		if i == len(run)-1 && !off && w.Who == "" {
			if l, err := e.linkByName(w.Iface); err == nil {
				ifindex = l.Attrs().Index
				before = networkdStamp(e.FS, ifindex)
			}
		}
		if err := e.Svc.Run(args[0], args[1:]...); err != nil {
			return err
		}
		if before != "" {
			waitNetworkdPickup(e.FS, ifindex, before, pickupWait, e.Out)
		}
	}
	return nil
}

// stepCreateVRFBy runs c, which has the manager create cfg.VRF, and checks
// that the device is there.
func stepCreateVRFBy(cfg Config, c hostnet.Cmd) Step {
	run := runCmd(c)
	return Step{ID: c.ID, Desc: c.Desc, Do: func(e *Env) error {
		if err := run(e); err != nil {
			return err
		}
		if _, off := e.Svc.(Offline); off {
			return nil
		}
		if _, err := e.linkByName(cfg.VRF); err != nil {
			return fmt.Errorf("%s: VRF %s does not exist afterwards: %w", c.Desc, cfg.VRF, err)
		}
		return nil
	}}
}

// stepCmd runs c, nothing to undo.
func stepCmd(c hostnet.Cmd) Step { return Step{ID: c.ID, Desc: c.Desc, Do: runCmd(c)} }

func runCmd(c hostnet.Cmd) func(*Env) error {
	return func(e *Env) error {
		for _, args := range c.Run {
			if err := e.Svc.Run(args[0], args[1:]...); err != nil {
				return err
			}
		}
		return nil
	}
}
