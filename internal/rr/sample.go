package rr

import (
	"github.com/napilab/napilab/internal/hist"
)

// sample is what the receiving thread records during one reporting interval. Two or more samples take turns:
// the receiver fills one while the reporter summarises another, so the receiver never does a report's work.
type sample struct {
	start, end    int64 // nanotime of the interval's first and last moment
	fromScheduled *hist.Recorder
	fromSent      *hist.Recorder
	compat        *hist.XskRR
	tries         hist.XskRRTries
	replies       uint64 // measured replies
	// Counters at the end of the interval, for the reporter to difference.
	sent, answered, lost, reordered uint64
}

func newSample(v hist.XskRRVersion) (*sample, error) {
	a, err := hist.New(hist.DefaultConfig())
	if err != nil {
		return nil, err
	}
	b, _ := hist.New(hist.DefaultConfig())
	return &sample{fromScheduled: a, fromSent: b, compat: hist.NewXskRR(v)}, nil
}

// reset prepares a summarised sample for the next turn. The compat histogram keeps its whole-run min and max.
func (s *sample) reset() {
	s.fromScheduled.Reset()
	s.fromSent.Reset()
	s.compat.EndInterval()
	s.tries.Reset()
	s.replies = 0
}

// record adds one measured round trip.
func (s *sample) record(fromScheduled, fromSent int64) {
	s.fromScheduled.Record(fromScheduled)
	s.fromSent.Record(fromSent)
	s.compat.Record(uint64(max(fromSent, 0))) // xsk_rr times from the actual send
	s.replies++
}

// runHists are the whole run's histograms. The receiving thread records into them as each reply comes, beside
// the interval's sample: a few nanoseconds per reply, where merging each interval into them would make the
// reporter sweep a megabyte of cold histogram memory every interval, on a CPU that a loop spins on.
type runHists struct {
	fromScheduled, fromSent *hist.Recorder
	compat                  *hist.XskRR // for the whole run's "pN"
	// The round trip from the send split by the server's queueing (napilab format): the time the request waited
	// on the server's RX ring, and the rest. unsplit counts measured replies without a queueing time.
	queueing, rest *hist.Recorder
	unsplit        uint64
}

func newRunHists(v hist.XskRRVersion) (*runHists, error) {
	var h [4]*hist.Recorder
	for i := range h {
		var err error
		if h[i], err = hist.New(hist.DefaultConfig()); err != nil {
			return nil, err
		}
	}
	return &runHists{fromScheduled: h[0], fromSent: h[1], queueing: h[2], rest: h[3], compat: hist.NewXskRR(v)},
		nil
}

// record adds one measured round trip.
func (r *runHists) record(fromScheduled, fromSent int64) {
	r.fromScheduled.Record(fromScheduled)
	r.fromSent.Record(fromSent)
	r.compat.Record(uint64(max(fromSent, 0)))
}

// split adds one measured round trip from the send, rtt, to the split by the server's queueing time (NotQueued:
// the server had no arrival stamp for the request).
func (r *runHists) split(rtt, queueing int64) {
	if queueing == NotQueued {
		r.unsplit++
		return
	}
	r.queueing.Record(queueing)
	r.rest.Record(rtt - queueing)
}

// Interval is one reporting interval of a client run.
type Interval struct {
	Start    float64 `json:"start_s"` // seconds since the measurement began
	Seconds  float64 `json:"seconds"`
	Replies  uint64  `json:"replies"`
	Rate     float64 `json:"replies_per_s"`
	Sent     uint64  `json:"sent"`
	Lost     uint64  `json:"lost"` // requests that left the reorder window unanswered during the interval
	Reorder  uint64  `json:"reordered"`
	EmptyPct uint64  `json:"empty_pct"` // xsk_rr's "empty:": RX ring peeks that found nothing
	// Latency from the scheduled send time (what a user of the service waits) and from the actual send.
	Latency       hist.Summary `json:"latency"`
	LatencyToSent hist.Summary `json:"latency_from_send"`
	// XskRR holds xsk_rr's report block for the interval, byte for byte.
	XskRR string `json:"xsk_rr_report"`
	// PN is xsk_rr's "pN" columns for the interval (not percentiles).
	PN [4]hist.XskRRPercentile `json:"xsk_rr_pn"`
}
