package hostnet

import (
	"encoding/binary"
	"fmt"
	"os"
	"path"
	"path/filepath"
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

// /proc as dhcpcd leaves it: process titles, and a proxy that is exiting
// (its cmdline reads empty, which once panicked the boot unit's apply).
func TestReadDHCPClientsTitles(t *testing.T) {
	root := t.TempDir()
	for pid, cmdline := range map[string]string{
		"10": "dhcpcd: eth0 [ip4] [ip6]",
		"11": "dhcpcd: [privileged proxy] eth0 [ip4] [ip6]",
		"12": "",
		"13": "dhcpcd: [BOOTP proxy] 192.0.2.10",
		"14": "dhcpcd: eth1 [ip4]",
	} {
		if err := os.MkdirAll(filepath.Join(root, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "cmdline"), []byte(cmdline), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := ReadDHCPClients(root, "eth0", func(comm string) []int {
		if comm == "dhcpcd" {
			return []int{10, 11, 12, 13, 14}
		}
		return nil
	})
	var pids []string
	for _, c := range got {
		pids = append(pids, fmt.Sprint(c.PID))
	}
	if strings.Join(pids, " ") != "10 11" {
		t.Errorf("clients of eth0: %v", got)
	}
}
