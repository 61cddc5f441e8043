package pam

import (
	"github.com/pam-vrf/pam-vrf/cgroup"
	"github.com/pam-vrf/pam-vrf/config"
	"github.com/pam-vrf/pam-vrf/fastpath"
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
		Learn: learn,
	}
}

// learn writes the decision table of a policy read with every check, for
// pam_vrf.so's C fast path (package fastpath). Errors only cost speed:
// without the table every login takes the Go path.
func learn(pol *config.Policy) {
	mount, err := cgroup.Mount()
	if err != nil {
		mount = ""
	}
	_ = fastpath.Put(fastpath.PolicyFile(fastpath.Dir, pol.Path), fastpath.PolicyTable(pol, mount))
}
