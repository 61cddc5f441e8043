package netsetup

import (
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Net is every kernel network object apply touches, bound to one netns: the
// vishvananda handle for links/addresses/routes and a raw rtnetlink socket for
// rules (the library has no l3mdev rule support, see rules.go).
// Tests pass a throw-away netns; the product uses the current one.
type Net struct {
	H   *netlink.Handle
	NS  netns.NsHandle // netns.None() = the caller's netns
	raw map[int]*nl.SocketHandle
}

// netlinkTimeout bounds every netlink send and receive: the kernel answers
// a request in milliseconds, and a reply that never comes must fail the
// step (apply rolls back) rather than block apply, and the try and apply
// locks it holds, forever.
const netlinkTimeout = 30 * time.Second

// NewNet opens the handles in ns (netns.None() for the current netns).
func NewNet(ns netns.NsHandle) (*Net, error) {
	var h *netlink.Handle
	var err error
	if ns > 0 {
		h, err = netlink.NewHandleAt(ns)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink handle: %w", err)
	}
	if ns <= 0 {
		ns = netns.None()
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(netlinkTimeout.Nanoseconds())
	if err := errors.Join(h.SetSocketTimeout(netlinkTimeout), s.SetSendTimeout(&tv), s.SetReceiveTimeout(&tv)); err != nil {
		h.Close()
		s.Close()
		return nil, fmt.Errorf("set the rtnetlink sockets' timeout: %w", err)
	}
	return &Net{H: h, NS: ns, raw: map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}}, nil
}

// Close releases the sockets.
func (n *Net) Close() {
	n.H.Close()
	for _, s := range n.raw {
		s.Close()
	}
}

func (n *Net) request(typ, flags int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(typ, flags)
	req.Sockets = n.raw
	return req
}

// dumpRt dumps family's objects of one rtnetlink kind (get: RTM_GETROUTE,
// RTM_GETRULE; answered as want) raw: for the attributes the library
// drops or does not know. what names them in the error.
func (n *Net) dumpRt(get int, want uint16, family int, what string) ([][]byte, error) {
	req := n.request(get, unix.NLM_F_DUMP)
	msg := nl.NewRtMsg()
	msg.Family = uint8(family)
	req.AddData(msg)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, want)
	if err != nil {
		return nil, fmt.Errorf("dump %s %s: %w", famName(family), what, err)
	}
	return msgs, nil
}
