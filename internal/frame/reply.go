package frame

import "errors"

// Checksum errors.
var (
	ErrIPv4Checksum = errors.New("IPv4 header checksum does not verify")
	ErrUDPChecksum  = errors.New("UDP checksum does not verify (a veth peer's kernel stack leaves it partial: reply with RecomputeChecksums)")
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
	p.Ethernet().swapAddrs()
	if p.family == IPv4Family {
		IPv4(p.frame[EthernetLen:]).swapAddrs()
	} else {
		IPv6(p.frame[EthernetLen:]).swapAddrs()
	}
	u := p.UDP()
	u.swapPorts()
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
