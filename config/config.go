// Package config reads the pam-vrf policy, /etc/security/pam_vrf.toml, and
// makes the one decision the PAM module needs: which VRF, if any, a login
// session is put into.
//
// Load refuses a policy file that a non-root user could have written (as
// sshd's StrictModes does) and then calls Parse, which is strict: unknown
// keys, wrong types and invalid names are errors naming file, line and key.
// A missing file is not an error; it means "no policy", and the module
// leaves every session alone.
//
// Precedence, in Policy.Decide: the user's rule, then the group rules in file
// order (first group of the user that has a rule wins), then `default`. A
// rule with a `services` list only matches those PAM services; for other
// services the decision falls through to the next candidate. The top-level
// `services` list is a separate gate (Policy.ActsFor) that the PAM layer
// checks before it asks Decide.
package config

import (
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/pam-vrf/pam-vrf/ifname"
)

// DefaultPath is where the PAM module and the admin tool look for the policy.
const DefaultPath = "/etc/security/pam_vrf.toml"

// DefaultServices are the PAM services the module acts for when the policy
// does not list any.
var DefaultServices = []string{"sshd", "login"}

// OnError says what a session gets when its VRF cannot be entered.
type OnError int

const (
	// OnErrorDeny refuses the session. It is the zero value so that a
	// forgotten setting fails closed.
	OnErrorDeny OnError = iota
	// OnErrorAllow lets the session continue in the default VRF.
	OnErrorAllow
)

func (o OnError) String() string {
	switch o {
	case OnErrorDeny:
		return "deny"
	case OnErrorAllow:
		return "allow"
	}
	return fmt.Sprintf("OnError(%d)", int(o))
}

// Rule kinds, as written in the policy's table names.
const (
	KindUser  = "user"
	KindGroup = "group"
)

// Rule is one [user.NAME] or [group.NAME] table of the policy.
type Rule struct {
	Kind     string   // KindUser or KindGroup
	Name     string   // user or group name
	VRF      string   // "" = stay in the default VRF
	Services []string // nil = every service the module acts for
	Line     int      // line of the rule in the policy file
}

// appliesTo reports whether the rule's services filter admits service.
func (r *Rule) appliesTo(service string) bool {
	return r.Services == nil || slices.Contains(r.Services, service)
}

// Policy is a parsed policy file. The zero value, like a missing file, is
// "no policy": Decide never matches.
type Policy struct {
	Path        string
	Exists      bool    // false: file missing = "no policy"
	Default     *string // nil = unset; `default = ""` is also treated as unset
	DefaultLine int     // line of `default`, 0 if unset
	OnError     OnError
	Services    []string        // PAM services the module acts for; DefaultServices if unset
	Users       map[string]Rule // user rules by user name
	Groups      []Rule          // group rules in file order
}

// Decision is the outcome of Policy.Decide.
type Decision struct {
	Matched bool   // false: no rule and no default -> leave the session alone
	VRF     string // "" with Matched = explicit "stay in the default VRF"
	Rule    string // human text naming the rule, with file:line
}

// Decide picks the VRF for a session of user, who is a member of groups,
// opened through PAM service service. It does not consult ActsFor; the
// caller checks that gate first. A nil Policy decides nothing.
func (p *Policy) Decide(user string, groups []string, service string) Decision {
	if p == nil {
		return Decision{}
	}
	if r, ok := p.Users[user]; ok && r.appliesTo(service) {
		return p.decision(&r)
	}
	if len(p.Groups) > 0 && len(groups) > 0 {
		member := make(map[string]bool, len(groups))
		for _, g := range groups {
			member[g] = true
		}
		for i := range p.Groups {
			r := &p.Groups[i]
			if member[r.Name] && r.appliesTo(service) {
				return p.decision(r)
			}
		}
	}
	if p.Default != nil && *p.Default != "" {
		return Decision{
			Matched: true,
			VRF:     *p.Default,
			Rule:    fmt.Sprintf("default (%s:%d)", p.Path, p.DefaultLine),
		}
	}
	return Decision{}
}

func (p *Policy) decision(r *Rule) Decision {
	return Decision{
		Matched: true,
		VRF:     r.VRF,
		Rule:    fmt.Sprintf("%s %q (%s:%d)", r.Kind, r.Name, p.Path, r.Line),
	}
}

// ActsFor reports whether the module should act for PAM service service at
// all; for other services it returns PAM_IGNORE without asking Decide.
func (p *Policy) ActsFor(service string) bool {
	if p == nil || p.Services == nil {
		return slices.Contains(DefaultServices, service)
	}
	return slices.Contains(p.Services, service)
}

// MaxVRFNameLen is IFNAMSIZ-1: a VRF is a network device.
const MaxVRFNameLen = ifname.MaxLen

// ValidVRFName reports why name cannot be a VRF device name (ifname.Valid).
func ValidVRFName(name string) error { return ifname.Valid(name) }

// MaxNameLen bounds user, group and service names in the policy. Linux
// itself allows 32 bytes for local users; directory services allow more.
const MaxNameLen = 256

// validName checks a user, group or PAM service name. Such names are never
// used in paths, but a name no account can have is a typo worth reporting.
func validName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("name longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("name %q is not valid UTF-8", name)
	}
	for _, r := range name {
		switch {
		case r == 0:
			return fmt.Errorf("name %q contains NUL", name)
		case r == '/':
			return fmt.Errorf("name %q contains '/'", name)
		case unicode.IsControl(r):
			return fmt.Errorf("name %q contains control character %U", name, r)
		}
	}
	return nil
}
