package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// policyDoc has its group rules in non-alphabetical order on purpose: file
// order, not name order, must decide.
const policyDoc = `default = "dflt"             # line 1

[user.alice]                 # line 3
vrf = "ualice"

[user.root]                  # line 6
vrf = ""

[user.carol]                 # line 9
vrf = "ucarol"
services = ["login"]

[group.zeta]                 # line 13
vrf = "gzeta"

[group.alpha]                # line 16
vrf = "galpha"

[group.ops]                  # line 19
vrf = "gops"
services = ["sshd"]

[group.stay]                 # line 23
vrf = ""
`

func TestDecide(t *testing.T) {
	p, err := Parse("/p.toml", []byte(policyDoc))
	if err != nil {
		t.Fatal(err)
	}
	noDefault, err := Parse("/n.toml", []byte("[group.alpha]\nvrf = \"galpha\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	emptyDefault, err := Parse("/e.toml", []byte("default = \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		p       *Policy
		user    string
		groups  []string
		service string
		want    Decision
	}{
		{"user beats group", p, "alice", []string{"zeta"}, "sshd",
			Decision{true, "ualice", `user "alice" (/p.toml:3)`}},
		{"explicit empty user vrf", p, "root", []string{"zeta"}, "sshd",
			Decision{true, "", `user "root" (/p.toml:6)`}},
		{"user services filter matches", p, "carol", []string{"alpha"}, "login",
			Decision{true, "ucarol", `user "carol" (/p.toml:9)`}},
		{"user services filter falls through to group", p, "carol", []string{"alpha"}, "sshd",
			Decision{true, "galpha", `group "alpha" (/p.toml:16)`}},
		{"user services filter falls through to default", p, "carol", nil, "sshd",
			Decision{true, "dflt", `default (/p.toml:1)`}},
		{"first group in file order, not name order", p, "bob", []string{"alpha", "zeta"}, "sshd",
			Decision{true, "gzeta", `group "zeta" (/p.toml:13)`}},
		{"user's group order does not matter", p, "bob", []string{"zeta", "alpha"}, "sshd",
			Decision{true, "gzeta", `group "zeta" (/p.toml:13)`}},
		{"group services filter matches", p, "bob", []string{"stay", "ops"}, "sshd",
			Decision{true, "gops", `group "ops" (/p.toml:19)`}},
		{"group services filter falls through to next group", p, "bob", []string{"stay", "ops"}, "login",
			Decision{true, "", `group "stay" (/p.toml:23)`}},
		{"group services filter falls through to default", p, "bob", []string{"ops"}, "login",
			Decision{true, "dflt", `default (/p.toml:1)`}},
		{"explicit empty group vrf", p, "bob", []string{"stay"}, "sshd",
			Decision{true, "", `group "stay" (/p.toml:23)`}},
		{"unknown groups use default", p, "bob", []string{"nobody", "users"}, "sshd",
			Decision{true, "dflt", `default (/p.toml:1)`}},
		{"no match and no default", noDefault, "bob", []string{"users"}, "sshd",
			Decision{}},
		{"group without default", noDefault, "bob", []string{"alpha"}, "sshd",
			Decision{true, "galpha", `group "alpha" (/n.toml:1)`}},
		{`default = "" is unset`, emptyDefault, "bob", nil, "sshd",
			Decision{}},
		{"no policy file", &Policy{Path: "/x"}, "alice", []string{"zeta"}, "sshd",
			Decision{}},
		{"nil policy", nil, "alice", nil, "sshd",
			Decision{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := tt.p.Decide(tt.user, tt.service, MemberOf(tt.groups...)); err != nil || got != tt.want {
				t.Errorf("Decide(%q, %q, %q) = %+v, want %+v", tt.user, tt.groups, tt.service, got, tt.want)
			}
		})
	}
}

func TestActsFor(t *testing.T) {
	custom, err := Parse("/p.toml", []byte(`services = ["sshd", "su-l"]`))
	if err != nil {
		t.Fatal(err)
	}
	dflt, err := Parse("/p.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		p       *Policy
		service string
		want    bool
	}{
		{custom, "sshd", true},
		{custom, "su-l", true},
		{custom, "login", false},
		{dflt, "sshd", true},
		{dflt, "login", true},
		{dflt, "su", false},
		{&Policy{}, "login", true},
		{nil, "sshd", true},
		{nil, "cron", false},
	}
	for _, tt := range tests {
		if got := tt.p.ActsFor(tt.service); got != tt.want {
			t.Errorf("%v.ActsFor(%q) = %v, want %v", tt.p, tt.service, got, tt.want)
		}
	}
	if !slices.Equal(dflt.Services, DefaultServices) {
		t.Errorf("unset services = %q, want %q", dflt.Services, DefaultServices)
	}
	// Parse must copy DefaultServices, not alias it.
	dflt.Services[0] = "changed"
	if DefaultServices[0] != "sshd" {
		t.Errorf("Policy.Services aliases DefaultServices")
	}
}

func TestOnError(t *testing.T) {
	for doc, want := range map[string]OnError{
		``:                   OnErrorUnset,
		`on_error = "deny"`:  OnErrorDeny,
		`on_error = "allow"`: OnErrorAllow,
	} {
		p, err := Parse("/p.toml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if p.OnError != want {
			t.Errorf("%q: OnError = %v, want %v", doc, p.OnError, want)
		}
	}
}

func decideVRF(p *Policy, user, service string) string {
	d, err := p.Decide(user, service, nil)
	if err != nil {
		return "error: " + err.Error()
	}
	return d.VRF
}

// Group membership is asked for only when a group rule can still change the
// answer, once, for exactly the group rules that admit the service.
func TestDecideAsksForGroupsOnlyWhenNeeded(t *testing.T) {
	p, err := Parse("/p.toml", []byte(policyDoc))
	if err != nil {
		t.Fatal(err)
	}
	var asked [][]string
	spy := func(member ...string) Groups {
		return func(user string, names []string) ([]bool, error) {
			asked = append(asked, slices.Clone(names))
			return MemberOf(member...)(user, names)
		}
	}
	// A user rule decides: no lookup at all.
	asked = nil
	if d, err := p.Decide("alice", "sshd", spy("zeta")); err != nil || d.VRF != "ualice" || len(asked) != 0 {
		t.Errorf("alice: %+v %v, lookups %q", d, err, asked)
	}
	// carol's rule is for login only; over sshd the groups decide. The ops
	// rule admits sshd, so it is asked about too, in file order.
	asked = nil
	if d, err := p.Decide("carol", "sshd", spy("alpha")); err != nil || d.VRF != "galpha" {
		t.Errorf("carol: %+v %v", d, err)
	}
	if want := [][]string{{"zeta", "alpha", "ops", "stay"}}; !slices.EqualFunc(asked, want, slices.Equal) {
		t.Errorf("carol over sshd: lookups %q, want %q", asked, want)
	}
	// Over login the ops rule (sshd only) is not a candidate.
	asked = nil
	p.Decide("bob", "login", spy())
	if want := [][]string{{"zeta", "alpha", "stay"}}; !slices.EqualFunc(asked, want, slices.Equal) {
		t.Errorf("bob over login: lookups %q, want %q", asked, want)
	}
	// No group rule at all: no lookup.
	noGroups, _ := Parse("/n.toml", []byte("default = \"mgmt\"\n[user.root]\nvrf = \"\"\n"))
	asked = nil
	if d, err := noGroups.Decide("bob", "sshd", spy()); err != nil || d.VRF != "mgmt" || len(asked) != 0 {
		t.Errorf("no group rules: %+v %v, lookups %q", d, err, asked)
	}
}

func TestDecideGroupFailureDecidesNothing(t *testing.T) {
	p, err := Parse("/p.toml", []byte(policyDoc))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("nss down")
	fail := func(string, []string) ([]bool, error) { return nil, boom }
	// root's own rule decides without NSS, so an NSS outage cannot touch it.
	if d, err := p.Decide("root", "sshd", fail); err != nil || !d.Matched || d.VRF != "" {
		t.Errorf("root with NSS down: %+v %v", d, err)
	}
	d, err := p.Decide("bob", "sshd", fail)
	var ge *GroupError
	if !errors.As(err, &ge) || !errors.Is(err, boom) || d.Matched {
		t.Fatalf("bob with NSS down: %+v %v", d, err)
	}
	if !strings.Contains(err.Error(), `group "zeta" (/p.toml:13)`) || !strings.Contains(err.Error(), `"bob"`) {
		t.Errorf("error does not name the user and the rules: %v", err)
	}
}

func TestDefaultVRFAndRefusedServices(t *testing.T) {
	p, err := Parse("/p.toml", []byte("[user.root]\nvrf = \"default\"\nservices = [\"su\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := p.Decide("root", "su", nil); d.VRF != DefaultVRF {
		t.Errorf("vrf = \"default\": %+v", d)
	}
	for _, doc := range []string{
		"services = [\"sshd\", \"systemd-user\"]\n",
		"[user.a]\nvrf = \"x\"\nservices = [\"systemd-user\"]\n",
	} {
		_, err := Parse("/p.toml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), `"systemd-user" is refused: the user's systemd manager`) {
			t.Errorf("%q: %v", doc, err)
		}
	}
}

func TestNSSTimeout(t *testing.T) {
	for doc, want := range map[string]time.Duration{
		"":                   DefaultNSSTimeout,
		"nss_timeout = 2":    2 * time.Second,
		"nss_timeout = 0.25": 250 * time.Millisecond,
	} {
		p, err := Parse("/p.toml", []byte(doc))
		if err != nil || p.Timeout() != want {
			t.Errorf("%q: %v %v, want %v", doc, p.Timeout(), err, want)
		}
	}
	for _, doc := range []string{"nss_timeout = 0", "nss_timeout = -1", "nss_timeout = 61", `nss_timeout = "5s"`} {
		if _, err := Parse("/p.toml", []byte(doc)); err == nil || !strings.Contains(err.Error(), "/p.toml:1: nss_timeout") {
			t.Errorf("%q: %v", doc, err)
		}
	}
}
