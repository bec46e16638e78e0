package frame

import (
	"encoding/binary"
	"errors"
)

// Checksum and reply errors. They are values, so that refusing a request never allocates.
var (
	ErrIPv4Checksum = errors.New("IPv4 header checksum does not verify")
	ErrUDPChecksum  = errors.New("UDP checksum does not verify")
	// ErrUDPPartial is a UDP checksum field that holds only the pseudo-header sum: what a veth peer's kernel
	// stack sends under CHECKSUM_PARTIAL, expecting hardware to finish it. Answer with RecomputeChecksums.
	ErrUDPPartial = errors.New("UDP checksum is partial (the pseudo-header sum a veth peer's kernel stack " +
		"leaves for offload): recompute checksums to answer it")
	ErrReplyAddress = errors.New("the reply would be invalid on the wire: the request's source or destination " +
		"is not a unicast address, or it came from its own destination")
	ErrPayloadRange = errors.New("write reaches past the end of the UDP payload; keep off+len(data) within len(Payload())")
)

// ChecksumPolicy says what Reply does about checksums.
type ChecksumPolicy uint8

const (
	// KeepChecksums only swaps addresses and ports. The ones'-complement sums do not change, so a request with
	// valid checksums becomes a reply with valid checksums, in O(1). An invalid checksum stays invalid.
	KeepChecksums ChecksumPolicy = iota
	// RecomputeChecksums also sums the datagram once and writes correct IPv4 header and UDP checksums, including
	// over IPv4 where the request carried none (zero). Needed when requests come from a veth peer's kernel stack,
	// whose UDP checksums are partial.
	RecomputeChecksums
	// TrustChecksums checks nothing: Answer only swaps, as KeepChecksums, and refuses nothing, so a corrupted
	// request gets an equally corrupted reply; CheckRequest accepts every request. It spares a server reading
	// the payload at all (the original xsk_rr's server never looks at a request).
	TrustChecksums
)

// pseudoSum is the UDP pseudo-header sum of the datagram.
func (p Packet) pseudoSum() uint16 {
	n := p.udpEnd - p.l4
	if p.family == IPv4Family {
		return IPv4(p.frame[EthernetLen:]).pseudoSum(n)
	}
	return IPv6(p.frame[EthernetLen:]).pseudoSum(n)
}

// udpSum is the sum over the pseudo-header and the whole datagram, checksum field included: 0xffff when the
// checksum verifies.
func (p Packet) udpSum() uint16 { return Checksum(p.frame[p.l4:p.udpEnd], p.pseudoSum()) }

// udpValid judges a datagram whose full sum is sum and whose checksum field is c.
func (p Packet) udpValid(sum, c uint16) bool {
	if c == 0 {
		return p.family == IPv4Family // "no checksum" is allowed over IPv4 only
	}
	return sum == 0xffff
}

// VerifyChecksums returns nil when the IPv4 header checksum (for IPv4) and the UDP checksum verify, else
// ErrIPv4Checksum or ErrUDPChecksum. A zero UDP checksum means "none" over IPv4 and is an error over IPv6.
func (p Packet) VerifyChecksums() error {
	if ip := p.IPv4(); ip != nil && !ip.ChecksumValid() {
		return ErrIPv4Checksum
	}
	if !p.udpValid(p.udpSum(), p.UDP().Checksum()) {
		return ErrUDPChecksum
	}
	return nil
}

// Reply turns the request in place into its reply: Ethernet, IP and UDP source and destination swap, everything
// else (TTL, ID, payload, IPv4 options, IPv6 extension headers) stays. It reports whether RecomputeChecksums had
// to replace a checksum that did not verify; with KeepChecksums it reports false and checks nothing.
func (p Packet) Reply(policy ChecksumPolicy) (fixed bool) {
	p.swap()
	u := p.UDP()
	if policy != RecomputeChecksums {
		return false
	}
	if ip := p.IPv4(); ip != nil && !ip.ChecksumValid() {
		ip.SetChecksum(ip.ComputeChecksum())
		fixed = true
	}
	old := u.Checksum()
	sum := p.udpSum()
	if !p.udpValid(sum, old) {
		fixed = true
	}
	u.SetChecksum(udpChecksumField(Combine(sum, ^old)))
	return fixed
}

// Answer checks a request's checksums and turns it into its reply in place, as Reply does. It refuses, and
// leaves the frame as it was, a request whose IPv4 header checksum does not verify (ErrIPv4Checksum), whose UDP
// checksum is partial while policy is KeepChecksums (ErrUDPPartial), or whose UDP checksum is wrong otherwise
// (ErrUDPChecksum): a corrupted request is never echoed, and an echo never carries a checksum that does not
// verify. Under RecomputeChecksums a partial checksum is completed and fixed reports it. A zero UDP checksum is
// "none" over IPv4 and stays none. The datagram is summed once.
func (p Packet) Answer(policy ChecksumPolicy) (fixed bool, err error) {
	if policy == TrustChecksums {
		p.swap()
		return false, nil
	}
	partial, sum, err := p.checkSums(policy)
	if err != nil {
		return false, err
	}
	p.swap()
	if partial {
		u := p.UDP()
		u.SetChecksum(udpChecksumField(Combine(sum, ^u.Checksum())))
	}
	return partial, nil
}

// CheckRequest makes Answer's checks without answering, for a server that replies with a frame of its own: nil
// when the checksums verify (or, under RecomputeChecksums, the UDP checksum is merely partial).
func (p Packet) CheckRequest(policy ChecksumPolicy) error {
	if policy == TrustChecksums {
		return nil
	}
	_, _, err := p.checkSums(policy)
	return err
}

// checkSums verifies the IPv4 header and UDP checksums. partial reports a UDP checksum field that holds the
// pseudo-header sum, accepted only under RecomputeChecksums; sum is then the datagram's sum, field included.
func (p Packet) checkSums(policy ChecksumPolicy) (partial bool, sum uint16, err error) {
	if ip := p.IPv4(); ip != nil && !ip.ChecksumValid() {
		return false, 0, ErrIPv4Checksum
	}
	u := p.UDP()
	c := u.Checksum()
	switch {
	case c == 0 && p.family == IPv6Family:
		return false, 0, ErrUDPChecksum // "no checksum" is allowed over IPv4 only
	case c == 0:
		return false, 0, nil
	}
	ps := p.pseudoSum()
	if sum = Checksum(u, ps); sum == 0xffff {
		return false, sum, nil
	}
	switch {
	case c != ps:
		return false, 0, ErrUDPChecksum
	case policy != RecomputeChecksums:
		return false, 0, ErrUDPPartial
	}
	return true, sum, nil
}

// CheckReplyAddrs reports whether the reply to this request, its addresses swapped, is a valid frame: the
// request's source MAC and IP become the reply's destination and its destination the reply's source, so both
// must be unicast (not zero, multicast or broadcast; IPv4 not in 0/8, 127/8, 224/4 or 240/4, IPv6 not ::, ::1 or
// ff00::/8), and a frame whose source is its own destination is never answered (it would answer itself).
// It reads bytes only and never allocates.
func (p Packet) CheckReplyAddrs() error {
	f := p.frame
	dst := uint64(binary.BigEndian.Uint32(f[0:]))<<16 | uint64(binary.BigEndian.Uint16(f[4:]))
	src := uint64(binary.BigEndian.Uint32(f[6:]))<<16 | uint64(binary.BigEndian.Uint16(f[10:]))
	const group = 1 << 40 // the I/G bit, lowest of the first byte: multicast and broadcast
	if dst&group != 0 || src&group != 0 || dst == 0 || src == 0 || dst == src {
		return ErrReplyAddress
	}
	ip := f[EthernetLen:]
	if p.family == IPv4Family {
		s, d := binary.BigEndian.Uint32(ip[12:]), binary.BigEndian.Uint32(ip[16:])
		if !unicastIPv4(s) || !unicastIPv4(d) || s == d {
			return ErrReplyAddress
		}
		return nil
	}
	sh, sl := binary.BigEndian.Uint64(ip[8:]), binary.BigEndian.Uint64(ip[16:])
	dh, dl := binary.BigEndian.Uint64(ip[24:]), binary.BigEndian.Uint64(ip[32:])
	if !unicastIPv6(sh, sl) || !unicastIPv6(dh, dl) || sh == dh && sl == dl {
		return ErrReplyAddress
	}
	return nil
}

// unicastIPv4 refuses 0/8, 127/8, 224/4 (multicast) and 240/4 (reserved, with the limited broadcast).
func unicastIPv4(a uint32) bool {
	first := a >> 24
	return first != 0 && first != 127 && first < 224
}

// unicastIPv6 refuses ff00::/8 (multicast), :: and ::1.
func unicastIPv6(hi, lo uint64) bool {
	return hi>>56 != 0xff && (hi != 0 || lo > 1)
}

// swap exchanges the source and destination of every layer; the checksums stay valid.
func (p Packet) swap() {
	p.Ethernet().swapAddrs()
	if p.family == IPv4Family {
		IPv4(p.frame[EthernetLen:]).swapAddrs()
	} else {
		IPv6(p.frame[EthernetLen:]).swapAddrs()
	}
	p.UDP().swapPorts()
}

// WritePayload copies data into the UDP payload at off and updates the UDP checksum incrementally (RFC 1624),
// touching only the bytes that change: the way to stamp a sequence number or send time into a template frame.
// An IPv4 datagram without checksum (zero) keeps none.
func (p Packet) WritePayload(off int, data []byte) error {
	pl := p.Payload()
	if off < 0 || off > len(pl) || len(data) > len(pl)-off {
		return ErrPayloadRange
	}
	dst := pl[off : off+len(data)]
	u := p.UDP()
	c := u.Checksum()
	if c == 0 && p.family == IPv4Family {
		copy(dst, data)
		return nil
	}
	oldSum, newSum := Checksum(dst, 0), Checksum(data, 0)
	if off%2 == 1 {
		// A block that starts at an odd offset adds its bytes in swapped halves of the 16-bit words (RFC 1071 §2).
		oldSum, newSum = oldSum<<8|oldSum>>8, newSum<<8|newSum>>8
	}
	copy(dst, data)
	// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), with m and m' the sums of the old and new bytes.
	u.SetChecksum(udpChecksumField(Combine(Combine(^c, ^oldSum), newSum)))
	return nil
}
