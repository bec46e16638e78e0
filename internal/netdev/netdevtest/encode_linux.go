package netdevtest

import (
	"math"
	"time"

	"github.com/mdlayher/netlink"

	"github.com/napilab/napilab/internal/netdev"
)

// Replies are encoded the way net/core/netdev-genl.c fills them on 6.18, attribute order included, with
// NLA_UINT values in 4 bytes when they fit and 8 otherwise (nla_put_uint).

func encodeDevice(d netdev.Device) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(1, d.Ifindex)
	ae.Uint64(3, uint64(d.XDPFeatures))
	ae.Uint64(5, uint64(d.XDPRXMetadata))
	ae.Uint64(6, uint64(d.XSKFeatures))
	if d.XDPZCMaxSegs != 0 {
		ae.Uint32(4, d.XDPZCMaxSegs)
	}
	return mustEncode(ae)
}

func encodeQueue(q netdev.Queue) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(1, q.ID)
	ae.Uint32(3, uint32(q.Type))
	ae.Uint32(2, q.Ifindex)
	if q.NAPIID != 0 {
		ae.Uint32(4, q.NAPIID)
	}
	if q.DMABuf != 0 {
		ae.Uint32(5, q.DMABuf)
	}
	empty := func(*netlink.AttributeEncoder) error { return nil }
	if q.IOUring {
		ae.Nested(6, empty)
	}
	if q.XSK {
		ae.Nested(7, empty)
	}
	return mustEncode(ae)
}

func (f *Family) encodeNAPI(n netdev.NAPI) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(2, n.ID)
	ae.Uint32(1, n.Ifindex)
	if n.HasIRQ {
		ae.Uint32(3, n.IRQ)
	}
	if n.HasPID {
		ae.Uint32(4, n.PID)
	}
	if f.kernel.PerNAPIThreaded {
		ae.Uint32(8, uint32(n.Threaded))
	}
	if f.kernel.NAPISet {
		ae.Uint32(5, n.DeferHardIRQs)
		putUint(ae, 7, uint64(n.IRQSuspendTimeout))
		putUint(ae, 6, uint64(n.GROFlushTimeout))
	}
	return mustEncode(ae)
}

func encodeQStats(q netdev.QStats) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(1, q.Ifindex)
	if q.Scope == netdev.ScopeQueue {
		ae.Uint32(2, uint32(q.QueueType))
		ae.Uint32(3, q.QueueID)
	}
	for c := netdev.RxPackets; c <= netdev.TxWake; c++ {
		if v, ok := q.Value(c); ok {
			putUint(ae, uint16(c), v)
		}
	}
	return mustEncode(ae)
}

func putUint(ae *netlink.AttributeEncoder, typ uint16, v uint64) {
	if v <= math.MaxUint32 {
		ae.Uint32(typ, uint32(v))
		return
	}
	ae.Uint64(typ, v)
}

func durationNS(v uint64) time.Duration {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(v)
}

// mustEncode encodes attributes that cannot fail to encode: only a nested callback's error fails Encode, and
// the callbacks here return nil.
func mustEncode(ae *netlink.AttributeEncoder) []byte {
	b, _ := ae.Encode()
	return b
}
