package rr

import "sync/atomic"

// fifoSlot holds the send times of one outstanding request of the xsk_rr format.
type fifoSlot struct {
	scheduled atomic.Int64
	sent      atomic.Int64
}

// fifo pairs xsk_rr-format replies with requests in send order, as the original does: the payload carries nothing
// to identify a request. The sender thread records send times; the receiving thread takes the oldest. Unlike the
// original, the two threads synchronise through atomics (the original races), and a full window makes the sender
// wait instead of overwriting a request that is still outstanding.
type fifo struct {
	slots []fifoSlot
	mask  uint64
	sent  atomic.Uint64 // written by the sender
	done  atomic.Uint64 // written by the receiver
}

func newFIFO(size int) *fifo {
	n := uint64(1)
	for n < uint64(size) {
		n <<= 1
	}
	return &fifo{slots: make([]fifoSlot, n), mask: n - 1}
}

// full reports whether recording one more request would overwrite an outstanding one.
func (f *fifo) full() bool { return f.sent.Load()-f.done.Load() > f.mask }

// push records a request; the caller checked full.
func (f *fifo) push(scheduled, sent int64) {
	n := f.sent.Load()
	s := &f.slots[n&f.mask]
	s.scheduled.Store(scheduled)
	s.sent.Store(sent)
	f.sent.Store(n + 1) // publishes the slot to the receiver
}

// pop takes the oldest outstanding request; ok is false when a reply arrives with nothing outstanding.
func (f *fifo) pop() (scheduled, sent int64, ok bool) {
	d := f.done.Load()
	if d >= f.sent.Load() {
		return 0, 0, false
	}
	s := &f.slots[d&f.mask]
	scheduled, sent = s.scheduled.Load(), s.sent.Load()
	f.done.Store(d + 1)
	return scheduled, sent, true
}

func (f *fifo) outstanding() uint64 { return f.sent.Load() - f.done.Load() }
