package hostnet

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
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

// TestNMDispatcherHandsOverNameservers runs the dispatcher script with sh
// and a fake vrf-netsetup: eth0's lease nameservers handed over and apply
// started at up and at a lease change, another device's events ignored.
func TestNMDispatcherHandsOverNameservers(t *testing.T) {
	dir := t.TempDir()
	script := renderNMDispatcher(Target{Iface: "eth0", VRF: "mgmt", ConfigPath: "/etc/pam-vrf/netsetup.toml"})
	script = strings.ReplaceAll(script, "/run/pam-vrf", dir+"/run")
	script = strings.ReplaceAll(script, "/usr/sbin/vrf-netsetup", dir+"/vrf-netsetup")
	for name, body := range map[string]string{
		"dispatch":     script,
		"vrf-netsetup": "#!/bin/sh\necho \"$*\" >> " + dir + "/applied\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dispatch := func(env []string, args ...string) {
		t.Helper()
		cmd := exec.Command("sh", append([]string{dir + "/dispatch"}, args...)...)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dispatch %v: %v\n%s", args, err, out)
		}
		time.Sleep(200 * time.Millisecond) // the apply runs in the background
	}
	applies := func() int {
		b, _ := os.ReadFile(dir + "/applied")
		return strings.Count(string(b), "apply --config /etc/pam-vrf/netsetup.toml --quiet")
	}
	read := func() string { b, _ := os.ReadFile(dir + "/run/nm-eth0.lease"); return string(b) }

	dispatch([]string{"IP4_NAMESERVERS=192.0.2.1"}, "eth0", "up")
	if got := read(); got != "nameservers 192.0.2.1 \n" || applies() != 1 {
		t.Fatalf("up: lease %q, %d applies", got, applies())
	}
	dispatch([]string{"IP4_NAMESERVERS=192.0.2.9"}, "eth1", "dhcp4-change")
	if read() != "nameservers 192.0.2.1 \n" || applies() != 1 {
		t.Fatalf("another device's lease was handed over or ran apply")
	}
	dispatch([]string{"IP4_NAMESERVERS=192.0.2.1", "IP6_NAMESERVERS=2001:db8::1"}, "eth0", "dhcp6-change")
	if got := nmNameservers(read(), "nameservers"); strings.Join(got, " ") != "192.0.2.1 2001:db8::1" || applies() != 2 {
		t.Fatalf("dhcp6-change: apply reads %q, %d applies", got, applies())
	}
}
