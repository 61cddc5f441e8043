package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/pam-vrf/pam-vrf/netsetup"
	"github.com/vishvananda/netns"
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
	r := &netsetup.Reader{Net: n, FS: fs, Sysctl: sc, Svc: svc, HostRoot: "/"}
	env := &netsetup.Env{Net: n, FS: fs, Sysctl: sc, Svc: svc, Mod: netsetup.Modprobe{}, Out: out}
	return r, env, n.Close, nil
}

func cmdApply(args []string, out io.Writer) error {
	o, err := parseFlags("apply", args)
	if err != nil {
		return err
	}
	if err := o.cfg.Validate(); err != nil {
		return err
	}
	r, env, done, err := setup(o, out)
	if err != nil {
		return err
	}
	defer done()
	run := &netsetup.Runner{Reader: r, Env: env, Out: out, DryRun: o.dryRun, Force: o.force, Quiet: o.quiet,
		Guard: &netsetup.Guard{SSHConnection: os.Getenv("SSH_CONNECTION")}}
	return run.Apply(o.cfg)
}

func cmdCheck(args []string, out io.Writer) error {
	o, err := parseFlags("check", args)
	if err != nil {
		return err
	}
	if err := o.cfg.Validate(); err != nil {
		return err
	}
	r, _, done, err := setup(o, out)
	if err != nil {
		return err
	}
	defer done()
	res, err := (&netsetup.Checker{Reader: r}).Run(o.cfg)
	if err != nil {
		return err
	}
	failed := false
	for _, c := range res {
		failed = failed || !c.OK
	}
	if o.js {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"ok": !failed, "checks": res})
	} else {
		for _, c := range res {
			fmt.Fprintln(out, c.String())
		}
	}
	if failed {
		return checkFailed{}
	}
	return nil
}

func cmdRevert(args []string, out io.Writer) error {
	o, err := parseFlags("revert", args)
	if err != nil {
		return err
	}
	r, env, done, err := setup(o, out)
	if err != nil {
		return err
	}
	defer done()
	return netsetup.Revert(r, env, out, o.dryRun)
}
