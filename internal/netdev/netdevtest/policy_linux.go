package netdevtest

import (
	"encoding/binary"
	"math"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The fake's own copy of the family's numbers: it plays the kernel, so it must not share the client's constants
// (a wrong number in one would then pass unnoticed in the other).
const (
	cmdDevGet    = 1
	cmdQueueGet  = 10
	cmdNAPIGet   = 11
	cmdQStatsGet = 12
	cmdNAPISet   = 14
)

// Attribute types as the policy dump names them (enum netlink_attribute_type).
const (
	nlaU32  = 4
	nlaU64  = 5
	nlaUint = 17
)

// rule is one attribute of an operation's policy.
type rule struct {
	typ      uint32
	min, max uint64
	mask     uint64 // flags attribute: bits outside mask are "reserved"
}

func u32Rule(min, max uint64) rule { return rule{typ: nlaU32, min: min, max: max} }

var anyUint = rule{typ: nlaUint, max: math.MaxUint64}

// policy is the attribute policy of one operation, with the highest attribute number it knows: strict
// validation calls anything above it "Unknown attribute type" and an unlisted one below it "Unsupported
// attribute".
type policy struct {
	maxType uint16
	rules   map[uint16]rule
}

// op is one operation of the family on a kernel generation.
type op struct {
	do, dump *policy // nil: the operation has no do (or dump) handler
	admin    bool    // GENL_ADMIN_PERM
}

// ops returns the operations of generation k, mirroring the generated policies of net/core/netdev-genl-gen.c.
func (k Kernel) ops() map[uint8]op {
	ops := map[uint8]op{}
	if !k.Family {
		return ops
	}
	ops[cmdDevGet] = op{do: &policy{1, map[uint16]rule{1: u32Rule(1, math.MaxUint32)}}, dump: &policy{}}
	if k.QueueNAPI {
		ops[cmdQueueGet] = op{
			do: &policy{3, map[uint16]rule{
				1: u32Rule(0, math.MaxUint32), 2: u32Rule(1, math.MaxUint32), 3: u32Rule(0, 1)}},
			dump: &policy{2, map[uint16]rule{2: u32Rule(1, math.MaxUint32)}},
		}
		ops[cmdNAPIGet] = op{
			do:   &policy{2, map[uint16]rule{2: u32Rule(0, math.MaxUint32)}},
			dump: &policy{1, map[uint16]rule{1: u32Rule(1, math.MaxUint32)}},
		}
	}
	if k.QStats {
		ops[cmdQStatsGet] = op{dump: &policy{4, map[uint16]rule{
			1: u32Rule(1, math.MaxUint32), 4: {typ: nlaUint, max: math.MaxUint64, mask: 1}}}}
	}
	if k.NAPISet {
		set := &policy{7, map[uint16]rule{
			2: u32Rule(0, math.MaxUint32), 5: u32Rule(0, math.MaxInt32), 6: anyUint, 7: anyUint}}
		if k.PerNAPIThreaded {
			maxThreaded := uint64(1)
			if k.ThreadedBusyPoll {
				maxThreaded = 2
			}
			set.maxType, set.rules[8] = 8, u32Rule(0, maxThreaded)
		}
		ops[cmdNAPISet] = op{do: set, admin: true}
	}
	return ops
}

// attr is one top-level request attribute and where it starts in the netlink message.
type attr struct {
	typ  uint16
	off  int
	data []byte
}

// validate checks attrs as the kernel's strict policy validation does, before any handler runs.
func (p *policy) validate(attrs []attr) error {
	for _, a := range attrs {
		r, ok := p.rules[a.typ]
		switch {
		case a.typ == 0 || a.typ > p.maxType:
			return kernelErr(unix.EINVAL, "Unknown attribute type", a.off)
		case !ok:
			return kernelErr(unix.EINVAL, "Unsupported attribute", a.off)
		}
		var v uint64
		switch {
		case r.typ == nlaU32 && len(a.data) == 4, r.typ == nlaUint && len(a.data) == 4:
			v = uint64(binary.NativeEndian.Uint32(a.data))
		case r.typ == nlaUint && len(a.data) == 8:
			v = binary.NativeEndian.Uint64(a.data)
		default:
			return kernelErr(unix.EINVAL, "invalid attribute length", a.off)
		}
		if r.mask != 0 {
			if v&^r.mask != 0 {
				return kernelErr(unix.EINVAL, "reserved bit set", a.off)
			}
			continue
		}
		if v < r.min || v > r.max {
			return kernelErr(unix.ERANGE, "integer out of range", a.off)
		}
	}
	return nil
}

// encode renders the policy as CTRL_CMD_GETPOLICY lists it: one message per attribute.
func (p *policy) encode(family uint16, idx uint16) [][]byte {
	var out [][]byte
	for typ := uint16(1); typ <= p.maxType; typ++ {
		r, ok := p.rules[typ]
		if !ok {
			continue
		}
		ae := netlink.NewAttributeEncoder()
		ae.Uint16(unix.CTRL_ATTR_FAMILY_ID, family)
		ae.Nested(unix.CTRL_ATTR_POLICY, func(pols *netlink.AttributeEncoder) error {
			pols.Nested(idx, func(attrs *netlink.AttributeEncoder) error {
				attrs.Nested(typ, func(props *netlink.AttributeEncoder) error {
					// netlink_policy_dump_write_attr order: the bounds, then the type.
					if r.mask != 0 {
						props.Uint64(unix.NL_POLICY_TYPE_ATTR_MASK, r.mask)
					} else {
						props.Uint64(unix.NL_POLICY_TYPE_ATTR_MIN_VALUE_U, r.min)
						props.Uint64(unix.NL_POLICY_TYPE_ATTR_MAX_VALUE_U, r.max)
					}
					props.Uint32(unix.NL_POLICY_TYPE_ATTR_TYPE, r.typ)
					return nil
				})
				return nil
			})
			return nil
		})
		b, err := ae.Encode()
		if err == nil {
			out = append(out, b)
		}
	}
	return out
}
