package netsetup

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// inNS runs fn on a locked OS thread that has joined ns. Per-netns state that
// is not reachable through a netlink handle (/proc/sys/net, sockets) is only
// reachable this way. netns.None() (-1) or the zero value means "the current
// one" (fd 0 is never a netns handle).
func inNS(ns netns.NsHandle, fn func() error) error {
	if ns <= 0 {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the other netns: keep it locked so the Go
		// runtime throws it away instead of reusing it.
		return fmt.Errorf("return to original netns: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}
