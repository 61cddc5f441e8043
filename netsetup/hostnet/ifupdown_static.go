package hostnet

import (
	"fmt"
	"strings"
)

// ifupdown with a static stanza ("iface eth0 inet static" with a gateway,
// or inet6 static): no DHCP client re-adds routes, but ifup does: an
// `ifdown eth0; ifup eth0` or a `systemctl restart networking` puts the
// gateway back into main, where a VRF port's route serves nothing, until
// the next boot's apply. ifup runs /etc/network/if-up.d/* (run-parts)
// after each stanza is up, so a hook there runs apply again. The hook is
// the ifupdown backend's file; the dhcpcd kind detects Static too, for a
// stanza pair such as inet dhcp + inet6 static.

// IfupHook runs after ifup brought up a stanza of the iface. The name has
// no dot: run-parts skips names with one.
const IfupHook = "/etc/network/if-up.d/pam-vrf"

// ifupdownStanza finds "iface IFACE inet|inet6 METHOD" in
// /etc/network/interfaces and interfaces.d: whether one of them is DHCP,
// one static, any at all.
func ifupdownStanza(h Host, iface string) (dhcp, static, found bool) {
	files := append([]string{"/etc/network/interfaces"}, h.Glob("/etc/network/interfaces.d/*")...)
	for _, f := range files {
		content, _, _ := h.Read(f)
		for _, line := range strings.Split(content, "\n") {
			w := strings.Fields(line)
			if len(w) >= 4 && w[0] == "iface" && w[1] == iface {
				found = true
				switch w[3] {
				case "dhcp", "auto":
					dhcp = true
				case "static":
					static = true
				}
			}
		}
	}
	return dhcp, static, found
}

// ifupFiles: the if-up.d hook where a static stanza configures the iface,
// removed elsewhere.
func ifupFiles(m Manager, t Target) []File {
	if !m.Static {
		return []File{{Path: IfupHook, Remove: true}}
	}
	return []File{{Path: IfupHook, Content: renderIfupHook(t), Mode: 0o755}}
}

// renderIfupHook: ifup exports IFACE and MODE to if-up.d scripts; apply
// moves the gateway it just added to main and is a no-op otherwise. It
// never fails ifup: the host keeps its address either way, and
// `vrf-netsetup check` names what is left.
func renderIfupHook(t Target) string {
	return fmt.Sprintf(`#!/bin/sh
# Written by vrf-netsetup (pam-vrf); run by ifup after a stanza of %[1]s is
# up. ifup puts a static gateway into the main table: move it into VRF
# %[2]s again.
[ "$IFACE" = "%[1]s" ] && [ "$MODE" = start ] && [ -x /usr/sbin/vrf-netsetup ] || exit 0
/usr/sbin/vrf-netsetup apply --config %[3]s --quiet || true
exit 0
`, t.Iface, t.VRF, t.ConfigPath)
}

func ifupNotes(m Manager, t Target) []string {
	if !m.Static {
		return nil
	}
	return []string{fmt.Sprintf("ifupdown static: %s moves the gateway into table %d after every ifup", IfupHook, t.Table)}
}
