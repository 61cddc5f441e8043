// Package netsetup is vrf-netsetup: it turns a host into one with a working
// management VRF, diagnoses it, and undoes it.
//
// Every command follows one loop: read the live state, compute a plan,
// print it, apply it, verify.
//
//   - Reader.Read snapshots what matters (links, addresses, routes, rules,
//     per-netns sysctls, the driver, the files under Config.Root, how the
//     interface is managed) into a State, through a *netlink.Handle, so tests
//     point it at a throw-away network namespace and a temporary root.
//   - Plan(cfg, state) is pure: the ordered Steps that turn state into what
//     cfg asks for. An empty plan means converged; a second apply prints
//     "nothing to do" and writes nothing.
//   - Apply runs the steps in order. Each Step has Do and Undo: when a step
//     fails, the steps already done are undone in reverse order, so a failed
//     apply leaves no half-configured network. The Runner then re-reads the
//     state and re-plans: anything still pending is an error (verify).
//
// What a step touches follows how the host already manages the interface:
// on systemd-networkd hosts apply writes a .netdev, a .network for the VRF
// and a VRF= drop-in for the interface's own .network, and lets networkd
// enslave it (so DHCP renewals land in the VRF table), waiting with a bound
// for networkd to settle (settle.go); elsewhere it uses netlink directly,
// with a dhclient exit hook on ifupdown/DHCP hosts. What differs between
// these kinds of host, and which ones apply refuses (NetworkManager,
// dhcpcd, udhcpc), is in the subpackage hostnet, one file a kind behind
// its Backend interface (backend.go is the engine's side). A boot unit re-applies
// what no network manager expresses (rule order, sysctls). The pre-apply
// state is saved once, and Revert restores it; Try applies and schedules a
// revert that only Confirm cancels, for changes made over the very link
// being moved (try.go: a systemd-run timer, or a setsid'd child without
// systemd, runs RevertIfUnconfirmed). The try record and its backup are
// on disk, so a reboot inside the window cannot make an unconfirmed try
// permanent: the boot unit's apply rolls it back first (ResolvePendingTry).
// An apply killed half-way leaves
// ApplyMarker behind: the next apply re-runs the service actions, and
// Check's "converged" line names the steps still missing (fault.go has the
// test-only kill-after-step hook that proves it for every step).
//
// DNS: systemd-resolved's 127.0.0.53 stub is bound to lo, so a VRF-bound
// client can never reach it. Mode "resolved" keeps resolved (cache, DHCP
// servers) and adds an unbound DNSStubListenerExtra= on a loopback address
// that is also put on the VRF device as a /32 (the kernel treats all of
// 127/8 as local only on loopback devices), with the l3mdev accept sysctls;
// resolved reaches its per-link servers through the VRF by itself. Mode
// "static" disables resolved and writes the real servers to resolv.conf.
// "auto" picks resolved when it runs.
//
// Check runs the same Reader and reports one line per property with the
// command or setting that fixes it; it also sends a real DNS query on a
// socket bound to the VRF.
package netsetup
