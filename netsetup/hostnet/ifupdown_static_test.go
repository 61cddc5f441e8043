package hostnet

import (
	"strings"
	"testing"
)

func stanzaHost(interfaces string, progs ...string) Host {
	files := map[string]string{"/etc/network/interfaces": interfaces}
	for _, p := range progs {
		files[p] = "x"
	}
	return Host{
		Glob: func(pattern string) []string {
			if files[pattern] != "" {
				return []string{pattern}
			}
			return nil
		},
		Read: func(p string) (string, string, bool) { c, ok := files[p]; return c, "", ok },
	}
}

// A static stanza (either family) gets the if-up.d hook, a DHCP-only one
// does not, and the hook is removed on other hosts.
func TestIfupdownStatic(t *testing.T) {
	tg := Target{Iface: "eth0", VRF: "mgmt", Table: 1000, ConfigPath: "/etc/pam-vrf/netsetup.toml"}
	hook := func(m Manager) (File, bool) {
		for _, b := range Backends() {
			for _, f := range b.Files(m, tg, nil) {
				if f.Path == IfupHook {
					return f, true
				}
			}
		}
		return File{}, false
	}
	for _, c := range []struct {
		name, interfaces string
		progs            []string
		kind             string
		static           bool
	}{
		{"static", "auto eth0\niface eth0 inet static\n  address 192.0.2.10/24\n  gateway 192.0.2.1\n", nil, kindIfupdown, true},
		{"dhcp", "auto eth0\niface eth0 inet dhcp\n", []string{"/sbin/dhclient"}, kindIfupdown, false},
		{"dhcp + inet6 static, dhcpcd", "iface eth0 inet dhcp\niface eth0 inet6 static\n", []string{"/usr/sbin/dhcpcd"}, kindIfupdownDhcpcd, true},
		{"other iface static", "iface eth1 inet static\niface eth0 inet dhcp\n", []string{"/sbin/dhclient"}, kindIfupdown, false},
	} {
		m := Detect(stanzaHost(c.interfaces, c.progs...), "eth0")
		if m.Kind != c.kind || m.Static != c.static {
			t.Errorf("%s: detected %+v, want kind %s static %v", c.name, m, c.kind, c.static)
		}
		f, ok := hook(m)
		switch {
		case !ok:
			t.Errorf("%s: no backend names %s", c.name, IfupHook)
		case c.static && (f.Remove || f.Mode != 0o755 || !strings.Contains(f.Content, `[ "$IFACE" = "eth0" ]`) || !strings.Contains(f.Content, "apply --config "+tg.ConfigPath)):
			t.Errorf("%s: hook %+v", c.name, f)
		case !c.static && !f.Remove:
			t.Errorf("%s: hook written without a static stanza", c.name)
		}
	}
	if f, _ := hook(Manager{Kind: kindNetworkd}); !f.Remove {
		t.Errorf("hook written on a networkd host")
	}
	n := 0
	for _, b := range Backends() {
		for _, f := range b.Files(Manager{Kind: kindIfupdown, Static: true}, tg, nil) {
			if f.Path == IfupHook {
				n++
			}
		}
	}
	if n != 1 {
		t.Errorf("%d backends name %s, want exactly one", n, IfupHook)
	}
}
