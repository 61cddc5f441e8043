package netsetup

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// ServiceManager is the little of systemd that apply needs. Exec'ing
// systemctl/networkctl is acceptable here (brief); tests use a fake.
type ServiceManager interface {
	IsActive(unit string) bool
	IsEnabled(unit string) bool
	// Run executes a systemctl verb ("stop", "disable", "restart",
	// "daemon-reload", ...) or, with verb "networkctl-reload", networkctl
	// reload, with "networkctl-reconfigure", networkctl reconfigure LINKS,
	// with "nmcli", nmcli ARGS, with "nm-online", nm-online ARGS.
	Run(verb string, units ...string) error
}

// Systemctl drives the host's systemd.
type Systemctl struct{}

func (Systemctl) IsActive(unit string) bool {
	return exec.Command("systemctl", "is-active", "--quiet", unit).Run() == nil
}

func (Systemctl) IsEnabled(unit string) bool {
	return exec.Command("systemctl", "is-enabled", "--quiet", unit).Run() == nil
}

// commandLine names a Run verb and its arguments as the command an admin
// would type (the networkctl verbs as networkctl's, nmcli and nm-online as
// themselves, the rest as systemctl's), for messages.
func commandLine(args []string) string {
	if v, ok := strings.CutPrefix(args[0], "networkctl-"); ok {
		return strings.Join(append([]string{"networkctl", v}, args[1:]...), " ")
	}
	if args[0] == "nmcli" || args[0] == "nm-online" {
		return strings.Join(args, " ")
	}
	return "systemctl " + strings.Join(args, " ")
}

// ignoreReqs: restarts of units that want our boot unit (ssh.service in
// vrf-only mode, --service units) must not pull it in: from a manual apply
// that would start a second apply next to the running one, and the apply
// that restarts them is already doing the boot unit's work. Ordering is
// still honoured.
const ignoreReqs = "--job-mode=ignore-requirements"

func (Systemctl) Run(verb string, units ...string) error {
	cmd := exec.Command("systemctl", append([]string{verb}, units...)...)
	switch verb {
	case "networkctl-reload":
		cmd = exec.Command("networkctl", "reload")
	case "networkctl-reconfigure":
		cmd = exec.Command("networkctl", append([]string{"reconfigure"}, units...)...)
	case "nm-online":
		cmd = exec.Command("nm-online", units...)
	case "nmcli":
		// NetworkManager's takeover (hostnet): waits for the activation
		cmd = exec.Command("nmcli", append([]string{"--wait", "90"}, units...)...)
	case "try-restart":
		// --service units are ordered after the boot unit: restarted from
		// it (at boot, or by systemctl restart of it), a blocking restart
		// would wait for its own caller. Queued, systemd starts them as
		// soon as the boot unit is done, bound (the plan leaves units with
		// a queued job alone, so verify does not ask again).
		cmd = exec.Command("systemctl", append([]string{ignoreReqs, "try-restart"}, units...)...)
		if runningIn(UnitName) {
			cmd = exec.Command("systemctl", append([]string{ignoreReqs, "--no-block", "try-restart"}, units...)...)
		}
	case "restart-bound-socket":
		// units: SOCKET DEVICE. BindToDevice= makes systemd bind the
		// socket to the device's unit (BindsTo=), and a start fails with
		// "dependency" until udev has announced the device: wait for it.
		if len(units) != 2 {
			return fmt.Errorf("restart-bound-socket: want SOCKET DEVICE, got %q", units)
		}
		dev := "sys-subsystem-net-devices-" + unitEscape(units[1]) + ".device"
		for i := 0; i < 100 && exec.Command("systemctl", "is-active", "--quiet", dev).Run() != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		cmd = exec.Command("systemctl", "restart", units[0])
	case "restart-no-block":
		// Queue the restart without waiting for it: in vrf-only mode
		// ssh.service Wants= and is After= our boot unit, so a
		// synchronous restart from apply (itself often that unit) waits
		// for its own caller: a deadlock the VM showed at apply and boot.
		cmd = exec.Command("systemctl", append([]string{ignoreReqs, "--no-block", "restart"}, units...)...)
	}
	return runBounded(cmd.Args)
}

// cmdTimeout bounds each daemon command: a systemctl job that waits on
// another (a restart queued behind a unit that waits for this apply) would
// otherwise hang apply, with its lock, forever; killed, the step fails and
// the apply rolls back. nmcli's own --wait 90 fits inside it.
const cmdTimeout = 3 * time.Minute

func runBounded(argv []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second // children keeping the output pipe open
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("%s: no answer in %v, killed: %s", strings.Join(argv, " "), cmdTimeout, strings.TrimSpace(string(out)))
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Offline is used with --root other than "/": the files describe another
// system image, so nothing on the running host is started or stopped.
type Offline struct{}

func (Offline) IsActive(string) bool        { return false }
func (Offline) IsEnabled(string) bool       { return false }
func (Offline) Run(string, ...string) error { return nil }

// unitEscape escapes a path component as systemd does for unit names
// (systemd-escape): "mgmt-vrf" is "mgmt\x2dvrf".
func unitEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || (c == '.' && i > 0) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\x%02x", c)
		}
	}
	return b.String()
}
