package ethtool

import (
	"fmt"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// field ties one netlink attribute to a struct field: a u32, or a bool carried as NLA_U8.
type field struct {
	attr     uint16
	u32      *uint32
	flag     *bool
	readOnly bool // a maximum: in replies only, never in set requests
}

func (ch *Channels) fields() []field {
	return []field{
		{attr: unix.ETHTOOL_A_CHANNELS_RX_COUNT, u32: &ch.RX},
		{attr: unix.ETHTOOL_A_CHANNELS_TX_COUNT, u32: &ch.TX},
		{attr: unix.ETHTOOL_A_CHANNELS_OTHER_COUNT, u32: &ch.Other},
		{attr: unix.ETHTOOL_A_CHANNELS_COMBINED_COUNT, u32: &ch.Combined},
		{attr: unix.ETHTOOL_A_CHANNELS_RX_MAX, u32: &ch.RXMax, readOnly: true},
		{attr: unix.ETHTOOL_A_CHANNELS_TX_MAX, u32: &ch.TXMax, readOnly: true},
		{attr: unix.ETHTOOL_A_CHANNELS_OTHER_MAX, u32: &ch.OtherMax, readOnly: true},
		{attr: unix.ETHTOOL_A_CHANNELS_COMBINED_MAX, u32: &ch.CombinedMax, readOnly: true},
	}
}

func (r *Rings) fields() []field {
	return []field{
		{attr: unix.ETHTOOL_A_RINGS_RX, u32: &r.RX},
		{attr: unix.ETHTOOL_A_RINGS_RX_MINI, u32: &r.RXMini},
		{attr: unix.ETHTOOL_A_RINGS_RX_JUMBO, u32: &r.RXJumbo},
		{attr: unix.ETHTOOL_A_RINGS_TX, u32: &r.TX},
		{attr: unix.ETHTOOL_A_RINGS_RX_MAX, u32: &r.RXMax, readOnly: true},
		{attr: unix.ETHTOOL_A_RINGS_RX_MINI_MAX, u32: &r.RXMiniMax, readOnly: true},
		{attr: unix.ETHTOOL_A_RINGS_RX_JUMBO_MAX, u32: &r.RXJumboMax, readOnly: true},
		{attr: unix.ETHTOOL_A_RINGS_TX_MAX, u32: &r.TXMax, readOnly: true},
	}
}

func (c *Coalesce) fields() []field {
	return []field{
		{attr: unix.ETHTOOL_A_COALESCE_RX_USECS, u32: &c.RXUsecs},
		{attr: unix.ETHTOOL_A_COALESCE_RX_MAX_FRAMES, u32: &c.RXMaxFrames},
		{attr: unix.ETHTOOL_A_COALESCE_TX_USECS, u32: &c.TXUsecs},
		{attr: unix.ETHTOOL_A_COALESCE_TX_MAX_FRAMES, u32: &c.TXMaxFrames},
		{attr: unix.ETHTOOL_A_COALESCE_USE_ADAPTIVE_RX, flag: &c.AdaptiveRX},
		{attr: unix.ETHTOOL_A_COALESCE_USE_ADAPTIVE_TX, flag: &c.AdaptiveTX},
	}
}

// object is a Channels, Rings or Coalesce.
type object interface{ fields() []field }

// op describes one ethtool object's messages. Every object's header is attribute 1
// (ETHTOOL_A_{CHANNELS,RINGS,COALESCE}_HEADER).
type op struct {
	name            string // "channels", "rings", "coalesce"
	get, reply, set uint8
}

const headerAttr = 1

var (
	opChannels = op{"channels", unix.ETHTOOL_MSG_CHANNELS_GET, unix.ETHTOOL_MSG_CHANNELS_GET_REPLY, unix.ETHTOOL_MSG_CHANNELS_SET}
	opRings    = op{"rings", unix.ETHTOOL_MSG_RINGS_GET, unix.ETHTOOL_MSG_RINGS_GET_REPLY, unix.ETHTOOL_MSG_RINGS_SET}
	opCoalesce = op{"coalesce", unix.ETHTOOL_MSG_COALESCE_GET, unix.ETHTOOL_MSG_COALESCE_GET_REPLY, unix.ETHTOOL_MSG_COALESCE_SET}
)

// encodeHeader nests the device (ETHTOOL_A_HEADER_DEV_INDEX and/or DEV_NAME). No request here carries a bitset,
// so ETHTOOL_A_HEADER_FLAGS (compact bitsets, omit reply) is not needed.
func encodeHeader(ae *netlink.AttributeEncoder, dev Device) {
	ae.Nested(headerAttr, func(nae *netlink.AttributeEncoder) error {
		if dev.Index != 0 {
			nae.Uint32(unix.ETHTOOL_A_HEADER_DEV_INDEX, uint32(dev.Index))
		}
		if dev.Name != "" {
			nae.String(unix.ETHTOOL_A_HEADER_DEV_NAME, dev.Name)
		}
		return nil
	})
}

// encodeGet builds a get request for dev.
func encodeGet(o op, dev Device) (genetlink.Message, error) {
	ae := netlink.NewAttributeEncoder()
	encodeHeader(ae, dev)
	b, err := ae.Encode()
	return genetlink.Message{Header: genetlink.Header{Command: o.get, Version: unix.ETHTOOL_GENL_VERSION}, Data: b}, err
}

// encodeSet builds a set request holding the settable fields of want that differ from cur; changed is false
// when nothing differs and no request is needed.
func encodeSet(o op, dev Device, cur, want object) (m genetlink.Message, changed bool, err error) {
	ae := netlink.NewAttributeEncoder()
	encodeHeader(ae, dev)
	cf := cur.fields()
	for i, f := range want.fields() {
		switch {
		case f.readOnly:
		case f.u32 != nil && *f.u32 != *cf[i].u32:
			ae.Uint32(f.attr, *f.u32)
			changed = true
		case f.flag != nil && *f.flag != *cf[i].flag:
			ae.Uint8(f.attr, boolU8(*f.flag))
			changed = true
		}
	}
	b, err := ae.Encode()
	return genetlink.Message{Header: genetlink.Header{Command: o.set, Version: unix.ETHTOOL_GENL_VERSION}, Data: b}, changed, err
}

func boolU8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// decodeReply fills obj from a get reply. Attributes it does not know are skipped (newer kernels add some); an
// attribute the kernel leaves out (a channel kind the device lacks, a parameter the driver does not support)
// stays zero.
func decodeReply(o op, msgs []genetlink.Message, obj object) error {
	if len(msgs) != 1 {
		return fmt.Errorf("%s-get: want 1 reply message, got %d", o.name, len(msgs))
	}
	m := msgs[0]
	if m.Header.Command != o.reply {
		return fmt.Errorf("%s-get: reply has command %d, want %d", o.name, m.Header.Command, o.reply)
	}
	ad, err := netlink.NewAttributeDecoder(m.Data)
	if err != nil {
		return fmt.Errorf("%s-get reply: %w", o.name, err)
	}
	fields := obj.fields()
	for ad.Next() {
		for _, f := range fields {
			if f.attr != ad.Type() {
				continue
			}
			if f.u32 != nil {
				*f.u32 = ad.Uint32()
			} else {
				*f.flag = ad.Uint8() != 0
			}
		}
	}
	if err := ad.Err(); err != nil {
		return fmt.Errorf("%s-get reply: %w", o.name, err)
	}
	return nil
}
