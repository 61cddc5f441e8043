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
		{[]string{"apply", "--root", root}, "--iface"},
		{[]string{"check", "--root", root, "--iface", "eth0", "--bogus"}, "bogus"},
		{[]string{"frobnicate"}, "frobnicate"},
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
