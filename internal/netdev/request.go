package netdev

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/mdlayher/netlink"
)

// Request payloads, encoded in attribute-number order. Values the kernel's policy would reject are refused here
// with a sentence that names the limit, so a kernel ERANGE on napi-set can only mean an unsupported feature.

func ifindexFilter(attr uint16, ifindex uint32) []byte {
	if ifindex == 0 {
		return nil // dump every device
	}
	return u32Attrs(uint32(attr), ifindex)
}

func queueGetRequest(ifindex uint32, typ QueueType, id uint32) ([]byte, error) {
	if typ != QueueRX && typ != QueueTX {
		return nil, fmt.Errorf("queue type %d is neither rx (0) nor tx (1)", uint32(typ))
	}
	return u32Attrs(attrQueueID, id, attrQueueIfindex, ifindex, attrQueueType, uint32(typ)), nil
}

func qstatsRequest(ifindex uint32, scope Scope) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	if ifindex != 0 {
		ae.Uint32(attrQStatsIfindex, ifindex)
	}
	switch scope {
	case ScopeDevice:
	case ScopeQueue:
		ae.Uint32(attrQStatsScope, uint32(ScopeQueue))
	default:
		return nil, fmt.Errorf("qstats scope %d is neither device (0) nor queue (1)", uint32(scope))
	}
	return ae.Encode()
}

func napiSetRequest(id uint32, cfg NAPIConfig) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrNAPIID, id)
	if v := cfg.DeferHardIRQs; v != nil {
		if *v > math.MaxInt32 {
			return nil, fmt.Errorf("defer-hard-irqs %d exceeds the kernel's limit of %d", *v, math.MaxInt32)
		}
		ae.Uint32(attrNAPIDeferHardIRQs, *v)
	}
	if v := cfg.GROFlushTimeout; v != nil {
		if *v < 0 {
			return nil, fmt.Errorf("gro-flush-timeout %v is negative", *v)
		}
		putUint(ae, attrNAPIGROFlushTimeout, uint64(*v))
	}
	if v := cfg.IRQSuspendTimeout; v != nil {
		if *v < 0 {
			return nil, fmt.Errorf("irq-suspend-timeout %v is negative", *v)
		}
		putUint(ae, attrNAPIIRQSuspendTimeout, uint64(*v))
	}
	if v := cfg.Threaded; v != nil {
		if !v.valid() {
			return nil, fmt.Errorf("threaded state %d is not disabled (0), enabled (1) or busy-poll (2)", uint32(*v))
		}
		ae.Uint32(attrNAPIThreaded, uint32(*v))
	}
	return ae.Encode()
}

func policyRequest(family uint16, op uint8) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint16(ctrlAttrFamilyID, family)
	ae.Uint32(ctrlAttrOp, uint32(op))
	return ae.Encode()
}

// putUint encodes an NLA_UINT the way the kernel does: 4 bytes when the value fits, 8 otherwise.
func putUint(ae *netlink.AttributeEncoder, typ uint16, v uint64) {
	if v <= math.MaxUint32 {
		ae.Uint32(typ, uint32(v))
		return
	}
	ae.Uint64(typ, v)
}

// u32Attrs encodes (type, value) pairs of u32 attributes.
func u32Attrs(typeValue ...uint32) []byte {
	b := make([]byte, 0, 4*len(typeValue))
	for i := 0; i+1 < len(typeValue); i += 2 {
		b = binary.NativeEndian.AppendUint16(b, 8)
		b = binary.NativeEndian.AppendUint16(b, uint16(typeValue[i]))
		b = binary.NativeEndian.AppendUint32(b, typeValue[i+1])
	}
	return b
}

// attrAt returns the type of the top-level attribute that starts at offset off of a request whose attribute
// payload is data. The kernel's extended ACK blames an attribute by its offset from the start of the netlink
// message header.
func attrAt(data []byte, off int) (uint16, bool) {
	pos := nlmsgHeaderLen + genlHeaderLen
	for len(data) >= 4 {
		n := int(binary.NativeEndian.Uint16(data))
		if n < 4 {
			return 0, false
		}
		if pos == off {
			return binary.NativeEndian.Uint16(data[2:]) &^ (netlink.Nested | netlink.NetByteOrder), true
		}
		step := (n + 3) &^ 3
		if step > len(data) {
			return 0, false
		}
		data, pos = data[step:], pos+step
	}
	return 0, false
}
