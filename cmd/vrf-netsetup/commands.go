package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/pam-vrf/pam-vrf/netsetup"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// setup opens the live handles. With --root other than "/" the files belong
// to another image: systemd is not touched (Offline).
func setup(o *options, out io.Writer) (*netsetup.Reader, *netsetup.Env, func(), error) {
	n, err := netsetup.NewNet(netns.None())
	if err != nil {
		return nil, nil, nil, err
	}
	fs := netsetup.FS{Root: o.root}
	var svc netsetup.ServiceManager = netsetup.Systemctl{}
	if o.root != "/" && o.root != "" {
		svc = netsetup.Offline{}
	}
	sc := netsetup.Sysctl{NS: netns.None()}
	_, offline := svc.(netsetup.Offline)
	r := &netsetup.Reader{Net: n, FS: fs, Sysctl: sc, Svc: svc, HostRoot: "/", Hooks: !offline}
	env := &netsetup.Env{Net: n, FS: fs, Sysctl: sc, Svc: svc, Mod: netsetup.Modprobe{}, Out: out}
	if o.rec != nil {
		env.Observe = o.rec.Observe
	}
	return r, env, n.Close, nil
}

func cmdApply(args []string, stdout io.Writer) error {
	o, err := parseFlags("apply", args)
	if err != nil {
		return err
	}
	if err := o.cfg.Validate(); err != nil {
		return err
	}
	if !o.dryRun {
		surviveHangup()
	}
	return o.result("apply", stdout, func(out io.Writer) error { return apply(o, args, out) })
}

// surviveHangup: apply, try and revert change the network under the ssh
// session that often runs them, and enslaving its NIC can end that session.
// A SIGHUP (or EPIPE from a closed pipe) half-way would leave the host half
// set up, with no rollback; finish instead, printing into the void (check
// tells the outcome from a new login).
func surviveHangup() { signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE) }

func apply(o *options, args []string, out io.Writer) error {
	r, env, done, err := setup(o, out)
	if err != nil {
		return err
	}
	defer done()
	if env.Fault, err = faultFromEnv(); err != nil {
		return &usageError{err.Error()}
	}
	if (o.root == "/" || o.root == "") && !o.dnsOnly {
		// An unconfirmed try must not outlive its window: after a reboot
		// (the boot unit) or past the deadline it is rolled back first
		// (netsetup.ResolvePendingTry), and its settings are not applied.
		self, err := os.Executable()
		if err != nil {
			return err
		}
		rolled, err := netsetup.ResolvePendingTry(r, env, netsetup.HostScheduler(self), out, o.dryRun, time.Now())
		if err != nil {
			return err
		}
		if rolled {
			if o.dryRun {
				return nil // the plan depends on the rolled-back settings
			}
			// the settings on disk are the pre-try ones again: apply
			// those (what this apply would have done without the try);
			// none when the try was the first apply
			if o.configPath != "" {
				if _, err := os.Stat(o.configPath); os.IsNotExist(err) {
					fmt.Fprintf(out, "nothing else to apply: %s is gone with the rollback (the try was the first apply)\n", o.configPath)
					return nil
				}
			}
			o2, err := parseFlags("apply", args)
			if err != nil {
				return err
			}
			if err := o2.cfg.Validate(); err != nil {
				return err
			}
			o.cfg = o2.cfg
			o.rec.Report.Config = netsetup.NewReportConfig(o.cfg)
		}
	}
	run := &netsetup.Runner{Reader: r, Env: env, Out: out, DryRun: o.dryRun, Force: o.force, Quiet: o.quiet, DNSOnly: o.dnsOnly,
		Guard: &netsetup.Guard{SSHConnection: os.Getenv("SSH_CONNECTION")}}
	if o.configPath != "" {
		// the DHCP hooks, NetworkManager's dispatcher and the boot unit
		// run `apply --config`, maybe while another apply holds the lock
		run.Reload = func() (netsetup.Config, bool, error) {
			if _, err := os.Stat(o.configPath); os.IsNotExist(err) {
				return netsetup.Config{}, true, nil
			}
			o2, err := parseFlags("apply", args)
			if err != nil {
				return netsetup.Config{}, false, err
			}
			return o2.cfg, false, o2.cfg.Validate()
		}
	}
	return run.Apply(o.cfg)
}

// cmdTry: apply with a rollback armed outside this session; see netsetup/try.go.
func cmdTry(args []string, stdout io.Writer) error {
	o, err := parseFlags("try", args)
	if err != nil {
		return err
	}
	if err := o.cfg.Validate(); err != nil {
		return err
	}
	if o.root != "/" && o.root != "" {
		return &netsetup.FlagError{Flag: "root", Msg: "try works on the running system only (leave --root at /)"}
	}
	if o.dryRun {
		return &netsetup.FlagError{Flag: "dry-run", Msg: "not with try (use apply --dry-run to see the plan)"}
	}
	// The rollback timer is armed before the first step; see surviveHangup.
	surviveHangup()
	return o.result("try", stdout, func(out io.Writer) error {
		start := time.Now().Truncate(time.Second)
		err := try(o, out)
		// the record this try wrote (none when there was nothing to do)
		if ts, _ := netsetup.ReadTryState(netsetup.FS{Root: o.root}); ts != nil && !ts.Started.Before(start) {
			o.rec.Report.Try = netsetup.NewTryReport(ts)
		}
		return err
	})
}

func try(o *options, out io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r, env, done, err := setup(o, out)
	if err != nil {
		return err
	}
	defer done()
	if env.Fault, err = faultFromEnv(); err != nil {
		return &usageError{err.Error()}
	}
	run := &netsetup.Runner{Reader: r, Env: env, Out: out, Quiet: o.quiet,
		Guard: &netsetup.Guard{SSHConnection: os.Getenv("SSH_CONNECTION")}}
	sid, _ := unix.Getsid(0)
	t := &netsetup.Tryer{Runner: run, Sched: netsetup.HostScheduler(self), Timeout: o.timeout, SID: sid,
		Rollback: []string{self, "revert", "--if-unconfirmed"}}
	return t.Try(o.cfg)
}

func cmdConfirm(args []string, stdout io.Writer) error {
	o, err := parseFlags("confirm", args)
	if err != nil {
		return err
	}
	return o.result("confirm", stdout, func(out io.Writer) error {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		fs := netsetup.FS{Root: o.root}
		before, _ := netsetup.ReadTryState(fs)
		sid, _ := unix.Getsid(0)
		err = netsetup.Confirm(fs, netsetup.HostScheduler(self), out, sid, o.force)
		after, _ := netsetup.ReadTryState(fs)
		o.rec.Report.Try = netsetup.NewTryReport(after)
		// changed: this confirm turned a pending (or failed) try into a
		// confirmed one; "already confirmed" changes nothing
		o.extraChanged = err == nil && before != nil && before.Status != netsetup.TryConfirmed &&
			after != nil && after.Status == netsetup.TryConfirmed
		return err
	})
}

// cmdDelay is the hidden "__delay SECONDS CMD..." of the rollback without
// systemd (netsetup.Detached): sleep in our own session, then exec CMD.
func cmdDelay(args []string) error {
	if len(args) < 2 {
		return &usageError{"__delay SECONDS CMD..."}
	}
	secs, err := strconv.ParseFloat(args[0], 64)
	if err != nil || secs < 0 {
		return &usageError{fmt.Sprintf("__delay: bad seconds %q", args[0])}
	}
	signal.Ignore(syscall.SIGHUP)
	time.Sleep(time.Duration(secs * float64(time.Second)))
	return syscall.Exec(args[1], args[1:], os.Environ())
}

// cmdCheck runs the checks; --json prints a netsetup.CheckReport,
// --metrics-file writes it for node_exporter (also when the checks fail or
// cannot run: that is what monitoring wants to see).
func cmdCheck(args []string, out io.Writer) error {
	o, err := parseFlags("check", args)
	if err != nil {
		return err
	}
	if err := o.cfg.Validate(); err != nil {
		return err
	}
	res, err := runChecks(o)
	rep := netsetup.NewCheckReport(o.cfg, res, err, time.Now())
	var merr error
	if o.metricsFile != "" {
		merr = netsetup.WriteMetricsFile(o.metricsFile, rep)
	}
	if o.js {
		printJSON(out, rep)
	} else {
		for _, c := range res {
			fmt.Fprintln(out, c.String())
		}
	}
	switch {
	case err != nil:
		return err
	case merr != nil:
		return merr
	case !rep.OK:
		return &checkFailed{}
	}
	return nil
}

func runChecks(o *options) ([]netsetup.CheckResult, error) {
	r, _, done, err := setup(o, io.Discard)
	if err != nil {
		return nil, err
	}
	defer done()
	return (&netsetup.Checker{Reader: r}).Run(o.cfg)
}

func cmdRevert(args []string, stdout io.Writer) error {
	o, err := parseFlags("revert", args)
	if err != nil {
		return err
	}
	if !o.dryRun {
		surviveHangup()
	}
	return o.result("revert", stdout, func(out io.Writer) error { return revert(o, out) })
}

func revert(o *options, out io.Writer) error {
	r, env, done, err := setup(o, out)
	if err != nil {
		return err
	}
	defer done()
	if o.ifUnconfirmed {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		return netsetup.RevertIfUnconfirmed(r, env, netsetup.HostScheduler(self), out, o.dryRun)
	}
	return netsetup.Revert(r, env, out, o.dryRun)
}
