package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

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
}

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
	fs.StringVar(&o.configPath, "config", "", "")
	fs.StringVar(&o.root, "root", "/", "")
	fs.BoolVar(&o.dryRun, "dry-run", false, "")
	fs.BoolVar(&o.force, "force", false, "")
	fs.BoolVar(&o.quiet, "quiet", false, "")
	fs.BoolVar(&o.js, "json", false, "")
	if err := fs.Parse(args); err != nil {
		return nil, &usageError{strings.TrimSpace(err.Error()) + " (see vrf-netsetup help)"}
	}
	if fs.NArg() > 0 {
		return nil, &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })

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
	o.cfg = c
	return o, nil
}

func (o *options) rootPath(p string) string {
	return netsetup.FS{Root: o.root}.P(p)
}
