//go:build !cgo

package nss

// Without cgo (vrf-netsetup is built static) the C library's NSS is reached
// through getent(1), so that `vrf-netsetup policy explain` sees LDAP and
// SSSD groups as the PAM module does.

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// getent runs getent; exit status 2 is "not found" (getent(1)).
func getent(args ...string) (string, bool, error) {
	out, err := exec.Command("getent", args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 2 {
			return "", false, nil
		}
		return "", false, fmt.Errorf("getent %s: %w", strings.Join(args, " "), err)
	}
	return string(bytes.TrimSpace(out)), true, nil
}

func userGIDs(user string) ([]uint32, error) {
	pw, ok, err := getent("passwd", "--", user)
	if err != nil {
		return nil, err
	}
	f := strings.Split(pw, ":")
	if !ok || len(f) < 4 {
		return nil, fmt.Errorf("look up user %q: %w", user, ErrNoUser)
	}
	primary, err := strconv.ParseUint(f[3], 10, 32)
	if err != nil {
		return nil, fmt.Errorf("look up user %q: bad gid %q", user, f[3])
	}
	gids := []uint32{uint32(primary)}
	ig, _, err := getent("initgroups", "--", user)
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(ig)
	for _, s := range fields[min(1, len(fields)):] { // first field is the user name
		g, err := strconv.ParseUint(s, 10, 32)
		if err == nil {
			gids = append(gids, uint32(g))
		}
	}
	return gids, nil
}

func groupGID(name string) (uint32, bool, error) {
	gr, ok, err := getent("group", "--", name)
	if err != nil || !ok {
		return 0, false, err
	}
	f := strings.Split(gr, ":")
	if len(f) < 3 {
		return 0, false, fmt.Errorf("look up group %q: malformed entry", name)
	}
	g, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return 0, false, fmt.Errorf("look up group %q: bad gid %q", name, f[2])
	}
	return uint32(g), true, nil
}
