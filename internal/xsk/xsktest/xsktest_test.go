package xsktest_test

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/xsk"
	"github.com/napilab/napilab/internal/xsk/xsktest"
)

const frames = 10000

func newPair(t testing.TB, cfg xsk.Config) *xsktest.Pair {
	t.Helper()
	p, err := xsktest.NewPair(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// A test frame: 8-byte sequence number, one byte saying who last touched it, padding to 64 bytes.
const (
	fromClient = 'c'
	fromServer = 's'
	frameLen   = 64
)

func build(b []byte, seq int) int {
	binary.BigEndian.PutUint64(b, uint64(seq))
	b[8] = fromClient
	for i := 9; i < frameLen; i++ {
		b[i] = byte(seq + i)
	}
	return frameLen
}

func reply(b []byte) { b[8] = fromServer }

func check(b []byte) (int, error) {
	if len(b) != frameLen {
		return 0, fmt.Errorf("reply of %d bytes, want %d", len(b), frameLen)
	}
	seq := int(binary.BigEndian.Uint64(b))
	if b[8] != fromServer {
		return seq, fmt.Errorf("frame %d was not echoed by the server (marker %q)", seq, b[8])
	}
	for i := 9; i < frameLen; i++ {
		if b[i] != byte(seq+i) {
			return seq, fmt.Errorf("frame %d: byte %d = %d, want %d", seq, i, b[i], byte(seq+i))
		}
	}
	return seq, nil
}

func noDrops(t *testing.T, name string, s *xsk.Socket) {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.RxDropped != 0 || st.RxRingFull != 0 || st.RxInvalidDescs != 0 || st.TxInvalidDescs != 0 || st.RxFillRingEmptyDescs != 0 {
		t.Errorf("%s lost frames: %+v", name, st)
	}
}

// TestPairEcho passes 10 000 frames from A to B and back, with B echoing in place on its own goroutine, for
// need_wakeup on and off: every frame must come back exactly once, byte for byte, with no drop counted.
func TestPairEcho(t *testing.T) {
	for _, wakeup := range []bool{true, false} {
		t.Run(fmt.Sprintf("need_wakeup=%v", wakeup), func(t *testing.T) {
			cfg := xsk.DefaultConfig()
			cfg.NeedWakeup = wakeup
			p := newPair(t, cfg)
			stop := xsktest.StartEcho(p.B, reply)
			res, err := xsktest.Exchange{Frames: frames, Window: 64, Build: build, Check: check}.Run(p.A)
			echoed, echoErr := stop()
			if err != nil {
				t.Fatalf("client: %v (after %+v)", err, res)
			}
			if echoErr != nil || echoed != frames {
				t.Fatalf("server echoed %d frames, error %v; want %d", echoed, echoErr, frames)
			}
			if res.Sent != frames || res.Received != frames {
				t.Fatalf("sent %d received %d, want %d each", res.Sent, res.Received, frames)
			}
			noDrops(t, "A", p.A)
			noDrops(t, "B", p.B)
			t.Logf("%d round trips through the in-memory pair in %v (%.0f/s)", res.Received, res.Elapsed, res.Rate())
		})
	}
}

// TestPairBothWays has each socket originate 10 000 frames to the other on one goroutine, sending more per
// round than one kick moves, and accounts for every frame on both sides.
func TestPairBothWays(t *testing.T) {
	cfg := xsk.DefaultConfig()
	p := newPair(t, cfg)
	type side struct {
		s    *xsk.Socket
		pool *xsk.FrameStack
		sent int
		seen []bool
		got  int
	}
	sides := [2]*side{{s: p.A}, {s: p.B}}
	for i, sd := range sides {
		sd.s.FillAll(sd.s.FramePool(0, cfg.FillSize))
		sd.pool = sd.s.FramePool(cfg.FillSize, cfg.TXSize)
		sd.seen = make([]bool, frames)
		_ = i
	}
	for round := 0; sides[0].got < frames || sides[1].got < frames; round++ {
		if round > 10*frames {
			t.Fatalf("no end after %d rounds: A got %d, B got %d", round, sides[0].got, sides[1].got)
		}
		for i, sd := range sides {
			tx := sd.s.TX()
			n := tx.Reserve(uint32(min(48, frames-sd.sent, sd.pool.Len())))
			for j := range n {
				addr, _ := sd.pool.Pop()
				b := sd.s.Frame(addr, frameLen)
				binary.BigEndian.PutUint64(b, uint64(sd.sent+int(j)))
				b[8] = byte('A' + i)
				tx.Set(j, xsk.Desc{Addr: addr, Len: frameLen})
			}
			tx.Submit(n)
			sd.sent += int(n)
			if err := sd.s.KickTXIfNeeded(); err != nil {
				t.Fatal(err)
			}
			sd.s.ReclaimCompletions(sd.pool)
		}
		for i, sd := range sides {
			rx, fill := sd.s.RX(), sd.s.Fill()
			m := rx.Peek(64)
			if r := fill.Reserve(m); r != m {
				t.Fatalf("fill ring room %d for %d frames", r, m)
			}
			for j := range m {
				d := rx.Get(j)
				b := sd.s.Frame(d.Addr, d.Len)
				seq := int(binary.BigEndian.Uint64(b))
				if d.Len != frameLen || b[8] != byte('A'+1-i) || seq >= frames || sd.seen[seq] {
					t.Fatalf("side %c: bad or duplicate frame %d (len %d, from %q)", 'A'+i, seq, d.Len, b[8])
				}
				sd.seen[seq] = true
				fill.Set(j, d.Addr)
			}
			fill.Submit(m)
			rx.Release(m)
			sd.got += int(m)
		}
	}
	for i, sd := range sides {
		if sd.pool.Len() != int(cfg.TXSize) {
			t.Errorf("side %c: %d of %d TX frames came back", 'A'+i, sd.pool.Len(), cfg.TXSize)
		}
		if sd.s.KickStats().Again == 0 {
			t.Errorf("side %c: sending 48 per kick never hit the 32-frame kick budget", 'A'+i)
		}
	}
	noDrops(t, "A", p.A)
	noDrops(t, "B", p.B)
}

// send puts frames on s's TX ring without kicking, from frame first on.
func send(t *testing.T, s *xsk.Socket, n, first uint32, length uint32) {
	t.Helper()
	if got := s.TX().Reserve(n); got != n {
		t.Fatalf("TX Reserve(%d) = %d", n, got)
	}
	for i := range n {
		s.TX().Set(i, xsk.Desc{Addr: s.FrameAddr(first + i), Len: length})
	}
	s.TX().Submit(n)
}

func stats(t *testing.T, s *xsk.Socket) xsk.Statistics {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestPairCounters provokes each kernel counter the fake keeps and the kick budget.
func TestPairCounters(t *testing.T) {
	cfg := xsk.DefaultConfig()
	cfg.FillSize, cfg.RXSize = 8, 4
	p := newPair(t, cfg)
	a, b := p.A, p.B

	if err := a.KickTX(); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, a); st.TxRingEmptyDescs != 1 {
		t.Errorf("kick with an empty TX ring: TxRingEmptyDescs = %d, want 1", st.TxRingEmptyDescs)
	}

	send(t, a, 2, 100, 60) // B has no fill frames yet
	if err := a.KickTX(); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, b); st.RxDropped != 2 || st.RxFillRingEmptyDescs != 2 {
		t.Errorf("frames for an empty fill ring: %+v, want 2 dropped and 2 fill-empty", st)
	}
	if n := a.Completion().Peek(8); n != 2 {
		t.Errorf("frames dropped at the receiver were completed %d times, want 2 (they were sent)", n)
	}
	a.Completion().Release(8)

	b.FillAll(b.FramePool(0, 8))
	send(t, a, 6, 100, 60) // 4 fit the RX ring, 2 do not
	if err := a.KickTX(); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, b); st.RxRingFull != 2 {
		t.Errorf("6 frames into a 4-entry RX ring: RxRingFull = %d, want 2", st.RxRingFull)
	}
	if n := b.Fill().Pending(); n != 4 {
		t.Errorf("fill frames left after 4 receptions: %d, want 4 (a frame that found the RX ring full keeps its fill frame)", n)
	}
	b.RX().Release(b.RX().Peek(8))

	send(t, a, 1, 100, cfg.MaxRXLen()+1)
	send(t, a, 1, 101, 0)
	if err := a.KickTX(); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, b); st.RxDropped != 3 {
		t.Errorf("a frame longer than MaxRXLen: RxDropped = %d, want 3", st.RxDropped)
	}
	if st := stats(t, a); st.TxInvalidDescs != 1 {
		t.Errorf("a zero-length TX descriptor: TxInvalidDescs = %d, want 1", st.TxInvalidDescs)
	}

	a.Completion().Release(a.Completion().Peek(64))
	b.RefillFromCompletion()
	send(t, a, 40, 200, 60)
	before := a.KickStats()
	if err := a.KickTX(); err != nil {
		t.Fatal(err)
	}
	after := a.KickStats()
	if after.Again != before.Again+1 || a.TX().Pending() != 8 {
		t.Errorf("a kick with 40 frames queued: EAGAIN counted %d times, %d left; want once, 8 left", after.Again-before.Again, a.TX().Pending())
	}
	// Every kick is counted, backpressure or not; this one sent TX and none asked for RX.
	if after.TX != before.TX+1 || after.RX != before.RX {
		t.Errorf("one TX kick counted as %d TX and %d RX kicks", after.TX-before.TX, after.RX-before.RX)
	}
	if n := p.Pump(); n != 8 {
		t.Errorf("Pump completed %d, want the 8 left behind", n)
	}
}

func TestPairWaitRX(t *testing.T) {
	p := newPair(t, xsk.DefaultConfig())
	a, b := p.A, p.B
	b.FillAll(b.FramePool(0, 4))
	if ok, err := b.WaitRX(0); ok || err != nil {
		t.Fatalf("WaitRX on an empty ring = %v, %v", ok, err)
	}
	go func() {
		send(t, a, 1, 10, 60)
		a.KickTX()
	}()
	for {
		ok, err := b.WaitRX(time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok && b.RX().Peek(1) == 1 {
			break
		}
	}
	if d := b.RX().Get(0); d.Len != 60 || d.Addr != b.FrameAddr(b.FrameIndex(d.Addr))+xsk.XDPPacketHeadroom {
		t.Fatalf("received %+v, want 60 bytes at a frame start + %d", d, xsk.XDPPacketHeadroom)
	}
}

// TestHeadroom checks that received frames land behind the configured headroom, as the kernel puts them.
func TestHeadroom(t *testing.T) {
	cfg := xsk.DefaultConfig()
	cfg.Headroom = 128
	p := newPair(t, cfg)
	p.B.FillAll(p.B.FramePool(3, 1))
	copy(p.A.Frame(p.A.FrameAddr(20), 4), "ping")
	send(t, p.A, 1, 20, 4)
	p.Pump()
	if p.B.RX().Peek(1) != 1 {
		t.Fatal("nothing received")
	}
	d := p.B.RX().Get(0)
	if want := p.B.FrameAddr(3) + xsk.XDPPacketHeadroom + 128; d.Addr != want || string(p.B.Frame(d.Addr, d.Len)) != "ping" {
		t.Fatalf("received at %d %q, want %d \"ping\"", d.Addr, p.B.Frame(d.Addr, d.Len), want)
	}
}

// TestKicksDoNotAllocate runs a whole round trip step — TX, kick, receive, refill, reclaim — under AllocsPerRun.
func TestKicksDoNotAllocate(t *testing.T) {
	cfg := xsk.DefaultConfig()
	p := newPair(t, cfg)
	a, b := p.A, p.B
	b.FillAll(b.FramePool(0, cfg.FillSize))
	pool := a.FramePool(cfg.FillSize, cfg.TXSize)
	allocs := testing.AllocsPerRun(1000, func() {
		addr, _ := pool.Pop()
		a.TX().Reserve(1)
		a.TX().Set(0, xsk.Desc{Addr: addr, Len: 64})
		a.TX().Submit(1)
		a.KickTXIfNeeded()
		a.KickTX()
		a.KickRX()
		a.KickRXIfNeeded()
		b.WaitRX(0)
		recycleRX(b)
		a.ReclaimCompletions(pool)
	})
	if allocs != 0 {
		t.Fatalf("a round trip step with kicks: %v allocations, want 0", allocs)
	}
	if pool.Len() != int(cfg.TXSize) {
		t.Fatalf("%d TX frames lost during the run", int(cfg.TXSize)-pool.Len())
	}
	noDrops(t, "B", b)
}

func BenchmarkPairRoundTrip(b *testing.B) {
	cfg := xsk.DefaultConfig()
	p := newPair(b, cfg)
	c, s := p.A, p.B
	s.FillAll(s.FramePool(0, cfg.FillSize))
	c.FillAll(c.FramePool(0, cfg.FillSize))
	pool := c.FramePool(cfg.FillSize, cfg.TXSize)
	b.ReportAllocs()
	for b.Loop() {
		addr, _ := pool.Pop()
		c.TX().Reserve(1)
		c.TX().Set(0, xsk.Desc{Addr: addr, Len: 64})
		c.TX().Submit(1)
		c.KickTXIfNeeded()
		n := s.RX().Peek(1)
		s.TX().Reserve(n)
		for i := range n {
			s.TX().Set(i, s.RX().Get(i))
		}
		s.TX().Submit(n)
		s.RX().Release(n)
		s.KickTXIfNeeded()
		s.RefillFromCompletion()
		recycleRX(c)
		c.ReclaimCompletions(pool)
	}
}

// recycleRX puts received frames straight back on the fill ring.
func recycleRX(s *xsk.Socket) {
	n := s.RX().Peek(8)
	got := s.Fill().Reserve(n)
	s.RX().Cancel(n - got)
	for i := range got {
		s.Fill().Set(i, s.RX().Get(i).Addr)
	}
	s.Fill().Submit(got)
	s.RX().Release(got)
}
