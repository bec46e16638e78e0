package rr

// Pacer is the open-loop schedule: request k is due at t0 + k*period. Computing each due time from k, rather
// than adding the period to the previous send time as xsk_rr does, keeps the schedule from drifting: a late send
// does not push later ones back, so the achieved rate equals the target rate whenever the sender keeps up.
//
// Times are int64 nanoseconds on one monotonic clock. A Pacer is owned by the sending thread.
type Pacer struct {
	t0     int64
	period int64
	k      uint64
	skip   bool

	// Skipped counts due times dropped under CatchUpSkip.
	Skipped uint64
}

// NewPacer starts a schedule at t0.
func NewPacer(t0, period int64, policy CatchUp) Pacer {
	return Pacer{t0: t0, period: period, skip: policy == CatchUpSkip}
}

// Due returns the scheduled time of the next request and advances the schedule if that time has come.
// Under CatchUpSend a sender that fell behind gets every missed request in turn (and the lateness shows in
// the results); under CatchUpSkip it jumps to the latest due time and counts the ones it dropped.
func (p *Pacer) Due(now int64) (scheduled int64, ok bool) {
	s := p.t0 + int64(p.k)*p.period
	if now < s {
		return 0, false
	}
	if p.skip {
		if missed := uint64((now - s) / p.period); missed > 0 {
			p.k += missed
			p.Skipped += missed
			s = p.t0 + int64(p.k)*p.period
		}
	}
	p.k++
	return s, true
}

// Next returns the time the next request is due without advancing.
func (p *Pacer) Next() int64 { return p.t0 + int64(p.k)*p.period }

// DueBefore returns how many requests the schedule has due strictly before t.
func (p *Pacer) DueBefore(t int64) uint64 {
	if t <= p.t0 {
		return 0
	}
	return uint64((t - p.t0 + p.period - 1) / p.period)
}

// Issued returns how many due times have been handed out (or skipped).
func (p *Pacer) Issued() uint64 { return p.k }
