// Package fastpath writes what pam_vrf.so's C part may decide and do without
// starting the Go runtime: a new ssh login is a new process, and starting Go
// in it costs more than the whole placement (make bench). The Go part stays
// the authority: it writes these files only after it has read the policy
// with every safety check, or placed a session itself, and the C part
// (cgo/module/pam_vrf.c) replays them only while they still match the
// system; on any doubt it hands the session to the Go part.
//
// The file, in Dir (root's, 0755; the file 0644, written atomically), is
// policy-<fnv64a(policy path)>: the decision table of one policy file, valid
// while the file's identity (dev, ino, size, mtime, ctime) is the one
// recorded:
//
//	pam_vrf-fastpath 2
//	policy DEV INO SIZE MTIME_NS CTIME_NS
//	cgroup2 MOUNT                   the cgroup2 mount (as cgroup.Mount finds it)
//	services S...                   the policy's services gate
//	nss-timeout MS                  the bound on a login's group lookup
//	default VRF|- LINE              the top-level default and its line
//	user NAME VRF|- LINE S...|*     one line per user rule ("-": vrf = "")
//	group NAME VRF|- LINE S...|*    one line per group rule, in policy order
//
// A policy with a name the format cannot carry (whitespace, a marker) gets no
// file; neither does one changed within the racy window (its identity does
// not yet pin its content, see config.FileID.Settled).
//
// What the C part does with a decision, and when it hands over, is written
// at its top.
package fastpath

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/pam-vrf/pam-vrf/config"
)

// Dir is where the files live (tmpfs: gone at reboot, like the pins).
const Dir = "/run/pam-vrf/fastpath"

const magic = "pam_vrf-fastpath 2\n"

// PolicyFile is the decision-table file of the policy at path.
func PolicyFile(dir, path string) string {
	h := fnv.New64a()
	h.Write([]byte(path))
	return filepath.Join(dir, fmt.Sprintf("policy-%016x", h.Sum64()))
}

// PolicyTable renders the decision table of pol for cgroup2 mount mount, or
// "" when the format cannot carry it.
func PolicyTable(pol *config.Policy, mount string) string {
	if pol == nil || !pol.Exists || pol.File == (config.FileID{}) || !pol.File.Settled() || !strings.HasPrefix(mount, "/") {
		return ""
	}
	// Every name the policy gives must be one word that is not a marker.
	names := append(slices.Clone(pol.Services), mount)
	if pol.Default != nil {
		names = append(names, *pol.Default)
	}
	for _, r := range pol.Groups {
		names = append(append(names, r.Name, r.VRF), r.Services...)
	}
	users := make([]string, 0, len(pol.Users))
	for n, r := range pol.Users {
		users = append(users, n)
		names = append(append(names, n, r.VRF), r.Services...)
	}
	for _, w := range names {
		if w == "-" || w == "*" || strings.ContainsFunc(w, unicode.IsSpace) {
			return ""
		}
	}
	slices.Sort(users)

	var b strings.Builder
	b.WriteString(magic)
	f := pol.File
	fmt.Fprintf(&b, "policy %d %d %d %d %d\n", f.Dev, f.Ino, f.Size, f.Mtime, f.Ctime)
	line := func(ws ...string) { b.WriteString(strings.Join(ws, " ") + "\n") }
	line("cgroup2", mount)
	line(append([]string{"services"}, pol.Services...)...)
	line("nss-timeout", strconv.FormatInt(max(pol.Timeout().Milliseconds(), 1), 10))
	def := "-"
	if pol.Default != nil && *pol.Default != "" {
		def = *pol.Default
	}
	line("default", def, strconv.Itoa(pol.DefaultLine))
	for _, n := range users {
		r := pol.Users[n]
		vrf := r.VRF
		if vrf == "" {
			vrf = "-"
		}
		line(append([]string{"user", n, vrf, strconv.Itoa(r.Line)}, orMarker(r.Services, "*")...)...)
	}
	for _, r := range pol.Groups {
		vrf := r.VRF
		if vrf == "" {
			vrf = "-"
		}
		line(append([]string{"group", r.Name, vrf, strconv.Itoa(r.Line)}, orMarker(r.Services, "*")...)...)
	}
	return b.String()
}

func orMarker(list []string, marker string) []string {
	if len(list) == 0 {
		return []string{marker}
	}
	return list
}

// Put writes content to file atomically unless it already holds exactly
// that; "" removes the file (the C part then hands every such session to
// Go). Errors are for the auth log only: without these files logins are
// slower, never wrong.
func Put(file, content string) error {
	if old, err := os.ReadFile(file); err == nil && string(old) == content {
		return nil
	}
	if content == "" {
		if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write([]byte(content)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
