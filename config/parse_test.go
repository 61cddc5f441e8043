package config

import (
	"errors"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestParseErrors(t *testing.T) {
	const path = "/etc/security/pam_vrf.toml"
	long := strings.Repeat("u", MaxNameLen+1)
	tests := []struct {
		name, doc, want string
	}{
		{"syntax error", "default = \"mgmt\"\n[user.alice\nvrf = \"x\"\n",
			// The library counts the newline it stumbled on to the next line.
			path + ":3: syntax error: expected '.' or ']' to end table name, but got '\\n' instead"},
		{"syntax error: duplicate table", "[user.a]\nvrf = \"x\"\n\n[user.a]\nvrf = \"y\"\n",
			path + ":4: syntax error: Key 'user.a' has already been defined."},
		{"NUL byte", "default = \"mgmt\"\n# x\x00y\n",
			path + ":2: contains a NUL byte (TOML files must be UTF-8 text)"},
		{"invalid UTF-8", "# ok\n\n# \xff\n",
			path + ":3: invalid UTF-8 byte 0xff (TOML files must be UTF-8 text)"},
		{"unknown top-level key", "default = \"mgmt\"\n\ndefualt = \"x\"\n",
			path + ":3: defualt: unknown key"},
		{"unknown key in rule", "[group.netops]\nvrf = \"mgmt\"\nservice = [\"sshd\"]\n",
			path + ":3: group.netops.service: unknown key"},
		{"unknown sub-table in rule", "[user.alice]\nvrf = \"mgmt\"\n[user.alice.x]\n",
			path + ":3: user.alice.x: unknown key"},
		{"wrong type: vrf", "[user.alice]\nvrf = 5\n",
			path + ":2: user.alice.vrf: must be a string, not an integer"},
		{"wrong type: default", "default = true\n",
			path + ":1: default: must be a string, not a boolean"},
		{"wrong type: on_error", "on_error = [\"deny\"]\n",
			path + ":1: on_error: must be a string, not an array"},
		{"wrong type: services", "services = \"sshd\"\n",
			path + ":1: services: must be an array of PAM service names like [\"sshd\"], not a string"},
		{"wrong type: services entry", "[group.g]\nvrf = \"v\"\nservices = [\"sshd\", 1.5]\n",
			path + ":3: group.g.services: entry 2 must be a string, not a float"},
		{"empty services", "services = []\n",
			path + ":1: services: empty list (remove the key instead)"},
		{"bad service name", "services = [\"ss hd\"]\n",
			path + ":1: services: entry 1: invalid service \"ss hd\": contains whitespace"},
		{"wrong type: user", "user = \"alice\"\n",
			path + ":1: user: must be a table, not a string"},
		{"wrong type: user rule", "[user]\nalice = \"mgmt\"\n",
			path + ":2: user.alice: must be a table, not a string"},
		{"array of tables", "[[group]]\nvrf = \"x\"\n",
			path + ":1: group: must be a table, not an array of tables"},
		{"date", "default = 1979-05-27\n",
			path + ":1: default: must be a string, not a date/time"},
		{"missing vrf", "default = \"mgmt\"\n\n[group.netops]\nservices = [\"sshd\"]\n",
			path + ":3: group.netops: missing \"vrf\" (vrf = \"default\" puts these sessions into the default VRF; vrf = \"\" leaves them where they are)"},
		{"missing vrf, empty inline", "[user]\nbob = {}\n",
			path + ":2: user.bob: missing \"vrf\" (vrf = \"default\" puts these sessions into the default VRF; vrf = \"\" leaves them where they are)"},
		{"bad on_error", "on_error = \"ignore\"\n",
			path + `:1: on_error: must be "allow" or "deny", not "ignore"`},
		{"VRF name with slash", "[user.a]\nvrf = \"ok\"\n[group.netops]\n\nvrf = \"a/b\"\n",
			path + `:5: group.netops.vrf: invalid VRF name "a/b": contains '/'`},
		{"VRF name too long", "[user.a]\nvrf = \"abcdefghijklmnop\"\n",
			path + `:2: user.a.vrf: invalid VRF name "abcdefghijklmnop": longer than 15 bytes`},
		{"VRF name multibyte too long", "[user.a]\nvrf = \"ééééééééé\"\n",
			path + `:2: user.a.vrf: invalid VRF name "ééééééééé": longer than 15 bytes`},
		{"VRF name space", "default = \"mg mt\"\n",
			path + `:1: default: invalid VRF name "mg mt": contains whitespace`},
		{"VRF name unicode space", "default = \"mg\u00a0mt\"\n",
			path + `:1: default: invalid VRF name "mg\u00a0mt": contains whitespace`},
		{"VRF name tab escape", "default = \"a\\tb\"\n",
			path + `:1: default: invalid VRF name "a\tb": contains whitespace`},
		{"VRF name NUL escape", "default = \"a\\u0000b\"\n",
			path + `:1: default: invalid VRF name "a\x00b": contains NUL`},
		{"VRF name control", "default = \"a\\u007fb\"\n",
			path + `:1: default: invalid VRF name "a\x7fb": contains control character U+007F`},
		{"VRF name dot", "[user.a]\nvrf = \".\"\n",
			path + `:2: user.a.vrf: invalid VRF name ".": "." is not a device name`},
		{"VRF name dotdot", "[user.a]\nvrf = \"..\"\n",
			path + `:2: user.a.vrf: invalid VRF name "..": ".." is not a device name`},
		{"VRF name colon", "[user.a]\nvrf = \"eth0:1\"\n",
			path + `:2: user.a.vrf: invalid VRF name "eth0:1": contains ':'`},
		{"empty user name", "[user.\"\"]\nvrf = \"x\"\n",
			path + `:1: user."": invalid user empty name`},
		{"user name with slash", "\n[user.\"../x\"]\nvrf = \"x\"\n",
			path + `:2: user."../x": invalid user name "../x" contains '/'`},
		{"group name with NUL", "[group.\"a\\u0000\"]\nvrf = \"x\"\n",
			path + `:1: group."a\u0000": invalid group name "a\x00" contains NUL`},
		{"group name too long", "[group." + long + "]\nvrf = \"x\"\n",
			path + ":1: group." + long + ": invalid group name longer than 256 bytes"},
		{"user name control", "user.\"a\\nb\".vrf = \"x\"\n",
			path + `:1: user."a\nb": invalid user name "a\nb" contains control character U+000A`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(path, []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want error %s", p, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Path != path || ce.Line == 0 {
				t.Errorf("error %#v is not a *Error with path and line", err)
			}
		})
	}
}

func TestParseErrorUsage(t *testing.T) {
	_, err := Parse("/p", []byte("x = 1\n"))
	var ce *Error
	if !errors.As(err, &ce) || !strings.Contains(ce.Usage, "[group.netops]") {
		t.Errorf("unknown key: want a Usage listing the schema, got %#v", err)
	}
	_, err = Parse("/p", []byte("a = \"\\q\"\n"))
	if !errors.As(err, &ce) || !strings.Contains(ce.Usage, "escape") {
		t.Errorf("syntax error: want the library's usage text, got %#v", err)
	}
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		t.Errorf("syntax error does not wrap toml.ParseError: %#v", err)
	}
}

// TestRuleLines checks line numbers and file order for every way TOML can
// spell a rule: headers with quoted names, dotted keys, inline tables
// (including TOML 1.1 multi-line ones), and text that only looks like a
// header inside a multi-line string.
func TestRuleLines(t *testing.T) {
	const doc = `# comment [group.fake]
default = 'x#y'
#
#

[group."z z"]   # 6
vrf = "a"

[ group . 'y.y' ]   # 9
vrf = "b"

[group]
x.vrf = "c"          # 13
w = { vrf = "d" }    # 14
v = {                # 15
  vrf = "e",
}

[user]
"q\"q" = { services = [   # 20
  "sshd",
], vrf = "" }
`
	p, err := Parse("/p", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range p.Groups {
		got = append(got, r.Name+":"+r.VRF+":"+strconv.Itoa(r.Line))
	}
	want := []string{"z z:a:6", "y.y:b:9", "x:c:13", "w:d:14", "v:e:15"}
	if !slices.Equal(got, want) {
		t.Errorf("groups = %q, want %q", got, want)
	}
	if r := p.Users[`q"q`]; r.Line != 20 || !slices.Equal(r.Services, []string{"sshd"}) {
		t.Errorf("user q\"q = %+v, want line 20, services [sshd]", r)
	}
	if p.Default == nil || *p.Default != "x#y" || p.DefaultLine != 2 {
		t.Errorf("default = %v at %d, want x#y at 2", p.Default, p.DefaultLine)
	}
}

// keyLinesDoc exercises the scanner on TOML the policy schema would reject
// but the scanner must still follow: every string kind, escapes in keys,
// text that looks like headers inside strings, arrays of tables, nested
// inline tables and arrays, dates with spaces, comments everywhere.
const keyLinesDoc = "\uFEFF" + `# [fake.header]
a = """
[not.a.table]
x = "y"
"""
b = '''
[nor.this]'''
c = "q\"[x]\\"   # [c]
'd.e' = 'lit'
"f\u00e9\tg" . h = 1979-05-27 07:32:00Z
i = [ 1, [2, 3], { j = 4, k = { l = "m" } },
  # comment ]
  "n", ] # o
p = { q.r = [ { s = 1 } ], t = """u
""" }
v = """x""""" # five quotes
w = '''y''''' # five quotes

[[arr]]
x = 1
[[arr]]
y = +inf

[ tbl . "sub.key" ]
z = { a = [[{ b = true }]] }
`

// TestKeyLines checks that the fast scanner agrees with the library, key
// for key and line for line.
func TestKeyLines(t *testing.T) {
	checkKeyLines(t, keyLinesDoc, true)
	checkKeyLines(t, policyDoc, true)
	b, err := os.ReadFile("testdata/pam_vrf.toml")
	if err != nil {
		t.Fatal(err)
	}
	checkKeyLines(t, uncomment(string(b)), true)
}

// checkKeyLines compares keyLines with the library's positions (the
// probe). With must, keyLines may not give up.
func checkKeyLines(t testing.TB, doc string, must bool) {
	t.Helper()
	var top map[string]toml.Primitive
	md, err := toml.Decode(doc, &top)
	if err != nil {
		if must {
			t.Fatal(err)
		}
		return
	}
	lines := keyLines(doc, md.Keys())
	if lines == nil {
		if must {
			t.Fatalf("keyLines gave up on %q", doc)
		}
		return
	}
	// Probe every key, walking down through the tables.
	var walk func(key toml.Key, p toml.Primitive)
	walk = func(key toml.Key, p toml.Primitive) {
		if want := probeLine(&md, p); want > 0 && lines[key.String()] != want {
			t.Errorf("%q: key %s: keyLines says line %d, library says %d", doc, key, lines[key.String()], want)
		}
		var v any
		_ = md.PrimitiveDecode(p, &v)
		if _, ok := v.(map[string]any); !ok {
			return
		}
		var m map[string]toml.Primitive
		if err := md.PrimitiveDecode(p, &m); err != nil {
			t.Fatal(err)
		}
		for name, sub := range m {
			walk(append(key[:len(key):len(key)], name), sub)
		}
	}
	for name, p := range top {
		walk(toml.Key{name}, p)
	}
}

// uncomment turns the commented-out settings of the example policy (lines
// starting with '#' and no space) into settings.
func uncomment(s string) string {
	return regexp.MustCompile(`(?m)^#([^ \n])`).ReplaceAllString(s, "$1")
}

// TestExamplePolicy: the shipped example moves nobody as is, and is a valid
// policy with every setting uncommented.
func TestExamplePolicy(t *testing.T) {
	b, err := os.ReadFile("testdata/pam_vrf.toml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("testdata/pam_vrf.toml", b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Default != nil || len(p.Users) != 0 || len(p.Groups) != 0 || p.OnError != OnErrorUnset {
		t.Errorf("example policy is not inert: %+v", p)
	}
	if d, _ := p.Decide("root", "sshd", MemberOf("netops")); d.Matched {
		t.Errorf("example policy moves root: %+v", d)
	}
	p, err = Parse("example", []byte(uncomment(string(b))))
	if err != nil {
		t.Fatalf("example with settings uncommented: %v", err)
	}
	if len(p.Users) != 2 || len(p.Groups) != 1 || p.Default == nil {
		t.Errorf("uncommented example: %+v", p)
	}
	if d, _ := p.Decide("bob", "sshd", MemberOf("netops")); d.VRF != "mgmt" || !strings.HasPrefix(d.Rule, `group "netops" (example:`) {
		t.Errorf("uncommented example: bob/netops/sshd: %+v", d)
	}
}

func TestValidVRFName(t *testing.T) {
	for _, ok := range []string{"mgmt", "vrf-blue", "a", "123456789012345", "v.1", "é", "..."} {
		if err := ValidVRFName(ok); err != nil {
			t.Errorf("ValidVRFName(%q) = %v, want nil", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"":                 "empty",
		"1234567890123456": "longer than 15 bytes",
		".":                `"." is not a device name`,
		"..":               `".." is not a device name`,
		"a/b":              "contains '/'",
		"../x":             "contains '/'",
		"a:b":              "contains ':'",
		"a b":              "contains whitespace",
		"a\u2003b":         "contains whitespace",
		"a\nb":             "contains whitespace",
		"a\x00b":           "contains NUL",
		"a\x01b":           "contains control character U+0001",
		"a\u0085b":         "contains whitespace", // NEL is a space to unicode
		"a\xffb":           "not valid UTF-8",
	} {
		if err := ValidVRFName(bad); err == nil || err.Error() != want {
			t.Errorf("ValidVRFName(%q) = %v, want %q", bad, err, want)
		}
	}
}
