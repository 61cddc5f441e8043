//go:build pamvrf_anydevice

package main

// Host-test build only (make test builds build/test/pam_vrf.so with this
// tag): the CI kernel has no VRF driver, so a veth device stands in.
func init() { allowNonVRF = true }
