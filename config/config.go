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
//
// Decide asks for group membership only when it can change the answer (no
// user rule decided and some group rule admits the service), and then once,
// for exactly those group names: group lookups go through NSS, which may be
// LDAP or SSSD, slow or down.
package config

import (
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pam-vrf/pam-vrf/ifname"
)

// DefaultPath is where the PAM module and the admin tool look for the policy.
const DefaultPath = "/etc/security/pam_vrf.toml"

// DefaultServices are the PAM services the module acts for when the policy
// does not list any.
var DefaultServices = []string{"sshd", "login"}

// DefaultVRF is the VRF name that means "the default VRF", as in iproute2's
// `ip vrf exec default`: the session goes to the …/vrf cgroup directory
// itself, where no program is attached, so its sockets are bound to no
// device. It is how a policy returns `su -` from a placed shell to the
// default VRF. A rule with vrf = "" instead leaves the session where it is.
const DefaultVRF = "default"

// DefaultNSSTimeout bounds the group lookup of one login when the policy
// does not set nss_timeout.
const DefaultNSSTimeout = 5 * time.Second

// MaxNSSTimeout is the largest nss_timeout accepted: a login that waits
// longer than this for its groups is broken either way.
const MaxNSSTimeout = 60 * time.Second

// OnError says what a session gets when the module fails for it: see the
// failure rule in package pam. The zero value is "not set here", so that the
// pam.d line's on_error= and then the built-in default (allow) apply.
type OnError int

const (
	// OnErrorUnset: the policy does not say; the pam.d line or the default
	// (allow) decides.
	OnErrorUnset OnError = iota
	// OnErrorAllow lets the session continue where it is, unbound, with a
	// message to the user and a warning in the auth log.
	OnErrorAllow
	// OnErrorDeny refuses the session, for sites that use the VRF to
	// confine users.
	OnErrorDeny
)

func (o OnError) String() string {
	switch o {
	case OnErrorUnset:
		return "unset"
	case OnErrorDeny:
		return "deny"
	case OnErrorAllow:
		return "allow"
	}
	return fmt.Sprintf("OnError(%d)", int(o))
}

// ParseOnError reads "allow" or "deny".
func ParseOnError(s string) (OnError, bool) {
	switch s {
	case "allow":
		return OnErrorAllow, true
	case "deny":
		return OnErrorDeny, true
	}
	return OnErrorUnset, false
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
	VRF      string   // "" = leave the session where it is; DefaultVRF = move it to the default VRF
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
	File        FileID  // identity of the file read (Load); zero from Parse
	Default     *string // nil = unset; `default = ""` is also treated as unset
	DefaultLine int     // line of `default`, 0 if unset
	OnError     OnError
	OnErrorLine int             // line of on_error, 0 if unset
	NSSTimeout  time.Duration   // bound on the group lookup; 0 = DefaultNSSTimeout
	Services    []string        // PAM services the module acts for; DefaultServices if unset
	Users       map[string]Rule // user rules by user name
	Groups      []Rule          // group rules in file order
}

// Decision is the outcome of Policy.Decide.
type Decision struct {
	Matched bool   // false: no rule and no default -> leave the session alone
	VRF     string // "" with Matched = explicit "leave the session where it is"; DefaultVRF = move to the default VRF
	Rule    string // human text naming the rule, with file:line
}

// Groups answers which of the group names the user is a member of
// (member[i] for names[i]). Decide calls it at most once, only when a group
// rule could still change the answer, with exactly those groups' names in
// file order. An error means membership is unknown (NSS failed or timed
// out); Decide then decides nothing.
type Groups func(user string, names []string) (member []bool, err error)

// MemberOf is a Groups for a user whose group names are already known
// (tests, and tools that list them some other way).
func MemberOf(groups ...string) Groups {
	return func(_ string, names []string) ([]bool, error) {
		member := make([]bool, len(names))
		for i, n := range names {
			member[i] = slices.Contains(groups, n)
		}
		return member, nil
	}
}

// GroupError is Decide's error when the group lookup failed: the decision
// depended on it (Rules names the group rules that could have matched).
type GroupError struct {
	User  string
	Rules []string // e.g. `group "netops" (/etc/security/pam_vrf.toml:12)`
	Err   error
}

func (e *GroupError) Error() string {
	return fmt.Sprintf("groups of user %q unknown, needed for %s: %v", e.User, joinRules(e.Rules), e.Err)
}

func (e *GroupError) Unwrap() error { return e.Err }

func joinRules(r []string) string {
	if len(r) > 3 {
		return fmt.Sprintf("%s, %s and %d more group rules", r[0], r[1], len(r)-2)
	}
	out := ""
	for i, x := range r {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// Decide picks the VRF for a session of user opened through PAM service
// service. It does not consult ActsFor; the caller checks that gate first.
// groups is called only when no user rule decided and at least one group
// rule admits service; a nil groups is "member of no group". A nil Policy
// decides nothing.
func (p *Policy) Decide(user, service string, groups Groups) (Decision, error) {
	if p == nil {
		return Decision{}, nil
	}
	if r, ok := p.Users[user]; ok && r.appliesTo(service) {
		return p.decision(&r), nil
	}
	var cand []*Rule
	for i := range p.Groups {
		if r := &p.Groups[i]; r.appliesTo(service) {
			cand = append(cand, r)
		}
	}
	if len(cand) > 0 && groups != nil {
		names := make([]string, len(cand))
		for i, r := range cand {
			names[i] = r.Name
		}
		member, err := groups(user, names)
		if err != nil {
			rules := make([]string, len(cand))
			for i, r := range cand {
				rules[i] = p.decision(r).Rule
			}
			return Decision{}, &GroupError{User: user, Rules: rules, Err: err}
		}
		for i, r := range cand {
			if i < len(member) && member[i] {
				return p.decision(r), nil
			}
		}
	}
	if p.Default != nil && *p.Default != "" {
		return Decision{
			Matched: true,
			VRF:     *p.Default,
			Rule:    fmt.Sprintf("default (%s:%d)", p.Path, p.DefaultLine),
		}, nil
	}
	return Decision{}, nil
}

func (p *Policy) decision(r *Rule) Decision {
	return Decision{
		Matched: true,
		VRF:     r.VRF,
		Rule:    fmt.Sprintf("%s %q (%s:%d)", r.Kind, r.Name, p.Path, r.Line),
	}
}

// Timeout is the bound on one login's group lookup.
func (p *Policy) Timeout() time.Duration {
	if p == nil || p.NSSTimeout <= 0 {
		return DefaultNSSTimeout
	}
	return p.NSSTimeout
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
// DefaultVRF is valid: it names the default VRF, not a device.
func ValidVRFName(name string) error { return ifname.Valid(name) }

// RefusedServices are PAM services a policy may not name, with the reason.
var RefusedServices = map[string]string{
	// systemd --user strips only "/init.scope" from its cgroup to find its
	// root; placed, that root would be …/init.scope/vrf/<name>, a root-owned
	// directory the user manager cannot use, and every user unit fails.
	// Daemons belong in the VRF through vrf-netsetup, not through PAM.
	"systemd-user": "the user's systemd manager cannot run below a VRF cgroup (it takes its cgroup as the root of the user's units); leave it out",
}

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
