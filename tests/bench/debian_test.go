package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Debian 12's PAM service for sshd, as a fresh install ships it: the
// "not placed" target measured on the stack an unplaced ssh login really
// loads, not only against one or two pam_permit.so.
//
// debianPAM is /etc/pam.d/sshd of openssh-server 1:9.2p1-2 (bookworm; its
// comments dropped) and the common-* files pam-auth-update writes from the
// profiles of a fresh install (libpam-runtime's "unix", libpam-systemd's
// "systemd"). This bookworm host's /etc/pam.d/common-* are these plus
// "auth optional pam_cap.so" from libpam-cap, a package a fresh install
// does not have. Every module named here is in libpam-modules (Priority:
// required) but pam_systemd.so (libpam-systemd, installed with systemd), so
// scripts/install-deps.sh has nothing to add.
//
// libpam loads every module a service names, of all four types, at its
// first call: pam_nologin.so (account) is loaded for a session too, as in
// sshd.
var debianPAM = map[string]string{
	"sshd": `@include common-auth
account    required     pam_nologin.so
@include common-account
session [success=ok ignore=ignore module_unknown=ignore default=bad]        pam_selinux.so close
session    required     pam_loginuid.so
session    optional     pam_keyinit.so force revoke
@include common-session
session    optional     pam_motd.so  motd=/run/motd.dynamic
session    optional     pam_motd.so noupdate
session    optional     pam_mail.so standard noenv # [1]
session    required     pam_limits.so
session    required     pam_env.so # [1]
session    required     pam_env.so user_readenv=1 envfile=/etc/default/locale
session [success=ok ignore=ignore module_unknown=ignore default=bad]        pam_selinux.so open
@include common-password
`,
	"common-auth": `auth	[success=1 default=ignore]	pam_unix.so nullok
auth	requisite			pam_deny.so
auth	required			pam_permit.so
`,
	"common-account": `account	[success=1 new_authtok_reqd=done default=ignore]	pam_unix.so 
account	requisite			pam_deny.so
account	required			pam_permit.so
`,
	"common-password": `password	[success=1 default=ignore]	pam_unix.so obscure yescrypt
password	requisite			pam_deny.so
password	required			pam_permit.so
`,
	"common-session": `session	[default=1]			pam_permit.so
session	requisite			pam_deny.so
session	required			pam_permit.so
session	required	pam_unix.so 
session	optional	pam_systemd.so 
# end of pam-auth-update config
`,
}

// debianLeftOut: the lines of debianPAM a bench process cannot run, each
// commented out in the written files with its reason. Both are among the
// dearest modules of a real login (a D-Bus round trip; a fork and exec of
// run-parts), so leaving them out makes the baseline cheaper and the
// measured ratio an upper bound of a real login's.
var debianLeftOut = []struct{ line, short, why string }{
	{"pam_systemd.so", "pam_systemd",
		"it registers a real logind session over D-Bus and moves the process into its scope, out of the bench's session cgroup"},
	{"pam_motd.so  motd=/run/motd.dynamic", "pam_motd's motd.dynamic update",
		"it runs the host's /etc/update-motd.d scripts (run-parts, fork+exec) and rewrites the host's /run/motd.dynamic"},
}

// debianStack writes Debian's sshd service (debianPAM less debianLeftOut)
// into a new directory and returns it. With policy != "", the module is
// added as the "vrf" pam-auth-update profile adds it
// (debian/pam-configs/vrf: "session required pam_vrf.so" in common-session's
// Additional block, after pam_systemd), the module as packaged, with config= the
// policy written beside it.
//
// Includes are absolute: with pam_start_confdir, libpam still resolves a
// relative "@include common-session" in /etc/pam.d, the host's own files.
func (e *env) debianStack(b *testing.B, policy string) string {
	b.Helper()
	kind := "debian"
	if policy != "" {
		kind = "debian-vrf"
	}
	dir, err := os.MkdirTemp(e.confDir, kind+"-")
	if err != nil {
		b.Fatal(err)
	}
	for name, text := range debianPAM {
		var out []string
		for _, l := range strings.SplitAfter(text, "\n") {
			if l == "" {
				continue
			}
			for _, x := range debianLeftOut {
				if strings.Contains(l, x.line) {
					l = fmt.Sprintf("# left out by make bench: %s\n#%s", x.why, l)
				}
			}
			if inc, ok := strings.CutPrefix(l, "@include "); ok {
				l = "@include " + filepath.Join(dir, inc)
			}
			out = append(out, l)
			if name == "common-session" && policy != "" && strings.Contains(l, "pam_systemd.so") {
				pol := filepath.Join(dir, "pam_vrf.toml")
				write(b, pol, policy, 0o644)
				out = append(out, fmt.Sprintf("session\trequired\t%s config=%s\n", shippedSO, pol))
			}
		}
		write(b, filepath.Join(dir, name), strings.Join(out, ""), 0o644)
	}
	if policy != "" && !strings.Contains(readFile(b, filepath.Join(dir, "common-session")), shippedSO) {
		b.Fatal("debianStack: no place for pam_vrf.so after pam_systemd.so in common-session")
	}
	return dir
}

func readFile(b *testing.B, p string) string {
	b.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	return string(data)
}

var pamModuleRe = regexp.MustCompile(`(?m)\s(/\S*/pam_[^/\s]+\.so)$`)

// mappedModules opens a session on stackDir in a fresh driver and returns
// the PAM modules mapped in it (base names, sorted): what the stack really
// loaded, read from the driver's /proc/<pid>/maps by a child it runs
// inside the session.
func (e *env) mappedModules(b *testing.B, sess, stackDir string) []string {
	b.Helper()
	out := e.run(b, sess, stackDir, "--", "sh", "-c", "cat /proc/$PPID/maps")
	var mods []string
	for _, m := range pamModuleRe.FindAllStringSubmatch(out, -1) {
		name := filepath.Base(m[1])
		if m[1] == shippedSO {
			name = "pam_vrf.so"
		}
		if !slices.Contains(mods, name) {
			mods = append(mods, name)
		}
	}
	slices.Sort(mods)
	return mods
}

// checkDebianStacks: the two stacks differ by pam_vrf.so exactly, and the
// one without it loaded no module that was left out (so libpam read the
// bench's files, not the host's). Returns the modules of the one without.
func (e *env) checkDebianStacks(b *testing.B, sess, without, with string) []string {
	b.Helper()
	a, v := e.mappedModules(b, sess, without), e.mappedModules(b, sess, with)
	if slices.Contains(a, "pam_vrf.so") || slices.Contains(a, "pam_systemd.so") {
		b.Fatalf("Debian sshd stack without pam_vrf loaded %v (the host's /etc/pam.d files?)", a)
	}
	want := append(slices.Clone(a), "pam_vrf.so")
	slices.Sort(want)
	if !slices.Equal(v, want) {
		b.Fatalf("Debian sshd stack with pam_vrf loaded %v, want %v", v, want)
	}
	if len(a) < 8 {
		b.Fatalf("Debian sshd stack loaded only %v", a)
	}
	return a
}
