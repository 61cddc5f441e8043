//go:build netsetupfault

package main

import (
	"os"

	"github.com/pam-vrf/pam-vrf/netsetup"
)

// faultFromEnv: a test build (go build -tags netsetupfault) honours, in
// apply and try, VRF_NETSETUP_FAULT=kill-after-step:N (exit with status
// 137 right after step N, without rollback), fail-at-step:N (step N fails,
// the steps before it are rolled back) and hang-after-step:N (block after
// step N; a try ends itself 20 s past its deadline): netsetup/fault.go.
// Release builds (make all, the .deb) compile fault_off.go instead.
func faultFromEnv() (*netsetup.Fault, error) {
	return netsetup.ParseFault(os.Getenv(netsetup.FaultEnv))
}
