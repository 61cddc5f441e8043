package netsetup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The policy check runs config.Load, and its fixes name the policy
// commands of vrf-netsetup.
func TestCheckPolicyFix(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: config.Load insists on root-owned files")
	}
	root := t.TempDir()
	c := &Checker{Reader: &Reader{FS: FS{Root: root}}}
	p := filepath.Join(root, "etc/security/pam_vrf.toml")

	r := c.checkPolicy()
	if r.OK || !strings.Contains(r.Detail, p+" missing") || r.Fix != `vrf-netsetup policy edit --file `+p+` (e.g. default = "mgmt")` {
		t.Errorf("missing: %+v", r)
	}

	writeRoot(t, root, map[string]string{"/etc/security/pam_vrf.toml": "[user.alice]\nvrf = \"mgmt\"\nbogus = 1\n"})
	os.Chmod(p, 0o644)
	r = c.checkPolicy()
	if r.OK || r.Detail != p+":3: user.alice.bogus: unknown key" ||
		!strings.HasPrefix(r.Fix, "vrf-netsetup policy edit --file "+p+" ") || !strings.HasSuffix(r.Fix, "vrf-netsetup policy check "+p) {
		t.Errorf("broken: %+v", r)
	}

	// Load's safety checks, not just the parser
	if err := os.WriteFile(p, []byte("default = \"mgmt\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o664)
	if r = c.checkPolicy(); r.OK || !strings.Contains(r.Detail, "refusing policy: mode 0664") {
		t.Errorf("unsafe: %+v", r)
	}
	os.Chmod(p, 0o644)
	if r = c.checkPolicy(); !r.OK || r.Detail != p+" is valid (vrf-netsetup policy check "+p+" for details)" {
		t.Errorf("good: %+v", r)
	}
}
