package xdp

import "encoding/binary"

// The arrival stamp. Before steering a frame the program reads CLOCK_MONOTONIC (bpf_ktime_get_ns) and writes it
// into the frame's XDP metadata area, the StampLen bytes right in front of the frame's first byte
// (bpf_xdp_adjust_meta):
//
//	off  size  field
//	  0     4  magic "NLT1", in the machine's byte order
//	  4     4  zero
//	  8     8  CLOCK_MONOTONIC in ns when the program ran, in the machine's byte order
//
// The area travels with the frame into the AF_XDP socket's UMEM: in zero-copy mode the driver's buffer is the
// UMEM frame, and in copy mode the kernel copies the metadata with the frame (xsk_rcv copies from data_meta), so
// an application reads it at the RX descriptor's address minus StampLen, and knows how long the frame waited
// between the program and itself on the same clock.
//
// What the moment means depends on where XDP runs. On a NIC driver in native mode it is the driver's NAPI poll
// of the frame: arrival at the host. On veth it is the receiving veth's NAPI poll, which runs in the softirq of
// the sender's CPU right after the sender transmits (or on the NAPI kthread when threaded): the stamp is taken
// on the sending side, the "wire" takes no time, and the wait includes the copy into the socket. In generic mode
// it is the stack's receive path, after the skb exists.
//
// A driver that gives XDP no metadata area makes bpf_xdp_adjust_meta fail: the frame is steered without a stamp
// and the program counts it (Program.StampFailures). Whatever lies in the headroom then is stale, which the magic
// tells apart, and TakeStamp erases the magic it read, so a frame that comes back unstamped is never read as
// stamped twice.
const StampLen = 16

var stampMagic = [4]byte{'N', 'L', 'T', '1'}

// stampMagicWord is the magic as the program stores it: one 32-bit word in the machine's byte order.
var stampMagicWord = binary.NativeEndian.Uint32(stampMagic[:])

// TakeStamp reads the arrival stamp from meta, the StampLen bytes in front of a received frame, and erases its
// magic. ok is false when the frame carries no stamp (or meta is shorter than StampLen).
func TakeStamp(meta []byte) (ns int64, ok bool) {
	if len(meta) < StampLen || binary.NativeEndian.Uint32(meta) != stampMagicWord {
		return 0, false
	}
	binary.NativeEndian.PutUint32(meta, 0)
	return int64(binary.NativeEndian.Uint64(meta[8:])), true
}

// PutStamp writes the stamp the program writes, for fakes of the kernel and tests: meta must hold StampLen
// bytes.
func PutStamp(meta []byte, ns int64) {
	_ = meta[StampLen-1]
	binary.NativeEndian.PutUint32(meta, stampMagicWord)
	binary.NativeEndian.PutUint32(meta[4:], 0)
	binary.NativeEndian.PutUint64(meta[8:], uint64(ns))
}
