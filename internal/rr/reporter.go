package rr

import (
	"time"

	"github.com/napilab/napilab/internal/hist"
)

// reporter turns the samples the receiver hands over into interval reports, on its own goroutine. It and the
// receiver pass samples back and forth over two channels, so neither ever waits on the other and the receiver
// never summarises or prints. Its work per interval is kept small (summaries of the interval, xsk_rr's report):
// on a machine whose CPUs all have a spinning loop, the reporter's thread takes its time from one of them.
type reporter struct {
	p            Workload
	onInterval   func(Interval)
	measureStart int64

	spare chan *sample // reporter → receiver
	full  chan *sample // receiver → reporter
	done  chan struct{}

	run        *runHists      // the receiver's; read only after the run
	extremes   [2]uint64      // xsk_rr's min and max over the intervals so far
	lateness   *hist.Recorder // the sender's; read only after the run
	intervals  []Interval
	prevCounts sample
}

func newReporter(p Workload, o ClientOptions, measureStart int64) (*reporter, error) {
	r := &reporter{p: p, onInterval: o.OnInterval, measureStart: measureStart,
		spare: make(chan *sample, 2), full: make(chan *sample, 2), done: make(chan struct{}),
		extremes: [2]uint64{^uint64(0), 0}}
	var err error
	if r.run, err = newRunHists(o.XskRRVersion); err != nil {
		return nil, err
	}
	r.lateness, _ = hist.New(hist.DefaultConfig())
	for range 2 {
		s, err := newSample(o.XskRRVersion)
		if err != nil {
			return nil, err
		}
		r.spare <- s
	}
	go r.serve()
	return r, nil
}

// takeSpare blocks for a spare sample; the receiver calls it once, before measuring.
func (r *reporter) takeSpare() *sample { return <-r.spare }

// trySpare returns a spare sample if the reporter has one ready, without blocking.
func (r *reporter) trySpare() *sample {
	select {
	case s := <-r.spare:
		return s
	default:
		return nil
	}
}

func (r *reporter) serve() {
	defer close(r.done)
	for s := range r.full {
		r.summarise(s)
		s.reset()
		r.spare <- s
	}
}

// finish hands over the last, partial interval and waits for the reporter to summarise it.
func (r *reporter) finish(last *sample) {
	if last != nil {
		last.end = nanotime()
		if last.replies > 0 || len(r.intervals) == 0 {
			r.full <- last
		}
	}
	close(r.full)
	<-r.done
}

func (r *reporter) summarise(s *sample) {
	// xsk_rr's min and max are whole-run.
	s.compat.FoldExtremes(r.extremes[0], r.extremes[1])
	r.extremes = [2]uint64{s.compat.Min(), s.compat.Max()}
	iv := Interval{
		Start:         time.Duration(s.start - r.measureStart).Seconds(),
		Seconds:       time.Duration(s.end - s.start).Seconds(),
		Replies:       s.replies,
		Sent:          s.sent - r.prevCounts.sent,
		Lost:          s.lost - r.prevCounts.lost,
		Reorder:       s.reordered - r.prevCounts.reordered,
		EmptyPct:      s.tries.Percent(),
		Latency:       s.fromScheduled.Summary(),
		LatencyToSent: s.fromSent.Summary(),
		PN:            s.compat.Percentiles(),
	}
	if iv.Seconds > 0 {
		iv.Rate = float64(s.replies) / iv.Seconds
	}
	secs := uint64(max(r.p.Interval/time.Second, 1))
	outstanding := s.sent - min(s.answered, s.sent)
	iv.XskRR = string(s.compat.AppendReport(nil, hist.XskRRExtras{EmptyPct: s.tries.Percent(),
		Rate: s.replies / secs, Outstanding: outstanding}))
	r.prevCounts = *s
	r.intervals = append(r.intervals, iv)
	if r.onInterval != nil {
		r.onInterval(iv)
	}
}
