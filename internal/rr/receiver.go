package rr

import (
	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/xsk"
)

// receiver owns the client's RX and fill rings, the reply accounting and the current interval's sample.
type receiver struct {
	sock       *xsk.Socket
	p          *Workload
	poll       PollDriver
	sh         *shared
	tl         timeline
	snd        *sender // used from this thread only when sending inline
	rep        *reporter
	cur        *sample
	whole      *runHists // the whole run's histograms, beside cur
	tracker    *Tracker  // napilab format
	run        uint32
	port       uint16
	payloadLen int

	nextReport int64
	lastReply  int64
	gaps       LoopGaps // of the measured window; the caller sets Min
	delayUntil int64
	stray      uint64
	malformed  uint64
}

// loop receives until the run is over. With inline set, it also sends (xsk_rr without -T, and the closed loop).
func (r *receiver) loop(inline bool) {
	r.cur = r.rep.takeSpare()
	r.cur.start = r.tl.measureStart
	r.nextReport = r.tl.measureStart + int64(r.p.Interval)
	if r.p.Interval <= 0 {
		r.nextReport = 1<<63 - 1
	}
	batch := uint32(rxBatch)
	if r.p.Delay > 0 {
		batch = 1 // the processing delay follows every single reply, as in xsk_rr
	}
	rx, fill := r.sock.RX(), r.sock.Fill()
	timeout := int64(r.p.Timeout)
	r.lastReply = nanotime()
	// A gap is an idle iteration (nothing sent, received or reported) that took gaps.Min or longer: the
	// thread was away. Iterations that worked are left out, whatever they took, since their length is the work's.
	last, quiet, sent := r.lastReply, false, uint64(0)
	minGap := int64(r.gaps.Min)

	for !r.sh.stop.Load() {
		now := nanotime()
		if quiet && now-last >= minGap && last >= r.tl.measureStart && (!inline || r.sh.sent.Load() == sent) {
			r.gaps.add(now - last)
		}
		last, quiet = now, true
		if inline {
			sent = r.sh.sent.Load()
			switch {
			case r.p.Windowed():
				if inFlight := r.sh.sent.Load() - r.answered(); inFlight < uint64(r.p.Outstanding) {
					r.snd.pump(now, int(min(uint64(r.p.Outstanding)-inFlight, sendBurst)))
				}
			case r.p.OpenLoop():
				r.snd.pump(now, sendBurst)
			default:
				r.snd.closedLoop(now, r.sh.sent.Load()-r.answered())
			}
		}
		if now >= r.nextReport {
			r.rotate(now)
			quiet = false
		}
		if r.sh.sendDone.Load() {
			if r.answered() >= r.sh.sent.Load() || now-r.sh.lastSend.Load() > timeout {
				return
			}
		} else if (!r.p.OpenLoop() || r.p.Windowed()) && now-max(r.lastReply, r.sh.lastSend.Load()) > timeout {
			return // the closed loop or window is stuck: every request in flight is lost
		}
		if now < r.delayUntil {
			continue // simulated application processing: replies wait in the RX ring
		}

		n := rx.Peek(batch)
		r.cur.tries.Peek(n == 0)
		if n == 0 {
			if inline {
				r.snd.flush()
			}
			if err := kickRX(r.sock, r.poll); err != nil {
				r.sh.fail(err)
				return
			}
			continue
		}
		// Each received frame goes straight back to the fill ring. The kernel publishes a frame on the RX ring
		// before it releases the fill slot the frame came from, so the fill ring may have room for fewer than
		// n: take only as many replies now, the rest stay on the RX ring for the next round.
		quiet = false
		got := fill.Reserve(n)
		if got < n {
			rx.Cancel(n - got)
			if n = got; n == 0 {
				continue
			}
		}
		t := nanotime()
		for i := uint32(0); i < n; i++ {
			d := rx.Get(i)
			if err := r.handle(r.sock.Frame(d.Addr, d.Len), t); err != nil {
				r.sh.fail(err)
			}
			fill.Set(i, r.sock.FrameAddr(r.sock.FrameIndex(d.Addr)))
		}
		rx.Release(n)
		fill.Submit(n)
		r.lastReply = t
		if r.p.Delay > 0 {
			r.delayUntil = t + int64(r.p.Delay)
		}
	}
}

func (r *receiver) answered() uint64 {
	if r.tracker != nil {
		return r.tracker.Answered + r.tracker.Late
	}
	return r.snd.fifo.done.Load()
}

// handle accounts for one received frame that arrived at t.
func (r *receiver) handle(b []byte, t int64) error {
	pkt, err := frame.Parse(b)
	if err != nil || pkt.UDP().DstPort() != r.port {
		r.malformed++
		return nil
	}
	pl := pkt.Payload()
	if len(pl) != r.payloadLen {
		return r.bad()
	}
	if r.tracker == nil {
		if r.p.Verify && CheckPad(pl) != nil {
			return r.bad()
		}
		scheduled, sent, ok := r.snd.fifo.pop()
		if !ok {
			r.stray++
			return nil
		}
		if scheduled >= r.tl.measureStart {
			r.cur.record(t-scheduled, t-sent)
			r.whole.record(t-scheduled, t-sent)
		}
		return nil
	}

	h, err := ParseHeader(pl)
	if err != nil || (r.p.Verify && CheckPad(pl[HeaderLen:]) != nil) {
		return r.bad()
	}
	if h.Run != r.run || h.Seq >= r.sh.sent.Load() {
		r.stray++
		return nil
	}
	switch r.tracker.Observe(h.Seq) {
	case OutcomeDuplicate, OutcomeLate:
		return nil
	}
	if h.Scheduled >= r.tl.measureStart {
		r.cur.record(t-h.Scheduled, t-h.Sent)
		r.whole.record(t-h.Scheduled, t-h.Sent)
		r.whole.split(t-h.Sent, h.Queueing)
	}
	return nil
}

// bad counts a reply that failed its checks. In the xsk_rr format with Verify set it ends the run, as the
// original's -v does.
func (r *receiver) bad() error {
	r.malformed++
	if r.tracker == nil && r.p.Verify {
		return ErrBadPacket
	}
	return nil
}

// rotate hands the interval's sample to the reporter if a spare is ready; otherwise the interval goes on and
// the next iteration tries again.
func (r *receiver) rotate(now int64) {
	spare := r.rep.trySpare()
	if spare == nil {
		return
	}
	full := r.cur
	r.seal(full, now)
	r.rep.full <- full // buffered: the reporter returned a spare, so it is waiting for this one
	spare.start = now
	r.cur = spare
	r.nextReport += int64(r.p.Interval)
	if r.nextReport <= now {
		r.nextReport = now + int64(r.p.Interval)
	}
}

// seal ends the interval s covers at now, with the counters as they stand, for the reporter to difference.
func (r *receiver) seal(s *sample, now int64) {
	s.end = now
	s.sent = r.sh.sent.Load()
	s.answered = r.answered()
	if r.tracker != nil {
		s.lost, s.reordered = r.tracker.Dropped, r.tracker.Reordered
	}
}

// kickRX is what the receive loop does on an empty RX ring. The inline poll driver kicks every time (with
// SO_BUSY_POLL each kick is a busy-poll pass); the others leave polling to someone else, but a zero-copy driver
// that ran out of fill frames waits for a wakeup the kernel asks for on the fill ring (need_wakeup), and only the
// application can give it: without it the socket stalls for good.
func kickRX(s *xsk.Socket, poll PollDriver) error {
	if poll == PollInline {
		return s.KickRX()
	}
	if s.Config().NeedWakeup {
		return s.KickRXIfNeeded()
	}
	return nil
}
