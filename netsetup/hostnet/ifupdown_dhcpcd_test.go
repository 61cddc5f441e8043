package hostnet

import (
	"encoding/binary"
	"path"
	"strings"
	"testing"
)

// ackPacket builds a DHCP message as dhcpcd stores it in its lease file.
func ackPacket(opts ...[]byte) []byte {
	b := make([]byte, 240)
	b[0] = 2 // BOOTREPLY
	binary.BigEndian.PutUint32(b[236:], 0x63825363)
	for _, o := range opts {
		b = append(b, o...)
	}
	return append(b, 255)
}

func TestParseDHCPPacket(t *testing.T) {
	full := ackPacket(
		[]byte{53, 1, 5},                       // ACK
		[]byte{0, 0},                           // pads are skipped
		[]byte{54, 4, 192, 0, 2, 1},            // server identifier
		[]byte{6, 8, 192, 0, 2, 1, 9, 9, 9, 9}, // two name servers
	)
	l := ParseDHCPPacket(full)
	if l.Server != "192.0.2.1" || strings.Join(l.Nameserver, " ") != "192.0.2.1 9.9.9.9" {
		t.Errorf("got %+v", l)
	}
	for name, b := range map[string][]byte{
		"empty":          nil,
		"no cookie":      make([]byte, 300),
		"option overrun": append(ackPacket()[:240], 54, 9, 1, 2),
	} {
		if l := ParseDHCPPacket(b); l.Server != "" {
			t.Errorf("%s: read a server from a malformed packet: %+v", name, l)
		}
	}
}

// Detection: ifupdown DHCP with dhcpcd and no dhclient is this backend;
// with dhclient installed it is ifupdown's (ifup prefers dhclient).
func TestDetectIfupdownDhcpcd(t *testing.T) {
	files := map[string]string{"/etc/network/interfaces": "auto eth0\niface eth0 inet dhcp\n", "/usr/sbin/dhcpcd": "x"}
	h := Host{
		Glob: func(p string) []string {
			var out []string
			for f := range files {
				if ok, _ := path.Match(p, f); ok {
					out = append(out, f)
				}
			}
			return out
		},
		Read: func(p string) (string, string, bool) { c, ok := files[p]; return c, "", ok },
	}
	if m := Detect(h, "eth0"); m.Kind != kindIfupdownDhcpcd || !m.DHCP {
		t.Errorf("dhcpcd only: %+v", m)
	}
	files["/sbin/dhclient"] = "x"
	if m := Detect(h, "eth0"); m.Kind != kindIfupdown {
		t.Errorf("dhclient and dhcpcd: %+v", m)
	}
	delete(files, "/sbin/dhclient")
	files["/etc/network/interfaces"] = "auto eth0\niface eth0 inet static\n"
	if m := Detect(h, "eth0"); m.Kind != kindIfupdown {
		t.Errorf("static stanza: %+v", m)
	}
}
