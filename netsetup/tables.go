package netsetup

import "net/netip"

// isOurDNSRule: the shape of a DNS steering rule for table (planDNSRules),
// at the current or the pre-1002 preference. Anything else looking up our
// table is someone else's.
func isOurDNSRule(r Rule, table uint32) bool {
	if (r.Pref != PrefDNSRule && r.Pref != PrefDNSRuleLegacy) || r.Iif != "lo" || r.Oif != "" || r.Table != table ||
		r.Other || r.L3mdev || actionOf(r) != frActToTbl {
		return false
	}
	p, err := netip.ParsePrefix(r.Dst)
	return err == nil && p.Bits() == p.Addr().BitLen()
}
