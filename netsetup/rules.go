package netsetup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Rule is one FIB rule, parsed from a raw RTM_GETRULE dump. We parse rules
// ourselves because netlink.Rule has no FRA_L3MDEV field: an l3mdev rule would
// look like a plain "lookup 0" rule.
type Rule struct {
	Family int    `json:"family"` // unix.AF_INET / AF_INET6
	Pref   uint32 `json:"pref"`
	Table  uint32 `json:"table,omitempty"`
	L3mdev bool   `json:"l3mdev,omitempty"`
	Action uint8  `json:"action"`        // FR_ACT_TO_TBL = 1
	Dst    string `json:"dst,omitempty"` // prefix, e.g. "192.0.2.53/32"
	Iif    string `json:"iif,omitempty"`
	Oif    string `json:"oif,omitempty"`
	// Proto is the FRA_PROTOCOL sent when adding (not parsed from dumps).
	// Rules that stand in for the kernel's own (local at pref 0, l3mdev)
	// are added as RTPROT_KERNEL: systemd-networkd (ManageForeignRouting-
	// PolicyRules=yes) deletes every other rule it did not configure when it
	// (re)configures a link - seen in the test guest after revert: the
	// restored "0: from all lookup local" vanished at `networkctl reload`,
	// leaving no local rule, and 127.0.0.53 unreachable.
	Proto uint8 `json:"-"`
	// Other is true when the rule has selectors we don't model (src, oif,
	// fwmark, uid range, ports, ...): such a rule is never "the" local rule.
	Other bool `json:"other,omitempty"`
}

// FIB rule actions (linux/fib_rules.h).
const (
	frActToTbl       = 1
	frActUnreachable = 7
)

// actionOf: the kernel reports FR_ACT_TO_TBL for a rule added with action 0.
func actionOf(r Rule) uint8 {
	if r.Action == 0 {
		return frActToTbl
	}
	return r.Action
}

// guardRules keep the VRF's lookups inside it: a lookup for the VRF (its
// sockets have oif VRF, its received packets iif VRF) that misses the VRF
// table ends at pref PrefVRFGuard instead of falling through to the local
// and main tables, which would leak management traffic out of the default
// VRF. They replace the "unreachable default" route in the VRF table that
// vrf.rst suggests, because a route outlives the VRF: after `ip link del
// mgmt` (or a VRF that never came up) it stayed in the table, and the DNS
// steering rule (to SERVER iif lo lookup TABLE) then blackholed all locally
// originated traffic to the DNS server. A rule naming a device is inert
// while the device does not exist and comes back with it. Added as
// RTPROT_KERNEL, so networkd leaves them alone (see Rule.Proto).
func guardRules(vrf string, fam int) []Rule {
	return []Rule{
		{Family: fam, Pref: PrefVRFGuard, Iif: vrf, Action: frActUnreachable, Proto: unix.RTPROT_KERNEL},
		{Family: fam, Pref: PrefVRFGuard, Oif: vrf, Action: frActUnreachable, Proto: unix.RTPROT_KERNEL},
	}
}

// sameRule: r and x select and act alike (Proto aside: dumps do not carry it).
func sameRule(x, r Rule) bool {
	return x.Family == r.Family && x.Pref == r.Pref && x.L3mdev == r.L3mdev && x.Table == r.Table && x.Dst == r.Dst && x.Iif == r.Iif && x.Oif == r.Oif && actionOf(x) == actionOf(r) && !x.Other
}

// String renders the rule like `ip rule`.
func (r Rule) String() string {
	s := fmt.Sprintf("%s %d: from all", famName(r.Family), r.Pref)
	if r.Dst != "" {
		s += " to " + r.Dst
	}
	if r.Iif != "" {
		s += " iif " + r.Iif
	}
	if r.Oif != "" {
		s += " oif " + r.Oif
	}
	switch {
	case r.Action == frActUnreachable:
		s += " unreachable"
	case r.L3mdev:
		s += " lookup [l3mdev-table]"
	case r.Table == unix.RT_TABLE_LOCAL:
		s += " lookup local"
	default:
		s += fmt.Sprintf(" lookup %d", r.Table)
	}
	if r.Other {
		s += " (+selectors)"
	}
	return s
}

func famName(f int) string {
	if f == unix.AF_INET6 {
		return "ipv6"
	}
	return "ipv4"
}

// IsLocal: the plain "lookup local" rule.
func (r Rule) IsLocal() bool {
	return r.Table == unix.RT_TABLE_LOCAL && !r.L3mdev && r.Dst == "" && r.Iif == "" && r.Oif == "" && !r.Other && r.Action == frActToTbl
}

// IsL3mdev: the plain "l3mdev-table" rule.
func (r Rule) IsL3mdev() bool {
	return r.L3mdev && r.Dst == "" && r.Iif == "" && r.Oif == "" && !r.Other && r.Action == frActToTbl
}

// RuleList dumps the rules of one family.
func (n *Net) RuleList(family int) ([]Rule, error) {
	for try := 0; ; try++ {
		rules, err := n.ruleDump(family)
		if errors.Is(err, nl.ErrDumpInterrupted) && try < 5 {
			continue
		}
		return rules, err
	}
}

func (n *Net) ruleDump(family int) ([]Rule, error) {
	msgs, err := n.dumpRt(unix.RTM_GETRULE, unix.RTM_NEWRULE, family, "rules")
	if err != nil {
		return nil, err
	}
	var out []Rule
	for _, m := range msgs {
		if len(m) < 12 {
			continue
		}
		hdr := nl.DeserializeRtMsg(m)
		r := Rule{Family: int(hdr.Family), Table: uint32(hdr.Table), Action: hdr.Type}
		if hdr.Tos != 0 || hdr.Flags&unix.FIB_RULE_INVERT != 0 || hdr.Src_len != 0 {
			r.Other = true
		}
		attrs, err := nl.ParseRouteAttr(m[12:])
		if err != nil {
			return nil, fmt.Errorf("parse rule: %w", err)
		}
		for _, a := range attrs {
			switch a.Attr.Type {
			case nl.FRA_PRIORITY:
				r.Pref = binary.NativeEndian.Uint32(a.Value)
			case nl.FRA_TABLE:
				r.Table = binary.NativeEndian.Uint32(a.Value)
			case nl.FRA_L3MDEV:
				r.L3mdev = len(a.Value) > 0 && a.Value[0] != 0
			case nl.FRA_DST:
				if ip, ok := netip.AddrFromSlice(a.Value); ok {
					r.Dst = netip.PrefixFrom(ip.Unmap(), int(hdr.Dst_len)).String()
				}
			case nl.FRA_IIFNAME:
				r.Iif = cstring(a.Value)
			case nl.FRA_OIFNAME:
				r.Oif = cstring(a.Value)
			case nl.FRA_PROTOCOL, nl.FRA_SUPPRESS_PREFIXLEN, nl.FRA_SUPPRESS_IFGROUP, unix.FRA_UNSPEC:
				// not selectors
			default:
				r.Other = true
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// ruleMsg builds an RTM_NEWRULE/RTM_DELRULE for the fields we model.
func (n *Net) ruleMsg(typ, flags int, r Rule) (*nl.NetlinkRequest, error) {
	req := n.request(typ, flags|unix.NLM_F_ACK)
	msg := nl.NewRtMsg()
	msg.Family = uint8(r.Family)
	msg.Protocol, msg.Scope = 0, 0 // fib_rule_hdr res1/res2
	msg.Type = r.Action
	if msg.Type == 0 {
		msg.Type = frActToTbl
	}
	msg.Table = unix.RT_TABLE_UNSPEC
	if r.Table < 256 {
		msg.Table = uint8(r.Table)
	}
	var attrs []*nl.RtAttr
	if r.Dst != "" {
		p, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			return nil, fmt.Errorf("rule dst %q: %w", r.Dst, err)
		}
		msg.Dst_len = uint8(p.Bits())
		attrs = append(attrs, nl.NewRtAttr(nl.FRA_DST, p.Addr().AsSlice()))
	}
	if r.Iif != "" {
		attrs = append(attrs, nl.NewRtAttr(nl.FRA_IIFNAME, append([]byte(r.Iif), 0)))
	}
	if r.Oif != "" {
		attrs = append(attrs, nl.NewRtAttr(nl.FRA_OIFNAME, append([]byte(r.Oif), 0)))
	}
	attrs = append(attrs, nl.NewRtAttr(nl.FRA_PRIORITY, nl.Uint32Attr(r.Pref)))
	if r.Table > 0 {
		attrs = append(attrs, nl.NewRtAttr(nl.FRA_TABLE, nl.Uint32Attr(r.Table)))
	}
	if r.L3mdev {
		attrs = append(attrs, nl.NewRtAttr(nl.FRA_L3MDEV, []byte{1}))
	}
	if r.Proto != 0 && typ == unix.RTM_NEWRULE {
		attrs = append(attrs, nl.NewRtAttr(nl.FRA_PROTOCOL, []byte{r.Proto}))
	}
	req.AddData(msg)
	for _, a := range attrs {
		req.AddData(a)
	}
	return req, nil
}

// RuleAdd adds r; an identical existing rule (EEXIST) counts as success.
func (n *Net) RuleAdd(r Rule) error {
	req, err := n.ruleMsg(unix.RTM_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, r)
	if err != nil {
		return err
	}
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add rule %q: %w", r, err)
	}
	return nil
}

// RuleDel deletes the rule matching r; a missing rule (ENOENT) is success.
func (n *Net) RuleDel(r Rule) error {
	req, err := n.ruleMsg(unix.RTM_DELRULE, 0, r)
	if err != nil {
		return err
	}
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("delete rule %q: %w", r, err)
	}
	return nil
}
