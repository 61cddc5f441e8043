package netsetup

import "github.com/pam-vrf/pam-vrf/netsetup/hostnet"

// The networkd and dhclient details moved to hostnet; these names keep the
// engine's tests as they were, reading the files through the backends.

const dhclientHookLegacy = hostnet.DhclientHookLegacy

var (
	lastLease     = hostnet.LastLease
	hookLeaseFile = hostnet.HookLeaseFile
)

func renderVRFNetwork(cfg Config, addrs, dnsServers []string) string {
	return backendFile(Manager{Kind: "networkd"}, vrfTarget(cfg, addrs, dnsServers), "/etc/systemd/network/"+cfg.VRF+".network")
}

func renderDhclientHook(cfg Config) string {
	return backendFile(Manager{Kind: "ifupdown", DHCP: true}, target(cfg), DhclientHook)
}

func backendFile(m Manager, t hostnet.Target, path string) string {
	for _, f := range backendFiles(m, t, nil) {
		if f.Path == path {
			return f.Content
		}
	}
	return ""
}
