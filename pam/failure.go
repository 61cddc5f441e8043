package pam

import (
	"errors"
	"fmt"

	"github.com/pam-vrf/pam-vrf/config"
	"github.com/pam-vrf/pam-vrf/nss"
	"github.com/pam-vrf/pam-vrf/placement"
)

// The failure rule. It is the one answer to "what happens when pam_vrf cannot
// do what it is configured to do", for every way that can happen, and
// pam_vrf(8) FAILURES prints the same table.
//
// A failure is one of these classes:
//
//	option     a module argument on the pam.d line is unknown or malformed
//	policy     the policy file cannot be read, is unsafe (owner, mode, a
//	           writable directory on its path) or does not parse
//	user       PAM gave no user name
//	nss        the user's groups could not be looked up (error or timeout)
//	           and a group rule could have decided
//	vrf        the VRF device does not exist, or is not a VRF
//	placement  cgroup2 missing, BPF refused, a foreign program in the way,
//	           an unsafe (user-owned or delegated) cgroup, a failed move
//	internal   a bug: the Go code panicked
//
// What happens:
//
//   - For a service the module does not act for (not in the policy's
//     `services`, or, when the policy cannot be read, not in the default
//     list sshd, login): PAM_IGNORE, nothing shown, one notice in the auth
//     log. A failure never denies such a service.
//   - Otherwise the setting decides. `allow`: PAM_IGNORE; the session
//     continues where it is, its sockets unbound; the user is told on the
//     terminal ("pam_vrf: …; this session continues without VRF placement")
//     and the auth log gets a warning naming user, service, VRF and reason.
//     `deny`: PAM_SESSION_ERR; the user is told ("…; session refused") and
//     the auth log gets an error line with the same details.
//   - The setting is the policy's on_error when the policy could be read and
//     sets it; otherwise the pam.d line's on_error=; otherwise allow. A policy
//     that cannot be read cannot hold its own setting, so for sites that
//     confine users by VRF the pam.d line is where deny is said for that
//     case.
//
// PAM_SILENT suppresses the terminal message, never the auth-log line.
type failure struct {
	class string // see above
	vrf   string // the VRF the session was meant for, if known
	rule  string // the rule that chose it, if known
	err   error  // full detail, for the auth log
	what  string // short text for the user's terminal
}

// setting is the on_error that applies, and where it was said.
type setting struct {
	v    config.OnError
	from string
}

func resolveSetting(pol *config.Policy, opt Options) setting {
	if pol != nil && pol.OnError != config.OnErrorUnset {
		return setting{pol.OnError, fmt.Sprintf("on_error=%s, %s:%d", pol.OnError, pol.Path, pol.OnErrorLine)}
	}
	if opt.OnError != config.OnErrorUnset {
		return setting{opt.OnError, fmt.Sprintf("on_error=%s, pam.d line", opt.OnError)}
	}
	return setting{config.OnErrorAllow, "on_error=allow, the default"}
}

// fail applies the failure rule to a session of a service the module acts
// for.
func fail(req Request, f failure, s setting, log Logger) Outcome {
	who := fmt.Sprintf("user %q service %q", req.User, req.Service)
	if f.vrf != "" {
		who += fmt.Sprintf(" VRF %q", f.vrf)
	}
	if f.rule != "" {
		who += " (" + f.rule + ")"
	}
	if s.v == config.OnErrorDeny {
		log.Log(Err, fmt.Sprintf("%s: %s failure: %v; session refused (%s)", who, f.class, f.err, s.from))
		return Outcome{Code: SessionErr, UserMessage: "pam_vrf: " + f.what + "; session refused"}
	}
	log.Log(Warning, fmt.Sprintf("%s: %s failure: %v; session continues unbound (%s)", who, f.class, f.err, s.from))
	return Outcome{Code: Ignore, UserMessage: "pam_vrf: " + f.what + "; this session continues without VRF placement"}
}

// policyWhat is the terminal text for a policy that cannot be used: file and
// line, not the content (the auth log has the full message).
func policyWhat(path string, err error) string {
	var ce *config.Error
	if errors.As(err, &ce) {
		loc := ce.Path
		if ce.Line > 0 {
			loc = fmt.Sprintf("%s:%d", ce.Path, ce.Line)
		}
		if len(ce.Msg) >= 17 && ce.Msg[:17] == "refusing policy: " {
			return "the VRF policy " + loc + " is unsafe or unreadable"
		}
		return "the VRF policy " + loc + " is broken"
	}
	return "the VRF policy " + path + " cannot be read"
}

// placementWhat is the terminal text for a failed placement.
func placementWhat(vrf string, err error) (class, what string) {
	class = "placement"
	reason := "placement failed"
	switch {
	case errors.Is(err, placement.ErrNoDevice):
		class, reason = "vrf", "the VRF device does not exist"
	case errors.Is(err, placement.ErrNotVRF):
		class, reason = "vrf", "the device is not a VRF"
	case errors.Is(err, placement.ErrNoCgroup2):
		reason = "no cgroup2 file system is mounted"
	case errors.Is(err, placement.ErrBPFPermission):
		reason = "no permission to attach the BPF program"
	case errors.Is(err, placement.ErrConflict):
		reason = "another program holds the VRF cgroup's socket hook"
	case errors.Is(err, placement.ErrUnsafeCgroup):
		reason = "the session's cgroup is not root's (delegated or user-owned)"
	}
	return class, fmt.Sprintf("VRF %s is not available: %s", vrf, reason)
}

func nssWhat(err error) string {
	if errors.Is(err, nss.ErrTimeout) {
		return "your groups could not be looked up in time"
	}
	return "your groups could not be looked up"
}
