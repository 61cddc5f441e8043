package netsetup

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pam-vrf/pam-vrf/bpf"
	"github.com/pam-vrf/pam-vrf/cgroup"
)

// UnitState is what apply and check know about one unit named by --service
// (or still carrying our drop-in), as systemd reports it (systemctl show).
type UnitState struct {
	LoadState            string       `json:"load_state"`   // loaded, not-found, masked, ...
	ActiveState          string       `json:"active_state"` // active, inactive, failed, activating, ...
	SubState             string       `json:"sub_state,omitempty"`
	Type                 string       `json:"type,omitempty"` // simple, oneshot, notify, ...
	Result               string       `json:"result,omitempty"`
	ControlGroup         string       `json:"control_group,omitempty"`
	DefaultDependencies  bool         `json:"default_dependencies"`
	Before               []string     `json:"before,omitempty"`
	PrivateNetwork       bool         `json:"private_network,omitempty"`
	NetworkNamespacePath string       `json:"network_namespace_path,omitempty"`
	Sockets              []SocketUnit `json:"sockets,omitempty"` // the .socket units that trigger it
	DropInPaths          []string     `json:"drop_in_paths,omitempty"`
	BPFProgram           []string     `json:"bpf_program,omitempty"`
	NeedDaemonReload     bool         `json:"need_daemon_reload,omitempty"`
	// Job: systemd has a job queued for the unit (a restart apply queued
	// from the boot unit, a start at boot).
	Job bool `json:"job,omitempty"`
	// Bound: a sock_create program attached to the unit's cgroup binds
	// sockets to the VRF's current ifindex (kernel query, BPF_PROG_QUERY).
	Bound bool `json:"bound,omitempty"`
	// PIDs in the unit's cgroup (and below), for check.
	PIDs []int `json:"pids,omitempty"`
}

// SocketUnit is a .socket unit that activates a service.
type SocketUnit struct {
	Name          string   `json:"name"`
	ActiveState   string   `json:"active_state"`
	UnitFileState string   `json:"unit_file_state"`
	IPListen      []string `json:"ip_listen,omitempty"` // its IP listeners (Unix sockets do not matter)
}

// running: a unit with processes that may hold sockets.
func (u UnitState) running() bool {
	switch u.ActiveState {
	case "active", "reloading", "activating", "deactivating":
		return true
	}
	return false
}

// UnitReader is the part of systemd --service needs beyond ServiceManager.
// Systemctl has it; Offline (--root) and fakes may not, and then units are
// not inspected (nothing refused for what only systemd knows, no restarts).
type UnitReader interface {
	// ShowUnits returns the properties of each unit, in order.
	ShowUnits(props []string, units ...string) ([]map[string]string, error)
	// Jobs returns the units with a queued job.
	Jobs() (map[string]bool, error)
	// Version is systemd's version number (252 for "systemd 252 (252.38-1)").
	Version() (int, error)
}

var unitProps = []string{"Id", "LoadState", "ActiveState", "SubState", "Type", "Result", "ControlGroup", "DefaultDependencies",
	"Before", "PrivateNetwork", "NetworkNamespacePath", "TriggeredBy", "DropInPaths", "BPFProgram", "NeedDaemonReload"}

// readUnits inspects units; vrfIndex (0: no VRF) decides Bound.
func readUnits(ur UnitReader, units []string, vrfIndex int) (map[string]UnitState, int, error) {
	ver, err := ur.Version()
	if err != nil {
		return nil, 0, err
	}
	props, err := ur.ShowUnits(unitProps, units...)
	if err != nil {
		return nil, ver, err
	}
	jobs, err := ur.Jobs()
	if err != nil {
		return nil, ver, err
	}
	mount, _ := cgroup.Mount()
	out := map[string]UnitState{}
	for i, u := range units {
		if i >= len(props) {
			break
		}
		p := props[i]
		s := UnitState{LoadState: p["LoadState"], ActiveState: p["ActiveState"], SubState: p["SubState"], Type: p["Type"],
			Result: p["Result"], ControlGroup: p["ControlGroup"], DefaultDependencies: p["DefaultDependencies"] != "no",
			Before: strings.Fields(p["Before"]), PrivateNetwork: p["PrivateNetwork"] == "yes", NetworkNamespacePath: p["NetworkNamespacePath"],
			DropInPaths: strings.Fields(p["DropInPaths"]), NeedDaemonReload: p["NeedDaemonReload"] == "yes", Job: jobs[u]}
		if v := p["BPFProgram"]; v != "" {
			s.BPFProgram = strings.Fields(v)
		}
		var socks []string
		for _, t := range strings.Fields(p["TriggeredBy"]) {
			if strings.HasSuffix(t, ".socket") {
				socks = append(socks, t)
			}
		}
		if len(socks) > 0 {
			sp, err := ur.ShowUnits([]string{"Id", "ActiveState", "UnitFileState", "Listen"}, socks...)
			if err != nil {
				return nil, ver, err
			}
			for j, so := range socks {
				if j < len(sp) {
					s.Sockets = append(s.Sockets, SocketUnit{Name: so, ActiveState: sp[j]["ActiveState"], UnitFileState: sp[j]["UnitFileState"], IPListen: ipListeners(sp[j]["Listen"])})
				}
			}
		}
		if mount != "" && s.ControlGroup != "" {
			dir := filepath.Join(mount, s.ControlGroup)
			s.PIDs, _ = cgroupPIDs(dir)
			if vrfIndex > 0 {
				s.Bound = cgroupBindsTo(dir, vrfIndex)
			}
		}
		out[u] = s
	}
	return out, ver, nil
}

// cgroupBindsTo: a sock_create program attached directly to dir binds to
// ifindex. Units' programs are attached by systemd to the unit's own
// cgroup; an unreadable cgroup (gone, no permission) counts as not bound.
func cgroupBindsTo(dir string, ifindex int) bool {
	ids, err := bpf.Attached(dir)
	if err != nil {
		return false
	}
	for _, id := range ids {
		if ok, _ := bpf.BindsTo(id, uint32(ifindex)); ok {
			return true
		}
	}
	return false
}

// cgroupPIDs: the processes in dir and every cgroup below it.
func cgroupPIDs(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil // removed while walking
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return nil
	})
	return pids, err
}

// ipListeners keeps the IP listeners of systemctl's Listen= property
// ("[::]:22 (Stream) /run/x.sock (Datagram)" -> ["[::]:22"]): paths and
// abstract Unix sockets, netlink and FIFOs are not IP.
func ipListeners(listen string) []string {
	var out []string
	for _, f := range strings.Fields(listen) {
		if strings.HasPrefix(f, "(") || strings.HasPrefix(f, "/") || strings.HasPrefix(f, "@") {
			continue
		}
		if _, err := strconv.Atoi(f); err == nil || strings.Contains(f, ":") {
			out = append(out, f) // "22", "0.0.0.0:514", "[::]:22"
		}
	}
	return out
}

// ShowUnits runs one `systemctl show` for all units.
func (Systemctl) ShowUnits(props []string, units ...string) ([]map[string]string, error) {
	if len(units) == 0 {
		return nil, nil
	}
	args := append([]string{"show", "--property=" + strings.Join(props, ","), "--"}, units...)
	out, err := exec.Command("systemctl", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("systemctl show %s: %w", strings.Join(units, " "), err)
	}
	return parseShow(out), nil
}

// parseShow splits `systemctl show` output: one block per unit, blank-line
// separated, KEY=VALUE lines.
func parseShow(out []byte) []map[string]string {
	var res []map[string]string
	cur := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(cur) > 0 {
				res = append(res, cur)
				cur = map[string]string{}
			}
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			if old, dup := cur[k]; dup && v != "" {
				v = old + " " + v // repeated properties (BPFProgram=, Listen=) are one line each
			} else if dup {
				v = old
			}
			cur[k] = v
		}
	}
	if len(cur) > 0 {
		res = append(res, cur)
	}
	return res
}

// Jobs lists the units with a queued job (systemctl list-jobs).
func (Systemctl) Jobs() (map[string]bool, error) {
	out, err := exec.Command("systemctl", "list-jobs", "--no-legend", "--plain").Output()
	if err != nil {
		return nil, fmt.Errorf("systemctl list-jobs: %w", err)
	}
	return parseJobs(string(out)), nil
}

// parseJobs reads "JOB UNIT TYPE STATE" lines.
func parseJobs(out string) map[string]bool {
	jobs := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			if _, err := strconv.Atoi(f[0]); err == nil {
				jobs[f[1]] = true
			}
		}
	}
	return jobs
}

// Version parses `systemctl --version`.
func (Systemctl) Version() (int, error) {
	out, err := exec.Command("systemctl", "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("systemctl --version: %w", err)
	}
	return parseSystemdVersion(string(out))
}

func parseSystemdVersion(out string) (int, error) {
	var v int
	if _, err := fmt.Sscanf(out, "systemd %d", &v); err != nil {
		return 0, fmt.Errorf("systemctl --version: unexpected output %q", firstLine(out))
	}
	return v, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// unitsToRead: the units of cfg and those still carrying our drop-in.
func unitsToRead(cfg Config, files map[string]FileState) []string {
	units := cfg.services()
	for _, p := range sortedKeys(files) {
		if u := dropInUnit(p); u != "" && files[p].Exists && !slices.Contains(units, u) {
			units = append(units, u)
		}
	}
	return units
}

// runningIn: this process runs in the cgroup of unit (it is that unit's
// ExecStart=): a blocking systemctl restart of a unit ordered after it
// would wait for this very process.
func runningIn(unit string) bool {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if strings.HasPrefix(l, "0::") && strings.HasSuffix(l, "/"+unit) {
			return true
		}
	}
	return false
}
