package frame

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Build errors, returned as values so that building never allocates.
var (
	ErrAddrFamily  = errors.New("frame spec needs valid source and destination IP addresses of one family; give two IPv4 or two IPv6 addresses")
	ErrPayloadLen  = errors.New("frame spec's payload length does not fit one UDP datagram; use 0 to 65507 bytes over IPv4 or 0 to 65527 over IPv6")
	ErrShortBuffer = errors.New("buffer too small for the frame; pass one of at least Spec.FrameLen() bytes")
)

// Largest UDP payloads: the IPv4 total length and the IPv6 payload length are 16-bit fields.
const (
	MaxPayloadIPv4 = 0xffff - IPv4MinLen - UDPLen
	MaxPayloadIPv6 = 0xffff - UDPLen
)

// Endpoint is one end of a UDP flow as a frame names it.
type Endpoint struct {
	MAC  MAC
	IP   netip.Addr // IPv4 or IPv6; the zone of a link-local address is not on the wire and is ignored
	Port uint16
}

// Spec describes the frame Build writes: xsk_rr's template. IPv4 gets IHL 5, TOS 0, ID 0, no flags (DF clear)
// and TTL 64; IPv6 gets traffic class 0, flow label 0 and hop limit 64; UDP gets a full checksum.
type Spec struct {
	Src, Dst   Endpoint
	PayloadLen int
}

// Family returns the IP version of the frame, or 0 when the addresses are invalid or of different families.
func (s Spec) Family() Family {
	switch {
	case s.Src.IP.Is4() && s.Dst.IP.Is4():
		return IPv4Family
	case s.Src.IP.Is6() && s.Dst.IP.Is6():
		return IPv6Family
	}
	return 0
}

// Validate reports why Build would refuse s.
func (s Spec) Validate() error {
	max := MaxPayloadIPv6
	switch s.Family() {
	case 0:
		return ErrAddrFamily
	case IPv4Family:
		max = MaxPayloadIPv4
	}
	if s.PayloadLen < 0 || s.PayloadLen > max {
		return ErrPayloadLen
	}
	return nil
}

// PayloadOffset is where the UDP payload starts in the frame.
func (s Spec) PayloadOffset() int {
	if s.Family() == IPv4Family {
		return EthernetLen + IPv4MinLen + UDPLen
	}
	return EthernetLen + IPv6Len + UDPLen
}

// FrameLen is the length of the frame Build writes (14+20+8+payload over IPv4, 14+40+8+payload over IPv6).
func (s Spec) FrameLen() int { return s.PayloadOffset() + s.PayloadLen }

// Build writes the headers s describes into b and returns the frame length. The payload,
// b[s.PayloadOffset():s.FrameLen()], belongs to the caller: fill it before Build, which checksums it as it is
// (xsk_rr fills it with 'a'); change it later with Packet.WritePayload, which keeps the checksum right.
func Build(b []byte, s Spec) (int, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	n := s.FrameLen()
	if len(b) < n {
		return 0, ErrShortBuffer
	}
	b = b[:n]
	udpLen := UDPLen + s.PayloadLen
	var l4 int
	if s.Family() == IPv4Family {
		Ethernet(b).encode(s.Src.MAC, s.Dst.MAC, EtherTypeIPv4)
		l4 = EthernetLen + IPv4MinLen
		ip := IPv4(b[EthernetLen:l4])
		ip[0], ip[1] = 4<<4|IPv4MinLen/4, 0
		ip.SetTotalLen(uint16(IPv4MinLen + udpLen))
		ip.SetID(0)
		ip.SetFlagsFragment(0)
		ip.SetTTL(DefaultTTL)
		ip[9] = ProtocolUDP
		_ = ip.SetSrc(s.Src.IP) // Validate checked the families
		_ = ip.SetDst(s.Dst.IP)
		ip.SetChecksum(0)
		ip.SetChecksum(^Checksum(ip, 0))
	} else {
		Ethernet(b).encode(s.Src.MAC, s.Dst.MAC, EtherTypeIPv6)
		l4 = EthernetLen + IPv6Len
		ip := IPv6(b[EthernetLen:l4])
		binary.BigEndian.PutUint32(ip[0:4], 6<<28)
		ip.SetPayloadLen(uint16(udpLen))
		ip.SetNextHeader(ProtocolUDP)
		ip.SetHopLimit(DefaultTTL)
		_ = ip.SetSrc(s.Src.IP)
		_ = ip.SetDst(s.Dst.IP)
	}
	u := UDP(b[l4:])
	u.SetSrcPort(s.Src.Port)
	u.SetDstPort(s.Dst.Port)
	u.SetLength(uint16(udpLen))
	u.SetChecksum(0)
	p := Packet{frame: b, family: s.Family(), l4: l4, udpEnd: n}
	u.SetChecksum(udpChecksumField(p.udpSum()))
	return n, nil
}
