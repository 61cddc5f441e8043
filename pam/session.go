// Package pam is the session logic of pam_vrf.so, in plain Go: it parses the
// module options, reads the policy, decides the session's VRF and places the
// PAM caller into it. It knows nothing about cgo or libpam; the shim in cgo/
// supplies a Logger and turns the Outcome into a PAM return code, so all of
// this is tested without loading a PAM module into a Go process.
//
// The process placed is always the caller of pam_open_session. In OpenSSH 9.2
// (Debian 12) sshd.c calls do_pam_setcred() and do_pam_session() in the
// per-connection privileged monitor and only then privsep_postauth() forks the
// user's child, which forks the shell; util-linux login and su call
// pam_open_session before fork_session()/create_watching_parent(). So moving
// getpid() moves the process every later session process descends from, and
// the shell inherits the VRF cgroup. pam_systemd must run before us in the
// stack: it moves the caller into session-N.scope, and our cgroup is created
// below that scope, as `ip vrf exec` would, so logind keeps tracking it.
package pam

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pam-vrf/pam-vrf/config"
	"github.com/pam-vrf/pam-vrf/placement"
)

// DefaultConfigPath is where the policy lives unless config= says otherwise.
const DefaultConfigPath = "/etc/security/pam_vrf.toml"

// Priority is a syslog priority; the shim passes it to pam_syslog.
type Priority int

// Syslog priorities (the values of <syslog.h>).
const (
	Err     Priority = 3
	Warning Priority = 4
	Notice  Priority = 5
	Info    Priority = 6
	Debug   Priority = 7
)

// Logger writes one line to the auth log.
type Logger interface {
	Log(p Priority, msg string)
}

// Code is the PAM result the shim returns to libpam.
type Code int

// The results open_session can have.
const (
	Success    Code = iota // placed in the VRF
	Ignore                 // not ours to act on: no rule, default VRF, other service, or on_error=allow
	SessionErr             // the session must not start
)

func (c Code) String() string {
	switch c {
	case Success:
		return "PAM_SUCCESS"
	case Ignore:
		return "PAM_IGNORE"
	case SessionErr:
		return "PAM_SESSION_ERR"
	}
	return fmt.Sprintf("Code(%d)", int(c))
}

// Options are the module arguments of the pam.d line.
type Options struct {
	ConfigPath string
	Debug      bool
}

// ParseArgs reads `config=PATH` and `debug`. Anything else is an error: a
// misspelt option on a security module must not be silently dropped.
func ParseArgs(args []string) (Options, error) {
	opt := Options{ConfigPath: DefaultConfigPath}
	for _, a := range args {
		switch {
		case a == "debug":
			opt.Debug = true
		case strings.HasPrefix(a, "config="):
			p := strings.TrimPrefix(a, "config=")
			if !strings.HasPrefix(p, "/") {
				return opt, fmt.Errorf("option %q: the policy path must be absolute", a)
			}
			opt.ConfigPath = p
		default:
			return opt, fmt.Errorf("unknown option %q (known: config=PATH, debug)", a)
		}
	}
	return opt, nil
}

// Request is one pam_open_session call.
type Request struct {
	User    string
	Service string
	PID     int      // the caller: the process to place
	Args    []string // module arguments
}

// Outcome is what the shim returns to libpam and shows the user.
type Outcome struct {
	Code Code
	// UserMessage, when set, is shown to the user with pam_error().
	UserMessage string
}

// Env holds what Open needs from the system; tests replace the parts.
type Env struct {
	Policies *config.Cache
	// Groups returns the names of the user's groups (primary included).
	Groups func(user string) ([]string, error)
	// Enter places pid into the VRF.
	Enter func(pid int, vrf string) (placement.Result, error)
}

// Open runs pam_sm_open_session's logic. It never panics on bad input; the
// shim still recovers, as a last line of defence at the C boundary.
func Open(req Request, log Logger, env *Env) Outcome {
	opt, err := ParseArgs(req.Args)
	if err != nil {
		log.Log(Err, fmt.Sprintf("bad module arguments: %v; denying session for user %q", err, req.User))
		return Outcome{Code: SessionErr, UserMessage: "pam_vrf: module misconfigured, see the auth log"}
	}
	dbg := func(format string, a ...any) {
		if opt.Debug {
			log.Log(Debug, fmt.Sprintf(format, a...))
		}
	}

	pol, err := env.Policies.Load(opt.ConfigPath)
	if err != nil {
		// A policy we cannot read decides nobody: fail closed, and only for
		// the services the module acts for by default, so that e.g. sudo or
		// cron keep working while the admin fixes the file.
		if !contains(config.DefaultServices, req.Service) {
			log.Log(Err, fmt.Sprintf("user %q service %q: policy unusable: %v; session left alone (service not in the default list)", req.User, req.Service, err))
			return Outcome{Code: Ignore}
		}
		log.Log(Err, fmt.Sprintf("user %q: policy unusable, denying session: %v", req.User, err))
		return Outcome{Code: SessionErr, UserMessage: "pam_vrf: the VRF policy is broken, see the auth log"}
	}
	if !pol.ActsFor(req.Service) {
		dbg("user %q: service %q is not in the policy's services list; ignoring", req.User, req.Service)
		return Outcome{Code: Ignore}
	}

	var groups []string
	if len(pol.Groups) > 0 { // NSS lookups only when a group rule could match
		groups, err = env.Groups(req.User)
		if err != nil {
			log.Log(Err, fmt.Sprintf("user %q: cannot resolve groups: %v; denying session", req.User, err))
			return Outcome{Code: SessionErr, UserMessage: "pam_vrf: cannot resolve your groups, see the auth log"}
		}
	}
	d := pol.Decide(req.User, groups, req.Service)
	if !d.Matched {
		dbg("user %q service %q: no rule matches; session left in place", req.User, req.Service)
		return Outcome{Code: Ignore}
	}
	if d.VRF == "" {
		dbg("user %q: %s keeps the session in the default VRF", req.User, d.Rule)
		return Outcome{Code: Ignore}
	}

	res, err := env.Enter(req.PID, d.VRF)
	if err != nil {
		reason := userReason(err)
		if pol.OnError == config.OnErrorAllow {
			log.Log(Warning, fmt.Sprintf("user %q: cannot enter VRF %q (%s): %v; session continues unbound (on_error=allow)", req.User, d.VRF, d.Rule, err))
			return Outcome{Code: Ignore}
		}
		log.Log(Err, fmt.Sprintf("user %q: cannot enter VRF %q (%s): %v; session denied (on_error=deny)", req.User, d.VRF, d.Rule, err))
		return Outcome{Code: SessionErr, UserMessage: fmt.Sprintf("pam_vrf: VRF %s is not available: %s", d.VRF, reason)}
	}
	log.Log(Info, fmt.Sprintf("user %q placed in VRF %q (%s, ifindex %d, cgroup %s)", req.User, d.VRF, d.Rule, res.Ifindex, res.Dir))
	return Outcome{Code: Success}
}

// userReason is the short reason shown on the user's terminal; the auth log
// gets the full error with paths.
func userReason(err error) string {
	switch {
	case errors.Is(err, placement.ErrNoDevice):
		return "the VRF device does not exist"
	case errors.Is(err, placement.ErrNotVRF):
		return "the device is not a VRF"
	case errors.Is(err, placement.ErrNoCgroup2):
		return "no cgroup2 file system is mounted"
	case errors.Is(err, placement.ErrBPFPermission):
		return "no permission to attach the BPF program"
	}
	return "placement failed"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
