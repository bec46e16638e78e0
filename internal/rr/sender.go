package rr

import (
	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/hist"
	"github.com/napilab/napilab/internal/xsk"
)

// sender owns the client's TX and completion rings and its pool of request frames. It runs either on its own
// thread (loop) or inside the receive loop (pump); either way exactly one thread uses it.
type sender struct {
	sock     *xsk.Socket
	pool     *xsk.FrameStack
	frameLen uint32
	p        *Workload
	sh       *shared
	tl       timeline
	run      uint32
	fifo     *fifo // xsk_rr format only
	pacer    Pacer
	started  bool

	lateness     *hist.Recorder // owned by this thread until the run ends
	hdr          [HeaderLen]byte
	measuredSent uint64
	lastMeasured int64 // scheduled time of the latest measured request
	noFrame      uint64
	// behind counts requests due before the end of sending that were never sent: the duration bounds the
	// sending, so a sender that cannot keep up stops at the end instead of catching up for ever.
	behind uint64
}

// loop is the dedicated sender thread (xsk_rr -T): it spins on the clock and sends each request when it is due.
func (s *sender) loop() {
	s.start()
	for !s.sh.stop.Load() && !s.sh.sendDone.Load() {
		now := nanotime()
		if now >= s.tl.sendEnd {
			s.end(0)
			break
		}
		if scheduled, ok := s.pacer.Due(now); ok {
			s.dueOrFinish(scheduled)
		} else {
			s.flush()
		}
	}
	for !s.sh.stop.Load() && s.sock.TX().Pending() > 0 {
		s.flush() // the last requests may still wait for a kick
	}
}

// flush kicks again while submitted requests wait on the TX ring: a copy-mode kick sends at most 32 frames and
// answers EAGAIN for the rest, which only another kick sends.
func (s *sender) flush() {
	if s.sock.TX().Pending() == 0 {
		return
	}
	if err := s.kick(); err != nil {
		s.sh.fail(err)
	}
}

func (s *sender) start() {
	if !s.started {
		s.pacer = NewPacer(s.tl.t0, int64(s.p.Period), s.p.CatchUp)
		s.started = true
	}
}

// end finishes sending at the end of the run's time, counting what was due and not sent: the requests the
// schedule had not handed out yet, and inHand that it had.
func (s *sender) end(inHand uint64) {
	if s.p.OpenLoop() {
		s.behind = inHand
		if due := s.pacer.DueBefore(s.tl.sendEnd); due > s.pacer.Issued() {
			s.behind += due - s.pacer.Issued()
		}
	}
	s.sh.finishSending()
}

// pump sends every request due by now, at most most of them, from the receive loop (xsk_rr without -T).
func (s *sender) pump(now int64, most int) {
	s.start()
	if now >= s.tl.sendEnd && !s.sh.sendDone.Load() {
		s.end(0)
		return
	}
	for i := 0; i < most && !s.sh.sendDone.Load(); i++ {
		scheduled, ok := s.pacer.Due(now)
		if !ok {
			return
		}
		s.dueOrFinish(scheduled)
	}
}

// closedLoop keeps Outstanding requests in flight, from the receive loop.
func (s *sender) closedLoop(now int64, outstanding uint64) {
	for i := 0; outstanding < uint64(s.p.Outstanding) && i < sendBurst && !s.sh.sendDone.Load(); i++ {
		s.dueOrFinish(now)
		outstanding++
	}
}

// dueOrFinish sends the request scheduled at the given time, or ends sending when the run's end has come: by
// the schedule, or by the clock for a sender that fell behind (the request in hand then counts as behind).
func (s *sender) dueOrFinish(scheduled int64) {
	measured := scheduled >= s.tl.measureStart
	now := nanotime()
	switch {
	case scheduled >= s.tl.sendEnd:
		s.end(0)
		return
	case now >= s.tl.sendEnd:
		s.end(1)
		return
	case s.sh.cut.Load() || (measured && s.p.Count > 0 && s.measuredSent >= s.p.Count):
		s.sh.finishSending()
		return
	}
	if s.send(scheduled, now) && measured {
		s.measuredSent++
		s.lastMeasured = scheduled
	}
}

// send stamps and transmits one request. It reports false when no TX frame or TX slot was free, which happens
// only when the kernel is not completing sends: the request is counted in noFrame and not sent.
func (s *sender) send(scheduled, now int64) bool {
	s.sock.ReclaimCompletions(s.pool)
	if s.pool.Len() == 0 || s.sock.TX().Reserve(1) == 0 {
		// Completions come back only as the kernel sends; one kick usually frees a frame.
		if err := s.sock.KickTX(); err != nil {
			s.sh.fail(err)
			return false
		}
		s.sock.ReclaimCompletions(s.pool)
		if s.pool.Len() == 0 || s.sock.TX().Reserve(1) == 0 {
			s.noFrame++
			return false
		}
	}
	addr, _ := s.pool.Pop()
	buf := s.sock.Frame(addr, s.frameLen)
	seq := s.sh.sent.Load()
	if s.fifo != nil {
		if s.fifo.full() {
			s.sock.TX().Cancel(1)
			s.pool.Push(addr)
			s.sh.fail(ErrOutstandingFull)
			return false
		}
		s.fifo.push(scheduled, now)
	} else {
		pkt, err := frame.Parse(buf)
		if err != nil { // the template parsed when it was built; this cannot happen unless memory is corrupt
			s.sh.fail(err)
			return false
		}
		PutHeader(s.hdr[:], Header{Run: s.run, Seq: seq, Scheduled: scheduled, Sent: now, Queueing: NotQueued})
		_ = pkt.WritePayload(0, s.hdr[:])
	}
	// Count the request before the kernel can see it: a reply must never arrive for a sequence number the
	// receiver does not yet know was sent.
	s.sh.sent.Store(seq + 1)
	s.sh.lastSend.Store(now)
	tx := s.sock.TX()
	tx.Set(0, xsk.Desc{Addr: addr, Len: s.frameLen})
	tx.Submit(1)
	if err := s.kick(); err != nil {
		s.sh.fail(err)
	}
	s.lateness.Record(now - scheduled)
	return true
}

func (s *sender) kick() error {
	if s.sock.Config().NeedWakeup {
		return s.sock.KickTXIfNeeded()
	}
	return s.sock.KickTX()
}
