package netsetup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// netlink.Route (vishvananda v1.3.1) neither parses nor sends RTA_PREF,
// RTA_EXPIRES/RTA_CACHEINFO expiry or RTA_NH_ID, and has no hook to add
// an attribute to its requests. The reader therefore takes those from a
// raw dump of its own (routeExtras), joined to the library's routes by
// the kernel's route key, and a route that needs one is written by
// routeReplaceRaw; everything else keeps going through the library.

// rtaNHID is RTA_NH_ID (linux/rtnetlink.h), missing from x/sys/unix.
const rtaNHID = 30

// userHZ: rta_cacheinfo.rta_expires is in clock ticks (USER_HZ), 100 on
// every architecture Go runs Linux on except alpha.
const userHZ = 100

// routeExtra is what the library leaves out of a dumped route.
type routeExtra struct {
	Pref    uint8
	Expires time.Duration // 0: does not expire
	NHID    uint32
	// Lock is RTAX_LOCK: the library sets MTULock/RtoMinLock only when
	// the lock mask is that one bit alone, so both locks read as none.
	Lock uint32
}

// extraKey identifies a route in a dump: the kernel's key (table, dst,
// tos, priority) plus its first hop, as both parsers see them.
func extraKey(family, table int, dst *net.IPNet, tos, prio int, gw net.IP, oif int) string {
	d := "default"
	if dst != nil {
		if ones, _ := dst.Mask.Size(); ones != 0 || !dst.IP.IsUnspecified() {
			d = dst.String()
		}
	}
	g := ""
	if gw != nil {
		g = gw.String()
	}
	return fmt.Sprintf("%d|%d|%s|%d|%d|%s|%d", family, table, d, tos, prio, g, oif)
}

func extraKeyOf(r netlink.Route) string {
	return extraKey(r.Family, r.Table, r.Dst, r.Tos, r.Priority, r.Gw, r.LinkIndex)
}

// routeExtras dumps family's routes raw and returns the attributes the
// library drops, by extraKey.
func (n *Net) routeExtras(family int) (map[string]routeExtra, error) {
	msgs, err := n.dumpRt(unix.RTM_GETROUTE, unix.RTM_NEWROUTE, family, "routes")
	if err != nil {
		return nil, err
	}
	out := map[string]routeExtra{}
	for _, m := range msgs {
		if len(m) < unix.SizeofRtMsg {
			continue
		}
		hdr := nl.DeserializeRtMsg(m)
		if int(hdr.Family) != family || hdr.Flags&unix.RTM_F_CLONED != 0 {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofRtMsg:])
		if err != nil {
			return nil, fmt.Errorf("parse %s route: %w", famName(family), err)
		}
		table, prio, oif := int(hdr.Table), 0, 0
		var dst *net.IPNet
		var gw net.IP
		var x routeExtra
		for _, a := range attrs {
			v := a.Value
			switch a.Attr.Type {
			case unix.RTA_TABLE:
				table = int(binary.NativeEndian.Uint32(v))
			case unix.RTA_DST:
				dst = &net.IPNet{IP: net.IP(v), Mask: net.CIDRMask(int(hdr.Dst_len), 8*len(v))}
			case unix.RTA_PRIORITY:
				prio = int(binary.NativeEndian.Uint32(v))
			case unix.RTA_GATEWAY:
				gw = net.IP(v)
			case unix.RTA_OIF:
				oif = int(binary.NativeEndian.Uint32(v))
			case unix.RTA_PREF:
				if len(v) > 0 {
					x.Pref = v[0]
				}
			case unix.RTA_CACHEINFO:
				// struct rta_cacheinfo: rta_expires (s32) at offset 8
				if len(v) >= 12 {
					if t := int32(binary.NativeEndian.Uint32(v[8:12])); t > 0 {
						x.Expires = time.Duration(t) * time.Second / userHZ
					}
				}
			case rtaNHID:
				x.NHID = binary.NativeEndian.Uint32(v)
			case unix.RTA_METRICS:
				ms, err := nl.ParseRouteAttr(v)
				if err != nil {
					return nil, fmt.Errorf("parse %s route metrics: %w", famName(family), err)
				}
				for _, m := range ms {
					if m.Attr.Type == unix.RTAX_LOCK && len(m.Value) >= 4 {
						x.Lock = binary.NativeEndian.Uint32(m.Value)
					}
				}
			}
		}
		out[extraKey(family, table, dst, int(hdr.Tos), prio, gw, oif)] = x
	}
	return out, nil
}

// nhMsg is struct nhmsg (linux/nexthop.h).
type nhMsg struct{ unix.Nhmsg }

func (m *nhMsg) Len() int { return unix.SizeofNhmsg }
func (m *nhMsg) Serialize() []byte {
	b := make([]byte, unix.SizeofNhmsg)
	b[0], b[1], b[2] = m.Family, m.Scope, m.Protocol
	binary.NativeEndian.PutUint32(b[4:], m.Flags)
	return b
}

// nexthopDevs maps each nexthop object to the devices it sends through
// (a group: those of its members). A kernel without nexthop objects has
// none.
func (n *Net) nexthopDevs() (map[uint32][]int, error) {
	req := n.request(unix.RTM_GETNEXTHOP, unix.NLM_F_DUMP)
	req.AddData(&nhMsg{})
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNEXTHOP)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dump nexthop objects: %w", err)
	}
	oif := map[uint32]int{}
	groups := map[uint32][]uint32{}
	for _, m := range msgs {
		if len(m) < unix.SizeofNhmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofNhmsg:])
		if err != nil {
			return nil, fmt.Errorf("parse nexthop object: %w", err)
		}
		var id uint32
		dev := 0
		var members []uint32
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.NHA_ID:
				id = binary.NativeEndian.Uint32(a.Value)
			case unix.NHA_OIF:
				dev = int(binary.NativeEndian.Uint32(a.Value))
			case unix.NHA_GROUP:
				for b := a.Value; len(b) >= unix.SizeofNexthopGrp; b = b[unix.SizeofNexthopGrp:] {
					members = append(members, binary.NativeEndian.Uint32(b))
				}
			}
		}
		if members != nil {
			groups[id] = members
		} else {
			oif[id] = dev
		}
	}
	out := map[uint32][]int{}
	for id, d := range oif {
		if d != 0 {
			out[id] = []int{d}
		}
	}
	for id, ms := range groups {
		for _, m := range ms {
			if d := oif[m]; d != 0 {
				out[id] = append(out[id], d)
			}
		}
	}
	return out, nil
}

// routeReplaceRaw is RouteReplace for a route that carries what the
// library cannot send (x): an RTM_NEWROUTE built here from the fields
// nlRoute sets.
func (n *Net) routeReplaceRaw(r *netlink.Route, x routeExtra) error {
	req := n.request(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK)
	msg := nl.NewRtMsg()
	msg.Family = uint8(r.Family)
	msg.Tos = uint8(r.Tos)
	msg.Protocol = uint8(r.Protocol)
	msg.Scope = uint8(r.Scope)
	msg.Type = uint8(r.Type)
	msg.Flags = uint32(r.Flags)
	msg.Table = unix.RT_TABLE_UNSPEC
	if r.Table < 256 {
		msg.Table = uint8(r.Table)
	}
	ip := func(a net.IP) []byte {
		if a4 := a.To4(); a4 != nil && r.Family == unix.AF_INET {
			return a4
		}
		return a.To16()
	}
	u32 := func(typ int, v uint32) *nl.RtAttr {
		b := make([]byte, 4)
		binary.NativeEndian.PutUint32(b, v)
		return nl.NewRtAttr(typ, b)
	}
	attrs := []*nl.RtAttr{u32(unix.RTA_TABLE, uint32(r.Table))}
	if r.Dst != nil {
		ones, _ := r.Dst.Mask.Size()
		msg.Dst_len = uint8(ones)
		attrs = append(attrs, nl.NewRtAttr(unix.RTA_DST, ip(r.Dst.IP)))
	}
	if r.Src != nil {
		attrs = append(attrs, nl.NewRtAttr(unix.RTA_PREFSRC, ip(r.Src)))
	}
	if r.Gw != nil {
		attrs = append(attrs, nl.NewRtAttr(unix.RTA_GATEWAY, ip(r.Gw)))
	}
	if r.Via != nil {
		b, err := r.Via.Encode()
		if err != nil {
			return err
		}
		attrs = append(attrs, nl.NewRtAttr(unix.RTA_VIA, b))
	}
	if r.LinkIndex > 0 {
		attrs = append(attrs, u32(unix.RTA_OIF, uint32(r.LinkIndex)))
	}
	if r.Priority > 0 {
		attrs = append(attrs, u32(unix.RTA_PRIORITY, uint32(r.Priority)))
	}
	if r.Realm > 0 {
		attrs = append(attrs, u32(unix.RTA_FLOW, uint32(r.Realm)))
	}
	if len(r.MultiPath) > 0 {
		var buf []byte
		for _, h := range r.MultiPath {
			nh := &nl.RtNexthop{RtNexthop: unix.RtNexthop{Hops: uint8(h.Hops), Ifindex: int32(h.LinkIndex), Flags: uint8(h.Flags)}}
			if h.Gw != nil {
				nh.Children = append(nh.Children, nl.NewRtAttr(unix.RTA_GATEWAY, ip(h.Gw)))
			}
			if h.Via != nil {
				b, err := h.Via.Encode()
				if err != nil {
					return err
				}
				nh.Children = append(nh.Children, nl.NewRtAttr(unix.RTA_VIA, b))
			}
			buf = append(buf, nh.Serialize()...)
		}
		attrs = append(attrs, nl.NewRtAttr(unix.RTA_MULTIPATH, buf))
	}
	if m := routeMetricAttrs(r); m != nil {
		attrs = append(attrs, m)
	}
	if x.Pref != 0 {
		attrs = append(attrs, nl.NewRtAttr(unix.RTA_PREF, []byte{x.Pref}))
	}
	if x.Expires > 0 {
		// RTA_EXPIRES is in seconds, unlike the rta_cacheinfo it is read from
		attrs = append(attrs, u32(unix.RTA_EXPIRES, uint32((x.Expires+time.Second-1)/time.Second)))
	}
	if x.NHID != 0 {
		attrs = append(attrs, u32(rtaNHID, x.NHID))
	}
	req.AddData(msg)
	for _, a := range attrs {
		req.AddData(a)
	}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// routeMetricAttrs is RTA_METRICS for r, as the library encodes it.
func routeMetricAttrs(r *netlink.Route) *nl.RtAttr {
	var kids []*nl.RtAttr
	add := func(typ, v int) {
		if v > 0 {
			kids = append(kids, nl.NewRtAttr(typ, nl.Uint32Attr(uint32(v))))
		}
	}
	add(unix.RTAX_MTU, r.MTU)
	add(unix.RTAX_WINDOW, r.Window)
	add(unix.RTAX_RTT, r.Rtt)
	add(unix.RTAX_RTTVAR, r.RttVar)
	add(unix.RTAX_SSTHRESH, r.Ssthresh)
	add(unix.RTAX_CWND, r.Cwnd)
	add(unix.RTAX_ADVMSS, r.AdvMSS)
	add(unix.RTAX_REORDERING, r.Reordering)
	add(unix.RTAX_HOPLIMIT, r.Hoplimit)
	add(unix.RTAX_INITCWND, r.InitCwnd)
	add(unix.RTAX_FEATURES, r.Features)
	add(unix.RTAX_RTO_MIN, r.RtoMin)
	add(unix.RTAX_INITRWND, r.InitRwnd)
	add(unix.RTAX_QUICKACK, r.QuickACK)
	add(unix.RTAX_FASTOPEN_NO_COOKIE, r.FastOpenNoCookie)
	lock := 0
	if r.MTULock && r.MTU > 0 {
		lock |= 1 << unix.RTAX_MTU
	}
	if r.RtoMinLock && r.RtoMin > 0 {
		lock |= 1 << unix.RTAX_RTO_MIN
	}
	add(unix.RTAX_LOCK, lock)
	if r.Congctl != "" {
		kids = append(kids, nl.NewRtAttr(unix.RTAX_CC_ALGO, nl.ZeroTerminated(r.Congctl)))
	}
	if kids == nil {
		return nil
	}
	m := nl.NewRtAttr(unix.RTA_METRICS, nil)
	for _, k := range kids {
		m.AddChild(k)
	}
	return m
}
