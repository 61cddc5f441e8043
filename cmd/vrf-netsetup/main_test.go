package main

import (
	"bytes"
	"strings"
	"testing"
)

// Usage errors exit 2 with one line naming the flag, before anything is
// read from or written to the system.
func TestUsageErrors(t *testing.T) {
	root := t.TempDir()
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"apply", "--root", root, "--iface", "eth0", "--table", "abc"}, "--table"},
		{[]string{"apply", "--root", root, "--iface", "eth0", "--table", "255"}, "--table"},
		{[]string{"apply", "--root", root, "--iface", "eth0", "--dns", "bogus"}, "--dns"},
		{[]string{"apply", "--root", root, "--iface", "eth0", "--sshd", "both"}, "--sshd"},
		{[]string{"apply", "--root", root, "--iface", "eth0", "--nameserver", "ns1.example"}, "--nameserver"},
		{[]string{"apply", "--root", root, "--iface", "eth0", "--vrf", "a/b"}, "--vrf"},
		{[]string{"apply", "--root", root, "--iface", "eth0", "--service", "getty@.service"}, "--service"},
		{[]string{"apply", "--root", root, "--iface", "eth0", "--service", "chrony,apt-daily.timer"}, "--service"},
		{[]string{"apply", "--root", root}, "--iface"},
		{[]string{"check", "--root", root, "--iface", "eth0", "--bogus"}, "bogus"},
		{[]string{"frobnicate"}, "frobnicate"},
		{[]string{"try", "--iface", "eth0", "--timeout", "soon"}, "--timeout"},
		{[]string{"try", "--iface", "eth0", "--timeout", "1s"}, "--timeout"},
		{[]string{"try", "--iface", "eth0", "--timeout", "48h"}, "--timeout"},
		{[]string{"try", "--iface", "eth0", "--root", root}, "--root"},
		{[]string{"try", "--iface", "eth0", "--dry-run"}, "--dry-run"},
		{[]string{"try", "--iface", "eth0", "--table", "x"}, "--table"},
		{[]string{"apply", "--root", root, "--iface", "eth0", "--timeout", "30s"}, "--timeout"},
		{[]string{"apply", "--root", root, "--iface", "eth0", "--if-unconfirmed"}, "--if-unconfirmed"},
		{[]string{"confirm", "--root", root, "--bogus"}, "bogus"},
		{[]string{"confirm", "--root", root, "--timeout", "30s"}, "--timeout"},
		{[]string{"revert", "--root", root, "--if-unconfirmed=maybe"}, "if-unconfirmed"},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		msg := errb.String()
		if code != 2 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, c.flag) {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, msg)
		}
	}
}

func TestConfigFileAndFlagOverride(t *testing.T) {
	root := t.TempDir()
	cfgPath := root + "/netsetup.toml"
	if err := writeFile(cfgPath, "vrf = \"oob\"\ntable = 2000\niface = \"eth1\"\ndns = \"none\"\n"); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags("apply", []string{"--config", cfgPath, "--table", "3000"})
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.VRF != "oob" || o.cfg.Table != 3000 || o.cfg.Iface != "eth1" || o.cfg.DNS != "none" || o.cfg.SSHD != "any-vrf" {
		t.Fatalf("merged %+v", o.cfg)
	}
	writeFile(cfgPath, "vrf = \"oob\"\ntabel = 1\n")
	var out, errb bytes.Buffer
	if code := run([]string{"apply", "--config", cfgPath}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "tabel") {
		t.Fatalf("unknown key: exit %d %q", code, errb.String())
	}
}

func TestTimeoutForms(t *testing.T) {
	for in, want := range map[string]string{"120": "2m0s", "90s": "1m30s", "5m": "5m0s"} {
		d, err := parseTimeout(in)
		if err != nil || d.String() != want {
			t.Errorf("%s: %v %v", in, d, err)
		}
	}
}

// confirm without a try: exit 1, one line.
func TestConfirmWithoutTry(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"confirm", "--root", t.TempDir()}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "no try to confirm") {
		t.Fatalf("exit %d %q", code, errb.String())
	}
	out.Reset()
	errb.Reset()
	code = run([]string{"revert", "--root", t.TempDir(), "--if-unconfirmed"}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "nothing to do") {
		t.Fatalf("revert --if-unconfirmed without try: exit %d %q %q", code, out.String(), errb.String())
	}
}

// --service: repeatable or comma-separated, normalised, and the flags replace
// the settings file's list (like --nameserver).
func TestServiceFlag(t *testing.T) {
	root := t.TempDir()
	cfgPath := root + "/netsetup.toml"
	if err := writeFile(cfgPath, "iface = \"eth0\"\nservices = [\"chrony\", \"sssd.service\"]\n"); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags("apply", []string{"--config", cfgPath})
	if err != nil || strings.Join(o.cfg.Services, " ") != "chrony.service sssd.service" {
		t.Fatalf("from the file: %v %v", o.cfg.Services, err)
	}
	o, err = parseFlags("apply", []string{"--config", cfgPath, "--service", "rsyslog,chrony", "--service", "rsyslog.service"})
	if err != nil || strings.Join(o.cfg.Services, " ") != "rsyslog.service chrony.service" {
		t.Fatalf("flags over the file: %v %v", o.cfg.Services, err)
	}
}
