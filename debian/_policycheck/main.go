// Command _policycheck is run by debian/rules (dh_auto_test): it checks that
// the policy shipped as /etc/security/pam_vrf.toml parses with the module's
// own parser and moves nobody, and that its commented example (between
// #BEGIN EXAMPLE and #END EXAMPLE) parses and decides as its comment says.
// The leading underscore keeps it out of `go ... ./...`.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/pam-vrf/pam-vrf/config"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: _policycheck FILE")
		os.Exit(2)
	}
	path := os.Args[1]
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}

	pol, err := config.Parse(path, data)
	if err != nil {
		fail("shipped policy: %v", err)
	}
	if pol.Default != nil || len(pol.Users) > 0 || len(pol.Groups) > 0 {
		fail("shipped policy is not inert: default=%v, %d user rules, %d group rules", pol.Default, len(pol.Users), len(pol.Groups))
	}
	for _, svc := range []string{"sshd", "login", "su"} {
		if d, err := pol.Decide("root", svc, config.MemberOf("root")); err != nil || d.Matched {
			fail("shipped policy decides %+v (%v) for root/%s", d, err, svc)
		}
	}

	example := extract(string(data))
	if example == "" {
		fail("no #BEGIN EXAMPLE ... #END EXAMPLE block")
	}
	ex, err := config.Parse(path+" (example)", []byte(example))
	if err != nil {
		fail("example: %v", err)
	}
	check := func(user string, groups []string, svc string, matched bool, vrf string) {
		d, err := ex.Decide(user, svc, config.MemberOf(groups...))
		if err != nil || d.Matched != matched || d.VRF != vrf {
			fail("example: %s %v via %s: got %+v, want matched=%v vrf=%q", user, groups, svc, d, matched, vrf)
		}
	}
	check("alice", nil, "login", true, "mgmt")
	check("root", []string{"root", "netops"}, "sshd", true, "")
	check("bob", []string{"users", "netops"}, "sshd", true, "mgmt")
	check("bob", []string{"users", "netops"}, "login", false, "")
	check("carol", []string{"users"}, "sshd", false, "")
	if ex.OnError != config.OnErrorUnset || !ex.ActsFor("sshd") || ex.ActsFor("su") {
		fail("example: on_error/services not as documented")
	}

	// The "default" variant the file suggests, placed before the tables.
	withDefault := "default = \"mgmt\"\n" + example
	dp, err := config.Parse(path+" (example with default)", []byte(withDefault))
	if err != nil {
		fail("example with default: %v", err)
	}
	if d, _ := dp.Decide("carol", "sshd", config.MemberOf("users")); !d.Matched || d.VRF != "mgmt" {
		fail("example with default: carol: %+v", d)
	}
	if d, _ := dp.Decide("root", "sshd", nil); !d.Matched || d.VRF != "" {
		fail("example with default: root: %+v", d)
	}
	fmt.Printf("%s: shipped policy is inert; example parses and decides as documented\n", path)
}

// extract returns the lines between "#BEGIN EXAMPLE" and "#END EXAMPLE" with
// the leading "#" removed.
func extract(s string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(s, "\n") {
		switch {
		case line == "#BEGIN EXAMPLE":
			in = true
		case line == "#END EXAMPLE":
			return b.String()
		case in:
			b.WriteString(strings.TrimPrefix(line, "#"))
			b.WriteByte('\n')
		}
	}
	return ""
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "policycheck: "+format+"\n", a...)
	os.Exit(1)
}
