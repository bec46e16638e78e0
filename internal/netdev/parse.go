package netdev

import (
	"fmt"
	"math"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// The parsers below are pure functions of the reply messages, so they are tested and fuzzed without a socket.
// Attributes they do not know are skipped: newer kernels add attributes to every set.

func parseDevices(msgs []genetlink.Message) ([]Device, error) {
	return parseEach(msgs, "dev-get", func(ad *netlink.AttributeDecoder, d *Device) {
		switch ad.Type() {
		case attrDevIfindex:
			d.Ifindex = ad.Uint32()
		case attrDevXDPFeatures:
			d.XDPFeatures = XDPFeatures(ad.Uint64())
		case attrDevXDPZCMaxSegs:
			d.XDPZCMaxSegs = ad.Uint32()
		case attrDevXDPRXMetadata:
			d.XDPRXMetadata = XDPRXMetadata(ad.Uint64())
		case attrDevXSKFeatures:
			d.XSKFeatures = XSKFeatures(ad.Uint64())
		}
	})
}

func parseQueues(msgs []genetlink.Message) ([]Queue, error) {
	return parseEach(msgs, "queue-get", func(ad *netlink.AttributeDecoder, q *Queue) {
		switch ad.Type() {
		case attrQueueID:
			q.ID = ad.Uint32()
		case attrQueueIfindex:
			q.Ifindex = ad.Uint32()
		case attrQueueType:
			q.Type = QueueType(ad.Uint32())
		case attrQueueNAPIID:
			q.NAPIID = ad.Uint32()
		case attrQueueDMABuf:
			q.DMABuf = ad.Uint32()
		case attrQueueIOUring:
			q.IOUring = true
		case attrQueueXSK:
			q.XSK = true
		}
	})
}

func parseNAPIs(msgs []genetlink.Message) ([]NAPI, error) {
	napis, err := parseEach(msgs, "napi-get", func(ad *netlink.AttributeDecoder, n *NAPI) {
		switch ad.Type() {
		case attrNAPIIfindex:
			n.Ifindex = ad.Uint32()
		case attrNAPIID:
			n.ID = ad.Uint32()
		case attrNAPIIRQ:
			n.IRQ, n.HasIRQ = ad.Uint32(), true
		case attrNAPIPID:
			n.PID, n.HasPID = ad.Uint32(), true
		case attrNAPIDeferHardIRQs:
			n.DeferHardIRQs = ad.Uint32()
		case attrNAPIGROFlushTimeout:
			n.GROFlushTimeout = decodeDuration(ad)
		case attrNAPIIRQSuspendTimeout:
			n.IRQSuspendTimeout = decodeDuration(ad)
		case attrNAPIThreaded:
			n.Threaded = Threaded(ad.Uint32())
		}
	})
	for i := range napis {
		// Before 6.17 the kernel had no threaded attribute; the kthread's pid is the only sign.
		if n := &napis[i]; n.Threaded == ThreadedDisabled && n.HasPID && !msgHasAttr(msgs[i], attrNAPIThreaded) {
			n.Threaded = ThreadedEnabled
		}
	}
	return napis, err
}

func parseQStats(msgs []genetlink.Message) ([]QStats, error) {
	return parseEach(msgs, "qstats-get", func(ad *netlink.AttributeDecoder, q *QStats) {
		switch t := ad.Type(); {
		case t == attrQStatsIfindex:
			q.Ifindex = ad.Uint32()
		case t == attrQStatsQueueType:
			q.QueueType = QueueType(ad.Uint32())
			q.Scope = ScopeQueue
		case t == attrQStatsQueueID:
			q.QueueID = ad.Uint32()
			q.Scope = ScopeQueue
		case t >= attrQStatsFirst && t <= attrQStatsLast:
			q.SetValue(Counter(t), decodeUint(ad))
		}
	})
}

// parseEach decodes one T from every message, handing each attribute to field.
func parseEach[T any](msgs []genetlink.Message, op string, field func(*netlink.AttributeDecoder, *T)) ([]T, error) {
	out := make([]T, 0, len(msgs))
	for i, m := range msgs {
		var v T
		ad, err := netlink.NewAttributeDecoder(m.Data)
		if err == nil {
			for ad.Next() {
				field(ad, &v)
			}
			err = ad.Err()
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s reply %d of %d: %w", op, i+1, len(msgs), err)
		}
		out = append(out, v)
	}
	return out, nil
}

// decodeUint reads an NLA_UINT, which the kernel sends as 4 bytes when the value fits and as 8 otherwise.
func decodeUint(ad *netlink.AttributeDecoder) uint64 {
	var v uint64
	ad.Do(func(b []byte) error {
		switch len(b) {
		case 4:
			v = uint64(ad.ByteOrder.Uint32(b))
		case 8:
			v = ad.ByteOrder.Uint64(b)
		default:
			return fmt.Errorf("attribute %d is an NLA_UINT of %d bytes, want 4 or 8", ad.Type(), len(b))
		}
		return nil
	})
	return v
}

// decodeDuration reads an NLA_UINT count of nanoseconds.
func decodeDuration(ad *netlink.AttributeDecoder) time.Duration {
	ns := decodeUint(ad)
	if ns > math.MaxInt64 {
		ad.Do(func([]byte) error {
			return fmt.Errorf("attribute %d: %d ns does not fit a time.Duration", ad.Type(), ns)
		})
		return 0
	}
	return time.Duration(ns)
}

// msgHasAttr reports whether m carries a top-level attribute of type typ.
func msgHasAttr(m genetlink.Message, typ uint16) bool {
	ad, err := netlink.NewAttributeDecoder(m.Data)
	if err != nil {
		return false
	}
	for ad.Next() {
		if ad.Type() == typ {
			return true
		}
	}
	return false
}

// attrPolicy is what CTRL_CMD_GETPOLICY says about one attribute of an operation.
type attrPolicy struct {
	Type   uint32 // NL_ATTR_TYPE_*
	Max    uint64 // NL_POLICY_TYPE_ATTR_MAX_VALUE_U, when HasMax
	HasMax bool
}

// parsePolicy reads a CTRL_CMD_GETPOLICY dump for one operation and returns the policy of op for kind
// (ctrlAttrPolicyDo or ctrlAttrPolicyDump) by attribute.
// The dump first maps operations to policy indexes (CTRL_ATTR_OP_POLICY), then lists every attribute of every
// policy it referenced, one per message (CTRL_ATTR_POLICY → policy index → attribute → properties).
func parsePolicy(msgs []genetlink.Message, op uint32, kind uint16) (map[uint16]attrPolicy, error) {
	idx, haveIdx := uint32(0), false
	type entry struct {
		idx  uint32
		attr uint16
		p    attrPolicy
	}
	var entries []entry
	for i, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data)
		if err != nil {
			return nil, fmt.Errorf("parse policy dump message %d: %w", i+1, err)
		}
		for ad.Next() {
			switch ad.Type() {
			case ctrlAttrOpPolicy:
				ad.Nested(func(ops *netlink.AttributeDecoder) error {
					for ops.Next() {
						// The kernel names a dump-only operation 0 here (it takes the command from the
						// absent do handler; seen on 6.18 for qstats-get). The request asked for one
						// operation, so 0 can only be it.
						if t := uint32(ops.Type()); t != op && t != 0 {
							continue
						}
						ops.Nested(func(kinds *netlink.AttributeDecoder) error {
							for kinds.Next() {
								if kinds.Type() == kind {
									idx, haveIdx = kinds.Uint32(), true
								}
							}
							return nil
						})
					}
					return nil
				})
			case ctrlAttrPolicy:
				ad.Nested(func(pols *netlink.AttributeDecoder) error {
					for pols.Next() {
						polIdx := uint32(pols.Type())
						pols.Nested(func(attrs *netlink.AttributeDecoder) error {
							for attrs.Next() {
								e := entry{idx: polIdx, attr: attrs.Type()}
								attrs.Nested(func(props *netlink.AttributeDecoder) error {
									for props.Next() {
										switch props.Type() {
										case policyTypeAttrType:
											e.p.Type = props.Uint32()
										case policyTypeAttrMaxValueU:
											e.p.Max, e.p.HasMax = props.Uint64(), true
										}
									}
									return nil
								})
								entries = append(entries, e)
							}
							return nil
						})
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("parse policy dump message %d: %w", i+1, err)
		}
	}
	if !haveIdx {
		return nil, fmt.Errorf("policy dump names no policy of kind %d for operation %d", kind, op)
	}
	pol := make(map[uint16]attrPolicy)
	for _, e := range entries {
		if e.idx == idx {
			pol[e.attr] = e.p
		}
	}
	return pol, nil
}
