package xsk

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
)

// Starts that put the ring's indexes on, just before and well before the 2^32 wrap.
var wrapStarts = []uint32{0, 1<<32 - 1, 1<<32 - 5, 1<<32 - 64, 1 << 31}

func newTestRing(t testing.TB, size, start uint32) (*Producer[uint64], *Consumer[uint64]) {
	t.Helper()
	p, c, err := NewRing[uint64](size, start)
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

// TestRingWrap streams values through a ring in uneven batches across the uint32 wrap and checks that every
// value arrives once, in order.
func TestRingWrap(t *testing.T) {
	for _, start := range wrapStarts {
		p, c := newTestRing(t, 8, start)
		var sent, got uint64
		for round := 0; got < 1000; round++ {
			n := p.Reserve(uint32(round%8 + 1))
			for i := range n {
				p.Set(i, sent+uint64(i))
			}
			p.Submit(n)
			sent += uint64(n)
			m := c.Peek(uint32(round%5 + 1))
			for i := range m {
				if v := c.Get(i); v != got+uint64(i) {
					t.Fatalf("start %#x round %d: entry %d = %d, want %d", start, round, i, v, got+uint64(i))
				}
			}
			c.Release(m)
			got += uint64(m)
			if sent-got > 8 {
				t.Fatalf("start %#x: %d entries in flight on an 8-entry ring", start, sent-got)
			}
		}
		if prod, cons := atomic.LoadUint32(p.producer), atomic.LoadUint32(c.consumer); prod-start != uint32(sent) || cons-start != uint32(got) {
			t.Errorf("start %#x: shared indexes advanced by %d/%d, want %d/%d", start, prod-start, cons-start, sent, got)
		}
	}
}

// TestRingPartialBatches checks that Reserve and Peek hand out what there is when asked for more.
func TestRingPartialBatches(t *testing.T) {
	for _, start := range wrapStarts {
		p, c := newTestRing(t, 8, start)
		if n := c.Peek(4); n != 0 {
			t.Fatalf("Peek on an empty ring = %d, want 0", n)
		}
		if n := p.Reserve(5); n != 5 {
			t.Fatalf("Reserve(5) on an empty 8-entry ring = %d, want 5", n)
		}
		p.Submit(5)
		if n := p.Reserve(5); n != 3 {
			t.Fatalf("Reserve(5) with 3 free = %d, want 3", n)
		}
		for i := range uint32(3) {
			p.Set(i, uint64(10+i))
		}
		p.Submit(3)
		if n := p.Reserve(1); n != 0 {
			t.Fatalf("Reserve(1) on a full ring = %d, want 0", n)
		}
		if n := c.Peek(100); n != 8 {
			t.Fatalf("Peek(100) with 8 waiting = %d, want 8", n)
		}
		if v := c.Get(7); v != 12 {
			t.Fatalf("last entry = %d, want 12", v)
		}
		if n := c.Peek(1); n != 0 {
			t.Fatalf("Peek after everything was peeked = %d, want 0", n)
		}
		c.Release(8)
		if n := p.Reserve(8); n != 8 {
			t.Fatalf("Reserve(8) after the consumer released all = %d, want 8", n)
		}
	}
}

// TestRingClamps checks that Submit and Release never publish more than was reserved or peeked.
func TestRingClamps(t *testing.T) {
	p, c := newTestRing(t, 8, 1<<32-3)
	p.Reserve(2)
	p.Submit(10)
	if n := c.Peek(8); n != 2 {
		t.Fatalf("consumer sees %d entries after Reserve(2)+Submit(10), want 2", n)
	}
	c.Release(10)
	if n := p.Reserve(8); n != 8 {
		t.Fatalf("Reserve(8) after Release(10) of 2 = %d, want 8", n)
	}
	p.Submit(8)
	if n := p.Reserve(1); n != 0 {
		t.Fatalf("Reserve(1) on a full ring = %d, want 0: Release(10) must not have freed extra slots", n)
	}
}

// TestRingCancel checks that cancelled reservations and peeks come back in order.
func TestRingCancel(t *testing.T) {
	p, c := newTestRing(t, 8, 1<<32-2)
	n := p.Reserve(4)
	for i := range n {
		p.Set(i, uint64(i))
	}
	p.Cancel(2)
	p.Submit(4)
	if m := c.Peek(8); m != 2 || c.Get(0) != 0 || c.Get(1) != 1 {
		t.Fatalf("after Reserve(4), Cancel(2), Submit: peeked %d entries, want 2 (0, 1)", m)
	}
	c.Cancel(1)
	if m := c.Peek(8); m != 1 || c.Get(0) != 1 {
		t.Fatalf("after Cancel(1) the next Peek = %d entries, want the cancelled entry 1", m)
	}
	c.Release(2)
	p.Cancel(5) // nothing reserved: no effect
	if m := p.Reserve(8); m != 8 {
		t.Fatalf("Reserve(8) on an empty ring after a no-op Cancel = %d, want 8", m)
	}
	p.Set(0, 42)
	p.Cancel(8)
	if m := p.Reserve(1); m != 1 {
		t.Fatalf("Reserve(1) after cancelling everything = %d, want 1", m)
	}
	p.Set(0, 7)
	p.Submit(1)
	if m := c.Peek(8); m != 1 || c.Get(0) != 7 {
		t.Fatalf("consumer got %d entries (first %d), want just 7", m, c.Get(0))
	}
}

// TestRingCachesSharedIndex checks that a consumer with cached entries does not read the producer's index, and
// a producer with cached free slots does not read the consumer's: the shared words are touched only when the
// cache runs dry.
func TestRingCachesSharedIndex(t *testing.T) {
	p, c := newTestRing(t, 8, 0)
	p.Reserve(4)
	p.Submit(4)
	if n := c.Peek(2); n != 2 {
		t.Fatalf("Peek(2) = %d", n)
	}
	atomic.StoreUint32(c.producer, 6) // as if two more entries were published
	if n := c.Peek(2); n != 2 || c.cachedProd != 4 {
		t.Fatalf("Peek(2) with 2 cached entries = %d, cached producer %d: it read the shared index early", n, c.cachedProd)
	}
	if n := c.Peek(8); n != 2 || c.cachedProd != 6 {
		t.Fatalf("Peek(8) with an empty cache = %d, cached producer %d: want the 2 entries behind the shared index 6", n, c.cachedProd)
	}

	cached := p.cachedCons
	atomic.StoreUint32(p.consumer, 6) // the consumer released all 6 entries reserved so far
	if n := p.Reserve(2); n != 2 || p.cachedCons != cached {
		t.Fatalf("Reserve(2) with 4 cached free slots = %d, cached consumer %d: it read the shared index early", n, p.cachedCons)
	}
	if n := p.Reserve(8); n != 8 || p.cachedCons != 6+8 {
		t.Fatalf("Reserve(8) with 2 cached free slots = %d, cached consumer %d: want all 8 free behind the shared index", n, p.cachedCons)
	}
}

func TestNewRingRejectsBadSizes(t *testing.T) {
	for _, size := range []uint32{0, 3, 100, 1 << 17} {
		if _, _, err := NewRing[Desc](size, 0); err == nil {
			t.Errorf("NewRing(%d) succeeded", size)
		}
	}
}

func TestNeedsWakeup(t *testing.T) {
	p, c := newTestRing(t, 4, 0)
	if p.NeedsWakeup() || c.NeedsWakeup() {
		t.Fatal("a new ring asks for a wakeup")
	}
	p.setFlags(ringNeedWakeup)
	if !p.NeedsWakeup() || !c.NeedsWakeup() {
		t.Fatal("NEED_WAKEUP set but not reported on both ends")
	}
}

func TestRingOpsDoNotAllocate(t *testing.T) {
	p, c, err := NewRing[Desc](64, 1<<32-10)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		n := p.Reserve(16)
		for i := range n {
			p.Set(i, Desc{Addr: uint64(i) << 12, Len: 60})
		}
		p.Submit(n)
		m := c.Peek(16)
		for i := range m {
			_ = c.Get(i)
		}
		c.Release(m)
		_ = p.NeedsWakeup()
	})
	if allocs != 0 {
		t.Fatalf("Reserve/Set/Submit + Peek/Get/Release: %v allocations per batch, want 0", allocs)
	}
}

// FuzzRing runs a producer and a consumer through random batches, cancels and over-long submits/releases from a
// random starting index, against a simple FIFO model.
func FuzzRing(f *testing.F) {
	f.Add([]byte{0xff, 0xff, 0xff, 0xf0, 0x08, 0x48, 0x05, 0x43, 0x8f, 0xc2, 0x0f, 0x4f})
	f.Add([]byte{0, 0, 0, 0, 0x01, 0x41, 0x02, 0x42})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) < 4 {
			return
		}
		const size = 8
		p, c := newTestRing(t, size, binary.LittleEndian.Uint32(ops))
		var model []uint64 // submitted, not yet peeked
		var peeked []uint64
		next := uint64(1)
		for _, op := range ops[4:] {
			k := uint32(op & 0x0f)
			switch op >> 6 {
			case 0: // produce k (Submit asks for one more than reserved)
				n := p.Reserve(k)
				if want := min(k, size-uint32(len(model)+len(peeked))); n != want {
					t.Fatalf("Reserve(%d) = %d, want %d", k, n, want)
				}
				for i := range n {
					p.Set(i, next)
					model = append(model, next)
					next++
				}
				p.Submit(n + 1)
			case 1: // consume k
				n := c.Peek(k)
				if want := min(k, uint32(len(model))); n != want {
					t.Fatalf("Peek(%d) = %d, want %d", k, n, want)
				}
				for i := range n {
					if v := c.Get(i); v != model[i] {
						t.Fatalf("Get(%d) = %d, want %d", i, v, model[i])
					}
				}
				peeked = append(peeked, model[:n]...)
				model = model[n:]
				c.Release(uint32(len(peeked)) + 1)
				peeked = peeked[:0]
			case 2: // reserve k and cancel them
				n := p.Reserve(k)
				p.Cancel(n)
			case 3: // peek k, give half back, keep the rest peeked
				n := c.Peek(k)
				back := n / 2
				c.Cancel(back)
				peeked = append(peeked, model[:n-back]...)
				model = model[n-back:]
			}
		}
	})
}

func TestPending(t *testing.T) {
	p, c := newTestRing(t, 8, 1<<32-1)
	p.Reserve(5)
	p.Submit(5)
	p.Reserve(2) // reserved, not submitted: not pending
	if n := p.Pending(); n != 5 {
		t.Fatalf("Pending after 5 submitted = %d", n)
	}
	c.Peek(3)
	if n := p.Pending(); n != 5 {
		t.Fatalf("Pending after the consumer peeked 3 without releasing = %d, want 5", n)
	}
	c.Release(3)
	if n := p.Pending(); n != 2 {
		t.Fatalf("Pending after 3 released = %d, want 2", n)
	}
}
