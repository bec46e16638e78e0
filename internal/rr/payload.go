package rr

import (
	"encoding/binary"
	"errors"
)

// The napilab request header, at the start of the UDP payload (little-endian; both ends are napilab):
//
//	off  size  field
//	  0     4  magic "NLR1" (format and version)
//	  4     4  run id: random per client run, so stray replies from an earlier run are never counted
//	  8     8  sequence number, 0 for the first request of the run
//	 16     8  scheduled send time, ns on the client's monotonic clock
//	 24     8  actual send time, ns on the same clock
//	 32     -  padding up to the payload size, bytes of 'a'
//
// The server echoes the payload unchanged, so the client recovers everything it needs to pair a reply from the
// reply itself: no shared per-request state between sender and receiver threads.
const (
	HeaderLen  = 32
	payloadPad = 'a' // xsk_rr fills its whole payload with 'a'
)

var napilabMagic = [4]byte{'N', 'L', 'R', '1'}

// Header is the decoded napilab request header.
type Header struct {
	Run       uint32
	Seq       uint64
	Scheduled int64
	Sent      int64
}

// Payload decoding errors. They are values so that the receive path never allocates.
var (
	ErrShortPayload = errors.New("payload shorter than the napilab header")
	ErrBadMagic     = errors.New("payload does not start with the napilab magic")
	ErrBadPadding   = errors.New("payload padding is not all 'a'")
)

// PutHeader writes h at the start of b, which must hold at least HeaderLen bytes.
func PutHeader(b []byte, h Header) {
	_ = b[HeaderLen-1]
	copy(b[0:4], napilabMagic[:])
	binary.LittleEndian.PutUint32(b[4:8], h.Run)
	binary.LittleEndian.PutUint64(b[8:16], h.Seq)
	binary.LittleEndian.PutUint64(b[16:24], uint64(h.Scheduled))
	binary.LittleEndian.PutUint64(b[24:32], uint64(h.Sent))
}

// ParseHeader decodes the napilab header at the start of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrShortPayload
	}
	if b[0] != napilabMagic[0] || b[1] != napilabMagic[1] || b[2] != napilabMagic[2] || b[3] != napilabMagic[3] {
		return Header{}, ErrBadMagic
	}
	return Header{
		Run:       binary.LittleEndian.Uint32(b[4:8]),
		Seq:       binary.LittleEndian.Uint64(b[8:16]),
		Scheduled: int64(binary.LittleEndian.Uint64(b[16:24])),
		Sent:      int64(binary.LittleEndian.Uint64(b[24:32])),
	}, nil
}

// FillPad fills b with xsk_rr's payload byte.
func FillPad(b []byte) {
	for i := range b {
		b[i] = payloadPad
	}
}

// CheckPad reports whether every byte of b is xsk_rr's payload byte (what xsk_rr -v verifies).
func CheckPad(b []byte) error {
	for _, c := range b {
		if c != payloadPad {
			return ErrBadPadding
		}
	}
	return nil
}
