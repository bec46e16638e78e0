package rr

import (
	"context"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/xsk"
	"github.com/napilab/napilab/internal/xsk/xsktest"
)

// scriptedPeer answers napilab requests on s the way a lossy, duplicating, reordering network would: requests
// whose sequence number ends in 3 are dropped, those ending in 5 are answered twice, and those ending in 7 are
// held back and answered after the next one. It runs until stop is closed.
func scriptedPeer(t *testing.T, s *xsk.Socket, stop <-chan struct{}) (dropped, duplicated, held chan uint64) {
	dropped, duplicated, held = make(chan uint64, 1), make(chan uint64, 1), make(chan uint64, 1)
	cfg := s.Config()
	s.FillAll(s.FramePool(0, cfg.FillSize))
	pool := s.FramePool(cfg.FillSize, cfg.TXSize)
	go func() {
		var nDrop, nDup, nHeld uint64
		var pending []byte // a held-back reply
		send := func(b []byte) {
			s.ReclaimCompletions(pool)
			addr, ok := pool.Pop()
			if !ok || s.TX().Reserve(1) != 1 {
				t.Errorf("scripted peer: no TX room")
				return
			}
			copy(s.Frame(addr, uint32(len(b))), b)
			s.TX().Set(0, xsk.Desc{Addr: addr, Len: uint32(len(b))})
			s.TX().Submit(1)
			_ = s.KickTX()
		}
		defer func() { dropped <- nDrop; duplicated <- nDup; held <- nHeld }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if ok, _ := s.WaitRX(time.Millisecond); !ok {
				continue
			}
			n := s.RX().Peek(1)
			if n == 0 {
				continue
			}
			d := s.RX().Get(0)
			b := append([]byte(nil), s.Frame(d.Addr, d.Len)...)
			s.RX().Release(1)
			s.Fill().Reserve(1)
			s.Fill().Set(0, s.FrameAddr(s.FrameIndex(d.Addr)))
			s.Fill().Submit(1)
			pkt, err := frame.Parse(b)
			if err != nil {
				t.Errorf("scripted peer: %v", err)
				continue
			}
			h, _ := ParseHeader(pkt.Payload())
			pkt.Reply(frame.KeepChecksums)
			switch h.Seq % 10 {
			case 3:
				nDrop++
				continue
			case 5:
				nDup++
				send(b)
			case 7:
				nHeld++
				pending = b
				continue
			}
			send(b)
			if pending != nil {
				send(pending)
				pending = nil
			}
		}
	}()
	return
}

// TestMemLossDuplicatesReordering: the napilab format counts exactly what the peer did, and every latency it
// records is paired with the right request (a mispaired reply would show up as a latency far below the others'
// minimum or a negative one, which the histogram would clamp and count).
func TestMemLossDuplicatesReordering(t *testing.T) {
	pair, err := xsktest.NewPair(memConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	stop := make(chan struct{})
	dropped, duplicated, held := scriptedPeer(t, pair.B, stop)

	m := newMemRun(false)
	// The script answers 900 of the 1000 requests: the run ends when those 900 are in, not a reply timeout
	// after the last request, so a slow machine cannot turn a late reply into a loss.
	m.client.Count, m.client.Period, m.client.Interval = 1000, 50*time.Microsecond, 10*time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opts := ClientOptions{Local: m.srvOpts.Peer, Peer: m.srvOpts.Local, UsableCPUs: 2,
		OnInterval: settle(cancel, func() (uint64, bool) { return 900, true })}
	cli, err := NewClient(pair.A, m.client.Workload, m.client.Threads, opts)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cli.Run(ctx)
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	nDrop, nDup, nHeld := <-dropped, <-duplicated, <-held
	if nDrop != 100 || nDup != 100 || nHeld != 100 {
		t.Fatalf("script did drop %d dup %d hold %d; want 100 each", nDrop, nDup, nHeld)
	}
	if res.Sent != 1000 || res.Lost != nDrop || res.Answered != 1000-nDrop || res.Duplicates != nDup {
		t.Fatalf("sent %d answered %d lost %d duplicates %d; want lost %d duplicates %d",
			res.Sent, res.Answered, res.Lost, res.Duplicates, nDrop, nDup)
	}
	// A held reply follows the next one: it arrives after a later request's reply.
	if res.Reordered != nHeld {
		t.Fatalf("reordered %d; want %d", res.Reordered, nHeld)
	}
	if res.Measured != res.Answered || res.Latency.ClampedBelow != 0 || res.Latency.Min <= 0 {
		t.Fatalf("measured %d of %d answered; latency %+v", res.Measured, res.Answered, res.Latency)
	}
}
