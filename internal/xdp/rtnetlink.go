package xdp

import (
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/netlink"
)

// rtnetlink numbers from linux/if_link.h and linux/rtnetlink.h, which x/sys does not carry on every GOOS.
const (
	rtmGetLink     = 18
	iflaXDP        = 43
	ifinfomsgLen   = 16
	xdpAttached    = 2 // IFLA_XDP_ATTACHED
	xdpProgID      = 4 // IFLA_XDP_PROG_ID
	xdpDrvProgID   = 5
	xdpSkbProgID   = 6
	xdpHwProgID    = 7
	attachedNone   = 0 // XDP_ATTACHED_NONE
	attachedDrv    = 1
	attachedSkb    = 2
	attachedHw     = 3
	attachedMulti  = 4
	maxAttachedVal = attachedMulti
)

// linkXDP is the IFLA_XDP attribute of a link: which modes have a program, and their ids.
type linkXDP struct {
	Attached                           uint8
	ProgID, DrvProgID, SkbProgID, HwID uint32
}

// Link flags (linux/if.h) that say a device can carry traffic.
const (
	iffUp      = 0x1
	iffRunning = 0x40
	iflaQdisc  = 6 // IFLA_QDISC
)

// linkState is what napilab reads from an RTM_NEWLINK message.
type linkState struct {
	Ifindex int
	Flags   uint32 // IFF_*
	Qdisc   string // root queueing discipline; "noop" drops everything
	XDP     linkXDP
}

// ready reports whether the link can carry traffic: up, with carrier, and with a real queueing discipline.
// Carrier comes first; the kernel's link watcher then swaps the "noop" discipline (which drops every frame)
// for the device's own, asynchronously, and a frame sent in between is lost without an error.
func (l linkState) ready() bool {
	return l.Flags&(iffUp|iffRunning) == iffUp|iffRunning && l.Qdisc != "noop"
}

// getLinkRequest is the body of an RTM_GETLINK request for one ifindex: a struct ifinfomsg.
func getLinkRequest(ifindex int) []byte {
	b := make([]byte, ifinfomsgLen)
	binary.NativeEndian.PutUint32(b[4:], uint32(int32(ifindex)))
	return b
}

// parseLink decodes the body of an RTM_NEWLINK message: struct ifinfomsg, then attributes. A link without
// IFLA_XDP has no program attached.
func parseLink(body []byte) (linkState, error) {
	var l linkState
	if len(body) < ifinfomsgLen {
		return l, fmt.Errorf("xdp: rtnetlink link message of %d bytes is shorter than its %d-byte header", len(body), ifinfomsgLen)
	}
	l.Ifindex = int(int32(binary.NativeEndian.Uint32(body[4:])))
	l.Flags = binary.NativeEndian.Uint32(body[8:])
	ad, err := netlink.NewAttributeDecoder(body[ifinfomsgLen:])
	if err != nil {
		return l, fmt.Errorf("xdp: decode link attributes: %w", err)
	}
	x := &l.XDP
	for ad.Next() {
		switch ad.Type() {
		case iflaQdisc:
			l.Qdisc = ad.String()
		case iflaXDP:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					switch nad.Type() {
					case xdpAttached:
						x.Attached = nad.Uint8()
					case xdpProgID:
						x.ProgID = nad.Uint32()
					case xdpDrvProgID:
						x.DrvProgID = nad.Uint32()
					case xdpSkbProgID:
						x.SkbProgID = nad.Uint32()
					case xdpHwProgID:
						x.HwID = nad.Uint32()
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return linkState{}, fmt.Errorf("xdp: decode link attributes: %w", err)
	}
	if x.Attached > maxAttachedVal {
		return linkState{}, fmt.Errorf("xdp: unknown IFLA_XDP_ATTACHED value %d", x.Attached)
	}
	return l, nil
}

// attachment turns the attribute into the program napilab reports: with programs in two modes (possible only
// for native plus generic) the native one.
func (x linkXDP) attachment() (Attachment, bool) {
	switch x.Attached {
	case attachedDrv:
		return Attachment{ProgramID: x.ProgID, Mode: ModeNative}, x.ProgID != 0
	case attachedSkb:
		return Attachment{ProgramID: x.ProgID, Mode: ModeGeneric}, x.ProgID != 0
	case attachedHw:
		return Attachment{ProgramID: x.ProgID, Mode: ModeOffload}, x.ProgID != 0
	case attachedMulti:
		switch {
		case x.DrvProgID != 0:
			return Attachment{ProgramID: x.DrvProgID, Mode: ModeNative}, true
		case x.SkbProgID != 0:
			return Attachment{ProgramID: x.SkbProgID, Mode: ModeGeneric}, true
		case x.HwID != 0:
			return Attachment{ProgramID: x.HwID, Mode: ModeOffload}, true
		}
	}
	return Attachment{}, false
}
