package main

// `vrf-netsetup policy check|explain|edit`: the PAM policy
// (/etc/security/pam_vrf.toml) seen with the module's own eyes. check runs
// config.Load, the very function pam_vrf.so runs at each login; explain runs
// Policy.ActsFor and Policy.Decide for one user and service, as a login
// would; edit is visudo for the policy: the admin edits a copy, and only a
// copy that parses is installed, atomically.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/pam-vrf/pam-vrf/config"
	"github.com/pam-vrf/pam-vrf/nss"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// policyHooks are the parts of the policy commands that reach outside the
// process; tests replace them.
type policyHooks struct {
	// groups is the group membership source for explain: NSS, as the
	// module asks it (vrf-netsetup is static, so nss uses getent(1)).
	groups func(pol *config.Policy) config.Groups
	// linkKind reports whether a network device exists and its kind
	// ("vrf", "veth", ...).
	linkKind func(name string) (kind string, exists bool, err error)
	// stdin is where edit reads its "What now?" answer; isTerminal says
	// whether there is someone to ask.
	stdin      io.Reader
	isTerminal func() bool
	getenv     func(string) string
}

var hooks = policyHooks{
	groups: func(pol *config.Policy) config.Groups {
		return func(user string, names []string) ([]bool, error) {
			return nss.Membership(user, names, pol.Timeout())
		}
	},
	linkKind: func(name string) (string, bool, error) {
		l, err := netlink.LinkByName(name)
		if err != nil {
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
				return "", false, nil
			}
			return "", false, err
		}
		return l.Type(), true, nil
	},
	stdin: os.Stdin,
	isTerminal: func() bool {
		_, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
		return err == nil
	},
	getenv: os.Getenv,
}

// errPolicyFailed: the command has said what failed; exit 1 quietly.
var errPolicyFailed = errors.New("policy: failed")

const policyUsage = `usage:
  vrf-netsetup policy check [FILE]
  vrf-netsetup policy explain USER [--service S] [--file FILE]
  vrf-netsetup policy edit [--file FILE]
FILE defaults to ` + config.DefaultPath + `; S to sshd.
`

func cmdPolicy(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &usageError{"policy: want check, explain or edit (see vrf-netsetup help)"}
	}
	switch args[0] {
	case "check":
		return policyCheck(args[1:], stdout, stderr)
	case "explain":
		return policyExplain(args[1:], stdout, stderr)
	case "edit":
		return policyEdit(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, policyUsage)
		return nil
	}
	return &usageError{fmt.Sprintf("policy: unknown subcommand %q (want check, explain or edit)", args[0])}
}

// parsePolicyArgs parses flags anywhere among the arguments (explain USER
// --service S reads naturally) and returns the positional ones.
func parsePolicyArgs(sub string, args []string, define func(fs *flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet(sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, &usageError{"policy " + sub + ": " + strings.TrimSpace(err.Error()) + " (see vrf-netsetup help)"}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// ---------------------------------------------------------------- check ----

func policyCheck(args []string, stdout, stderr io.Writer) error {
	file := ""
	pos, err := parsePolicyArgs("check", args, func(fs *flag.FlagSet) {
		fs.StringVar(&file, "file", "", "")
	})
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 1 || (len(pos) == 1 && file != ""):
		return &usageError{"policy check: one FILE at most"}
	case len(pos) == 1:
		file = pos[0]
	case file == "":
		file = config.DefaultPath
	}
	pol, err := config.Load(file)
	if err != nil {
		printPolicyError(stderr, err)
		fmt.Fprintf(stderr, "pam_vrf cannot use this policy: sessions of %s get its failure rule (the pam.d line's on_error=, else allow: they continue unplaced)\n",
			strings.Join(config.DefaultServices, ", "))
		if !isRefusal(err) {
			fmt.Fprintf(stderr, "fix it with: vrf-netsetup policy edit%s\n", fileFlag(file))
		}
		return errPolicyFailed
	}
	if !pol.Exists {
		fmt.Fprintf(stdout, "%s: no policy (the file does not exist): pam_vrf places nobody\n", file)
		return nil
	}
	fmt.Fprintf(stdout, "%s: OK (%s)\n", file, summary(pol))
	warnVRFs(stderr, pol)
	return nil
}

// printPolicyError prints a Load or Parse error: one line, then the usage
// hint if there is one.
func printPolicyError(w io.Writer, err error) {
	fmt.Fprintln(w, err)
	var ce *config.Error
	if errors.As(err, &ce) && ce.Usage != "" {
		u := strings.TrimRight(ce.Usage, "\n")
		fmt.Fprintln(w, u)
	}
}

// isRefusal: the file was not read (owner, mode, directories, not a regular
// file); editing its content does not fix that. The config package marks
// those errors with this prefix (pam/failure.go relies on it too).
func isRefusal(err error) bool {
	var ce *config.Error
	return errors.As(err, &ce) && strings.HasPrefix(ce.Msg, "refusing policy: ")
}

func fileFlag(file string) string {
	if file == config.DefaultPath {
		return ""
	}
	return " --file " + file
}

// summary: "2 user rules, 1 group rule, default "mgmt", acts for sshd,
// login; on_error allow".
func summary(pol *config.Policy) string {
	parts := []string{plural(len(pol.Users), "user rule"), plural(len(pol.Groups), "group rule")}
	if pol.Default != nil && *pol.Default != "" {
		parts = append(parts, fmt.Sprintf("default %q", *pol.Default))
	} else {
		parts = append(parts, "no default")
	}
	parts = append(parts, "acts for "+strings.Join(services(pol), ", "))
	s := strings.Join(parts, ", ")
	if pol.NSSTimeout > 0 {
		s += ", nss_timeout " + pol.NSSTimeout.String()
	}
	switch pol.OnError {
	case config.OnErrorUnset:
		return s + "; on_error not set (the pam.d line's on_error=, else allow)"
	default:
		return s + "; on_error " + pol.OnError.String()
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func services(pol *config.Policy) []string {
	if pol.Services == nil {
		return config.DefaultServices
	}
	return pol.Services
}

// failureRule: what a session whose VRF cannot be entered gets.
func failureRule(pol *config.Policy) string {
	switch pol.OnError {
	case config.OnErrorDeny:
		return fmt.Sprintf("refused (on_error = \"deny\", %s:%d)", pol.Path, pol.OnErrorLine)
	case config.OnErrorAllow:
		return fmt.Sprintf("let in unplaced, sockets unbound (on_error = \"allow\", %s:%d)", pol.Path, pol.OnErrorLine)
	}
	return "let in unplaced, sockets unbound (on_error is not set: unless the pam.d line says on_error=deny)"
}

// ruleRef is how a rule is named in messages: `user "alice" (path:7)`.
func ruleRef(pol *config.Policy, r config.Rule) string {
	return fmt.Sprintf("%s %q (%s:%d)", r.Kind, r.Name, pol.Path, r.Line)
}

// vrfProblem says what is wrong with VRF name on this host, "" if nothing.
// DefaultVRF and "" name no device.
func vrfProblem(name string) string {
	if name == "" || name == config.DefaultVRF {
		return ""
	}
	kind, exists, err := hooks.linkKind(name)
	switch {
	case err != nil:
		return fmt.Sprintf("cannot be looked up: %v", err)
	case !exists:
		return "does not exist on this host"
	case kind == "device": // netlink's name for a link of no specific kind (lo, a NIC)
		return "is a network device on this host but not a VRF"
	case kind != "vrf":
		return fmt.Sprintf("is a %s device on this host, not a VRF", kind)
	}
	return ""
}

// warnVRFs warns, once per VRF name, about rules naming a VRF this host does
// not have. Not an error: the device may come later (vrf-netsetup apply),
// and until then the failure rule applies to those sessions.
func warnVRFs(w io.Writer, pol *config.Policy) {
	uses := map[string][]string{}
	var order []string
	use := func(vrf, ref string) {
		if vrf == "" || vrf == config.DefaultVRF {
			return
		}
		if _, ok := uses[vrf]; !ok {
			order = append(order, vrf)
		}
		uses[vrf] = append(uses[vrf], ref)
	}
	if pol.Default != nil {
		use(*pol.Default, fmt.Sprintf("default (%s:%d)", pol.Path, pol.DefaultLine))
	}
	users := make([]config.Rule, 0, len(pol.Users))
	for _, r := range pol.Users {
		users = append(users, r)
	}
	slices.SortFunc(users, func(a, b config.Rule) int { return a.Line - b.Line })
	for _, r := range append(users, pol.Groups...) {
		use(r.VRF, ruleRef(pol, r))
	}
	for _, vrf := range order {
		if p := vrfProblem(vrf); p != "" {
			fmt.Fprintf(w, "warning: VRF %q %s; sessions it is chosen for are %s; used by %s\n",
				vrf, p, failureRule(pol), joinRefs(uses[vrf]))
		}
	}
}

func joinRefs(r []string) string {
	if len(r) > 3 {
		return fmt.Sprintf("%s, %s and %d more", r[0], r[1], len(r)-2)
	}
	return strings.Join(r, ", ")
}

// -------------------------------------------------------------- explain ----

func policyExplain(args []string, stdout, stderr io.Writer) error {
	file, service := config.DefaultPath, "sshd"
	pos, err := parsePolicyArgs("explain", args, func(fs *flag.FlagSet) {
		fs.StringVar(&file, "file", config.DefaultPath, "")
		fs.StringVar(&service, "service", "sshd", "")
	})
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		return &usageError{"policy explain: want exactly one USER"}
	}
	if service == "" {
		return &usageError{"policy explain: --service must not be empty"}
	}
	user := pos[0]
	head := fmt.Sprintf("user %s, service %s: ", user, service)

	pol, err := config.Load(file)
	if err != nil {
		printPolicyError(stderr, err)
		fmt.Fprintf(stdout, "%spam_vrf cannot use the policy %s, so no rule decides; ", head, file)
		if slices.Contains(config.DefaultServices, service) {
			fmt.Fprintf(stdout, "the session gets the failure rule (the pam.d line's on_error=, else allow: it continues unplaced)\n")
		} else {
			fmt.Fprintf(stdout, "pam_vrf leaves a %s session alone then (PAM_IGNORE)\n", service)
		}
		return errPolicyFailed
	}
	if !pol.Exists {
		fmt.Fprintf(stdout, "%sno policy (%s does not exist): pam_vrf places nobody; the session is left where it is\n", head, file)
		return nil
	}
	if !pol.ActsFor(service) {
		fmt.Fprintf(stdout, "%spam_vrf does not act for service %q (it acts for %s); the session is left where it is (PAM_IGNORE)\n",
			head, service, strings.Join(services(pol), ", "))
		if why, refused := config.RefusedServices[service]; refused {
			fmt.Fprintf(stdout, "  a policy cannot name %s: %s\n", service, why)
		} else {
			fmt.Fprintf(stdout, "  to change that, list %s in the top-level services of %s\n", service, pol.Path)
		}
		return nil
	}

	// Record what Decide asked NSS, to show which group rules matched.
	var asked []string
	var member []bool
	lookedUp := false
	groups := hooks.groups(pol)
	d, err := pol.Decide(user, service, func(u string, names []string) ([]bool, error) {
		lookedUp = true
		asked = names
		m, err := groups(u, names)
		member = m
		return m, err
	})
	if err != nil {
		fmt.Fprintf(stdout, "%sundecided: %v\n", head, err)
		fmt.Fprintf(stdout, "  a login now would get pam_vrf's failure rule: %s\n", failureRule(pol))
		return errPolicyFailed
	}

	var what string
	switch {
	case !d.Matched:
		what = "no rule matches; the session is left where it is (pam_vrf returns PAM_IGNORE)"
	case d.VRF == "":
		what = "left where it is (vrf = \"\"), by " + ruleText(d.Rule)
	case d.VRF == config.DefaultVRF:
		what = "the default VRF (the …/vrf cgroup, sockets unbound), by " + ruleText(d.Rule)
	default:
		what = fmt.Sprintf("VRF %s, by %s", d.VRF, ruleText(d.Rule))
	}
	fmt.Fprintln(stdout, head+what)

	// Where the decision came from, for the admin who wants it changed.
	if r, ok := pol.Users[user]; ok && !slices.Contains(r.Services, service) && r.Services != nil {
		fmt.Fprintf(stdout, "  %s does not apply: its services are %s\n", ruleRef(pol, r), strings.Join(r.Services, ", "))
	}
	byUser := d.Matched && strings.HasPrefix(d.Rule, "user ")
	for _, r := range pol.Groups {
		if !byUser && r.Services != nil && !slices.Contains(r.Services, service) {
			fmt.Fprintf(stdout, "  %s does not apply: its services are %s\n", ruleRef(pol, r), strings.Join(r.Services, ", "))
		}
	}
	switch {
	case lookedUp:
		var in []string
		decided := false
		fmt.Fprintf(stdout, "  group rules for %s, in file order:\n", service)
		for i, name := range asked {
			r := groupRule(pol, name)
			state := "not a member"
			if i < len(member) && member[i] {
				in = append(in, name)
				switch {
				case !decided:
					state, decided = "member: decides", true
				default:
					state = "member (an earlier group rule decides)"
				}
			}
			fmt.Fprintf(stdout, "    %s: %s\n", ruleRef(pol, r), state)
		}
		if len(in) == 0 {
			fmt.Fprintf(stdout, "  %s is in none of these groups\n", user)
		} else {
			fmt.Fprintf(stdout, "  %s's groups with a rule: %s\n", user, strings.Join(in, ", "))
		}
	case byUser && len(pol.Groups) > 0:
		fmt.Fprintf(stdout, "  group rules not consulted: the user rule comes first\n")
	}
	if d.Matched && strings.HasPrefix(d.Rule, "default ") {
		fmt.Fprintf(stdout, "  no user or group rule matched; `default` applies\n")
	}
	if d.Matched {
		if p := vrfProblem(d.VRF); p != "" {
			fmt.Fprintf(stderr, "warning: VRF %q %s; a login now would be %s\n", d.VRF, p, failureRule(pol))
		}
	}
	return nil
}

func groupRule(pol *config.Policy, name string) config.Rule {
	for _, r := range pol.Groups {
		if r.Name == name {
			return r
		}
	}
	return config.Rule{Kind: config.KindGroup, Name: name}
}

// ruleText: Decision.Rule, with "default (path:3)" spelled out.
func ruleText(rule string) string {
	if strings.HasPrefix(rule, "default (") {
		return "the policy's default " + strings.TrimPrefix(rule, "default ")
	}
	return rule
}

// ----------------------------------------------------------------- edit ----

// newPolicyTemplate is what edit starts from when there is no policy yet.
const newPolicyTemplate = `# ` + config.DefaultPath + ` - policy of pam_vrf(8); see pam_vrf.toml(5).
# An empty policy places nobody. For example:
#
# default = "mgmt"          # VRF for sessions no rule matches
# [user.alice]
# vrf = "mgmt"
# [group.netops]
# vrf = "mgmt"
# services = ["sshd"]
`

func policyEdit(args []string, stdout, stderr io.Writer) error {
	live := config.DefaultPath
	pos, err := parsePolicyArgs("edit", args, func(fs *flag.FlagSet) {
		fs.StringVar(&live, "file", config.DefaultPath, "")
	})
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &usageError{fmt.Sprintf("policy edit: unexpected argument %q (use --file FILE)", pos[0])}
	}
	if os.Geteuid() != 0 {
		return errors.New("must be run as root (the policy is root's)")
	}

	// The file to replace: the live path, or where its symlink points
	// (replacing the symlink by a file would silently split them).
	target := live
	if fi, err := os.Lstat(live); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if target, err = filepath.EvalSymlinks(live); err != nil {
			return fmt.Errorf("%s is a symlink that does not resolve: %w", live, err)
		}
	}
	dir := filepath.Dir(target)

	// One editor at a time: a lock on the directory (visudo uses its
	// .tmp file for that; a directory lock leaves nothing behind).
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("%s is being edited by another vrf-netsetup policy edit (lock on %s: %v)", live, dir, err)
	}

	orig, existed, err := readLive(target)
	if err != nil {
		return err
	}
	start := orig
	if !existed {
		start = []byte(newPolicyTemplate)
	}

	tmp, err := writeTemp(dir, ".pam_vrf.*.toml", start)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// Installed next to tmp, the policy faces the same directory checks:
	// if they refuse, no edit can help.
	if _, err := config.Load(tmp); err != nil && isRefusal(err) {
		return fmt.Errorf("pam_vrf would refuse any policy in %s: %v", dir, err)
	}

	for {
		if err := runEditor(tmp, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "%v; %s left as it was\n", err, live)
			return errPolicyFailed
		}
		edited, err := os.ReadFile(tmp)
		if err != nil {
			return err
		}
		var pol *config.Policy
		if len(edited) > config.MaxFileSize {
			err = &config.Error{Path: live, Msg: fmt.Sprintf("%d bytes, more than the limit of %d", len(edited), config.MaxFileSize)}
		} else {
			// the LIVE path in errors, as visudo does: it is the name
			// the admin knows, and what pam_vrf will report
			pol, err = config.Parse(live, edited)
		}
		if err != nil {
			printPolicyError(stderr, err)
			if !hooks.isTerminal() {
				fmt.Fprintf(stderr, "not installed (no terminal to ask what now); %s left as it was\n", live)
				return errPolicyFailed
			}
			if again := askWhatNow(stdout); again {
				continue
			}
			fmt.Fprintf(stderr, "not installed; %s left as it was\n", live)
			return errPolicyFailed
		}
		if existed && bytes.Equal(edited, orig) {
			fmt.Fprintf(stdout, "%s: no changes; left as it was\n", live)
			return nil
		}
		if !existed && bytes.Equal(edited, start) {
			fmt.Fprintf(stdout, "%s: no changes; not created\n", live)
			return nil
		}
		// Someone changed the live file behind our back (not through
		// edit: that takes the lock): do not overwrite their change.
		now, nowExists, err := readLive(target)
		if err != nil {
			return err
		}
		if nowExists != existed || !bytes.Equal(now, orig) {
			keep := target + ".edit-rejected"
			_ = os.WriteFile(keep, edited, 0o600)
			return fmt.Errorf("%s was changed by someone else while you edited it; not installed; your version is in %s", live, keep)
		}
		if err := install(target, edited); err != nil {
			return fmt.Errorf("install %s: %w", live, err)
		}
		pol.Path = live
		// pam_vrf's own view of what is now in place
		if _, err := config.Load(live); err != nil {
			printPolicyError(stderr, err)
			return fmt.Errorf("%s was installed but pam_vrf refuses it (see above)", live)
		}
		fmt.Fprintf(stdout, "%s: installed (%s)\n", live, summary(pol))
		warnVRFs(stderr, pol)
		return nil
	}
}

// readLive reads the file edit replaces; a missing file is no error.
func readLive(path string) ([]byte, bool, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > config.MaxFileSize {
		return nil, false, fmt.Errorf("%s: %d bytes, more than the limit of %d", path, fi.Size(), config.MaxFileSize)
	}
	data, err := os.ReadFile(path)
	return data, true, err
}

// writeTemp creates a new file (0600, O_EXCL) in dir with data, synced.
func writeTemp(dir, pattern string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// install replaces target with data atomically: a fresh file with exactly
// the validated bytes (not the editor's file, which an editor still running
// in the background could change), synced, root:root 0644, renamed over
// target, and the directory synced so that the rename survives a crash.
func install(target string, data []byte) error {
	dir := filepath.Dir(target)
	tmp, err := writeTemp(dir, ".pam_vrf.*.new", data)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			os.Remove(tmp)
		}
	}()
	if err := os.Chown(tmp, 0, 0); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if _, err := config.Load(tmp); err != nil {
		return fmt.Errorf("pam_vrf would refuse it: %v", err)
	}
	if err := os.Rename(tmp, target); err != nil {
		return err
	}
	done = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// editorCommand: $VISUAL, then $EDITOR (both may carry arguments, run by
// sh as git does), then sensible-editor, then vi.
func editorCommand(file string) (*exec.Cmd, string) {
	for _, v := range []string{"VISUAL", "EDITOR"} {
		if e := strings.TrimSpace(hooks.getenv(v)); e != "" {
			return exec.Command("/bin/sh", "-c", e+` "$1"`, e, file), e
		}
	}
	for _, e := range []string{"sensible-editor", "vi"} {
		if p, err := exec.LookPath(e); err == nil {
			return exec.Command(p, file), e
		}
	}
	return nil, ""
}

func runEditor(file string, stdout, stderr io.Writer) error {
	cmd, name := editorCommand(file)
	if cmd == nil {
		return errors.New("no editor: set VISUAL or EDITOR")
	}
	// The editor gets the terminal. stdin only if it is one: a reader
	// that is not a file would be copied into the editor's pipe and
	// swallow the answers to "What now?".
	if f, ok := hooks.stdin.(*os.File); ok {
		cmd.Stdin = f
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// ^C belongs to the editor; this process must live on to clean up.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Reset(syscall.SIGINT, syscall.SIGQUIT)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("editor %s failed: %v", name, err)
	}
	return nil
}

// askWhatNow asks as visudo does; true = edit again. EOF = exit.
func askWhatNow(out io.Writer) bool {
	for {
		fmt.Fprint(out, "What now? (e)dit again, e(x)it without saving: ")
		line, err := readLine(hooks.stdin)
		switch strings.TrimSpace(line) {
		case "e", "E":
			return true
		case "x", "X":
			return false
		}
		if err != nil {
			fmt.Fprintln(out)
			return false
		}
		fmt.Fprintln(out, "Options are: (e)dit again, e(x)it without saving")
	}
}

// readLine reads one line byte by byte: nothing beyond it is consumed, so
// the editor started next sees the rest of the terminal's input.
func readLine(r io.Reader) (string, error) {
	var b []byte
	c := make([]byte, 1)
	for {
		n, err := r.Read(c)
		if n == 1 {
			if c[0] == '\n' {
				return string(b), nil
			}
			b = append(b, c[0])
		}
		if err != nil {
			return string(b), err
		}
	}
}
