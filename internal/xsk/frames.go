package xsk

// FrameStack is a fixed-capacity stack of free UMEM frame addresses, for frames the application owns between
// rings (a TX pool, frames not yet on the fill ring). It allocates once, in NewFrameStack; Push and Pop never
// allocate. It belongs to one goroutine.
type FrameStack struct {
	addrs []uint64
	n     int
}

// NewFrameStack returns an empty stack that holds up to capacity addresses.
func NewFrameStack(capacity int) *FrameStack {
	return &FrameStack{addrs: make([]uint64, max(capacity, 0))}
}

// Push adds addr and reports false, changing nothing, when the stack is full.
func (s *FrameStack) Push(addr uint64) bool {
	if s.n == len(s.addrs) {
		return false
	}
	s.addrs[s.n] = addr
	s.n++
	return true
}

// Pop removes the most recently pushed address; ok is false when the stack is empty.
func (s *FrameStack) Pop() (addr uint64, ok bool) {
	if s.n == 0 {
		return 0, false
	}
	s.n--
	return s.addrs[s.n], true
}

// Len is the number of addresses on the stack.
func (s *FrameStack) Len() int { return s.n }

// Cap is the most addresses the stack holds.
func (s *FrameStack) Cap() int { return len(s.addrs) }
