// Command vrf-netsetup provisions and checks the management VRF that pam-vrf
// puts ssh logins into. See `vrf-netsetup help`.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pam-vrf/pam-vrf/config"
	"github.com/pam-vrf/pam-vrf/netsetup"
)

const usage = `usage:
  vrf-netsetup apply --vrf NAME --table N --iface DEV [--dns auto|static|resolved|none]
                     [--nameserver IP ...] [--sshd any-vrf|vrf-only] [--resolved-listener IP]
                     [--service UNIT ...]
                     [--dry-run] [--force] [--quiet] [--json] [--exit-changed] [--root DIR] [--config FILE]
  vrf-netsetup check [--vrf NAME] [--table N] [--iface DEV] [--query-name NAME] [--json]
                     [--metrics-file FILE.prom] [--root DIR] [--config FILE]
  vrf-netsetup try [apply flags] [--timeout 120s]
      apply, then roll everything back after the timeout unless confirmed
  vrf-netsetup confirm [--force] [--json] [--exit-changed]
      keep what try applied (from a NEW login; --force: from the same session)
  vrf-netsetup revert [--dry-run] [--root DIR] [--if-unconfirmed] [--json] [--exit-changed]
      restore the state before the first apply (--if-unconfirmed: before a pending try)
  vrf-netsetup policy check [FILE]
      check the PAM policy as pam_vrf.so reads it (owner, mode, syntax); FILE
      defaults to ` + config.DefaultPath + `
  vrf-netsetup policy explain USER [--service S] [--file FILE]
      which rule decides USER's VRF for PAM service S (default sshd), and why
  vrf-netsetup policy edit [--file FILE]
      edit the policy with $VISUAL/$EDITOR; installs it only if it is valid
--dns-only (apply): only steer the nameservers the host uses now into the VRF (rules,
  connect hooks), and only while the VRF is up; what pam-vrf-dns.path runs.
--service UNIT (repeatable): the unit's sockets are bound to the VRF (chrony, rsyslog,
  apt-daily, ...); the list replaces the one in the settings file.
Settings come from ` + netsetup.DefaultConfigPath + ` (or --config) when present; flags override.
--json: one JSON document on stdout (schema_version 1, see vrf-netsetup(8));
--metrics-file: check results for node_exporter's textfile collector.
Exit status: 0 ok, 1 failure (or a failed check), 2 usage error,
3 changed (only with --exit-changed: apply, try, revert, confirm changed the host, or would with --dry-run),
4 try's apply stuck past the rollback deadline (the rollback restores the host),
75 another vrf-netsetup held the apply or try lock for 5 minutes (nothing changed; retry).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "apply":
		err = cmdApply(args[1:], stdout)
	case "check":
		err = cmdCheck(args[1:], stdout)
	case "revert":
		err = cmdRevert(args[1:], stdout)
	case "try":
		err = cmdTry(args[1:], stdout)
	case "confirm":
		err = cmdConfirm(args[1:], stdout)
	case "policy":
		err = cmdPolicy(args[1:], stdout, stderr)
	case "__delay":
		err = cmdDelay(args[1:])
	case "__bind-cgroup":
		// ExecStartPre= of the --service drop-ins (netsetup.BindOwnCgroup)
		var msg string
		if msg, err = netsetup.BindCgroupCommand(args[1:]); msg != "" {
			fmt.Fprintln(stdout, msg)
		}
	case "__boot-failsafe":
		// ExecStopPost= of the boot unit (netsetup.BootFailsafe)
		var msg string
		if msg, err = netsetup.BootFailsafeCommand(); msg != "" {
			fmt.Fprintln(stderr, msg)
		}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "vrf-netsetup: unknown command %q (want apply, check, try, confirm, revert or policy)\n", args[0])
		return 2
	}
	if err == nil {
		return ExitOK
	}
	var fe *netsetup.FlagError
	var ue *usageError
	var cf *checkFailed
	switch {
	case errors.Is(err, errChanged):
		return ExitChanged
	case errors.As(err, &fe), errors.As(err, &ue):
		fmt.Fprintf(stderr, "vrf-netsetup %s: %v\n", args[0], err)
		return ExitUsage
	case errors.As(err, &cf), errors.Is(err, errPolicyFailed):
		return ExitFailed
	case errors.Is(err, netsetup.ErrLockTimeout):
		fmt.Fprintf(stderr, "vrf-netsetup %s: %v\n", args[0], err)
		return ExitLockTimeout
	}
	fmt.Fprintf(stderr, "vrf-netsetup %s: %v\n", args[0], err)
	return ExitFailed
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

type checkFailed struct{}

func (checkFailed) Error() string { return "checks failed" }
