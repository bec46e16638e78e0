package xsk_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/xsk"
	"github.com/napilab/napilab/internal/xsk/xsktest"
)

func newPair(t testing.TB, cfg xsk.Config) *xsktest.Pair {
	t.Helper()
	p, err := xsktest.NewPair(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestFrame(t *testing.T) {
	cfg := xsk.DefaultConfig()
	cfg.FrameSize = 2048
	s := newPair(t, cfg).A
	if got := s.FrameAddr(3); got != 3*2048 {
		t.Fatalf("FrameAddr(3) = %d", got)
	}
	rxAddr := s.FrameAddr(3) + xsk.XDPPacketHeadroom + 40 // where the kernel puts a received frame with 40 bytes of headroom
	if got := s.FrameIndex(rxAddr); got != 3 {
		t.Fatalf("FrameIndex(%d) = %d, want 3", rxAddr, got)
	}
	b := s.Frame(rxAddr, 60)
	if len(b) != 60 || cap(b) != 2048-xsk.XDPPacketHeadroom-40 {
		t.Fatalf("Frame: len %d cap %d, want 60 and the rest of the frame (%d)", len(b), cap(b), 2048-xsk.XDPPacketHeadroom-40)
	}
	copy(b, "hello")
	if !bytes.Equal(s.Frame(s.FrameAddr(3), 2048)[xsk.XDPPacketHeadroom+40:][:5], []byte("hello")) {
		t.Fatal("Frame does not alias the UMEM at the descriptor's address")
	}
	last := s.FrameAddr(cfg.FrameCount - 1)
	for _, tc := range []struct {
		addr uint64
		n    uint32
	}{
		{s.FrameAddr(3) + 2000, 49}, // crosses into frame 4
		{last + 1, 2048},            // runs off the UMEM
		{uint64(cfg.UMEMSize()), 1}, // starts past the UMEM
		{^uint64(0), 1},             // wraps
		{s.FrameAddr(1), 2049},      // longer than a frame
	} {
		if b := s.Frame(tc.addr, tc.n); b != nil {
			t.Errorf("Frame(%d, %d) = %d bytes, want nil", tc.addr, tc.n, len(b))
		}
	}
	if b := s.Frame(last, 2048); len(b) != 2048 {
		t.Errorf("Frame of the whole last frame = %d bytes", len(b))
	}
}

func TestFrameStack(t *testing.T) {
	st := xsk.NewFrameStack(2)
	if _, ok := st.Pop(); ok {
		t.Fatal("Pop on an empty stack succeeded")
	}
	if !st.Push(10) || !st.Push(20) || st.Push(30) {
		t.Fatal("a 2-frame stack must take two pushes and refuse the third")
	}
	if a, ok := st.Pop(); !ok || a != 20 || st.Len() != 1 || st.Cap() != 2 {
		t.Fatalf("Pop = %d, %v; Len %d", a, ok, st.Len())
	}
	if xsk.NewFrameStack(-1).Push(1) {
		t.Fatal("a stack with negative capacity took a frame")
	}
}

func TestFramePoolAndFillAll(t *testing.T) {
	cfg := xsk.DefaultConfig()
	s := newPair(t, cfg).A
	pool := s.FramePool(4, 600)
	if a, _ := pool.Pop(); a != s.FrameAddr(4) {
		t.Fatalf("first frame popped = %d, want frame 4 at %d", a, s.FrameAddr(4))
	}
	pool.Push(s.FrameAddr(4))
	if n := s.FillAll(pool); n != cfg.FillSize || pool.Len() != 600-int(cfg.FillSize) {
		t.Fatalf("FillAll moved %d frames leaving %d, want the fill ring's %d leaving %d", n, pool.Len(), cfg.FillSize, 600-cfg.FillSize)
	}
	if n := s.FillAll(pool); n != 0 {
		t.Fatalf("FillAll on a full fill ring moved %d", n)
	}
}

// TestCompletionHelpers checks both ways of recycling sent frames: straight back to the fill ring (in-place
// echo) and into a TX pool.
func TestCompletionHelpers(t *testing.T) {
	cfg := xsk.DefaultConfig()
	p := newPair(t, cfg)
	a, b := p.A, p.B
	b.FillAll(b.FramePool(0, cfg.FillSize))
	send := func(n uint32, first uint32) {
		t.Helper()
		if got := a.TX().Reserve(n); got != n {
			t.Fatalf("TX Reserve(%d) = %d", n, got)
		}
		for i := range n {
			a.TX().Set(i, xsk.Desc{Addr: a.FrameAddr(first+i) + 100, Len: 64})
		}
		a.TX().Submit(n)
		if got := p.Pump(); got != int(n) {
			t.Fatalf("Pump completed %d, want %d", got, n)
		}
	}
	send(5, 0)
	if n := a.RefillFromCompletion(); n != 5 {
		t.Fatalf("RefillFromCompletion moved %d, want 5", n)
	}
	if n := a.Fill().Reserve(cfg.FillSize); n != cfg.FillSize-5 {
		t.Fatalf("fill ring has %d free, want %d after 5 refills", n, cfg.FillSize-5)
	}
	a.Fill().Cancel(cfg.FillSize)

	send(3, 10)
	pool := xsk.NewFrameStack(2)
	if n := a.ReclaimCompletions(pool); n != 2 {
		t.Fatalf("ReclaimCompletions into a 2-frame pool moved %d", n)
	}
	if f, _ := pool.Pop(); f != a.FrameAddr(11) {
		t.Fatalf("reclaimed %d, want the frame start %d (offsets stripped)", f, a.FrameAddr(11))
	}
	if n := a.ReclaimCompletions(xsk.NewFrameStack(8)); n != 1 {
		t.Fatalf("the completion left behind = %d, want 1", n)
	}
}

func TestInMemorySocketOptions(t *testing.T) {
	s := newPair(t, xsk.DefaultConfig()).A
	for name, err := range map[string]error{
		"SetBusyPoll":       s.SetBusyPoll(50e3),
		"SetPreferBusyPoll": s.SetPreferBusyPoll(true),
		"SetBusyPollBudget": s.SetBusyPollBudget(64),
		"NAPIID":            second(s.NAPIID()),
	} {
		if !errors.Is(err, kernel.ErrNotSupported) {
			t.Errorf("%s on an in-memory socket: %v, want ErrNotSupported", name, err)
		}
	}
	for name, err := range map[string]error{
		"SetBusyPoll(-1)":          s.SetBusyPoll(-1),
		"SetBusyPollBudget(1<<16)": s.SetBusyPollBudget(1 << 16),
	} {
		if err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("%s: %v, want an out-of-range error", name, err)
		}
	}
	if s.FD() != -1 || s.ZeroCopy() {
		t.Errorf("in-memory socket: fd %d zero-copy %v", s.FD(), s.ZeroCopy())
	}
}

func second[T any](_ T, err error) error { return err }

func TestCloseIsIdempotent(t *testing.T) {
	p := newPair(t, xsk.DefaultConfig())
	s := p.A
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if s.Frame(0, 64) != nil {
		t.Fatal("Frame after Close returned memory")
	}
	if _, err := s.Stats(); err == nil {
		t.Fatal("Stats after Close succeeded")
	}
	// Rings of a closed socket are harmless: nothing to receive, nothing crashes.
	if n := s.RX().Peek(8); n != 0 {
		t.Fatalf("RX Peek after Close = %d", n)
	}
	s.TX().Reserve(1)
	s.TX().Set(0, xsk.Desc{})
	s.TX().Submit(1)
}

func TestFrameAndStackDoNotAllocate(t *testing.T) {
	s := newPair(t, xsk.DefaultConfig()).A
	st := xsk.NewFrameStack(16)
	allocs := testing.AllocsPerRun(1000, func() {
		b := s.Frame(s.FrameAddr(7)+xsk.XDPPacketHeadroom, 128)
		b[0]++
		st.Push(s.FrameAddr(s.FrameIndex(1234)))
		st.Pop()
	})
	if allocs != 0 {
		t.Fatalf("Frame/FrameIndex/Push/Pop: %v allocations, want 0", allocs)
	}
}

func BenchmarkRingBatch(b *testing.B) {
	for _, batch := range []uint32{1, 16, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			prod, cons, err := xsk.NewRing[xsk.Desc](512, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				n := prod.Reserve(batch)
				for i := range n {
					prod.Set(i, xsk.Desc{Addr: uint64(i) << 12, Len: 64})
				}
				prod.Submit(n)
				m := cons.Peek(batch)
				for i := range m {
					_ = cons.Get(i)
				}
				cons.Release(m)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(batch), "ns/entry")
		})
	}
}

func BenchmarkFrameStack(b *testing.B) {
	st := xsk.NewFrameStack(64)
	b.ReportAllocs()
	for b.Loop() {
		st.Push(4096)
		st.Pop()
	}
}
