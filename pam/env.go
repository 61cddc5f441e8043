package pam

import (
	"fmt"
	"os/user"

	"github.com/pam-vrf/pam-vrf/config"
	"github.com/pam-vrf/pam-vrf/placement"
)

// SystemEnv is the Env of the real module. One per process: the policy
// cache then parses the file once per file version, not once per login.
func SystemEnv(opt placement.Options) *Env {
	return &Env{
		Policies: &config.Cache{},
		Groups:   UserGroups,
		Enter: func(pid int, vrf string) (placement.Result, error) {
			return placement.Enter(pid, vrf, opt)
		},
	}
}

// UserGroups resolves the names of all groups of user through NSS
// (getgrouplist via os/user's cgo implementation, as the rest of the PAM
// stack sees them).
func UserGroups(name string) ([]string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up user %q: %w", name, err)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("list groups of %q: %w", name, err)
	}
	names := make([]string, 0, len(ids))
	for _, id := range ids {
		g, err := user.LookupGroupId(id)
		if err != nil {
			// A gid without a name cannot match a [group.NAME] rule.
			continue
		}
		names = append(names, g.Name)
	}
	return names, nil
}
