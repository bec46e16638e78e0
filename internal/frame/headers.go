package frame

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// Header sizes and field values napilab writes and accepts.
const (
	EthernetLen = 14 // Ethernet II header, untagged
	IPv4MinLen  = 20 // IPv4 header without options
	IPv6Len     = 40 // fixed IPv6 header
	UDPLen      = 8  // UDP header

	EtherTypeIPv4 = 0x0800
	EtherTypeIPv6 = 0x86dd
	ProtocolUDP   = 17 // IPv4 protocol / IPv6 next header for UDP

	DefaultTTL = 64 // IPv4 TTL and IPv6 hop limit of built frames, as xsk_rr writes them
)

// MAC is an Ethernet address.
type MAC [6]byte

// ParseMAC parses a 48-bit Ethernet address such as "02:00:00:00:00:0a".
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return MAC{}, fmt.Errorf("parse MAC address %q: want six hex bytes like 02:00:00:00:00:0a: %w", s, err)
	}
	if len(hw) != len(MAC{}) {
		return MAC{}, fmt.Errorf("parse MAC address %q: it has %d bytes; Ethernet addresses have 6", s, len(hw))
	}
	return MAC(hw), nil
}

func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// Ethernet is an Ethernet II header. Its methods assume len(e) >= EthernetLen.
type Ethernet []byte

func (e Ethernet) Dst() MAC                        { return MAC(e[0:6]) }
func (e Ethernet) Src() MAC                        { return MAC(e[6:12]) }
func (e Ethernet) Type() uint16                    { return binary.BigEndian.Uint16(e[12:14]) }
func (e Ethernet) SetDst(m MAC)                    { copy(e[0:6], m[:]) }
func (e Ethernet) SetSrc(m MAC)                    { copy(e[6:12], m[:]) }
func (e Ethernet) SetType(t uint16)                { binary.BigEndian.PutUint16(e[12:14], t) }
func (e Ethernet) swapAddrs()                      { s := e.Src(); e.SetSrc(e.Dst()); e.SetDst(s) }
func (e Ethernet) encode(src, dst MAC, typ uint16) { e.SetDst(dst); e.SetSrc(src); e.SetType(typ) }

// IPv4 is an IPv4 header, options included. Its methods assume len(ip) >= IPv4MinLen; Options and
// ChecksumValid also need the HeaderLen bytes that the IHL field announces.
type IPv4 []byte

// IPv4 flag bits in the flags/fragment-offset word.
const (
	IPv4DontFragment  = 0x4000
	IPv4MoreFragments = 0x2000
	ipv4OffsetMask    = 0x1fff
)

func (ip IPv4) Version() uint8            { return ip[0] >> 4 }
func (ip IPv4) HeaderLen() int            { return int(ip[0]&0x0f) * 4 }
func (ip IPv4) TOS() uint8                { return ip[1] }
func (ip IPv4) TotalLen() uint16          { return binary.BigEndian.Uint16(ip[2:4]) }
func (ip IPv4) ID() uint16                { return binary.BigEndian.Uint16(ip[4:6]) }
func (ip IPv4) FlagsFragment() uint16     { return binary.BigEndian.Uint16(ip[6:8]) }
func (ip IPv4) TTL() uint8                { return ip[8] }
func (ip IPv4) Protocol() uint8           { return ip[9] }
func (ip IPv4) Checksum() uint16          { return binary.BigEndian.Uint16(ip[10:12]) }
func (ip IPv4) Src() netip.Addr           { return netip.AddrFrom4([4]byte(ip[12:16])) }
func (ip IPv4) Dst() netip.Addr           { return netip.AddrFrom4([4]byte(ip[16:20])) }
func (ip IPv4) Options() []byte           { return ip[IPv4MinLen:ip.HeaderLen()] }
func (ip IPv4) SetTotalLen(n uint16)      { binary.BigEndian.PutUint16(ip[2:4], n) }
func (ip IPv4) SetID(id uint16)           { binary.BigEndian.PutUint16(ip[4:6], id) }
func (ip IPv4) SetFlagsFragment(v uint16) { binary.BigEndian.PutUint16(ip[6:8], v) }
func (ip IPv4) SetTTL(ttl uint8)          { ip[8] = ttl }
func (ip IPv4) SetChecksum(c uint16)      { binary.BigEndian.PutUint16(ip[10:12], c) }

// SetSrc and SetDst write an IPv4 address (a 4-in-6 address is unmapped), or return ErrAddrFamily and write
// nothing. They leave the header checksum alone.
func (ip IPv4) SetSrc(a netip.Addr) error { return putIPv4(ip[12:16], a) }
func (ip IPv4) SetDst(a netip.Addr) error { return putIPv4(ip[16:20], a) }

func putIPv4(dst []byte, a netip.Addr) error {
	if a = a.Unmap(); !a.Is4() {
		return ErrAddrFamily
	}
	b := a.As4()
	copy(dst, b[:])
	return nil
}

// ComputeChecksum returns the header checksum the header should carry.
func (ip IPv4) ComputeChecksum() uint16 {
	h := ip[:ip.HeaderLen()]
	return ^Combine(Checksum(h, 0), ^ip.Checksum())
}

// ChecksumValid reports whether the header checksum verifies. The usual header without options is summed as
// five big-endian words in one register, the per-request fast path of a server that checks every request.
func (ip IPv4) ChecksumValid() bool {
	if hl := ip.HeaderLen(); hl != IPv4MinLen {
		return Checksum(ip[:hl], 0) == 0xffff
	}
	h := ip[:IPv4MinLen]
	s := uint64(binary.BigEndian.Uint32(h[0:])) + uint64(binary.BigEndian.Uint32(h[4:])) +
		uint64(binary.BigEndian.Uint32(h[8:])) + uint64(binary.BigEndian.Uint32(h[12:])) +
		uint64(binary.BigEndian.Uint32(h[16:]))
	return fold64(s) == 0xffff
}

// pseudoSum is the sum of the UDP pseudo-header (RFC 768) for a datagram of udpLen bytes: the addresses as
// big-endian words, the protocol and the length.
func (ip IPv4) pseudoSum(udpLen int) uint16 {
	a := ip[12:20]
	return fold64(uint64(binary.BigEndian.Uint32(a[0:])) + uint64(binary.BigEndian.Uint32(a[4:])) +
		uint64(ProtocolUDP) + uint64(udpLen))
}

func (ip IPv4) swapAddrs() {
	s := binary.BigEndian.Uint32(ip[12:16])
	copy(ip[12:16], ip[16:20])
	binary.BigEndian.PutUint32(ip[16:20], s)
}

// IPv6 is the fixed IPv6 header. Its methods assume len(ip) >= IPv6Len.
type IPv6 []byte

func (ip IPv6) Version() uint8         { return ip[0] >> 4 }
func (ip IPv6) TrafficClass() uint8    { return uint8(binary.BigEndian.Uint16(ip[0:2]) >> 4) }
func (ip IPv6) FlowLabel() uint32      { return binary.BigEndian.Uint32(ip[0:4]) & 0xfffff }
func (ip IPv6) PayloadLen() uint16     { return binary.BigEndian.Uint16(ip[4:6]) }
func (ip IPv6) NextHeader() uint8      { return ip[6] }
func (ip IPv6) HopLimit() uint8        { return ip[7] }
func (ip IPv6) Src() netip.Addr        { return netip.AddrFrom16([16]byte(ip[8:24])) }
func (ip IPv6) Dst() netip.Addr        { return netip.AddrFrom16([16]byte(ip[24:40])) }
func (ip IPv6) SetPayloadLen(n uint16) { binary.BigEndian.PutUint16(ip[4:6], n) }
func (ip IPv6) SetNextHeader(h uint8)  { ip[6] = h }
func (ip IPv6) SetHopLimit(h uint8)    { ip[7] = h }

// SetSrc and SetDst write an IPv6 address, or return ErrAddrFamily and write nothing for an IPv4 or invalid one.
func (ip IPv6) SetSrc(a netip.Addr) error { return putIPv6(ip[8:24], a) }
func (ip IPv6) SetDst(a netip.Addr) error { return putIPv6(ip[24:40], a) }

func putIPv6(dst []byte, a netip.Addr) error {
	if !a.Is6() {
		return ErrAddrFamily
	}
	b := a.As16()
	copy(dst, b[:])
	return nil
}

// pseudoSum is the sum of the UDP pseudo-header (RFC 8200 §8.1) for a datagram of udpLen bytes. Without a
// Routing header, the final destination is the header's destination.
func (ip IPv6) pseudoSum(udpLen int) uint16 {
	a := ip[8:40]
	var s uint64
	for i := 0; i < 32; i += 4 {
		s += uint64(binary.BigEndian.Uint32(a[i:]))
	}
	return fold64(s + uint64(ProtocolUDP) + uint64(udpLen))
}

func (ip IPv6) swapAddrs() {
	s0, s1 := binary.BigEndian.Uint64(ip[8:16]), binary.BigEndian.Uint64(ip[16:24])
	copy(ip[8:24], ip[24:40])
	binary.BigEndian.PutUint64(ip[24:32], s0)
	binary.BigEndian.PutUint64(ip[32:40], s1)
}

// UDP is a UDP datagram: header then payload. Its methods assume len(u) >= UDPLen.
type UDP []byte

func (u UDP) SrcPort() uint16      { return binary.BigEndian.Uint16(u[0:2]) }
func (u UDP) DstPort() uint16      { return binary.BigEndian.Uint16(u[2:4]) }
func (u UDP) Length() uint16       { return binary.BigEndian.Uint16(u[4:6]) }
func (u UDP) Checksum() uint16     { return binary.BigEndian.Uint16(u[6:8]) }
func (u UDP) Payload() []byte      { return u[UDPLen:] }
func (u UDP) SetSrcPort(p uint16)  { binary.BigEndian.PutUint16(u[0:2], p) }
func (u UDP) SetDstPort(p uint16)  { binary.BigEndian.PutUint16(u[2:4], p) }
func (u UDP) SetLength(n uint16)   { binary.BigEndian.PutUint16(u[4:6], n) }
func (u UDP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(u[6:8], c) }

func (u UDP) swapPorts() {
	p := binary.BigEndian.Uint16(u[0:2])
	copy(u[0:2], u[2:4])
	binary.BigEndian.PutUint16(u[2:4], p)
}
