package config

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// MaxFileSize bounds the policy file. Real policies are a few KiB; the bound
// keeps a mistake (say, a log file symlinked here) from costing a login.
const MaxFileSize = 1 << 20

const usageTop = `The policy knows these top-level keys:

    default     = "mgmt"            # VRF for sessions no rule matches
    on_error    = "allow"           # or "deny": when the module fails for a session
    services    = ["sshd", "login"] # PAM services the module acts for
    nss_timeout = 5                 # seconds to wait for a user's groups

and rule tables:

    [user.alice]
    vrf = "mgmt"

    [group.netops]
    vrf = "mgmt"
    services = ["sshd"]          # optional`

const usageRule = `A rule table takes these keys:

    vrf      = "mgmt"     # required; "default" = the default VRF, "" = leave the session where it is
    services = ["sshd"]   # optional; only for these PAM services`

// Parse parses and validates the policy in data. It does not touch the file
// system; path is only used in errors and in Decision.Rule. Every error is an
// *Error naming path, line and key.
func Parse(path string, data []byte) (*Policy, error) {
	return parse(path, data, true)
}

// parse is Parse; without fast it finds lines by probes only (for tests).
func parse(path string, data []byte, fast bool) (*Policy, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{Path: path, Msg: fmt.Sprintf("larger than %d bytes", MaxFileSize)}
	}
	// Checked here rather than left to the TOML lexer so that the message
	// has a line number in every case.
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return nil, &Error{Path: path, Line: lineAt(data, i), Msg: "contains a NUL byte (TOML files must be UTF-8 text)"}
	}
	if i := invalidUTF8(data); i >= 0 {
		return nil, &Error{Path: path, Line: lineAt(data, i), Msg: fmt.Sprintf("invalid UTF-8 byte 0x%02x (TOML files must be UTF-8 text)", data[i])}
	}

	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		return nil, syntaxError(path, data, err)
	}
	ps := &parser{path: path, md: &md, children: childIndex(md.Keys())}
	if fast {
		ps.lines = keyLines(string(data), md.Keys())
	}
	return ps.policy(top)
}

func syntaxError(path string, data []byte, err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return &Error{Path: path, Msg: "syntax error: " + err.Error(), Err: err}
	}
	line := pe.Position.Line
	if line < 1 || line > lineAt(data, len(data)) {
		// The library reports line 0 for some errors at EOF (found by
		// FuzzParse); its byte offset is still good.
		line = lineAt(data, max(0, min(pe.Position.Start, len(data))))
	}
	return &Error{
		Path:  path,
		Line:  line,
		Msg:   "syntax error: " + pe.Message,
		Usage: usageOf(pe, lineAt(data, len(data))),
		Err:   err,
	}
}

// usageOf returns the library's long explanation of a syntax error, with
// the offending line quoted. ErrorWithUsage indexes the input by the
// error's line and column without checks and panics on the positions some
// errors have (FuzzParse found Line 0), so it is only called for positions
// inside the file, and a panic is turned into no usage text: a login must
// not fail over a hint.
func usageOf(pe toml.ParseError, nlines int) (usage string) {
	if pe.Position.Line < 1 || pe.Position.Line > nlines || pe.Position.Col < 1 {
		return ""
	}
	defer func() {
		if recover() != nil {
			usage = ""
		}
	}()
	return pe.ErrorWithUsage()
}

// lineAt returns the 1-based line of byte offset off in data.
func lineAt(data []byte, off int) int {
	return 1 + bytes.Count(data[:off], []byte{'\n'})
}

// invalidUTF8 returns the offset of the first byte that is not valid UTF-8,
// or -1.
func invalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// parser walks the decoded document in file order. Line numbers come from
// keyLines, or from the library via probes (see line).
type parser struct {
	path     string
	md       *toml.MetaData
	children map[string][]string // Key.String() of a table -> its keys in file order
	lines    map[string]int      // Key.String() -> line, from keyLines; nil: use probes
}

// childIndex records, for every table, the names of its keys in the order
// they first appear in the file. MetaData.Keys is in file order (the parser
// appends each key as it reads it), including keys in inline tables and
// dotted keys; the implicit tables of dotted keys show up as prefixes.
func childIndex(keys []toml.Key) map[string][]string {
	idx := make(map[string][]string)
	seen := make(map[string]bool)
	for _, k := range keys {
		for i := range k {
			if id := k[:i+1].String(); !seen[id] {
				seen[id] = true
				parent := k[:i].String()
				idx[parent] = append(idx[parent], k[i])
			}
		}
	}
	return idx
}

// ordered returns the keys of table m (at key) in file order. Keys the index
// somehow lacks are appended sorted, so that nothing escapes validation.
func (ps *parser) ordered(key toml.Key, m map[string]toml.Primitive) []string {
	var out []string
	done := make(map[string]bool, len(m))
	for _, name := range ps.children[key.String()] {
		if _, ok := m[name]; ok && !done[name] {
			done[name] = true
			out = append(out, name)
		}
	}
	var rest []string
	for name := range m {
		if !done[name] {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// lineProbe makes the TOML library report where a key is: MetaData keeps
// each key's position privately, but wraps an Unmarshaler's error in a
// toml.ParseError carrying that position.
type lineProbe struct{}

var errProbe = errors.New("line probe")

func (*lineProbe) UnmarshalTOML(any) error { return errProbe }

// line returns the line of key, whose value is p: for `k = v` the line of
// the key, for `[table]` the header's line. It is 0 for tables that are only
// implied by `[a.b]` or `a.b = v`; callers fall back to a child's line.
func (ps *parser) line(key toml.Key, p toml.Primitive) int {
	if ps.lines != nil {
		return ps.lines[key.String()]
	}
	return probeLine(ps.md, p)
}

// probeLine asks the library for the line of the key behind p.
func probeLine(md *toml.MetaData, p toml.Primitive) int {
	var pe toml.ParseError
	if err := md.PrimitiveDecode(p, &lineProbe{}); errors.As(err, &pe) {
		return pe.Position.Line
	}
	return 0
}

// tableLine is the line of table p, or of its first key if the table is
// only implied (e.g. by `user.alice.vrf = "x"`).
func (ps *parser) tableLine(key toml.Key, p toml.Primitive, fields map[string]toml.Primitive, order []string) int {
	if l := ps.line(key, p); l > 0 {
		return l
	}
	for _, f := range order {
		if l := ps.line(append(key[:len(key):len(key)], f), fields[f]); l > 0 {
			return l
		}
	}
	return 0
}

// value returns the plain Go value of p. Decoding into `any` cannot fail.
func (ps *parser) value(p toml.Primitive) any {
	var v any
	_ = ps.md.PrimitiveDecode(p, &v)
	return v
}

func (ps *parser) errAt(p toml.Primitive, key toml.Key, usage, format string, args ...any) *Error {
	return &Error{Path: ps.path, Line: ps.line(key, p), Key: key.String(), Msg: fmt.Sprintf(format, args...), Usage: usage}
}

// table decodes p as a table of further primitives.
func (ps *parser) table(p toml.Primitive, key toml.Key, usage string) (map[string]toml.Primitive, error) {
	if v := ps.value(p); !isTable(v) {
		return nil, ps.errAt(p, key, usage, "must be a table, not %s", typeName(v))
	}
	var m map[string]toml.Primitive
	if err := ps.md.PrimitiveDecode(p, &m); err != nil {
		return nil, ps.errAt(p, key, usage, "%v", err)
	}
	return m, nil
}

func isTable(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	}
	return "a date/time" // the only TOML type left
}

func (ps *parser) str(p toml.Primitive, key toml.Key, usage string) (string, error) {
	v := ps.value(p)
	s, ok := v.(string)
	if !ok {
		return "", ps.errAt(p, key, usage, "must be a string, not %s", typeName(v))
	}
	return s, nil
}

// services parses a list of PAM service names. An empty list is refused:
// at top level it would disable the module, in a rule it would never match;
// both are better said by removing the line.
func (ps *parser) services(p toml.Primitive, key toml.Key, usage string) ([]string, error) {
	v := ps.value(p)
	list, ok := v.([]any)
	if !ok {
		return nil, ps.errAt(p, key, usage, "must be an array of PAM service names like [\"sshd\"], not %s", typeName(v))
	}
	if len(list) == 0 {
		return nil, ps.errAt(p, key, usage, "empty list (remove the key instead)")
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, ps.errAt(p, key, usage, "entry %d must be a string, not %s", i+1, typeName(e))
		}
		if err := validName(s); err != nil {
			return nil, ps.errAt(p, key, usage, "entry %d: invalid service: %v", i+1, err)
		}
		if strings.ContainsFunc(s, unicode.IsSpace) {
			return nil, ps.errAt(p, key, usage, "entry %d: invalid service %q: contains whitespace", i+1, s)
		}
		if why, bad := RefusedServices[s]; bad {
			return nil, ps.errAt(p, key, "", "entry %d: service %q is refused: %s", i+1, s, why)
		}
		out = append(out, s)
	}
	return out, nil
}

func (ps *parser) policy(top map[string]toml.Primitive) (*Policy, error) {
	pol := &Policy{Path: ps.path, Exists: true}
	for _, name := range ps.ordered(nil, top) {
		p, key := top[name], toml.Key{name}
		switch name {
		case "default":
			s, err := ps.str(p, key, usageTop)
			if err != nil {
				return nil, err
			}
			// `default = ""` reads as "no default": both leave unmatched
			// sessions in the default VRF, so there is nothing to refuse.
			if s == "" {
				continue
			}
			if err := ValidVRFName(s); err != nil {
				return nil, ps.errAt(p, key, "", "invalid VRF name %q: %v", s, err)
			}
			pol.Default, pol.DefaultLine = &s, ps.line(key, p)
		case "on_error":
			s, err := ps.str(p, key, usageTop)
			if err != nil {
				return nil, err
			}
			oe, ok := ParseOnError(s)
			if !ok {
				return nil, ps.errAt(p, key, `on_error = "allow"  # the session continues unbound, and is told (default)
on_error = "deny"   # the session is refused (for sites that confine users by VRF)`, `must be "allow" or "deny", not %q`, s)
			}
			pol.OnError, pol.OnErrorLine = oe, ps.line(key, p)
		case "nss_timeout":
			d, err := ps.seconds(p, key)
			if err != nil {
				return nil, err
			}
			pol.NSSTimeout = d
		case "services":
			list, err := ps.services(p, key, usageTop)
			if err != nil {
				return nil, err
			}
			pol.Services = list
		case KindUser, KindGroup:
			rules, err := ps.rules(name, p)
			if err != nil {
				return nil, err
			}
			if name == KindGroup {
				pol.Groups = rules
				continue
			}
			pol.Users = make(map[string]Rule, len(rules))
			for _, r := range rules {
				pol.Users[r.Name] = r
			}
		default:
			return nil, ps.errAt(p, key, usageTop, "unknown key")
		}
	}
	if pol.Services == nil {
		pol.Services = slices.Clone(DefaultServices)
	}
	return pol, nil
}

// seconds parses nss_timeout: a positive number of seconds up to
// MaxNSSTimeout, integer or float.
func (ps *parser) seconds(p toml.Primitive, key toml.Key) (time.Duration, error) {
	const usage = "nss_timeout = 5      # seconds; 0.5 is fine too"
	var f float64
	switch v := ps.value(p).(type) {
	case int64:
		f = float64(v)
	case float64:
		f = v
	default:
		return 0, ps.errAt(p, key, usage, "must be a number of seconds, not %s", typeName(v))
	}
	d := time.Duration(f * float64(time.Second))
	if !(f > 0) || d < time.Millisecond || d > MaxNSSTimeout {
		return 0, ps.errAt(p, key, usage, "must be between 0.001 and %d seconds, not %v", int(MaxNSSTimeout/time.Second), f)
	}
	return d, nil
}

// rules parses the [user.*] or [group.*] tables, in file order.
func (ps *parser) rules(kind string, p toml.Primitive) ([]Rule, error) {
	tbl, err := ps.table(p, toml.Key{kind}, usageTop)
	if err != nil {
		return nil, err
	}
	var rules []Rule
	for _, name := range ps.ordered(toml.Key{kind}, tbl) {
		rp, key := tbl[name], toml.Key{kind, name}
		fields, err := ps.table(rp, key, usageRule)
		if err != nil {
			return nil, err
		}
		order := ps.ordered(key, fields)
		r := Rule{Kind: kind, Name: name, Line: ps.tableLine(key, rp, fields, order)}
		if err := validName(name); err != nil {
			return nil, &Error{Path: ps.path, Line: r.Line, Key: key.String(), Msg: "invalid " + kind + " " + err.Error()}
		}
		hasVRF := false
		for _, f := range order {
			fp, fk := fields[f], append(key[:2:2], f)
			switch f {
			case "vrf":
				if r.VRF, err = ps.str(fp, fk, usageRule); err != nil {
					return nil, err
				}
				// "" is the explicit "leave the session where it
				// is"; DefaultVRF passes ValidVRFName.
				if r.VRF != "" {
					if err := ValidVRFName(r.VRF); err != nil {
						return nil, ps.errAt(fp, fk, "", "invalid VRF name %q: %v", r.VRF, err)
					}
				}
				hasVRF = true
			case "services":
				if r.Services, err = ps.services(fp, fk, usageRule); err != nil {
					return nil, err
				}
			default:
				return nil, ps.errAt(fp, fk, usageRule, "unknown key")
			}
		}
		if !hasVRF {
			return nil, &Error{Path: ps.path, Line: r.Line, Key: key.String(),
				Msg: `missing "vrf" (vrf = "default" puts these sessions into the default VRF; vrf = "" leaves them where they are)`, Usage: usageRule}
		}
		rules = append(rules, r)
	}
	return rules, nil
}
