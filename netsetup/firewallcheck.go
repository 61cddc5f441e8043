package netsetup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The firewall line: rules that name the management NIC where, once it is
// enslaved, netfilter shows the VRF device instead. What each hook sees
// (drivers/net/vrf.c; eth0 enslaved to mgmt):
//
//	prerouting   twice: eth0 first (ip_rcv / ipv6_rcv, before l3mdev_ip_rcv),
//	             then mgmt (vrf_ip_rcv / vrf_ip6_rcv -> vrf_rcv_nfhook with
//	             in = vrf_dev). IPv4 multicast and loopback, and IPv6
//	             link-local/multicast non-ND packets skip the second pass.
//	input        mgmt only: vrf_ip_rcv / vrf_ip6_rcv set skb->dev = vrf_dev
//	             before routing, so ip_local_deliver's hook has in = mgmt.
//	             Exception: IPv6 neighbour discovery keeps eth0
//	             (ipv6_ndisc_frame). The slave stays visible as sdif
//	             (inet_sdif: IPCB(skb)->iif with IPSKB_L3SLAVE).
//	forward      in = mgmt (same skb->dev), out = the route's device (eth0).
//	output       twice: mgmt first (vrf_l3_out -> vrf_ip_out / vrf_ip6_out ->
//	             vrf_ip_out_direct: NF_INET_LOCAL_OUT with out = vrf_dev),
//	             then eth0 (__ip_local_out's own hook, out = dst dev). With
//	             a qdisc on mgmt (vrf_ip_out_redirect) it is the same order
//	             through vrf_xmit. IPv4 multicast/broadcast and IPv6
//	             link-local/multicast skip the mgmt pass.
//	postrouting  twice as well: mgmt (vrf_output_direct / vrf_output), then
//	             eth0 (ip_output).
//
// So an iifname/iif match on eth0 stops matching in input and forward (an
// accept becomes a lock-out, a drop an open port; != eth0 now matches all
// of it); in prerouting, output and postrouting it still matches, but an
// accept for eth0 in a chain that drops the rest lets the mgmt pass fall to
// the drop. nft's meta sdif/sdifname (Linux 5.6, only in input and forward:
// nft_meta_get_validate_sdif) match the slave; iptables has no such match,
// its fix is -i mgmt.

// fwHost runs the firewall tools; tests substitute recorded output.
type fwHost struct {
	look func(tool string) bool
	run  func(tool string, args ...string) ([]byte, error)
	read func(path string) ([]byte, error) // procfs of the netns checked
}

// nsFirewallHost: the tools run in ns (the netns check looks at): a child
// forked from a thread that joined ns is in ns.
func nsFirewallHost(ns netns.NsHandle) fwHost {
	return fwHost{
		look: func(tool string) bool { _, err := exec.LookPath(tool); return err == nil },
		run: func(tool string, args ...string) ([]byte, error) {
			var out []byte
			err := inNS(ns, func() error {
				var stderr bytes.Buffer
				cmd := exec.Command(tool, args...)
				cmd.Stderr = &stderr
				var e error
				out, e = cmd.Output()
				if e != nil {
					return fmt.Errorf("%s: %v: %s", tool, e, strings.TrimSpace(stderr.String()))
				}
				return nil
			})
			return out, err
		},
		read: func(path string) ([]byte, error) {
			var out []byte
			// thread-self: /proc/self/net is the main thread's netns
			err := inNS(ns, func() error {
				var e error
				out, e = os.ReadFile(strings.Replace(path, "/proc/net/", "/proc/thread-self/net/", 1))
				return e
			})
			return out, err
		},
	}
}

// fwChain is one chain of one table, in its tool's terms.
type fwChain struct {
	table  string // "inet filter" (nft) or "filter" (iptables)
	name   string
	hook   string // base chains: prerouting, input, forward, output, postrouting
	policy string
	rules  []*fwRule
}

// fwRule is one rule, reduced to what the check needs.
type fwRule struct {
	id       string // "handle 9" or "rule 3"
	text     string // as its tool prints it (nft: "…" for what is not rendered)
	iif, oif ifMatch
	verdict  string   // accept, drop, reject, or "" (none or another)
	targets  []string // chains it jumps or goes to
	catchAll bool     // drops or rejects whatever reaches it
	// with: the rule with the NIC (nic) replaced by dev in its iif (in) or
	// oif match; sdif: with the iif match as meta sdifname (nft). False
	// when it cannot be rendered.
	with func(in bool, nic, dev string) (string, bool)
	sdif func(nic string) (string, bool)
}

// ifMatch: an interface-name comparison of a rule.
type ifMatch struct {
	names []string // names or wildcards ("eth*", iptables "eth+")
	neg   bool
	set   string // the named nft set holding names
	index int    // iif/oif by ifindex when nft could not name it
}

func (m ifMatch) any() bool { return len(m.names) > 0 || m.index != 0 }

// hits reports whether the match compares against dev (exactly or by
// wildcard).
func (m ifMatch) hits(dev string, index int) bool {
	if m.index != 0 && m.index == index {
		return true
	}
	for _, n := range m.names {
		if n == dev {
			return true
		}
		if p, ok := strings.CutSuffix(n, "*"); ok && strings.HasPrefix(dev, p) {
			return true
		}
		if p, ok := strings.CutSuffix(n, "+"); ok && strings.HasPrefix(dev, p) {
			return true
		}
	}
	return false
}

// fwSource is one tool's view of the ruleset.
type fwSource struct {
	tool   string // what was read, for the report
	fix    string // the command its rules are changed with: nft, iptables-legacy, ip6tables...
	chains []*fwChain
}

// fwRuleset is everything check read.
type fwRuleset struct {
	sources []fwSource
	looked  []string // what was looked at, and how it went
}

var iptablesTables = []string{"filter", "nat", "mangle", "raw", "security"}
var iptablesHooks = map[string]string{"PREROUTING": "prerouting", "INPUT": "input", "FORWARD": "forward", "OUTPUT": "output", "POSTROUTING": "postrouting"}

// readFirewall reads each table once: nftables through nft's JSON, except
// tables iptables-nft manages (read through iptables-nft-save, so their fix
// is in iptables terms), and legacy iptables tables through
// iptables-legacy-save.
func readFirewall(h fwHost) fwRuleset {
	var rs fwRuleset
	compat := map[string]bool{} // families with iptables-nft tables
	var nftSrc *fwSource
	hasNFT := h.look("nft")
	if hasNFT && !nfTablesPresent(h) {
		// No nf_tables in the kernel: no nft rules, and running nft would
		// load the module: check changes nothing on the host.
		hasNFT = false
		rs.looked = append(rs.looked, "nf_tables not loaded")
	} else if hasNFT {
		out, err := h.run("nft", "-j", "list", "ruleset")
		if err != nil {
			rs.looked = append(rs.looked, "nft failed: "+oneLine(err.Error()))
		} else if src, err := parseNFT(out); err != nil {
			rs.looked = append(rs.looked, "nft JSON unreadable: "+err.Error())
		} else {
			nftSrc = &src
			for _, c := range src.chains {
				if fam, t, _ := strings.Cut(c.table, " "); (fam == "ip" || fam == "ip6") && slices.Contains(iptablesTables, t) && iptablesHooks[c.name] != "" {
					compat[fam] = true
				}
			}
		}
	} else {
		rs.looked = append(rs.looked, "nft not installed")
	}
	fams := []struct{ fam, save string }{{"ip", "iptables"}, {"ip6", "ip6tables"}}
	for _, f := range fams {
		// nf_tables flavour: needed for the tables nft showed, or when
		// nft is absent (only iptables-nft can show them then)
		if compat[f.fam] || !hasNFT {
			tool := f.save + "-nft-save"
			if !h.look(tool) && !hasNFT && h.look(f.save+"-save") && saveFlavour(h, f.save+"-save") == "nf_tables" {
				tool = f.save + "-save"
			}
			if h.look(tool) {
				if src, err := runSave(h, tool); err != nil {
					rs.looked = append(rs.looked, tool+" failed: "+oneLine(err.Error()))
				} else {
					rs.sources = append(rs.sources, src)
					if nftSrc != nil {
						nftSrc.chains = slices.DeleteFunc(nftSrc.chains, func(c *fwChain) bool {
							fam, t, _ := strings.Cut(c.table, " ")
							return fam == f.fam && slices.Contains(iptablesTables, t)
						})
					}
				}
			}
		}
		// legacy: only when the kernel has legacy tables, so that check
		// does not load ip_tables itself
		names, _ := h.read("/proc/net/" + f.fam + "_tables_names")
		if len(bytes.TrimSpace(names)) == 0 {
			rs.looked = append(rs.looked, "no legacy "+f.save+" tables")
			continue
		}
		tool := f.save + "-legacy-save"
		if !h.look(tool) && h.look(f.save+"-save") && saveFlavour(h, f.save+"-save") == "legacy" {
			tool = f.save + "-save"
		}
		if !h.look(tool) {
			rs.looked = append(rs.looked, "legacy "+f.save+" tables, but no "+f.save+"-legacy-save to read them")
			continue
		}
		if src, err := runSave(h, tool); err != nil {
			rs.looked = append(rs.looked, tool+" failed: "+oneLine(err.Error()))
		} else {
			rs.sources = append(rs.sources, src)
		}
	}
	if nftSrc != nil {
		rs.sources = append([]fwSource{*nftSrc}, rs.sources...)
	}
	var read []string
	for _, s := range rs.sources {
		read = append(read, s.tool)
	}
	if !slices.ContainsFunc([]string{"iptables-save", "iptables-nft-save", "iptables-legacy-save", "ip6tables-save"}, h.look) {
		rs.looked = slices.DeleteFunc(rs.looked, func(s string) bool { return strings.HasPrefix(s, "no legacy") })
		rs.looked = append(rs.looked, "iptables not installed")
	}
	rs.looked = append(read, rs.looked...)
	return rs
}

// nfTablesPresent: is nf_tables loaded or built in? True when that cannot
// be told (nft is then run, as it would be anyway).
func nfTablesPresent(h fwHost) bool {
	mods, err1 := h.read("/proc/modules")
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	builtin, err2 := h.read("/lib/modules/" + unix.ByteSliceToString(uts.Release[:]) + "/modules.builtin")
	if err1 != nil || err2 != nil {
		return true
	}
	return bytes.HasPrefix(mods, []byte("nf_tables ")) || bytes.Contains(mods, []byte("\nnf_tables ")) ||
		bytes.Contains(builtin, []byte("/nf_tables.ko\n"))
}

// saveFlavour: "nf_tables" or "legacy" from "iptables-save v1.8.9 (nf_tables)";
// versions before 1.8 name none and are legacy.
func saveFlavour(h fwHost, tool string) string {
	out, _ := h.run(tool, "--version")
	if bytes.Contains(out, []byte("(nf_tables)")) {
		return "nf_tables"
	}
	return "legacy"
}

func runSave(h fwHost, tool string) (fwSource, error) {
	out, err := h.run(tool)
	if err != nil {
		return fwSource{}, err
	}
	return parseIptablesSave(tool, string(out)), nil
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// checkFirewall: the firewall line for cfg.Iface enslaved to cfg.VRF.
func (c *Checker) checkFirewall(cfg Config, st *State) CheckResult {
	h := c.firewall
	if h == nil {
		ns := netns.None()
		if c.Reader != nil && c.Reader.Net != nil {
			ns = c.Reader.Net.NS
		}
		d := nsFirewallHost(ns)
		h = &d
	}
	l, _ := st.link(cfg.Iface)
	return firewallResult(cfg.Iface, cfg.VRF, l.Index, readFirewall(*h))
}

// fwFinding is one rule that changes meaning once the NIC is enslaved.
type fwFinding struct {
	where, why, fix string
}

func firewallResult(iface, vrf string, index int, rs fwRuleset) CheckResult {
	looked := strings.Join(rs.looked, ", ")
	var found []fwFinding
	named := 0
	for _, src := range rs.sources {
		f, n := firewallFindings(src, iface, vrf, index)
		found = append(found, f...)
		named += n
	}
	switch {
	case len(found) > 0:
		var where, fixes []string
		for _, f := range found {
			where = append(where, f.where+" ("+f.why+")")
			fixes = append(fixes, f.fix)
		}
		return fail("firewall", strings.Join(fixes, "; ")+"; and in the saved ruleset",
			"%d rule(s) naming %s change meaning once it is in %s: %s", len(found), iface, vrf, strings.Join(where, "; "))
	case named > 0:
		return ok("firewall", "%d rule(s) name %s, none where netfilter sees %s instead (read: %s)", named, iface, vrf, looked)
	}
	return ok("firewall", "no nftables/iptables rules name %s (read: %s)", iface, looked)
}

// firewallFindings: the rules of src that stop working with iface enslaved
// to vrf, and how many rules name iface at all.
func firewallFindings(src fwSource, iface, vrf string, index int) ([]fwFinding, int) {
	// the hooks each chain is reached from (jumps and gotos, per table)
	reach := map[*fwChain]map[string]bool{}
	byName := map[string]*fwChain{}
	for _, c := range src.chains {
		byName[c.table+"\x00"+c.name] = c
	}
	var walk func(c *fwChain, hook string)
	walk = func(c *fwChain, hook string) {
		if reach[c] == nil {
			reach[c] = map[string]bool{}
		}
		if reach[c][hook] {
			return
		}
		reach[c][hook] = true
		for _, r := range c.rules {
			for _, t := range r.targets {
				if d := byName[c.table+"\x00"+t]; d != nil {
					walk(d, hook)
				}
			}
		}
	}
	for _, c := range src.chains {
		if c.hook != "" {
			walk(c, c.hook)
		}
	}
	var out []fwFinding
	named := 0
	for _, c := range src.chains {
		hooks := reach[c]
		for i, r := range c.rules {
			inHit := r.iif.hits(iface, index) && !r.iif.hits(vrf, -1)
			outHit := r.oif.hits(iface, index) && !r.oif.hits(vrf, -1)
			if inHit || outHit {
				named++
			}
			where := src.tool + " " + c.table + " " + c.name + " " + r.id + " [" + r.text + "]"
			// input/forward see the VRF device: the match no longer means eth0
			if inHit && (hooks["input"] || hooks["forward"]) && !covered(c, r, true, iface, vrf) {
				h := "input"
				if !hooks["input"] {
					h = "forward"
				}
				why := h + " sees " + vrf + ", not " + iface + ": it no longer matches"
				if r.iif.neg {
					why = h + " sees " + vrf + ", not " + iface + ": it now matches " + iface + "'s traffic too"
				}
				out = append(out, fwFinding{where, why, fwFix(src, c, r, true, false, iface, vrf)})
				continue
			}
			// an accept for eth0 ahead of a drop: the pass with mgmt is dropped
			if r.verdict != "accept" || c.hook == "" || !dropsRest(c, i) {
				continue
			}
			switch {
			case inHit && !r.iif.neg && c.hook == "prerouting" && !acceptsVRF(c, true, vrf):
				out = append(out, fwFinding{where, "packets from " + iface + " pass prerouting again as " + vrf + " and meet the chain's drop", fwFix(src, c, r, true, true, iface, vrf)})
			case outHit && !r.oif.neg && (c.hook == "output" || c.hook == "postrouting") && !acceptsVRF(c, false, vrf):
				out = append(out, fwFinding{where, "packets to " + iface + " pass " + c.hook + " first as " + vrf + " and meet the chain's drop", fwFix(src, c, r, false, true, iface, vrf)})
			}
		}
	}
	return out, named
}

// covered: the chain already has the rule as it must read for the VRF.
func covered(c *fwChain, r *fwRule, in bool, iface, vrf string) bool {
	var want []string
	if s, ok := r.with(in, iface, vrf); ok {
		want = append(want, s)
	}
	if s, ok := r.sdif(iface); ok && in {
		want = append(want, s)
	}
	for _, o := range c.rules {
		if o != r && slices.Contains(want, o.text) {
			return true
		}
	}
	return false
}

// dropsRest: the chain drops what its rules after i do not accept.
func dropsRest(c *fwChain, i int) bool {
	if c.policy == "drop" || c.policy == "DROP" {
		return true
	}
	for _, r := range c.rules[i+1:] {
		if r.catchAll {
			return true
		}
	}
	return false
}

// acceptsVRF: some rule of c accepts by the VRF device in that direction.
func acceptsVRF(c *fwChain, in bool, vrf string) bool {
	for _, r := range c.rules {
		m := r.oif
		if in {
			m = r.iif
		}
		if r.verdict == "accept" && !m.neg && m.hits(vrf, -1) {
			return true
		}
	}
	return false
}

// fwFix: the command that mends r: replace the match (add: a copy for the
// VRF ahead of it), or, when the rule cannot be rendered, what to change.
func fwFix(src fwSource, c *fwChain, r *fwRule, in, add bool, iface, vrf string) string {
	key := "oifname"
	if in {
		key = "iifname"
	}
	if src.fix == "nft" {
		m := r.oif
		if in {
			m = r.iif
		}
		fam, table, _ := strings.Cut(c.table, " ")
		if m.set != "" {
			return "nft " + shellQuote(fmt.Sprintf("add element %s %s %s { \"%s\" }", fam, table, m.set, vrf))
		}
		s, ok := r.with(in, iface, vrf)
		if !ok {
			alt := ""
			if !add {
				alt = fmt.Sprintf(" (or meta sdifname \"%s\" for %s alone)", iface, iface)
			}
			return fmt.Sprintf("in %s %s %s, match %s \"%s\"%s instead of %s: nft -a list chain %s %s %s", c.table, c.name, r.id, key, vrf, alt, iface, fam, table, c.name)
		}
		if add {
			return "nft " + shellQuote(fmt.Sprintf("insert rule %s %s %s %s %s", fam, table, c.name, r.id, s))
		}
		sd := ""
		if t, ok := r.sdif(iface); ok && in {
			sd = fmt.Sprintf(" (or, for %s alone: %s)", iface, t)
		}
		return "nft " + shellQuote(fmt.Sprintf("replace rule %s %s %s %s %s", fam, table, c.name, r.id, s)) + sd
	}
	s, ok := r.with(in, iface, vrf)
	n := strings.TrimPrefix(r.id, "rule ")
	if !ok {
		return fmt.Sprintf("in %s %s %s, -%s %s instead of %s", c.table, c.name, r.id, map[bool]string{true: "i", false: "o"}[in], vrf, iface)
	}
	verb := "-R"
	if add {
		verb = "-I"
	}
	return fmt.Sprintf("%s -t %s %s %s %s %s", src.fix, c.table, verb, c.name, n, s)
}

// --- nft -j list ruleset ---

type nftObj struct {
	Family  string      `json:"family"`
	Table   string      `json:"table"`
	Name    string      `json:"name"`
	Chain   string      `json:"chain"`
	Handle  json.Number `json:"handle"`
	Hook    string      `json:"hook"`
	Policy  string      `json:"policy"`
	Expr    []any       `json:"expr"`
	Comment string      `json:"comment"`
	Elem    []any       `json:"elem"`
}

// parseNFT reads `nft -j list ruleset` (ip, ip6 and inet tables: the others
// hook below IP, where the real device is seen).
func parseNFT(data []byte) (fwSource, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		return fwSource{}, err
	}
	src := fwSource{tool: "nft", fix: "nft"}
	chains := map[string]*fwChain{}
	sets := map[string][]string{}
	var rules []nftObj
	for _, item := range doc.Nftables {
		for kind, raw := range item {
			var o nftObj
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			if err := d.Decode(&o); err != nil {
				continue // metainfo and objects check has no use for
			}
			if o.Family != "ip" && o.Family != "ip6" && o.Family != "inet" {
				continue
			}
			switch kind {
			case "chain":
				c := &fwChain{table: o.Family + " " + o.Table, name: o.Name, hook: o.Hook, policy: o.Policy}
				chains[c.table+"\x00"+c.name] = c
				src.chains = append(src.chains, c)
			case "set":
				for _, e := range o.Elem {
					if s, ok := nftElem(e).(string); ok {
						sets[o.Family+" "+o.Table+"\x00"+o.Name] = append(sets[o.Family+" "+o.Table+"\x00"+o.Name], s)
					}
				}
			case "rule":
				rules = append(rules, o)
			}
		}
	}
	for _, o := range rules {
		c := chains[o.Family+" "+o.Table+"\x00"+o.Chain]
		if c == nil {
			continue
		}
		c.rules = append(c.rules, nftRule(o, func(name string) []string { return sets[c.table+"\x00"+name] }))
	}
	return src, nil
}

func nftElem(e any) any {
	if m, ok := e.(map[string]any); ok {
		if el, ok := m["elem"].(map[string]any); ok {
			return el["val"]
		}
	}
	return e
}

var nftIfKeys = map[string]bool{"iifname": true, "oifname": true, "iif": true, "oif": true, "sdif": true, "sdifname": true}

// nftRule reduces one rule; set resolves a named set's elements.
func nftRule(o nftObj, set func(string) []string) *fwRule {
	r := &fwRule{id: "handle " + o.Handle.String()}
	ifAt := map[bool]int{true: -1, false: -1} // expr index of the iif / oif match
	for i, e := range o.Expr {
		m, _ := e.(map[string]any)
		for k, v := range m {
			switch k {
			case "match":
				mm, _ := v.(map[string]any)
				key := nftMetaKey(mm["left"])
				if key != "iifname" && key != "iif" && key != "oifname" && key != "oif" {
					continue
				}
				in := key[0] == 'i'
				im := ifMatch{neg: mm["op"] == "!="}
				switch rv := mm["right"].(type) {
				case string:
					if name, ok := strings.CutPrefix(rv, "@"); ok {
						im.set = name
						im.names = set(name)
					} else {
						im.names = []string{rv}
					}
				case json.Number:
					n, _ := rv.Int64()
					im.index = int(n)
				case map[string]any:
					if s, ok := rv["set"].([]any); ok {
						for _, e := range s {
							if n, ok := nftElem(e).(string); ok {
								im.names = append(im.names, n)
							}
						}
					}
				}
				if in {
					r.iif = im
				} else {
					r.oif = im
				}
				ifAt[in] = i
			case "vmap":
				vm, _ := v.(map[string]any)
				key := nftMetaKey(vm["key"])
				data, _ := vm["data"].(map[string]any)
				pairs, _ := data["set"].([]any)
				var im ifMatch
				for _, p := range pairs {
					if kv, ok := p.([]any); ok && len(kv) == 2 {
						if n, ok := kv[0].(string); ok {
							im.names = append(im.names, n)
						}
					}
				}
				if key == "iifname" || key == "iif" {
					r.iif, ifAt[true] = im, i
				} else if key == "oifname" || key == "oif" {
					r.oif, ifAt[false] = im, i
				}
			case "accept", "drop", "reject":
				r.verdict = k
			}
		}
		nftTargets(e, &r.targets)
	}
	r.catchAll = (r.verdict == "drop" || r.verdict == "reject") && !r.iif.any() && !r.oif.any()
	for _, e := range o.Expr {
		m, _ := e.(map[string]any)
		for k := range m {
			if k != "counter" && k != "log" && k != "drop" && k != "reject" {
				r.catchAll = false
			}
		}
	}
	render := func(override map[int]string) (string, bool) {
		var parts []string
		complete := true
		for i, e := range o.Expr {
			if s, ok := override[i]; ok {
				parts = append(parts, s)
				continue
			}
			s, ok := nftRender(e)
			if !ok {
				s, complete = "…", false
			}
			parts = append(parts, s)
		}
		if o.Comment != "" {
			parts = append(parts, "comment "+strconvQuote(o.Comment))
		}
		return strings.Join(parts, " "), complete
	}
	r.text, _ = render(nil)
	r.with = func(in bool, nic, dev string) (string, bool) {
		i := ifAt[in]
		if i < 0 {
			return "", false
		}
		m := r.oif
		if in {
			m = r.iif
		}
		e, ok := nftSwapIf(o.Expr[i], m, nic, dev)
		if !ok {
			return "", false
		}
		s, ok := nftRender(e)
		if !ok {
			return "", false
		}
		return render(map[int]string{i: s})
	}
	// meta sdifname only for a match on the NIC alone: a set would lose
	// its other names
	r.sdif = func(nic string) (string, bool) {
		i := ifAt[true]
		if i < 0 || len(r.iif.names) != 1 || r.iif.names[0] != nic || r.iif.set != "" {
			return "", false
		}
		if _, isMatch := o.Expr[i].(map[string]any)["match"]; !isMatch {
			return "", false
		}
		op := ""
		if r.iif.neg {
			op = "!= "
		}
		return render(map[int]string{i: "meta sdifname " + op + strconvQuote(nic)})
	}
	return r
}

// nftSwapIf: the iif/oif expression e with the NIC's name replaced by dev,
// other names kept; false for what cannot be said that way (named sets,
// ifindexes, a wildcard that names the NIC).
func nftSwapIf(e any, m ifMatch, nic, dev string) (any, bool) {
	if m.set != "" || m.index != 0 {
		return nil, false
	}
	b, _ := json.Marshal(e)
	var c map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if d.Decode(&c) != nil {
		return nil, false
	}
	// swap one name; ok false for a wildcard that covers the NIC
	swap := func(v any) (any, bool) {
		n, isStr := v.(string)
		switch {
		case !isStr || !(ifMatch{names: []string{n}}).hits(nic, -1):
			return v, true
		case n != nic:
			return nil, false
		}
		return dev, true
	}
	var ok bool
	if mm, isMatch := c["match"].(map[string]any); isMatch {
		switch rv := mm["right"].(type) {
		case string:
			if mm["right"], ok = swap(rv); !ok {
				return nil, false
			}
		case map[string]any:
			s, _ := rv["set"].([]any)
			for i := range s {
				if s[i], ok = swap(s[i]); !ok {
					return nil, false
				}
			}
		}
		return c, true
	}
	if vm, isVmap := c["vmap"].(map[string]any); isVmap {
		data, _ := vm["data"].(map[string]any)
		pairs, _ := data["set"].([]any)
		for _, p := range pairs {
			if kv, isPair := p.([]any); isPair && len(kv) == 2 {
				if kv[0], ok = swap(kv[0]); !ok {
					return nil, false
				}
			}
		}
		return c, true
	}
	return nil, false
}

func nftMetaKey(v any) string {
	m, _ := v.(map[string]any)
	mm, _ := m["meta"].(map[string]any)
	k, _ := mm["key"].(string)
	return k
}

func nftTargets(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, y := range x {
			if k == "jump" || k == "goto" {
				if t, ok := y.(map[string]any); ok {
					if s, ok := t["target"].(string); ok {
						*out = append(*out, s)
					}
				}
			}
			nftTargets(y, out)
		}
	case []any:
		for _, y := range x {
			nftTargets(y, out)
		}
	}
}

// nftRender renders the statements check meets in management firewalls, as
// nft prints them; false for anything else.
func nftRender(e any) (string, bool) {
	m, _ := e.(map[string]any)
	if len(m) != 1 {
		return "", false
	}
	for k, v := range m {
		switch k {
		case "accept", "drop", "continue", "return":
			return k, true
		case "reject":
			if v == nil {
				return k, true
			}
		case "jump", "goto":
			t, _ := v.(map[string]any)
			if s, ok := t["target"].(string); ok {
				return k + " " + s, true
			}
		case "counter":
			return "counter", true
		case "log":
			l, _ := v.(map[string]any)
			if len(l) == 0 {
				return "log", true
			}
			if p, ok := l["prefix"].(string); ok && len(l) == 1 {
				return "log prefix " + strconvQuote(p), true
			}
		case "match":
			mm, _ := v.(map[string]any)
			left, quote, ok := nftLeft(mm["left"])
			if !ok {
				return "", false
			}
			right, ok := nftValue(mm["right"], quote)
			if !ok {
				return "", false
			}
			switch op := mm["op"]; op {
			case "==", "in":
				return left + " " + right, true
			case "!=", "<", ">", "<=", ">=":
				return left + " " + op.(string) + " " + right, true
			}
		case "mangle":
			mm, _ := v.(map[string]any)
			left, quote, ok := nftLeft(mm["key"])
			val, ok2 := nftValue(mm["value"], quote)
			if ok && ok2 {
				return left + " set " + val, true
			}
		case "vmap":
			vm, _ := v.(map[string]any)
			left, quote, ok := nftLeft(vm["key"])
			data, _ := vm["data"].(map[string]any)
			pairs, isSet := data["set"].([]any)
			if !ok || !isSet {
				return "", false
			}
			var els []string
			for _, p := range pairs {
				kv, _ := p.([]any)
				if len(kv) != 2 {
					return "", false
				}
				k, ok := nftValue(kv[0], quote)
				vd, ok2 := nftRender(kv[1])
				if !ok || !ok2 {
					return "", false
				}
				els = append(els, k+" : "+vd)
			}
			return left + " vmap { " + strings.Join(els, ", ") + " }", true
		}
	}
	return "", false
}

// nftLeft: a meta, ct or payload selector; quote: its values are names.
func nftLeft(v any) (string, bool, bool) {
	m, _ := v.(map[string]any)
	if len(m) != 1 {
		return "", false, false
	}
	if mm, ok := m["meta"].(map[string]any); ok && len(mm) == 1 {
		k, _ := mm["key"].(string)
		switch k {
		case "iifname", "oifname", "iif", "oif":
			return k, true, true
		case "":
			return "", false, false
		}
		return "meta " + k, nftIfKeys[k], true
	}
	if mm, ok := m["ct"].(map[string]any); ok && len(mm) == 1 {
		k, _ := mm["key"].(string)
		return "ct " + k, false, k != ""
	}
	if mm, ok := m["payload"].(map[string]any); ok && len(mm) == 2 {
		p, _ := mm["protocol"].(string)
		f, _ := mm["field"].(string)
		return p + " " + f, false, p != "" && f != ""
	}
	return "", false, false
}

func nftValue(v any, quote bool) (string, bool) {
	switch x := v.(type) {
	case string:
		if quote && !strings.HasPrefix(x, "@") { // @set is a reference
			return strconvQuote(x), true
		}
		if strings.ContainsAny(x, " \"") {
			return "", false
		}
		return x, true
	case json.Number:
		return x.String(), true
	case []any: // flags: ct state established,related
		var s []string
		for _, y := range x {
			t, ok := nftValue(y, quote)
			if !ok {
				return "", false
			}
			s = append(s, t)
		}
		return strings.Join(s, ","), true
	case map[string]any:
		if s, ok := x["set"].([]any); ok {
			var els []string
			for _, y := range s {
				t, ok := nftValue(nftElem(y), quote)
				if !ok {
					return "", false
				}
				els = append(els, t)
			}
			return "{ " + strings.Join(els, ", ") + " }", true
		}
		if p, ok := x["prefix"].(map[string]any); ok {
			a, _ := p["addr"].(string)
			l, _ := p["len"].(json.Number)
			return a + "/" + l.String(), a != ""
		}
		if r, ok := x["range"].([]any); ok && len(r) == 2 {
			a, ok1 := nftValue(r[0], quote)
			b, ok2 := nftValue(r[1], quote)
			return a + "-" + b, ok1 && ok2
		}
	}
	return "", false
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func strconvQuote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}

// --- iptables-save ---

// parseIptablesSave reads iptables-save's text; tool names the fix command
// (iptables-legacy-save -> iptables-legacy).
func parseIptablesSave(tool, text string) fwSource {
	src := fwSource{tool: tool, fix: strings.TrimSuffix(tool, "-save")}
	table := ""
	chains := map[string]*fwChain{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				continue
			}
			c := &fwChain{table: table, name: f[0], hook: iptablesHooks[f[0]]}
			if f[1] != "-" {
				c.policy = f[1]
			}
			chains[table+"\x00"+f[0]] = c
			src.chains = append(src.chains, c)
		case strings.HasPrefix(line, "-A "):
			args := splitSaveArgs(line)
			if len(args) < 2 {
				continue
			}
			c := chains[table+"\x00"+args[1]]
			if c == nil {
				continue
			}
			c.rules = append(c.rules, iptRule(args[2:], len(c.rules)+1))
		}
	}
	return src
}

// iptRule reduces one rule's arguments (after -A CHAIN); n is its number.
func iptRule(args []string, n int) *fwRule {
	r := &fwRule{id: fmt.Sprintf("rule %d", n), text: joinSaveArgs(args)}
	at := map[bool]int{true: -1, false: -1}
	plain := true // only -j DROP/REJECT, a comment and reject options
	for i := 0; i < len(args); i++ {
		a := args[i]
		neg := false
		if a == "!" && i+1 < len(args) {
			neg, i, a = true, i+1, args[i+1]
		}
		switch a {
		case "-i", "--in-interface", "-o", "--out-interface":
			if i+1 >= len(args) {
				continue
			}
			in := a[1] == 'i' || a == "--in-interface"
			name := args[i+1]
			if name == "!" && i+2 < len(args) { // the old "-i ! eth0"
				neg, i, name = true, i+1, args[i+2]
			}
			m := ifMatch{names: []string{name}, neg: neg}
			if in {
				r.iif = m
			} else {
				r.oif = m
			}
			at[in] = i + 1
			i++
			plain = false
		case "-j", "-g", "--jump", "--goto":
			if i+1 < len(args) {
				t := args[i+1]
				switch t {
				case "ACCEPT":
					r.verdict = "accept"
				case "DROP":
					r.verdict = "drop"
				case "REJECT":
					r.verdict = "reject"
				default:
					r.targets = append(r.targets, t)
				}
				i++
			}
		case "-m":
			if i+1 < len(args) && args[i+1] != "comment" {
				plain = false
			}
			i++
		case "--comment", "--reject-with":
			i++
		default:
			plain = false
		}
	}
	r.catchAll = plain && (r.verdict == "drop" || r.verdict == "reject")
	r.with = func(in bool, nic, dev string) (string, bool) {
		i := at[in]
		if i < 0 || args[i] != nic { // a wildcard: -i eth+ cannot just be renamed
			return "", false
		}
		c := slices.Clone(args)
		c[i] = dev
		return joinSaveArgs(c), true
	}
	r.sdif = func(string) (string, bool) { return "", false } // no such match in iptables
	return r
}

// splitSaveArgs splits an iptables-save line, keeping "quoted words" whole.
func splitSaveArgs(line string) []string {
	var out []string
	var cur strings.Builder
	inQ, has := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '\\' && inQ && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case ch == '"':
			inQ, has = !inQ, true
		case ch == ' ' && !inQ:
			if has || cur.Len() > 0 {
				out = append(out, cur.String())
			}
			cur.Reset()
			has = false
		default:
			cur.WriteByte(ch)
		}
	}
	if has || cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func joinSaveArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \"'") {
			a = strconvQuote(a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
