package rr

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/xsk"
	"github.com/napilab/napilab/internal/xsk/xsktest"
)

// TestMemDurationBoundsSending: the duration ends the sending on the clock, not when the next scheduled request
// comes due. With a 40 ms period and a 50 ms duration, the request due at 80 ms is never waited for: the run
// sends the two requests due before 50 ms (one, with the other counted as behind, if the machine stalls the
// sender past 50 ms), and nothing after 50 ms.
func TestMemDurationBoundsSending(t *testing.T) {
	m := newMemRun(false)
	m.client.Count, m.client.Warmup = 0, 0
	m.client.Period, m.client.Duration = 40*time.Millisecond, 50*time.Millisecond
	for _, sender := range []SenderPlacement{SenderInline, SenderThread} {
		t.Run(string(sender), func(t *testing.T) {
			m.client.Sender = sender
			res, _ := m.run(t)
			if res.Sent+res.Behind != 2 || res.LastSend >= m.client.Duration {
				t.Fatalf("sent %d, behind %d, last send at %v; want two requests due, none sent at or after %v",
					res.Sent, res.Behind, res.LastSend, m.client.Duration)
			}
		})
	}
}

// TestMemLoadNotKept: a rate no sender reaches ends on time all the same, and the result says plainly that the
// load was not kept, with the rate achieved against the target.
func TestMemLoadNotKept(t *testing.T) {
	m := newMemRun(false)
	m.client.Count, m.client.Warmup = 0, 0
	m.client.Period, m.client.Duration = MinPeriod, 20*time.Millisecond // 100M requests/s
	m.client.Timeout = 5 * time.Second                                  // loss is not what this test is about
	res, _ := m.run(t)
	if !res.LoadNotKept || res.Behind == 0 || res.SendRate >= res.TargetRate {
		t.Fatalf("load not kept %v, behind %d, sent %.0f/s of %.0f/s: want the shortfall reported",
			res.LoadNotKept, res.Behind, res.SendRate, res.TargetRate)
	}
	if res.LastSend >= m.client.Duration {
		t.Fatalf("the last request went out at %v, after the %v duration", res.LastSend, m.client.Duration)
	}
	if !hasNote(res.Notes, note.Warning, "the load was not kept") {
		t.Fatalf("notes %v; want one saying the load was not kept", res.Notes)
	}
}

// TestMemLoadKept: a run that keeps its load carries no such note.
func TestMemLoadKept(t *testing.T) {
	m := newMemRun(false)
	m.client.Count, m.client.Warmup = 0, 0
	m.client.Period, m.client.Duration = 10*time.Millisecond, 50*time.Millisecond
	res, _ := m.run(t)
	// Five requests are due; a machine that stalls the sender for a whole period may miss one, which is the
	// note's business: only a run that sent every request must say nothing.
	if res.Behind == 0 && (res.LoadNotKept || hasNote(res.Notes, note.Warning, "not kept")) {
		t.Fatalf("every request was sent, yet the result says the load was not kept: %v", res.Notes)
	}
}

func hasNote(notes []note.Note, sev note.Severity, text string) bool {
	for _, n := range notes {
		if n.Severity == sev && strings.Contains(n.Text, text) {
			return true
		}
	}
	return false
}

// TestMemServerStopsAnswering: a server that answers the first requests and then goes away makes a run whose
// numbers describe a vanished peer, and Unanswered says so; a run answered throughout says nothing.
func TestMemServerStopsAnswering(t *testing.T) {
	pair, err := xsktest.NewPair(memConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	stop := make(chan struct{})
	done := answerFirst(t, pair.B, 50, stop)
	defer func() { close(stop); <-done }()
	m := newMemRun(false)
	m.client.Count, m.client.Period, m.client.Timeout = 600, time.Millisecond, 50*time.Millisecond
	cli, err := NewClient(pair.A, m.client.Workload, m.client.Threads,
		ClientOptions{Local: m.srvOpts.Peer, Peer: m.srvOpts.Local, UsableCPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	res, err := cli.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Answered == 0 || res.Answered > 50 {
		t.Fatalf("answered %d; the peer answers the first 50", res.Answered)
	}
	if err := res.Unanswered(); !errors.Is(err, ErrUnanswered) || !strings.Contains(err.Error(), "stopped answering") {
		t.Fatalf("Unanswered() = %v; want it to say the server stopped answering", err)
	}

	m = newMemRun(false)
	clean, _ := m.run(t)
	if err := clean.Unanswered(); err != nil {
		t.Fatalf("a run answered throughout: %v", err)
	}
}

// answerFirst echoes the first n requests that reach s and drops the rest, until stop is closed.
func answerFirst(t *testing.T, s *xsk.Socket, n int, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	cfg := s.Config()
	s.FillAll(s.FramePool(0, cfg.FillSize))
	go func() {
		defer close(done)
		answered := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			s.RefillFromCompletion()
			if ok, _ := s.WaitRX(time.Millisecond); !ok || s.RX().Peek(1) == 0 {
				continue
			}
			d := s.RX().Get(0)
			s.RX().Release(1)
			if answered < n {
				if pkt, err := frame.Parse(s.Frame(d.Addr, d.Len)); err == nil && s.TX().Reserve(1) == 1 {
					pkt.Reply(frame.KeepChecksums)
					s.TX().Set(0, xsk.Desc{Addr: d.Addr, Len: d.Len})
					s.TX().Submit(1)
					_ = s.KickTX()
					answered++
					continue
				}
			}
			s.Fill().Reserve(1)
			s.Fill().Set(0, s.FrameAddr(s.FrameIndex(d.Addr)))
			s.Fill().Submit(1)
		}
	}()
	return done
}
