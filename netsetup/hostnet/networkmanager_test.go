package hostnet

import (
	"regexp"
	"strings"
	"testing"
)

type units map[string]bool

func (u units) IsActive(n string) bool  { return u[n] }
func (u units) IsEnabled(n string) bool { return false }

func nmHost(files map[string]string, active bool) Host {
	return Host{
		Glob: func(p string) []string {
			var out []string
			for f := range files {
				if strings.HasPrefix(f, strings.TrimSuffix(p, "*")) {
					out = append(out, f)
				}
			}
			return out
		},
		Read:  func(p string) (string, string, bool) { c, ok := files[p]; return c, "", ok },
		Units: units{"NetworkManager.service": active},
	}
}

func TestNetworkManagerDetect(t *testing.T) {
	kf := "[connection]\nid=mgmt-nic\nuuid=abc\ntype=ethernet\ninterface-name=eth0\n\n[ipv4]\nmethod=auto\n"
	files := map[string]string{
		nmConnDir + "eth0.nmconnection":         kf,
		nmConnDir + "pam-vrf-mgmt.nmconnection": renderNMVRF(Target{Iface: "eth0", VRF: "mgmt", Table: 1000}),
		"/etc/network/interfaces":               "auto lo\niface lo inet loopback\n",
	}
	m := Detect(nmHost(files, true), "eth0")
	if m.Kind != kindNetworkManager || m.NetworkFile != nmConnDir+"eth0.nmconnection" || m.Connection != "abc" || m.Master != "" {
		t.Errorf("detected %+v", m)
	}
	if m := Detect(nmHost(files, false), "eth0"); m.Kind == kindNetworkManager {
		t.Errorf("NetworkManager not running, still detected: %+v", m)
	}
	if m := Detect(nmHost(files, true), "mgmt"); m.Kind == kindNetworkManager {
		t.Errorf("our own vrf connection claimed the VRF device: %+v", m)
	}
	// a keyfile that is already a port (ours, after apply) names its master
	files[nmConnDir+"eth0.nmconnection"] = nmAsPort(kf, "mgmt")
	if m := Detect(nmHost(files, true), "eth0"); m.Master != "mgmt" {
		t.Errorf("after apply: %+v", m)
	}
}

func TestNMAsPort(t *testing.T) {
	kf := "[connection]\nid=eth0\nuuid=abc\ntype=ethernet\ninterface-name=eth0\n\n[ipv4]\nmethod=auto\n"
	once := nmAsPort(kf, "mgmt")
	if once != "[connection]\nmaster=mgmt\nslave-type=vrf\nid=eth0\nuuid=abc\ntype=ethernet\ninterface-name=eth0\n\n[ipv4]\nmethod=auto\n" {
		t.Errorf("port:\n%s", once)
	}
	if twice := nmAsPort(once, "mgmt"); twice != once {
		t.Errorf("not idempotent:\n%s", twice)
	}
	// NetworkManager 1.46+ rewrites the keys under their new names
	renamed := strings.NewReplacer("master=", "controller=", "slave-type=", "port-type=").Replace(once)
	if got := nmAsPort(renamed, "mgmt"); got != renamed {
		t.Errorf("controller= not seen:\n%s", got)
	}
	if got := parseKeyfile(renamed).master(); got != "mgmt" {
		t.Errorf("master of renamed: %q", got)
	}
}

func TestNMVRFUUID(t *testing.T) {
	u := nmVRFUUID("mgmt")
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(u) {
		t.Errorf("uuid %q", u)
	}
	if u != nmVRFUUID("mgmt") || u == nmVRFUUID("mgmt2") {
		t.Errorf("uuid not a function of the name")
	}
}

// Another kind of host: NetworkManager's files of ours must go.
func TestNetworkManagerFilesElsewhere(t *testing.T) {
	for _, f := range (networkManager{}).Files(Manager{Kind: kindNetworkd}, Target{Iface: "eth0", VRF: "mgmt"}, nil) {
		if !f.Remove {
			t.Errorf("%s written on a networkd host", f.Path)
		}
	}
}
