package hostnet

import "fmt"

// none: no manager configures the iface (a static address set by hand or
// by a script). The engine enslaves it and moves its routes, and nothing
// puts them back; the boot unit re-applies at boot.
type none struct{}

const kindNone = "none"

func (none) Kind() string { return kindNone }

// Detect claims every iface: it is last in detection order.
func (none) Detect(_ Host, iface string) (Manager, bool) {
	return Manager{Kind: kindNone, Detail: "no network manager configures " + iface}, true
}

// Refusals: with no manager of its own, a running NetworkManager likely
// manages the iface (a default connection). For a state whose manager is
// unknown, only the DHCP clients count.
func (none) Refusals(m Manager, f Facts) []string {
	var why []string
	if m.Kind == kindNone && f.NetworkManagerActive {
		why = append(why, fmt.Sprintf("NetworkManager is running and no other manager configures %s, so NetworkManager likely does with a connection that has no keyfile in %s naming it (a default connection): it would undo the enslavement; save the connection bound to %s (nmcli connection modify <connection> connection.interface-name %s) and run apply again", f.Iface, nmConnDir, f.Iface, f.Iface))
	}
	return append(why, unhooked(f, nil)...)
}

func (none) Files(Manager, Target, func(string) string) []File { return nil }
func (none) Notes(Manager, Target) []string                    { return nil }
func (none) DHCP(Manager, string, func(string) string) DHCP    { return DHCP{} }
func (none) Takeover(Manager, Target) *Takeover                { return nil }
