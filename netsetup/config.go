package netsetup

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

// DefaultConfigPath is where apply persists its settings so the boot unit and
// the dhclient hook re-apply exactly what the admin asked for.
const DefaultConfigPath = "/etc/pam-vrf/netsetup.toml"

// DNS modes (see dns.go for what each one does and why).
const (
	DNSAuto     = "auto"
	DNSStatic   = "static"
	DNSResolved = "resolved"
	DNSNone     = "none"
)

// sshd reachability modes.
const (
	SSHDAnyVRF  = "any-vrf"  // sshd stays in the default VRF, l3mdev accept sysctls on
	SSHDVRFOnly = "vrf-only" // sshd bound to the VRF, sysctls untouched
)

// UnreachableMetric is the metric of the unreachable default route that
// vrf-netsetup before the guard rules (see guardRules) put into the VRF
// table, as vrf.rst and Cumulus do; apply removes it.
const UnreachableMetric = 4278198272

// Rule preferences. The kernel adds the l3mdev rule at 1000 on the first VRF;
// the local table has to come after it, at 32765 (ifupdown2/Cumulus), else
// addresses local to the default VRF shadow the VRF tables.
//
// The DNS steering rules (to NS iif lo lookup TABLE) come after the l3mdev
// rule, not at 99 as Cumulus puts them: "iif lo" matches every locally
// originated packet, including those of sockets bound to another VRF (the
// kernel keeps flowi_iif = lo for them and moves the VRF into
// flowi_l3mdev), so at 99 they took another VRF's queries to the same
// server into our table. After 1000 that VRF's own table answers first;
// default-VRF traffic has no l3mdev and still reaches the rule.
const (
	PrefL3mdev        = 1000
	PrefVRFGuard      = 1001 // right after the l3mdev rule: see guardRules
	PrefDNSRule       = 1002
	PrefDNSRuleLegacy = 99 // releases before: apply moves such rules of our table to PrefDNSRule
	PrefLocalNew      = 32765
	PrefLocalOrig     = 0
)

// DefaultResolvedListener is the extra resolved stub address used by DNS mode
// "resolved". It is in 127/8, which is local both on lo (default VRF) and on
// the VRF device (it holds 127.0.0.1/8), and it differs from 127.0.0.53/54
// (resolved's own, lo-bound stubs) and 127.0.1.1 (Debian's hostname address).
const DefaultResolvedListener = "127.0.0.153"

// Config is the desired state. It is read from the TOML file and overridden by
// flags; the same struct is written back to DefaultConfigPath.
type Config struct {
	VRF              string   `toml:"vrf"`
	Table            uint32   `toml:"table"`
	Iface            string   `toml:"iface"`
	DNS              string   `toml:"dns"`
	Nameservers      []string `toml:"nameservers,omitempty"`
	SSHD             string   `toml:"sshd"`
	QueryName        string   `toml:"query_name,omitempty"`
	ResolvedListener string   `toml:"resolved_listener,omitempty"`
	// Services are systemd units whose sockets are bound to the VRF
	// (--service, services.go), normalised: "chrony" is "chrony.service".
	Services []string `toml:"services,omitempty"`
}

// Defaults returns the settings used when neither file nor flag sets a value.
func Defaults() Config {
	return Config{VRF: "mgmt", Table: 1000, DNS: DNSAuto, SSHD: SSHDAnyVRF, QueryName: ".", ResolvedListener: DefaultResolvedListener}
}

// FlagError names the flag (or config key) whose value is invalid; the CLI
// turns it into exit status 2.
type FlagError struct {
	Flag string
	Msg  string
}

func (e *FlagError) Error() string { return fmt.Sprintf("invalid --%s: %s", e.Flag, e.Msg) }

// Validate checks every field and returns the first problem as a *FlagError.
func (c *Config) Validate() error {
	if err := validIfName(c.VRF); err != nil {
		return &FlagError{"vrf", err.Error()}
	}
	// Tables 0 and 253-255 are unspec/default/main/local; 0xffffffff is reserved.
	if c.Table == 0 || (c.Table >= 252 && c.Table <= 255) || c.Table == 0xffffffff {
		return &FlagError{"table", fmt.Sprintf("%d is reserved (use e.g. 1000)", c.Table)}
	}
	if c.Iface == "" {
		return &FlagError{"iface", "missing: name the management interface, e.g. --iface eth0"}
	}
	if err := validIfName(c.Iface); err != nil {
		return &FlagError{"iface", err.Error()}
	}
	if c.Iface == c.VRF {
		return &FlagError{"iface", "must differ from --vrf"}
	}
	switch c.DNS {
	case DNSAuto, DNSStatic, DNSResolved, DNSNone:
	default:
		return &FlagError{"dns", fmt.Sprintf("%q: want auto, static, resolved or none", c.DNS)}
	}
	for _, ns := range c.Nameservers {
		a, err := netip.ParseAddr(ns)
		if err != nil || a.Zone() != "" {
			return &FlagError{"nameserver", fmt.Sprintf("%q is not an IP address", ns)}
		}
	}
	switch c.SSHD {
	case SSHDAnyVRF, SSHDVRFOnly:
	default:
		return &FlagError{"sshd", fmt.Sprintf("%q: want any-vrf or vrf-only", c.SSHD)}
	}
	if c.QueryName == "" {
		return &FlagError{"query-name", "empty"}
	}
	a, err := netip.ParseAddr(c.ResolvedListener)
	if err != nil || !a.Is4() || !netip.MustParsePrefix("127.0.0.0/8").Contains(a) ||
		a == netip.MustParseAddr("127.0.0.53") || a == netip.MustParseAddr("127.0.0.54") {
		return &FlagError{"resolved-listener", fmt.Sprintf("%q: want an IPv4 address in 127.0.0.0/8 other than 127.0.0.53/54", c.ResolvedListener)}
	}
	for _, u := range c.Services {
		if _, err := NormalizeUnit(u); err != nil {
			return &FlagError{"service", err.Error()}
		}
	}
	return nil
}

// validIfName mirrors the kernel's dev_valid_name: <= 15 bytes, no '/',
// no whitespace or ':', not "." or "..".
func validIfName(n string) error {
	switch {
	case n == "":
		return fmt.Errorf("empty name")
	case len(n) > 15:
		return fmt.Errorf("%q longer than 15 bytes (IFNAMSIZ)", n)
	case n == "." || n == "..":
		return fmt.Errorf("%q is not a device name", n)
	case strings.ContainsAny(n, "/: \t\n\x00"):
		return fmt.Errorf("%q contains '/', ':', whitespace or NUL", n)
	}
	return nil
}

// LoadConfigFile merges the TOML file at path over base. A missing file is not
// an error when optional is true (the default path may not exist yet).
func LoadConfigFile(path string, base Config, optional bool) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if optional && os.IsNotExist(err) {
			return base, nil
		}
		return base, fmt.Errorf("read config %s: %w", path, err)
	}
	c := base
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return base, fmt.Errorf("parse config %s: %w (fix the file or pass settings as flags)", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return base, &FlagError{"config", fmt.Sprintf("%s: unknown key %q", path, und[0].String())}
	}
	return c, nil
}

// EncodeConfig renders the config file content persisted by apply.
func EncodeConfig(c Config) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by vrf-netsetup apply; re-applied at boot by pam-vrf-netsetup.service.\n")
	_ = toml.NewEncoder(&b).Encode(c)
	return b.Bytes()
}
