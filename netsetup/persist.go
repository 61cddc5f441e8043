package netsetup

import (
	"fmt"
	"sort"

	"github.com/pam-vrf/pam-vrf/netsetup/hostnet"
)

// Files apply owns (all written atomically under --root).
const (
	ConfigPath = DefaultConfigPath
	SysctlConf = "/etc/sysctl.d/60-pam-vrf.conf"
	UnitName   = "pam-vrf-netsetup.service"
	UnitPath   = "/etc/systemd/system/" + UnitName
	UnitWants  = "/etc/systemd/system/multi-user.target.wants/" + UnitName
	// PackagedUnit is the unit the vrf-netsetup package ships; when it is
	// there, apply enables it instead of writing its own copy in /etc,
	// which would shadow the package's (and survive its purge).
	PackagedUnit = "/lib/systemd/system/" + UnitName
	SSHDropIn    = "/etc/systemd/system/ssh.service.d/pam-vrf.conf"
	// SSHSocketDropIn binds a socket-activated sshd's listener (ssh.socket).
	// A runtime drop-in, written by every apply (the boot unit's too): see
	// renderSSHSocketDropIn.
	SSHSocketDropIn = "/run/systemd/system/ssh.socket.d/pam-vrf.conf"
	// sshSocketDropInLegacy: where a development build put it, with an
	// ordering cycle at boot (see renderSSHSocketDropIn); apply removes it.
	sshSocketDropInLegacy = "/etc/systemd/system/ssh.socket.d/pam-vrf.conf"
	// DhclientHook: the dhclient exit hook apply writes on ifupdown DHCP hosts.
	DhclientHook = hostnet.DhclientHook
	BackupPath   = "/var/lib/pam-vrf/netsetup-backup.json"
	BPFPinDir    = "/sys/fs/bpf/pam-vrf"
)

// candidatePaths: every file the plan may write, remove or parse.
func candidatePaths(cfg Config, m Manager) []string {
	ps := []string{ConfigPath, SysctlConf, UnitPath, UnitWants, PackagedUnit, DNSWatchPath, DNSWatchService, DNSWatchWants, SSHDropIn, SSHSocketDropIn, sshSocketDropInLegacy, BackupPath,
		ResolvConf, ResolvedUplink, ResolvedStub, ResolvedDropIn, ResolvedConf}
	for _, f := range backendFiles(m, target(cfg), nil) {
		ps = append(ps, f.Path)
	}
	return ps
}

// fileSpec is one desired file; Remove means "must not exist" (ours, stale).
type fileSpec struct {
	Path    string
	Content string
	Symlink string
	Mode    uint32
	Remove  bool
	// Kind groups files for the service actions they need afterwards.
	Kind string // "unit", "ssh", "units" (--service drop-ins), "networkd", "resolved", ""
	// BeforeNet: written before the network steps (hostnet.File).
	BeforeNet bool
}

// desiredFiles renders the persistent configuration for cfg on this host.
func desiredFiles(cfg Config, dns string, st *State) ([]fileSpec, error) {
	fs := []fileSpec{
		{Path: ConfigPath, Content: string(EncodeConfig(cfg)), Mode: 0o644},
		{Path: SysctlConf, Content: renderSysctlConf(cfg, dns, st), Mode: 0o644},
		{Path: UnitPath, Content: renderUnit(cfg), Mode: 0o644, Kind: "unit"},
		{Path: UnitWants, Symlink: UnitPath, Kind: "unit"},
	}
	if st.file(PackagedUnit).Exists {
		fs[2] = fileSpec{Path: UnitPath, Remove: true, Kind: "unit"}
		fs[3] = fileSpec{Path: UnitWants, Symlink: PackagedUnit, Kind: "unit"}
	}
	if cfg.SSHD == SSHDVRFOnly {
		fs = append(fs, fileSpec{Path: SSHDropIn, Content: renderSSHDropIn(cfg), Mode: 0o644, Kind: "ssh"})
	} else {
		fs = append(fs, fileSpec{Path: SSHDropIn, Remove: true, Kind: "ssh"})
	}
	if cfg.SSHD == SSHDVRFOnly && st.SSHSocket {
		fs = append(fs, fileSpec{Path: SSHSocketDropIn, Content: renderSSHSocketDropIn(cfg), Mode: 0o644, Kind: "ssh"})
	} else {
		fs = append(fs, fileSpec{Path: SSHSocketDropIn, Remove: true, Kind: "ssh"})
	}
	fs = append(fs, fileSpec{Path: sshSocketDropInLegacy, Remove: true, Kind: "ssh"})
	fs = append(fs, dnsWatchFiles(cfg)...)
	fs = append(fs, serviceFiles(cfg, st)...)
	read := func(p string) string { return st.file(p).Content }
	for _, f := range backendFiles(st.Manager, vrfTarget(cfg, vrfAddrs(cfg, dns), dnsRuleServers(cfg, dns, st)), read) {
		if !f.Read {
			fs = append(fs, fileSpec{Path: f.Path, Content: f.Content, Mode: f.Mode, Remove: f.Remove, Kind: f.Kind, BeforeNet: f.BeforeNet})
		}
	}
	search := harvestSearch(st)
	switch dns {
	case DNSStatic:
		servers := staticServers(cfg, st)
		if len(servers) == 0 {
			return nil, &PlanError{"dns mode static: no upstream nameserver found (resolved's uplink file, networkd leases and /etc/resolv.conf have none)", "pass --nameserver IP, or --dns none"}
		}
		fs = append(fs, fileSpec{Path: ResolvConf, Content: renderStaticResolvConf(cfg, servers, search), Mode: 0o644},
			fileSpec{Path: ResolvedDropIn, Remove: true, Kind: "resolved"})
	case DNSResolved:
		fs = append(fs, fileSpec{Path: ResolvedDropIn, Content: renderResolvedDropIn(cfg, st), Mode: 0o644, Kind: "resolved"},
			fileSpec{Path: ResolvConf, Content: renderResolvedResolvConf(cfg, search), Mode: 0o644})
	case DNSNone:
		// leave resolv.conf and resolved alone
	}
	return fs, nil
}

// planFiles diffs desired files against the recorded FileStates.
func planFiles(cfg Config, dns string, st *State) ([]Step, error) {
	specs, err := desiredFiles(cfg, dns, st)
	if err != nil {
		return nil, err
	}
	var steps []Step
	for _, f := range specs {
		cur := st.file(f.Path)
		switch {
		case f.Remove:
			if cur.Exists {
				steps = append(steps, stepFile(f, cur))
			}
		case f.Symlink != "":
			if cur.Symlink != f.Symlink {
				steps = append(steps, stepFile(f, cur))
			}
		default:
			if !cur.Exists || cur.Symlink != "" || cur.Content != f.Content || modeDiffers(f, cur) {
				steps = append(steps, stepFile(f, cur))
			}
		}
	}
	return steps, nil
}

// modeDiffers: the file is ours in content but not in mode (a hook that
// lost its x bit never runs: ifup leaves the gateway in main).
func modeDiffers(f fileSpec, cur FileState) bool {
	return f.Mode != 0 && cur.Exists && cur.Symlink == "" && cur.Mode != 0 && cur.Mode != f.Mode
}

func stepFile(f fileSpec, old FileState) Step {
	verb := "write"
	switch {
	case f.Remove:
		verb = "remove"
	case f.Symlink != "":
		verb = "link"
	}
	desc := verb + " " + f.Path
	if f.Symlink != "" {
		desc += " -> " + f.Symlink
	}
	if old.Symlink != "" && f.Symlink == "" && !f.Remove {
		desc += " (replacing symlink to " + old.Symlink + ")"
	}
	if !f.Remove && old.Content == f.Content && modeDiffers(f, old) {
		desc += fmt.Sprintf(" (mode %04o, want %04o)", old.Mode, f.Mode)
	}
	return Step{ID: "file-" + verb + ":" + f.Path + ":" + f.Kind, Desc: desc, BeforeNet: f.BeforeNet && !f.Remove,
		File: &StepFile{Path: f.Path, Kind: f.Kind, Remove: f.Remove},
		Do: func(e *Env) error {
			switch {
			case f.Remove:
				return e.FS.Restore(f.Path, FileState{}) // and an emptied drop-in dir
			case f.Symlink != "":
				return e.FS.SymlinkAtomic(f.Path, f.Symlink)
			default:
				return e.FS.WriteAtomic(f.Path, []byte(f.Content), modeOr(f.Mode))
			}
		},
		Undo: func(e *Env) error { return e.FS.Restore(f.Path, old) }}
}

func renderSysctlConf(cfg Config, dns string, st *State) string {
	tcp, udp := desiredSysctls(cfg, dns, st)
	return fmt.Sprintf("# Written by vrf-netsetup (pam-vrf): sshd mode %s, dns mode %s.\n"+
		"# tcp: unbound listeners (sshd in the default VRF) accept connections arriving in VRF %s.\n"+
		"# udp: replies to default-VRF DNS queries steered into the VRF, and the resolved listener.\n"+
		"net.ipv4.tcp_l3mdev_accept = %s\nnet.ipv4.udp_l3mdev_accept = %s\n", cfg.SSHD, dns, cfg.VRF, tcp, udp)
}

func renderUnit(cfg Config) string {
	return fmt.Sprintf(`# Written by vrf-netsetup (pam-vrf): re-applies the management VRF %[1]s at boot.
# Idempotent: prints "nothing to do" when the network managers already did it.
[Unit]
Description=pam-vrf management VRF %[1]s (vrf-netsetup apply)
# After the tools that bring %[2]s up (so its addresses and default route exist
# and can be moved), before anything that waits for the network to be online
# and before sshd (in vrf-only mode it needs the pinned program).
After=network.target systemd-networkd.service networking.service NetworkManager.service
Wants=network.target
Before=network-online.target ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/vrf-netsetup apply --config %[3]s
# If this unit fails, sshd (unbound then) must still answer through the VRF.
ExecStopPost=-/usr/sbin/vrf-netsetup __boot-failsafe

[Install]
WantedBy=multi-user.target
`, cfg.VRF, cfg.Iface, ConfigPath)
}

// renderSSHDropIn binds ssh.service to the VRF on systemd 252 (Debian 12),
// which has no BindNetworkInterface= (v260). BPFProgram= attaches a program
// we pin in BPFPinDir at every apply (ifindex baked in, like `ip vrf exec`)
// to the unit's cgroup: every socket sshd creates is bound to the VRF. Chosen
// over an `ExecStart=ip vrf exec` wrapper because that creates a cgroup below
// a non-delegated unit (systemd's CGROUP_DELEGATION rules) and breaks with
// ProtectControlGroups=.
//
// Wants=, not Requires=: if the boot unit fails, sshd must still start
// (systemd only logs a BPFProgram= pin it cannot load and runs the unit
// unbound), so a broken VRF never takes the way in to fix it away.
func renderSSHDropIn(cfg Config) string {
	return fmt.Sprintf(`# Written by vrf-netsetup (pam-vrf, sshd mode vrf-only): sshd only in VRF %[1]s.
# Wants=, not Requires=: sshd starts even when pam-vrf-netsetup.service fails.
[Unit]
Wants=%[2]s
After=%[2]s

[Service]
BPFProgram=sock_create:%[3]s/%[1]s
`, cfg.VRF, UnitName, BPFPinDir)
}

// renderSSHSocketDropIn: with socket activation (ssh.socket, Debian's
// Accept=yes or Ubuntu's Accept=no) the listener belongs to systemd, not to
// ssh.service, so it is bound where systemd creates it: BindToDevice= puts
// SO_BINDTODEVICE on it, and accepted connections inherit the binding.
// ssh.service's drop-in still binds what a socket-triggered sshd opens itself.
//
// The drop-in lives in /run, so every boot starts with the stock, unbound
// socket, and the boot unit's apply binds it once the VRF is up. A drop-in
// in /etc cannot be made safe at boot: ssh.socket starts before
// sockets.target, long before the VRF exists, and BindToDevice= on a missing
// device fails the socket; ordering it after the boot unit (which is after
// basic.target) is an ordering cycle that systemd breaks by dropping a job.
// So if the boot unit fails, sshd still answers, unbound, from the default
// VRF: a broken VRF never takes the way in to fix it away.
func renderSSHSocketDropIn(cfg Config) string {
	return fmt.Sprintf(`# Written by vrf-netsetup (pam-vrf, sshd mode vrf-only): the ssh.socket listener only in VRF %[1]s.
# Runtime only: rewritten by pam-vrf-netsetup.service at every boot once %[1]s is up.
[Socket]
BindToDevice=%[1]s
`, cfg.VRF)
}

func modeOr(m uint32) (mode fsMode) {
	if m == 0 {
		return 0o644
	}
	return fsMode(m)
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// The nameserver watch: DHCP renewals, RAs and NetworkManager change the
// nameservers at any time, and on a networkd host (or for an RA's RDNSS
// that NetworkManager learns after up) nothing else runs apply then, so
// the steering rules and connect hooks would follow only at the next boot.
// A path unit on the files the resolvers read runs apply --dns-only when
// they change: the nameserver steps only, never sshd, the units or a VRF
// an admin left down (a full apply there undid a failed boot unit's
// state: ssh.service started next to ssh.socket in the VM).
const (
	DNSWatchName    = "pam-vrf-dns.path"
	DNSWatchPath    = "/etc/systemd/system/" + DNSWatchName
	DNSWatchService = "/etc/systemd/system/pam-vrf-dns.service"
	DNSWatchWants   = "/etc/systemd/system/multi-user.target.wants/" + DNSWatchName
	kindDNSWatch    = "dnswatch"
)

func dnsWatchFiles(cfg Config) []fileSpec {
	return []fileSpec{
		{Path: DNSWatchPath, Content: renderDNSWatchPath(cfg), Mode: 0o644, Kind: kindDNSWatch},
		{Path: DNSWatchService, Content: renderDNSWatchService(cfg), Mode: 0o644, Kind: kindDNSWatch},
		{Path: DNSWatchWants, Symlink: DNSWatchPath, Kind: kindDNSWatch},
	}
}

func renderDNSWatchPath(cfg Config) string {
	return fmt.Sprintf(`# Written by vrf-netsetup (pam-vrf): steers the nameservers into the
# management VRF %[1]s when they change (DHCP, RA, NetworkManager).
[Unit]
Description=pam-vrf: nameservers changed, steer them into VRF %[1]s

[Path]
PathChanged=/run/systemd/resolve/resolv.conf
PathChanged=/etc/resolv.conf
PathChanged=/run/NetworkManager/resolv.conf
Unit=pam-vrf-dns.service

[Install]
WantedBy=multi-user.target
`, cfg.VRF)
}

func renderDNSWatchService(cfg Config) string {
	// After= the boot unit here, not on the path unit: the boot unit's
	// apply restarts the path unit, which must not wait for its caller.
	// No start limit: a burst of resolver writes must not stop the watch.
	// The condition: removed but not purged, the package leaves the watch
	// behind; it must skip, not fail at every resolver write.
	return fmt.Sprintf(`# Written by vrf-netsetup (pam-vrf): started by %[1]s.
[Unit]
Description=pam-vrf: steer the new nameservers into VRF %[2]s
After=%[3]s
StartLimitIntervalSec=0
ConditionPathExists=/usr/sbin/vrf-netsetup

[Service]
Type=oneshot
ExecStart=/usr/sbin/vrf-netsetup apply --config %[4]s --dns-only --quiet
`, DNSWatchName, cfg.VRF, UnitName, ConfigPath)
}
