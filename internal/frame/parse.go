package frame

import (
	"encoding/binary"
	"errors"
)

// Parse errors. They are values, so that dropping a bad frame never allocates.
var (
	ErrTruncated       = errors.New("frame truncated: the buffer ends inside a header or before the length a header declares")
	ErrNotIP           = errors.New("frame is not IPv4 or IPv6: EtherType is neither 0x0800 nor 0x86dd (VLAN tags are not supported)")
	ErrIPVersion       = errors.New("frame's IP version field does not match its EtherType")
	ErrIPv4HeaderLen   = errors.New("frame's IPv4 header length (IHL) is below the minimum of 5 words")
	ErrLength          = errors.New("frame's IP or UDP length field is inconsistent with the headers it must contain")
	ErrFragment        = errors.New("frame is an IP fragment: napilab requests fit in one frame, so fragments are not reassembled")
	ErrNotUDP          = errors.New("frame does not carry UDP")
	ErrExtensionHeader = errors.New("frame has an IPv6 Routing header or a misplaced Hop-by-Hop header, which this UDP path does not follow")
)

// IPv6 extension headers (RFC 8200 §4) that Parse recognises.
const (
	ipv6HopByHop    = 0
	ipv6Routing     = 43
	ipv6Fragment    = 44
	ipv6DestOptions = 60
)

// Family is the IP version of a frame.
type Family uint8

const (
	IPv4Family Family = 4
	IPv6Family Family = 6
)

// Packet is a parsed Ethernet/IP/UDP frame: offsets into the caller's buffer, which stays the only copy.
// Methods that write (Reply, WritePayload) change that buffer.
type Packet struct {
	frame  []byte // from the Ethernet header to the end of the IP datagram; link-layer padding cut off
	family Family
	l4     int // UDP header offset
	udpEnd int // end of the UDP datagram: l4 + UDP length
}

// Parse checks that b holds one Ethernet II frame carrying an IPv4 or IPv6 UDP datagram and returns where its
// parts are. Every offset the returned Packet hands out has been bounds-checked against b and against the length
// fields of the headers. Bytes after the IP datagram (Ethernet padding) are ignored; bytes between the end of the
// UDP datagram and the end of the IP payload (the UDP "surplus area") are accepted and left alone.
func Parse(b []byte) (Packet, error) {
	if len(b) < EthernetLen {
		return Packet{}, ErrTruncated
	}
	switch Ethernet(b).Type() {
	case EtherTypeIPv4:
		return parseIPv4(b)
	case EtherTypeIPv6:
		return parseIPv6(b)
	}
	return Packet{}, ErrNotIP
}

func parseIPv4(b []byte) (Packet, error) {
	ip := IPv4(b[EthernetLen:])
	if len(ip) < IPv4MinLen {
		return Packet{}, ErrTruncated
	}
	if ip.Version() != 4 {
		return Packet{}, ErrIPVersion
	}
	hl := ip.HeaderLen()
	if hl < IPv4MinLen {
		return Packet{}, ErrIPv4HeaderLen
	}
	if len(ip) < hl {
		return Packet{}, ErrTruncated
	}
	total := int(ip.TotalLen())
	if total < hl {
		return Packet{}, ErrLength
	}
	if len(ip) < total {
		return Packet{}, ErrTruncated
	}
	if ip.FlagsFragment()&(IPv4MoreFragments|ipv4OffsetMask) != 0 {
		return Packet{}, ErrFragment
	}
	if ip.Protocol() != ProtocolUDP {
		return Packet{}, ErrNotUDP
	}
	return parseUDP(b[:EthernetLen+total], IPv4Family, EthernetLen+hl)
}

func parseIPv6(b []byte) (Packet, error) {
	ip := IPv6(b[EthernetLen:])
	if len(ip) < IPv6Len {
		return Packet{}, ErrTruncated
	}
	if ip.Version() != 6 {
		return Packet{}, ErrIPVersion
	}
	end := EthernetLen + IPv6Len + int(ip.PayloadLen())
	if len(b) < end {
		return Packet{}, ErrTruncated
	}
	b = b[:end]
	next, off := ip.NextHeader(), EthernetLen+IPv6Len
	for next != ProtocolUDP {
		switch next {
		case ipv6HopByHop, ipv6DestOptions:
			// Options change neither the addresses nor the checksum: skip them. Hop-by-Hop may only come first.
			if next == ipv6HopByHop && off != EthernetLen+IPv6Len {
				return Packet{}, ErrExtensionHeader
			}
			if end-off < 8 {
				return Packet{}, ErrLength
			}
			n := (int(b[off+1]) + 1) * 8
			if end-off < n {
				return Packet{}, ErrLength
			}
			next, off = b[off], off+n
		case ipv6Fragment:
			return Packet{}, ErrFragment
		case ipv6Routing:
			return Packet{}, ErrExtensionHeader
		default:
			return Packet{}, ErrNotUDP
		}
	}
	return parseUDP(b, IPv6Family, off)
}

// parseUDP checks the UDP header at l4 against the IP datagram b ends with.
func parseUDP(b []byte, f Family, l4 int) (Packet, error) {
	if len(b)-l4 < UDPLen {
		return Packet{}, ErrLength
	}
	n := int(binary.BigEndian.Uint16(b[l4+4:]))
	if n < UDPLen || len(b)-l4 < n {
		return Packet{}, ErrLength
	}
	return Packet{frame: b, family: f, l4: l4, udpEnd: l4 + n}, nil
}

// Family reports whether the frame carries IPv4 or IPv6; 0 for a zero Packet.
func (p Packet) Family() Family { return p.family }

// Frame returns the frame from the Ethernet header to the end of the IP datagram.
func (p Packet) Frame() []byte { return p.frame }

// Len is the frame length without link-layer padding: what a reply built from this frame transmits.
func (p Packet) Len() int { return len(p.frame) }

// L3Offset, L4Offset and PayloadOffset locate the IP header, the UDP header and the UDP payload in the frame.
func (p Packet) L3Offset() int      { return EthernetLen }
func (p Packet) L4Offset() int      { return p.l4 }
func (p Packet) PayloadOffset() int { return p.l4 + UDPLen }

func (p Packet) Ethernet() Ethernet { return Ethernet(p.frame[:EthernetLen]) }

// IPv4 returns the IPv4 header with its options, or nil for an IPv6 frame.
func (p Packet) IPv4() IPv4 {
	if p.family != IPv4Family {
		return nil
	}
	return IPv4(p.frame[EthernetLen:p.l4])
}

// IPv6 returns the IPv6 header followed by any extension headers, or nil for an IPv4 frame.
func (p Packet) IPv6() IPv6 {
	if p.family != IPv6Family {
		return nil
	}
	return IPv6(p.frame[EthernetLen:p.l4])
}

// UDP returns the UDP datagram (header and payload) as its length field bounds it.
func (p Packet) UDP() UDP { return UDP(p.frame[p.l4:p.udpEnd]) }

// Payload returns the UDP payload.
func (p Packet) Payload() []byte { return p.frame[p.l4+UDPLen : p.udpEnd] }
