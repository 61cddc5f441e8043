package hostnet

import "testing"

func TestNetworkMatch(t *testing.T) {
	for _, c := range []struct {
		content, iface string
		want           bool
	}{
		{"[Match]\nName=eth0\n", "eth0", true},
		{"[Match]\nName=en* eth*\n", "eth0", true},
		{"[Match]\nName=!eth0\n", "eth0", false},
		{"[Match]\nName=!eth1\n", "eth0", true},
		{"[Match]\nMACAddress=00:11:22:33:44:55\n", "eth0", false},
		{"[Network]\nName=eth0\n", "eth0", false},
	} {
		if got := networkMatchesName(c.content, c.iface); got != c.want {
			t.Errorf("%q %s: %v", c.content, c.iface, got)
		}
	}
}
