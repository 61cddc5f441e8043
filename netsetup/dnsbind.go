package netsetup

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/pam-vrf/pam-vrf/bpf/dnsbind"
	"github.com/pam-vrf/pam-vrf/cgroup"
)

// The steering rules move queries to the management nameservers into the
// VRF table, but a socket bound to no device gets the answers only while
// the l3mdev_accept sysctls are 1, and `--sshd vrf-only` keeps
// tcp_l3mdev_accept 0: DNS over TCP (a truncated answer's retry, DNS over
// TLS, resolved's fallback) failed there. The connect hooks of package
// dnsbind bind such a socket to the VRF before it connects, which works
// whatever the sysctls say.

// DNSBindState is what the kernel has: the tags of the programs pinned per
// family ("4", "6"; "" none) and the cookie of the netns apply runs in.
type DNSBindState struct {
	Tags  map[string]string `json:"tags"`
	Netns uint64            `json:"netns,omitempty"`
}

// dnsBindKey: the DNSBindState.Tags keys.
func dnsBindKey(fam int) string {
	if fam == unix.AF_INET6 {
		return "6"
	}
	return "4"
}

// readDNSBind: the pinned programs' tags, nil where the kernel cannot run
// the hooks (before 5.9) or there is no bpffs to pin them in.
func readDNSBind(vrf string) *DNSBindState {
	if !dnsBindSupported() {
		return nil
	}
	out := map[string]string{}
	for _, fam := range dnsbind.Families {
		tag, err := dnsbind.Tag(BPFPinDir, vrf, fam)
		if err != nil {
			tag = "unreadable" // matches nothing: the plan replaces it
		}
		out[dnsBindKey(fam)] = tag
	}
	return &DNSBindState{Tags: out, Netns: dnsbind.NetnsCookie()}
}

// dnsBindSupported: kernel 5.9 (cgroup bpf_link, SO_BINDTODEVICE from
// bpf_setsockopt), a bpffs at /sys/fs/bpf, and programs the kernel loads.
// Probed once per process: every state read asks, and a probe loads two
// programs through the verifier.
var dnsBindSupported = sync.OnceValue(probeDNSBind)

func probeDNSBind() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	if !kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 9) {
		return false
	}
	var fs unix.Statfs_t
	if unix.Statfs("/sys/fs/bpf", &fs) != nil || fs.Type != unix.BPF_FS_MAGIC {
		return false
	}
	return dnsbind.Probe() == nil
}

// kernelAtLeast compares a release ("6.1.0-28-cloud-amd64") with major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	f := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 {
		return false
	}
	ma, _ := strconv.Atoi(f[0])
	mi, _ := strconv.Atoi(f[1])
	return ma > major || ma == major && mi >= minor
}

// dnsBindServers: every nameserver the host's resolvers reach through the
// management network: the steered ones, and the found ones whose best
// route leaves through the iface or the VRF (resolved's per-link servers
// of the iface included), sorted so the program is the same for the same
// set. A lease's DHCP server is steered too, but is no nameserver unless
// some resolver configuration names it.
func dnsBindServers(cfg Config, dns string, st *State) []netip.Addr {
	named := append(dnsRuleServers(cfg, dns, st), st.Upstream...)
	var out []netip.Addr
	for _, s := range append(steeredServers(cfg, dns, st), mgmtServers(cfg, st, st.Upstream)...) {
		a, err := netip.ParseAddr(s)
		if err != nil || slices.Contains(out, a.Unmap()) || !slices.ContainsFunc(named, func(n string) bool {
			b, err := netip.ParseAddr(n)
			return err == nil && b.Unmap() == a.Unmap()
		}) {
			continue
		}
		out = append(out, a.Unmap())
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

// planDNSBind attaches, updates or removes the connect hooks when what is
// pinned is not the program for dnsBindServers.
func planDNSBind(cfg Config, dns string, st *State) []Step {
	if st.DNSBind == nil {
		return nil
	}
	servers := dnsBindServers(cfg, dns, st)
	need := false
	for _, fam := range dnsbind.Families {
		tag := st.DNSBind.Tags[dnsBindKey(fam)]
		if dnsbind.HasFamily(servers, fam) {
			need = need || !dnsbind.Matches(tag, fam, cfg.VRF, servers, st.DNSBind.Netns)
		} else {
			need = need || tag != ""
		}
	}
	if !need {
		return nil
	}
	desc := fmt.Sprintf("bind %s (cgroup connect hooks pinned in %s)", dnsbind.Describe(cfg.VRF, servers), BPFPinDir)
	if len(servers) == 0 {
		desc = fmt.Sprintf("remove the nameserver connect hooks of %s (no management nameserver left)", cfg.VRF)
	}
	var undo func() error
	netns := st.DNSBind.Netns
	return []Step{{ID: "dns-bind", Desc: desc, Follow: true,
		Do: func(*Env) error {
			mount, err := cgroup.Mount()
			if err != nil {
				return err
			}
			u, err := dnsbind.Ensure(mount, BPFPinDir, cfg.VRF, cfg.VRF, servers, netns)
			if err != nil {
				return fmt.Errorf("nameserver connect hooks for %s: %w", cfg.VRF, err)
			}
			undo = u
			return nil
		},
		Undo: func(*Env) error {
			if undo == nil {
				return nil
			}
			return undo()
		}}}
}

// planRevertDNSBind removes the hooks apply attached (the saved state had
// none: apply is what adds them).
func planRevertDNSBind(cfg Config, old, live *State) []Step {
	pinned := func(st *State) bool {
		for _, t := range st.DNSBind.tags() {
			if t != "" {
				return true
			}
		}
		return false
	}
	// the pins themselves too: a probe that fails now (readDNSBind nil)
	// must not leave hooks behind
	had, has := pinned(old), pinned(live) || dnsBindPinned(cfg.VRF)
	if had || !has {
		return nil
	}
	return []Step{{ID: "revert-dns-bind", Desc: fmt.Sprintf("remove the nameserver connect hooks of %s (%s)", cfg.VRF, BPFPinDir),
		Do: func(*Env) error { return dnsbind.Remove(BPFPinDir, cfg.VRF) }}}
}

// dnsBindPinned: a pin of vrf's hooks exists in BPFPinDir.
func dnsBindPinned(vrf string) bool {
	for _, fam := range dnsbind.Families {
		if _, err := os.Stat(dnsbind.PinPath(BPFPinDir, vrf, fam)); err == nil {
			return true
		}
	}
	return false
}

func (d *DNSBindState) tags() map[string]string {
	if d == nil {
		return nil
	}
	return d.Tags
}
