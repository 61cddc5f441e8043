// Package nss answers "is this user a member of these groups?" through the C
// library's name service switch, as the rest of the PAM stack sees it (files,
// LDAP, SSSD, systemd), within a time bound.
//
// It asks as little as the question needs: the user's gid list once
// (getgrouplist, primary group included, no upper limit on its length) and
// each named group's gid once (getgrnam_r), then compares gids. It never
// looks up every gid of the user by number, which with a slow directory
// costs one round trip per group.
//
// A directory that hangs is cut off at the bound: the lookup runs in a
// goroutine, and Membership returns ErrTimeout when the bound passes. The
// goroutine finishes (or stays blocked in the C library) on its own; its
// answer is dropped. That is the price of bounding a call into NSS, which
// has no timeout of its own, from inside the process that must answer PAM.
package nss

import (
	"errors"
	"fmt"
	"time"
)

// ErrTimeout: the lookup did not finish within the bound.
var ErrTimeout = errors.New("NSS group lookup timed out")

// TimedOut is the error of a lookup of user's groups that did not finish
// within timeout (it wraps ErrTimeout).
func TimedOut(user string, timeout time.Duration) error {
	return fmt.Errorf("groups of %q: %w after %v", user, ErrTimeout, timeout)
}

// ErrNoUser: NSS does not know the user (PAM did, so NSS is failing).
var ErrNoUser = errors.New("user not found by NSS")

// Membership reports, for each group name, whether user is a member
// (primary or supplementary group), waiting at most timeout. A group name
// NSS does not know is not an error: nobody is a member of it.
func Membership(user string, names []string, timeout time.Duration) ([]bool, error) {
	type answer struct {
		member []bool
		err    error
	}
	ch := make(chan answer, 1) // buffered: a late answer must not block the goroutine
	go func() {
		m, err := lookup(user, names)
		ch <- answer{m, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a := <-ch:
		return a.member, a.err
	case <-t.C:
		return nil, TimedOut(user, timeout)
	}
}

// lookup is membership; tests replace it to simulate a hanging directory.
var lookup = membership

func membership(user string, names []string) ([]bool, error) {
	gids, err := userGIDs(user)
	if err != nil {
		return nil, err
	}
	have := make(map[uint32]bool, len(gids))
	for _, g := range gids {
		have[g] = true
	}
	member := make([]bool, len(names))
	for i, n := range names {
		gid, ok, err := groupGID(n)
		if err != nil {
			return nil, err
		}
		member[i] = ok && have[gid]
	}
	return member, nil
}
