// Package ifname holds the one rule for what may name a VRF: the policy
// parser (config) and the placement code both enforce it, and must agree.
package ifname

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxLen is IFNAMSIZ-1: a VRF is a network device.
const MaxLen = 15

// Valid reports why name cannot be a VRF device name, or nil if it can. The
// rules are the kernel's dev_valid_name() (which also forbids ':') plus no
// control characters and valid UTF-8, because names end up in logs and in
// cgroup paths (hence no '/', ".", "..").
func Valid(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty")
	case len(name) > MaxLen:
		return fmt.Errorf("longer than %d bytes", MaxLen)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a device name", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("not valid UTF-8")
	}
	for _, r := range name {
		switch {
		case r == '/':
			return fmt.Errorf("contains '/'")
		case r == ':':
			return fmt.Errorf("contains ':'")
		case r == 0:
			return fmt.Errorf("contains NUL")
		case unicode.IsSpace(r):
			return fmt.Errorf("contains whitespace")
		case unicode.IsControl(r):
			return fmt.Errorf("contains control character %U", r)
		}
	}
	return nil
}
