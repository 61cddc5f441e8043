package pam

import (
	"github.com/pam-vrf/pam-vrf/bpf"
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

// learn writes what the C fast path may replay (package fastpath). Errors
// only cost speed: without the files every login takes the Go path.
func learn(pol *config.Policy, vrf string, res *placement.Result) {
	if res == nil {
		_ = fastpath.Put(fastpath.PolicyFile(fastpath.Dir, pol.Path), fastpath.PolicyTable(pol))
		return
	}
	if res.Ifindex == 0 {
		return // the default VRF: always the Go path
	}
	entry := ""
	if _, tag, ok := bpf.Pinned(uint32(res.Ifindex)); ok {
		entry = fastpath.VRFEntry(res.Ifindex, tag, res.NetnsName, res.Mount)
	}
	_ = fastpath.Put(fastpath.VRFFile(fastpath.Dir, res.NetnsIno, vrf), entry)
}
