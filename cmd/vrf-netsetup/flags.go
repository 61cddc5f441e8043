package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pam-vrf/pam-vrf/netsetup"
)

// options are the parsed flags; set records which ones were given so they
// override the config file and nothing else does.
type options struct {
	cfg                      netsetup.Config
	set                      map[string]bool
	configPath               string
	root                     string
	dryRun, force, quiet, js bool
	nameservers              []string
	services                 []string
	timeout                  time.Duration // try
	ifUnconfirmed            bool          // revert
	exitChanged              bool          // apply, try, revert: exit 3 when changed
	dnsOnly                  bool          // apply: the nameserver steps only
	metricsFile              string        // check
	// rec records plans and step outcomes for --json and --exit-changed
	// (setup hooks it into the Env).
	rec *netsetup.Recorder
	// extraChanged: a change made outside the recorded steps (confirm).
	extraChanged bool
}

// DefaultTryTimeout is how long try waits for confirm.
const DefaultTryTimeout = 120 * time.Second

func parseFlags(cmd string, args []string) (*options, error) {
	o := &options{set: map[string]bool{}}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var vrf, iface, dns, sshd, query, listener, table string
	fs.StringVar(&vrf, "vrf", "", "")
	fs.StringVar(&table, "table", "", "")
	fs.StringVar(&iface, "iface", "", "")
	fs.StringVar(&dns, "dns", "", "")
	fs.StringVar(&sshd, "sshd", "", "")
	fs.StringVar(&query, "query-name", "", "")
	fs.StringVar(&listener, "resolved-listener", "", "")
	fs.Func("nameserver", "", func(s string) error {
		for _, x := range strings.Split(s, ",") {
			if x = strings.TrimSpace(x); x != "" {
				o.nameservers = append(o.nameservers, x)
			}
		}
		return nil
	})
	fs.Func("service", "", func(s string) error {
		for _, x := range strings.Split(s, ",") {
			if x = strings.TrimSpace(x); x != "" {
				o.services = append(o.services, x)
			}
		}
		return nil
	})
	fs.StringVar(&o.configPath, "config", "", "")
	fs.StringVar(&o.root, "root", "/", "")
	fs.BoolVar(&o.dryRun, "dry-run", false, "")
	fs.BoolVar(&o.force, "force", false, "")
	fs.BoolVar(&o.quiet, "quiet", false, "")
	fs.BoolVar(&o.js, "json", false, "")
	fs.BoolVar(&o.exitChanged, "exit-changed", false, "")
	fs.StringVar(&o.metricsFile, "metrics-file", "", "")
	var timeout string
	fs.StringVar(&timeout, "timeout", "", "")
	fs.BoolVar(&o.ifUnconfirmed, "if-unconfirmed", false, "")
	fs.BoolVar(&o.dnsOnly, "dns-only", false, "")
	if err := fs.Parse(args); err != nil {
		return nil, &usageError{strings.TrimSpace(err.Error()) + " (see vrf-netsetup help)"}
	}
	if fs.NArg() > 0 {
		return nil, &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	for name, only := range map[string]string{"timeout": "try", "if-unconfirmed": "revert", "metrics-file": "check", "dns-only": "apply"} {
		if o.set[name] && cmd != only {
			return nil, &netsetup.FlagError{Flag: name, Msg: "only valid with " + only}
		}
	}
	if o.set["exit-changed"] && cmd != "apply" && cmd != "try" && cmd != "revert" && cmd != "confirm" {
		return nil, &netsetup.FlagError{Flag: "exit-changed", Msg: "only valid with apply, try, revert and confirm (check's exit status already says pass or fail)"}
	}
	if o.set["metrics-file"] && o.metricsFile == "" {
		return nil, &netsetup.FlagError{Flag: "metrics-file", Msg: "needs a file name"}
	}
	o.timeout = DefaultTryTimeout
	if o.set["timeout"] {
		d, err := parseTimeout(timeout)
		if err != nil {
			return nil, &netsetup.FlagError{Flag: "timeout", Msg: err.Error()}
		}
		o.timeout = d
	}

	// defaults < config file < flags
	c := netsetup.Defaults()
	path, optional := o.configPath, false
	if path == "" {
		path, optional = o.rootPath(netsetup.DefaultConfigPath), true
	}
	c, err := netsetup.LoadConfigFile(path, c, optional)
	if err != nil {
		return nil, err
	}
	if o.set["vrf"] {
		c.VRF = vrf
	}
	if o.set["table"] {
		n, err := strconv.ParseUint(table, 10, 32)
		if err != nil {
			return nil, &netsetup.FlagError{Flag: "table", Msg: fmt.Sprintf("%q is not a table number", table)}
		}
		c.Table = uint32(n)
	}
	if o.set["iface"] {
		c.Iface = iface
	}
	if o.set["dns"] {
		c.DNS = dns
	}
	if o.set["sshd"] {
		c.SSHD = sshd
	}
	if o.set["query-name"] {
		c.QueryName = query
	}
	if o.set["resolved-listener"] {
		c.ResolvedListener = listener
	}
	if o.set["nameserver"] {
		c.Nameservers = o.nameservers
	}
	// like --nameserver, the flags replace the file's list (a unit left
	// out is unbound again); "chrony" is stored as "chrony.service"
	if o.set["service"] {
		c.Services = o.services
	}
	if c.Services, err = netsetup.NormalizeServices(c.Services); err != nil {
		return nil, err
	}
	o.cfg = c
	return o, nil
}

// parseTimeout takes a Go duration ("90s", "2m") or plain seconds ("120").
func parseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, aerr := strconv.ParseUint(s, 10, 32)
		if aerr != nil {
			return 0, fmt.Errorf("%q is not a duration (e.g. 120s, 5m)", s)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 5*time.Second || d > 24*time.Hour {
		return 0, fmt.Errorf("%s: want between 5s and 24h (time to log in again and confirm)", d)
	}
	return d, nil
}

func (o *options) rootPath(p string) string {
	return netsetup.FS{Root: o.root}.P(p)
}
