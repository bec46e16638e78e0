package frame

import (
	"encoding/binary"
	"math/bits"
)

// Checksum returns the Internet checksum sum (RFC 1071) of b added to initial: the 16-bit ones'-complement sum,
// not yet complemented. A header's checksum field holds ^Checksum(header with the field zeroed, 0).
//
// Sums of consecutive pieces chain through initial as long as every piece but the last has even length. The
// loop adds eight bytes at a time: a ones'-complement sum does not depend on word size or byte order (RFC 1071
// §2), so 64-bit little-endian words with end-around carry fold to the same 16-bit big-endian sum.
func Checksum(b []byte, initial uint16) uint16 {
	sum := uint64(bits.ReverseBytes16(initial))
	var carry uint64
	for len(b) >= 32 {
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b[0:8]), carry)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b[8:16]), carry)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b[16:24]), carry)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b[24:32]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b), carry)
		b = b[8:]
	}
	var tail uint64
	switch len(b) {
	case 7:
		tail = uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint16(b[4:]))<<32 | uint64(b[6])<<48
	case 6:
		tail = uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint16(b[4:]))<<32
	case 5:
		tail = uint64(binary.LittleEndian.Uint32(b)) | uint64(b[4])<<32
	case 4:
		tail = uint64(binary.LittleEndian.Uint32(b))
	case 3:
		tail = uint64(binary.LittleEndian.Uint16(b)) | uint64(b[2])<<16
	case 2:
		tail = uint64(binary.LittleEndian.Uint16(b))
	case 1:
		tail = uint64(b[0])
	}
	sum, carry = bits.Add64(sum, tail, carry)
	sum, carry = bits.Add64(sum, 0, carry)
	sum += carry // cannot overflow: a carry out of the previous add leaves sum == 0
	return bits.ReverseBytes16(fold64(sum))
}

// fold64 reduces a 64-bit ones'-complement sum to 16 bits with end-around carries.
func fold64(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// Combine adds two ones'-complement sums. Combine(a, ^b) subtracts b.
func Combine(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// udpChecksumField turns the sum of a UDP datagram (pseudo-header included, checksum field excluded) into the
// value for the checksum field. A computed zero goes on the wire as 0xffff (RFC 768): zero means "no checksum"
// over IPv4 and is forbidden over IPv6 (RFC 8200 §8.1).
func udpChecksumField(sum uint16) uint16 {
	if c := ^sum; c != 0 {
		return c
	}
	return 0xffff
}
