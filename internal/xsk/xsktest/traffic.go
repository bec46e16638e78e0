package xsktest

import (
	"errors"
	"fmt"
	"time"

	"github.com/napilab/napilab/internal/xsk"
)

// batch is how many descriptors the traffic loops take off a ring at once.
const batch = 64

// kickTX kicks the way the socket was configured: with need_wakeup only when the TX ring asks for it.
func kickTX(s *xsk.Socket) error {
	if s.Config().NeedWakeup {
		return s.KickTXIfNeeded()
	}
	return s.KickTX()
}

// flushTX kicks until the kernel has taken everything submitted to the TX ring, recycling completions with
// reclaim so that a full completion ring cannot stall it. It gives up after idle without progress.
func flushTX(s *xsk.Socket, reclaim func() uint32, idle time.Duration) error {
	deadline := time.Now().Add(idle)
	for pending := s.TX().Pending(); pending > 0; {
		if err := kickTX(s); err != nil {
			return err
		}
		reclaim()
		now := s.TX().Pending()
		if now < pending {
			deadline = time.Now().Add(idle)
		} else if time.Now().After(deadline) {
			return fmt.Errorf("the kernel took none of %d TX frames in %v", now, idle)
		}
		pending = now
	}
	return nil
}

// StartEcho puts frames 0 .. FillSize-1 on s's fill ring and serves s on a new goroutine until stop is called:
// every received frame is passed to reply, which turns it around in place, and sent back from the same UMEM
// frame (RX → TX → completion → fill). stop returns how many frames were echoed and the error that ended the
// loop early, if any. The loop waits in WaitRX, so it does not spin.
func StartEcho(s *xsk.Socket, reply func(frame []byte)) (stop func() (int, error)) {
	s.FillAll(s.FramePool(0, s.Config().FillSize))
	quit := make(chan struct{})
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := echo(s, reply, quit)
		done <- result{n, err}
	}()
	return func() (int, error) {
		close(quit)
		r := <-done
		return r.n, r.err
	}
}

func echo(s *xsk.Socket, reply func([]byte), quit <-chan struct{}) (int, error) {
	rx, tx := s.RX(), s.TX()
	echoed := 0
	for {
		select {
		case <-quit:
			return echoed, nil
		default:
		}
		s.RefillFromCompletion()
		if _, err := s.WaitRX(10 * time.Millisecond); err != nil {
			return echoed, err
		}
		n := rx.Peek(batch)
		got := tx.Reserve(n)
		rx.Cancel(n - got)
		for i := range got {
			d := rx.Get(i)
			reply(s.Frame(d.Addr, d.Len))
			tx.Set(i, d)
		}
		tx.Submit(got)
		rx.Release(got)
		echoed += int(got)
		if err := flushTX(s, s.RefillFromCompletion, 10*time.Second); err != nil {
			return echoed, err
		}
	}
}

// Exchange sends Frames numbered frames and waits for one reply to each, keeping at most Window unanswered. Its
// socket receives into frames 0 .. FillSize-1 and sends from a pool of the next TXSize frames.
type Exchange struct {
	Frames int
	Window int
	// Build writes frame seq into the TX frame b (a whole UMEM frame) and returns its length.
	Build func(b []byte, seq int) int
	// Check parses a reply and returns the number of the frame it answers.
	Check func(b []byte) (seq int, err error)
	// Idle is how long Run waits for the next reply before it declares the rest lost (default 10 s).
	Idle time.Duration
}

// Result is what an Exchange saw.
type Result struct {
	Sent, Received int
	Elapsed        time.Duration
}

// Rate is replies per second.
func (r Result) Rate() float64 { return float64(r.Received) / r.Elapsed.Seconds() }

// Run performs the exchange on s. It fails when a reply is malformed, unknown or duplicate, when replies stop
// coming for Idle, and when a TX frame never comes back from the completion ring: every frame is accounted for.
func (x Exchange) Run(s *xsk.Socket) (Result, error) {
	if x.Frames <= 0 || x.Window <= 0 || x.Build == nil || x.Check == nil {
		return Result{}, errors.New("exchange needs Frames > 0, Window > 0, Build and Check")
	}
	idle := x.Idle
	if idle <= 0 {
		idle = 10 * time.Second
	}
	cfg := s.Config()
	s.FillAll(s.FramePool(0, cfg.FillSize))
	pool := s.FramePool(cfg.FillSize, cfg.TXSize)
	reclaim := func() uint32 { return s.ReclaimCompletions(pool) }
	rx, tx, fill := s.RX(), s.TX(), s.Fill()
	seen := make([]bool, x.Frames)
	var res Result
	start, progress := time.Now(), time.Now()
	for res.Received < x.Frames {
		if want := min(x.Window-(res.Sent-res.Received), x.Frames-res.Sent, pool.Len()); want > 0 {
			n := tx.Reserve(uint32(want))
			for i := range n {
				addr, _ := pool.Pop()
				tx.Set(i, xsk.Desc{Addr: addr, Len: uint32(x.Build(s.Frame(addr, cfg.FrameSize), res.Sent+int(i)))})
			}
			tx.Submit(n)
			res.Sent += int(n)
		}
		if err := flushTX(s, reclaim, idle); err != nil {
			return res, err
		}
		reclaim()
		if _, err := s.WaitRX(10 * time.Millisecond); err != nil {
			return res, err
		}
		// The kernel publishes a received frame before it releases the fill slot the frame came from, so the fill
		// ring can have room for fewer frames than were just peeked; the rest wait for the next round.
		n := rx.Peek(batch)
		got := fill.Reserve(n)
		rx.Cancel(n - got)
		n = got
		for i := range n {
			d := rx.Get(i)
			seq, err := x.Check(s.Frame(d.Addr, d.Len))
			switch {
			case err != nil:
				return res, fmt.Errorf("reply %d: %w", res.Received+int(i), err)
			case seq < 0 || seq >= res.Sent:
				return res, fmt.Errorf("reply for frame %d, which was never sent (%d sent)", seq, res.Sent)
			case seen[seq]:
				return res, fmt.Errorf("second reply for frame %d", seq)
			}
			seen[seq] = true
			fill.Set(i, s.FrameAddr(s.FrameIndex(d.Addr)))
		}
		fill.Submit(n)
		rx.Release(n)
		res.Received += int(n)
		if n > 0 {
			progress = time.Now()
		} else if time.Since(progress) > idle {
			return res, fmt.Errorf("no reply for %v: %d of %d sent frames unanswered (first: %d)",
				idle, res.Sent-res.Received, res.Sent, firstMissing(seen[:res.Sent]))
		}
	}
	res.Elapsed = time.Since(start)
	for pool.Len() < int(cfg.TXSize) {
		if reclaim() == 0 && time.Since(progress) > idle {
			return res, fmt.Errorf("%d of %d TX frames never came back on the completion ring", int(cfg.TXSize)-pool.Len(), cfg.TXSize)
		}
	}
	return res, nil
}

func firstMissing(seen []bool) int {
	for i, ok := range seen {
		if !ok {
			return i
		}
	}
	return -1
}
