//go:build netsetupfault

package main

import (
	"os"

	"github.com/pam-vrf/pam-vrf/netsetup"
)

// faultFromEnv: a test build (go build -tags netsetupfault) honours
// VRF_NETSETUP_FAULT=kill-after-step:N (apply exits with status 137 right
// after step N, without rollback) and fail-at-step:N (step N fails, apply
// rolls back the steps before it): netsetup/fault.go. Release builds
// (make all, the .deb) compile fault_off.go instead.
func faultFromEnv() (*netsetup.Fault, error) {
	return netsetup.ParseFault(os.Getenv(netsetup.FaultEnv))
}
