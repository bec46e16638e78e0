package rr

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// The napilab request header, at the start of the UDP payload (little-endian; both ends are the same napilab):
//
//	off  size  field
//	  0     4  magic "NLR2" (format and version)
//	  4     4  run id: random per client run, so stray replies from an earlier run are never counted
//	  8     8  sequence number, 0 for the first request of the run
//	 16     8  scheduled send time, ns on the client's monotonic clock
//	 24     8  actual send time, ns on the same clock
//	 32     8  server queueing: how long the request waited on the server's RX ring, ns on the server's
//	           monotonic clock, written by the server into its reply; -1 as sent, and as answered by a server
//	           that had no arrival stamp for the request
//	 40     -  padding up to the payload size, bytes of 'a'
//
// The server echoes the payload, filling in only the queueing field, so the client recovers everything it needs
// to pair a reply from the reply itself: no shared per-request state between sender and receiver threads. The
// queueing is a difference of two readings of one host's clock, so the client can split its round trip with it
// whatever the two hosts' clocks say.
const (
	HeaderLen  = 40
	payloadPad = 'a' // xsk_rr fills its whole payload with 'a'

	// QueueingOffset is where the server writes its queueing time in the payload.
	QueueingOffset = 32
	// NotQueued is the queueing field of a request, and of a reply whose server had no arrival stamp.
	NotQueued = -1
)

var napilabMagic = [4]byte{'N', 'L', 'R', '2'}

// Header is the decoded napilab request header.
type Header struct {
	Run       uint32
	Seq       uint64
	Scheduled int64
	Sent      int64
	Queueing  int64 // ns the request waited on the server's RX ring; NotQueued when unknown
}

// Payload decoding errors. They are values so that the receive path never allocates.
var (
	ErrShortPayload = errors.New("payload shorter than the napilab header")
	ErrBadMagic     = errors.New("payload does not start with the napilab magic (a peer of another napilab version?)")
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
	binary.LittleEndian.PutUint64(b[32:40], uint64(h.Queueing))
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
		Queueing:  int64(binary.LittleEndian.Uint64(b[32:40])),
	}, nil
}

// PutQueueing encodes a queueing time as it goes into the header, for a server that writes it into a reply.
func PutQueueing(b *[8]byte, ns int64) { binary.LittleEndian.PutUint64(b[:], uint64(ns)) }

// FillPad fills b with xsk_rr's payload byte.
func FillPad(b []byte) {
	for i := range b {
		b[i] = payloadPad
	}
}

// CheckPad reports whether every byte of b is xsk_rr's payload byte (what xsk_rr -v verifies). A server with -v
// runs it on every request, as the original runs memcmp: it compares against a block of padding with
// bytes.Equal, which the runtime does in vector registers, a few times faster than a loop over words.
func CheckPad(b []byte) error {
	for len(b) > 0 {
		n := min(len(b), len(padBlock))
		if !bytes.Equal(b[:n], padBlock[:n]) {
			return ErrBadPadding
		}
		b = b[n:]
	}
	return nil
}

// padBlock is a block of padding for CheckPad to compare with.
var padBlock = func() (p [512]byte) {
	FillPad(p[:])
	return p
}()
