package xsk

import (
	"fmt"
	"sync/atomic"
)

// Desc is one RX or TX ring entry, laid out as the kernel's struct xdp_desc: where the frame is in the UMEM, how
// long it is, and option bits (XDP_PKT_CONTD for multi-buffer frames).
type Desc struct {
	Addr    uint64
	Len     uint32
	Options uint32
}

// ringNeedWakeup is XDP_RING_NEED_WAKEUP in a ring's flags word.
const ringNeedWakeup = 1

// Entry is what a ring holds: descriptors (RX, TX) or bare UMEM addresses (fill, completion).
type Entry interface{ Desc | uint64 }

// The four rings of a socket. Producer rings are written by the application and read by the kernel; consumer
// rings the other way round.
type (
	FillRing       = Producer[uint64]
	CompletionRing = Consumer[uint64]
	RXRing         = Consumer[Desc]
	TXRing         = Producer[Desc]
)

// ring is the memory both sides share: two free-running uint32 indexes, a flags word and a power-of-two array of
// entries. Indexes only grow (and wrap at 2^32); index & mask is the slot. Each index has exactly one writer.
type ring[T Entry] struct {
	producer *uint32
	consumer *uint32
	flags    *uint32
	entries  []T
	mask     uint32
}

func (r *ring[T]) size() uint32 { return r.mask + 1 }

// NeedsWakeup reports whether the kernel asked, through the ring's flags word, to be kicked before it works on
// this ring again (XDP_RING_NEED_WAKEUP, with Config.NeedWakeup).
func (r *ring[T]) NeedsWakeup() bool { return atomic.LoadUint32(r.flags)&ringNeedWakeup != 0 }

// Size is the number of entries the ring holds.
func (r *ring[T]) Size() uint32 { return r.size() }

// Producer is the writing end of a ring: the application's end of the fill and TX rings, the kernel's end of RX
// and completion. Use it as Reserve(n) → Set(i, v) for i < the reserved count → Submit(count).
//
// It keeps its own view of the consumer index and reads the shared one (an acquire load) only when that view
// shows too little free space; Submit publishes with a release store (storeRelease). No method allocates or
// locks. A Producer belongs to one goroutine.
type Producer[T Entry] struct {
	ring[T]
	cachedCons uint32 // last consumer index seen plus the ring size: the first index that is not free
	next       uint32 // first index not yet reserved
	published  uint32 // producer index as last stored
	batch      uint32 // first index of the latest reservation
}

// Reserve claims up to n free slots and returns how many it got (fewer when the ring is nearly full, 0 when it
// is full). Set fills them, Submit hands them over.
func (p *Producer[T]) Reserve(n uint32) uint32 {
	free := p.cachedCons - p.next
	if free < n {
		p.cachedCons = atomic.LoadUint32(p.consumer) + p.size()
		free = p.cachedCons - p.next
	}
	n = min(n, free)
	p.batch = p.next
	p.next += n
	return n
}

// Set writes the i-th slot of the latest reservation.
func (p *Producer[T]) Set(i uint32, v T) { p.entries[(p.batch+i)&p.mask] = v }

// Submit makes the oldest n reserved slots visible to the consumer, in reservation order. It never submits more
// than was reserved.
func (p *Producer[T]) Submit(n uint32) {
	if n = min(n, p.next-p.published); n == 0 {
		return // a store of the same index would still take the cache line away from the consumer
	}
	p.published += n
	storeRelease(p.producer, p.published)
}

// Pending is how many submitted entries the consumer has not yet taken: on the TX ring, frames the kernel has
// not picked up (in copy mode: kick again); on the fill ring, frames still waiting for packets. It reads the
// shared consumer index.
func (p *Producer[T]) Pending() uint32 { return p.published - atomic.LoadUint32(p.consumer) }

// Cancel gives back the newest n reserved, unsubmitted slots.
func (p *Producer[T]) Cancel(n uint32) {
	n = min(n, p.next-p.published)
	p.next -= n
	if p.next-p.batch > p.size() { // the latest reservation shrank below its start
		p.batch = p.next
	}
}

// Consumer is the reading end of a ring: the application's end of the RX and completion rings, the kernel's end
// of fill and TX. Use it as Peek(max) → Get(i) for i < the peeked count → Release(count).
//
// It keeps its own view of the producer index and reads the shared one (an acquire load) only when that view
// runs dry; Release publishes with a release store (storeRelease). No method allocates or locks. A Consumer
// belongs to one goroutine.
type Consumer[T Entry] struct {
	ring[T]
	cachedProd uint32 // producer index as last seen
	next       uint32 // first index not yet peeked
	released   uint32 // consumer index as last stored
	batch      uint32 // first index of the latest peek
}

// Peek claims up to max available entries and returns how many it got (0 when the ring is empty). Get reads
// them, Release hands their slots back.
func (c *Consumer[T]) Peek(max uint32) uint32 {
	avail := c.cachedProd - c.next
	if avail < max {
		c.cachedProd = atomic.LoadUint32(c.producer)
		avail = c.cachedProd - c.next
	}
	n := min(max, avail)
	c.batch = c.next
	c.next += n
	return n
}

// Get reads the i-th entry of the latest peek.
func (c *Consumer[T]) Get(i uint32) T { return c.entries[(c.batch+i)&c.mask] }

// Release returns the oldest n peeked slots to the producer, in peek order. It never releases more than was
// peeked.
func (c *Consumer[T]) Release(n uint32) {
	if n = min(n, c.next-c.released); n == 0 {
		return // a store of the same index would still take the cache line away from the producer
	}
	c.released += n
	storeRelease(c.consumer, c.released)
}

// Cancel un-peeks the newest n peeked, unreleased entries: the next Peek returns them again.
func (c *Consumer[T]) Cancel(n uint32) {
	n = min(n, c.next-c.released)
	c.next -= n
	if c.next-c.batch > c.size() { // the latest peek shrank below its start
		c.batch = c.next
	}
}

// ready reports whether an entry is waiting beyond those already peeked, without changing the latest peek.
func (c *Consumer[T]) ready() bool {
	if c.cachedProd != c.next {
		return true
	}
	c.cachedProd = atomic.LoadUint32(c.producer)
	return c.cachedProd != c.next
}

// ringWords holds the shared indexes of an in-memory ring, each on its own cache line like the kernel's
// struct xdp_ring, so the two ends do not false-share.
type ringWords struct {
	producer uint32
	_        [60]byte
	consumer uint32
	_        [60]byte
	flags    uint32
	_        [60]byte
}

// NewRing makes a ring of size entries in ordinary Go memory and returns both of its ends, with both indexes
// starting at start (the kernel starts at 0; tests start near 2^32 to cross the wrap). It is how in-memory
// sockets and their fake kernels are built.
func NewRing[T Entry](size, start uint32) (*Producer[T], *Consumer[T], error) {
	if size == 0 || size&(size-1) != 0 || size > maxRingSize {
		return nil, nil, fmt.Errorf("ring size %d is not a power of two up to %d", size, maxRingSize)
	}
	w := &ringWords{producer: start, consumer: start}
	r := ring[T]{producer: &w.producer, consumer: &w.consumer, flags: &w.flags, entries: make([]T, size), mask: size - 1}
	return newProducer(r), newConsumer(r), nil
}

// newProducer starts a producer at the ring's current indexes.
func newProducer[T Entry](r ring[T]) *Producer[T] {
	prod := atomic.LoadUint32(r.producer)
	return &Producer[T]{ring: r, cachedCons: atomic.LoadUint32(r.consumer) + r.size(), next: prod, published: prod, batch: prod}
}

// newConsumer starts a consumer at the ring's current indexes.
func newConsumer[T Entry](r ring[T]) *Consumer[T] {
	cons := atomic.LoadUint32(r.consumer)
	return &Consumer[T]{ring: r, cachedProd: atomic.LoadUint32(r.producer), next: cons, released: cons, batch: cons}
}

// setFlags stores the ring's flags word, as the kernel does to ask for a wakeup.
func (r *ring[T]) setFlags(v uint32) { atomic.StoreUint32(r.flags, v) }

// detachedRing is a one-slot ring in its own memory: Close points a socket's rings at one so that a use after
// Close touches harmless Go memory instead of an unmapped page.
func detachedRing[T Entry]() ring[T] {
	w := new(ringWords)
	return ring[T]{producer: &w.producer, consumer: &w.consumer, flags: &w.flags, entries: make([]T, 1)}
}
