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
	"slices"
	"strings"
	"time"

	"github.com/pam-vrf/pam-vrf/config"
	"github.com/pam-vrf/pam-vrf/nss"
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
	Ignore                 // not ours to act on (no rule, vrf = "", other service), or a failure under on_error=allow
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
	// OnError is the failure rule's setting when the policy does not give
	// one, in particular when the policy cannot be read at all.
	OnError config.OnError
}

// ParseArgs reads `config=PATH`, `on_error=allow|deny` and `debug`. It
// returns the options it understood and an error for the first argument it
// did not: a misspelt option on a security module must not be silently
// dropped, and the failure rule (failure.go) says what the session gets.
func ParseArgs(args []string) (Options, error) {
	opt := Options{ConfigPath: DefaultConfigPath}
	var bad error
	for _, a := range args {
		var err error
		switch {
		case a == "debug":
			opt.Debug = true
		case strings.HasPrefix(a, "config="):
			p := strings.TrimPrefix(a, "config=")
			if !strings.HasPrefix(p, "/") {
				err = fmt.Errorf("option %q: the policy path must be absolute", a)
				break
			}
			opt.ConfigPath = p
		case strings.HasPrefix(a, "on_error="):
			v, ok := config.ParseOnError(strings.TrimPrefix(a, "on_error="))
			if !ok {
				err = fmt.Errorf("option %q: must be on_error=allow or on_error=deny", a)
				break
			}
			opt.OnError = v
		default:
			err = fmt.Errorf("unknown option %q (known: config=PATH, on_error=allow|deny, debug)", a)
		}
		if bad == nil {
			bad = err
		}
	}
	return opt, bad
}

// Request is one pam_open_session call.
type Request struct {
	User    string
	Service string
	PID     int      // the caller: the process to place
	Args    []string // module arguments
	Silent  bool     // PAM_SILENT: show the user nothing (the auth log still gets every line)
	// GroupsTimedOut: the C part already waited the policy's nss_timeout
	// for this login's group lookup; asking again would double the wait.
	GroupsTimedOut bool
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
	// Groups reports which of the named groups user is a member of,
	// waiting at most timeout (nss.Membership).
	Groups func(user string, names []string, timeout time.Duration) ([]bool, error)
	// Enter places pid into the VRF (placement.DefaultVRF: the default VRF).
	Enter func(pid int, vrf string) (placement.Result, error)
	// Learn, if set, records a policy read with every check for
	// pam_vrf.so's C fast path.
	Learn func(pol *config.Policy)
}

// Open runs pam_sm_open_session's logic. It never panics on bad input; the
// shim still recovers, as a last line of defence at the C boundary (see
// Recovered).
func Open(req Request, log Logger, env *Env) Outcome {
	out := open(req, log, env)
	if req.Silent {
		out.UserMessage = ""
	}
	return out
}

func open(req Request, log Logger, env *Env) Outcome {
	opt, optErr := ParseArgs(req.Args)
	dbg := func(format string, a ...any) {
		if opt.Debug {
			log.Log(Debug, fmt.Sprintf(format, a...))
		}
	}

	pol, polErr := env.Policies.Load(opt.ConfigPath)
	if polErr != nil {
		pol = nil // ActsFor(nil) is the default services list
	} else if env.Learn != nil {
		env.Learn(pol)
	}
	if !pol.ActsFor(req.Service) {
		// Whatever is wrong, a service we do not act for is never denied.
		if err := errors.Join(optErr, polErr); err != nil {
			log.Log(Notice, fmt.Sprintf("user %q service %q: %v; the module does not act for this service, session left alone", req.User, req.Service, err))
		} else {
			dbg("user %q: service %q is not in the policy's services list; ignoring", req.User, req.Service)
		}
		return Outcome{Code: Ignore}
	}
	set := resolveSetting(pol, opt)
	switch {
	case optErr != nil:
		return fail(req, failure{class: "option", err: optErr, what: "the module is misconfigured (see the auth log)"}, set, log)
	case polErr != nil:
		return fail(req, failure{class: "policy", err: polErr, what: policyWhat(opt.ConfigPath, polErr)}, set, log)
	case req.User == "":
		return fail(req, failure{class: "user", err: errors.New("PAM_USER is not set"), what: "no user name"}, set, log)
	}

	groups := func(user string, names []string) ([]bool, error) {
		if req.GroupsTimedOut {
			return nil, nss.TimedOut(user, pol.Timeout())
		}
		return env.Groups(user, names, pol.Timeout())
	}
	d, err := pol.Decide(req.User, req.Service, groups)
	if err != nil {
		return fail(req, failure{class: "nss", err: err, what: nssWhat(err)}, set, log)
	}
	if !d.Matched {
		dbg("user %q service %q: no rule matches; session left in place", req.User, req.Service)
		return Outcome{Code: Ignore}
	}
	if d.VRF == "" {
		dbg("user %q: %s leaves the session where it is", req.User, d.Rule)
		return Outcome{Code: Ignore}
	}

	res, err := env.Enter(req.PID, d.VRF)
	if err != nil {
		class, what := placementWhat(d.VRF, err)
		return fail(req, failure{class: class, vrf: d.VRF, rule: d.Rule, err: err, what: what}, set, log)
	}
	if d.VRF == config.DefaultVRF {
		log.Log(Info, fmt.Sprintf("user %q placed in the default VRF (%s, cgroup %s)", req.User, d.Rule, res.Dir))
	} else {
		log.Log(Info, fmt.Sprintf("user %q placed in VRF %q (%s, ifindex %d, cgroup %s)", req.User, d.VRF, d.Rule, res.Ifindex, res.Dir))
	}
	return Outcome{Code: Success}
}

// Recovered is the outcome after Open panicked (a bug). The policy is not
// read again; the pam.d line's on_error and the default services list
// stand in for it.
func Recovered(req Request, panicked any, stack []byte, log Logger) Outcome {
	opt, _ := ParseArgs(req.Args)
	if !slices.Contains(config.DefaultServices, req.Service) {
		log.Log(Err, fmt.Sprintf("user %q service %q: internal error: %v; session left alone\n%s", req.User, req.Service, panicked, stack))
		return Outcome{Code: Ignore}
	}
	out := fail(req, failure{class: "internal", err: fmt.Errorf("%v\n%s", panicked, stack), what: "internal error (see the auth log)"},
		resolveSetting(nil, opt), log)
	if req.Silent {
		out.UserMessage = ""
	}
	return out
}
