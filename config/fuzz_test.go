package config

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: go test -fuzz=FuzzParse ./config
//
// Invariants: Parse never panics; errors are *Error naming the path and a
// line inside the file; a parsed policy holds only valid names; Decide never
// panics and yields "" or a valid VRF name; and the fast key-line scanner
// gives the same result as the library's own positions.
func FuzzParse(f *testing.F) {
	f.Add([]byte(policyDoc))
	f.Add([]byte(keyLinesDoc))
	f.Add([]byte(goodPolicy))
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "fuzz.toml"
		nlines := bytes.Count(data, []byte{'\n'}) + 1
		p, err := Parse(path, data)

		slow, slowErr := parse(path, data, false)
		if (err == nil) != (slowErr == nil) || err != nil && err.Error() != slowErr.Error() {
			t.Fatalf("fast and probe parses differ: %v vs %v", err, slowErr)
		}
		if err == nil && !reflect.DeepEqual(p, slow) {
			t.Fatalf("fast and probe parses differ:\n%+v\n%+v", p, slow)
		}
		checkKeyLines(t, string(data), false)

		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Path != path || ce.Msg == "" {
				t.Fatalf("error %#v is not a *Error for %s", err, path)
			}
			if ce.Line < 0 || ce.Line > nlines || !strings.HasPrefix(err.Error(), path+":") {
				t.Fatalf("error %q: line %d outside 1..%d", err, ce.Line, nlines)
			}
			return
		}
		if !p.Exists || p.Path != path || len(p.Services) == 0 {
			t.Fatalf("bad policy header: %+v", p)
		}
		for _, s := range p.Services {
			if validName(s) != nil {
				t.Fatalf("invalid service %q accepted", s)
			}
		}
		if p.Default != nil {
			if err := ValidVRFName(*p.Default); err != nil {
				t.Fatalf("invalid default %q accepted: %v", *p.Default, err)
			}
			if p.DefaultLine < 1 || p.DefaultLine > nlines {
				t.Fatalf("default line %d outside 1..%d", p.DefaultLine, nlines)
			}
		}
		var rules []Rule
		for name, r := range p.Users {
			if r.Name != name || r.Kind != KindUser {
				t.Fatalf("user rule %q: %+v", name, r)
			}
			rules = append(rules, r)
		}
		rules = append(rules, p.Groups...)
		services := append([]string{"sshd", "login", "other"}, p.Services...)
		var groups []string
		for _, r := range rules {
			if err := validName(r.Name); err != nil {
				t.Fatalf("invalid name accepted: %+v: %v", r, err)
			}
			if r.VRF != "" && ValidVRFName(r.VRF) != nil {
				t.Fatalf("invalid VRF accepted: %+v", r)
			}
			if r.Line < 1 || r.Line > nlines {
				t.Fatalf("rule line %d outside 1..%d: %+v", r.Line, nlines, r)
			}
			if r.Services != nil && len(r.Services) == 0 {
				t.Fatalf("empty services list accepted: %+v", r)
			}
			services = append(services, r.Services...)
			if r.Kind == KindGroup {
				groups = append(groups, r.Name)
			}
		}
		users := []string{"", "root", "nobody"}
		for _, r := range rules {
			users = append(users, r.Name)
		}
		for _, u := range users {
			for _, s := range services {
				for _, g := range [][]string{nil, groups, reversed(groups)} {
					d, err := p.Decide(u, s, MemberOf(g...))
					switch {
					case err != nil:
						t.Fatalf("Decide with known groups failed: %v", err)
					case !d.Matched && (d.VRF != "" || d.Rule != ""):
						t.Fatalf("unmatched decision with content: %+v", d)
					case d.Matched && d.VRF != "" && ValidVRFName(d.VRF) != nil:
						t.Fatalf("Decide returned invalid VRF: %+v", d)
					case d.Matched && !strings.Contains(d.Rule, "("+path+":"):
						t.Fatalf("Decide's rule lacks file:line: %+v", d)
					}
				}
			}
		}
	})
}

func reversed(s []string) []string {
	r := make([]string, len(s))
	for i, v := range s {
		r[len(s)-1-i] = v
	}
	return r
}
