//go:build !netsetupfault

package main

import "github.com/pam-vrf/pam-vrf/netsetup"

// faultFromEnv: release builds have no fault injection; VRF_NETSETUP_FAULT
// is ignored (see fault_on.go).
func faultFromEnv() (*netsetup.Fault, error) { return nil, nil }
