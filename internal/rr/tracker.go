package rr

import "math/bits"

// Tracker accounts for napilab-format replies by sequence number, so loss, duplicates and reordering are counted
// exactly instead of shifting every later sample as FIFO matching does. It keeps one bit per request in a sliding
// window of the most recent requests; a reply that arrives after its request left the window counts as late.
//
// A Tracker is owned by the receiving thread and allocates only in NewTracker.
type Tracker struct {
	bits []uint64
	mask uint64 // window size - 1, in requests
	base uint64 // lowest sequence number still in the window
	max  uint64 // highest sequence number seen + 1 (0: none yet)

	Answered   uint64 // distinct requests answered while in the window
	Duplicates uint64 // further replies to an answered request
	Reordered  uint64 // replies that arrived after a reply to a later request
	Late       uint64 // replies that arrived after their request left the window
	Dropped    uint64 // requests that left the window unanswered
}

// Outcome classifies one reply.
type Outcome uint8

const (
	OutcomeNew Outcome = iota
	OutcomeReordered
	OutcomeDuplicate
	OutcomeLate
)

// NewTracker returns a tracker whose window holds size requests (rounded up to a power of two, at least 64).
func NewTracker(size int) *Tracker {
	n := uint64(64)
	for n < uint64(size) {
		n <<= 1
	}
	return &Tracker{bits: make([]uint64, n/64), mask: n - 1}
}

// Window returns the window size in requests.
func (t *Tracker) Window() uint64 { return t.mask + 1 }

// Observe records a reply to request seq.
func (t *Tracker) Observe(seq uint64) Outcome {
	if seq < t.base {
		t.Late++
		return OutcomeLate
	}
	if seq > t.base+t.mask {
		t.slide(seq - t.mask)
	}
	word, bit := &t.bits[(seq&t.mask)>>6], uint64(1)<<(seq&63)
	if *word&bit != 0 {
		t.Duplicates++
		return OutcomeDuplicate
	}
	*word |= bit
	t.Answered++
	if seq+1 < t.max {
		t.Reordered++
		return OutcomeReordered
	}
	t.max = seq + 1
	return OutcomeNew
}

// slide moves the window's base up to newBase, counting requests that leave it unanswered.
func (t *Tracker) slide(newBase uint64) {
	if newBase-t.base > t.mask {
		// The whole window leaves: count what it held, then start over at newBase.
		held := uint64(0)
		for i := range t.bits {
			held += uint64(bits.OnesCount64(t.bits[i]))
			t.bits[i] = 0
		}
		t.Dropped += (t.mask + 1) - held
		t.Dropped += newBase - t.base - (t.mask + 1)
		t.base = newBase
		return
	}
	for ; t.base < newBase; t.base++ {
		word, bit := &t.bits[(t.base&t.mask)>>6], uint64(1)<<(t.base&63)
		if *word&bit == 0 {
			t.Dropped++
		}
		*word &^= bit
	}
}

// Lost returns how many of the first sent requests were never answered (late replies count as lost: they came
// too late to be paired). Call it when no more replies are expected.
func (t *Tracker) Lost(sent uint64) uint64 {
	if t.Answered >= sent {
		return 0
	}
	return sent - t.Answered
}
