package pam

import (
	"github.com/pam-vrf/pam-vrf/config"
	"github.com/pam-vrf/pam-vrf/nss"
	"github.com/pam-vrf/pam-vrf/placement"
)

// SystemEnv is the Env of the real module. One per process: the policy
// cache then parses the file once per file version, not once per login.
func SystemEnv(opt placement.Options) *Env {
	return &Env{
		Policies: &config.Cache{},
		Groups:   nss.Membership,
		Enter: func(pid int, vrf string) (placement.Result, error) {
			return placement.Enter(pid, vrf, opt)
		},
	}
}
