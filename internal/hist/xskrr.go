package hist

import (
	"io"
	"strconv"
)

// xsk_rr's histogram geometry (RFC "Add xsk_rr an AF_XDP benchmark to measure latency", v1 and v2).
const (
	XskRRBuckets  = 20000 // the last bucket takes every RTT from (XskRRBuckets-1)*XskRRBucketNs up
	XskRRBucketNs = 100
)

// XskRRVersion selects which posted xsk_rr an XskRR imitates. The two print the same numbers; v2 fixed the
// spelling of the last label ("oustanding packets" in v1).
type XskRRVersion int

const (
	XskRRv1 XskRRVersion = 1 // RFC v1, 20 Mar 2025, <20250320163523.3501305-1-skhawaja@google.com>
	XskRRv2 XskRRVersion = 2 // RFC v2, 28 Aug 2025, <20250828222501.288951-1-skhawaja@google.com>
)

// XskRRPercents are the "pN" columns xsk_rr prints, in the order it computes them. The order matters: each
// computation clips the histogram the next one reads.
var XskRRPercents = [4]uint64{5, 50, 95, 99}

// XskRR reproduces xsk_rr's client-side statistics: the cumulative min and max, the per-interval truncated
// running "avg", and the per-interval 100-ns histogram behind its "pN" columns. Record and the report functions
// follow the C code step for step, including its integer arithmetic, so that a napilab run prints what xsk_rr
// would have printed for the same samples. Make one with NewXskRR (the zero value's min is wrong); it is about
// 320 KiB and has no locks, like everything here.
type XskRR struct {
	buckets [XskRRBuckets]uint64
	scratch [XskRRBuckets]uint64 // the "pN" walk clips a copy, leaving buckets intact
	// top is one past the highest bucket with a count: the report copies, walks and clears only buckets[:top],
	// a few KB for microsecond round trips instead of 160 KB, so a reporter sharing a CPU with a spinning loop
	// takes less of its time.
	top     int
	n       uint64 // samples in the interval
	avg     uint64
	min     uint64
	max     uint64
	version XskRRVersion
	line    []byte // report buffer, reused
}

// NewXskRR returns an empty XskRR that prints like version v.
func NewXskRR(v XskRRVersion) *XskRR {
	return &XskRR{min: ^uint64(0), version: v, line: make([]byte, 0, 256)}
}

// Record adds one round-trip time in ns, as xsk_rr's record_recv does: min and max over the whole run,
// avg = (avg*n + rtt)/(n+1) in integers with n counting this interval's samples, and one count in bucket
// rtt/100, or in the last bucket for anything larger. Record never allocates.
func (x *XskRR) Record(rtt uint64) {
	x.min = min(x.min, rtt)
	x.max = max(x.max, rtt)
	x.avg = (x.avg*x.n + rtt) / (x.n + 1)
	i := int(min(rtt/XskRRBucketNs, XskRRBuckets-1))
	x.buckets[i]++
	x.top = max(x.top, i+1)
	x.n++
}

// IntervalCount is the number of samples since the last EndInterval: xsk_rr's total_pkts_intvl, from which it
// prints "rate:" as IntervalCount() / (-l seconds).
func (x *XskRR) IntervalCount() uint64 { return x.n }

// Min and Max are the cumulative extremes (Min is 2^64-1 before the first sample, as in xsk_rr); Avg is the
// truncated running mean of the interval.
func (x *XskRR) Min() uint64 { return x.min }
func (x *XskRR) Max() uint64 { return x.max }
func (x *XskRR) Avg() uint64 { return x.avg }

// XskRRPercentile is one "count: C pP: V" line.
type XskRRPercentile struct {
	P     uint64 `json:"p"`     // 5, 50, 95 or 99
	Count uint64 `json:"count"` // the rank the walk stopped at: floor(total * P / 100) of the histogram as earlier columns left it
	Value uint64 `json:"ns"`    // ns, a multiple of 100
}

// Percentiles computes the four "pN" columns of the current interval the way xsk_rr's print_percentile does,
// on a copy: buckets are clipped in place from one column to the next, as in xsk_rr, but Percentiles itself can
// be called any number of times.
func (x *XskRR) Percentiles() [4]XskRRPercentile {
	b := x.scratch[:x.top]
	copy(b, x.buckets[:x.top])
	var out [4]XskRRPercentile
	for i, p := range XskRRPercents {
		out[i] = xskRRPercentile(b, p)
	}
	return out
}

// xskRRPercentile is xsk_rr's print_percentile(p). It walks the buckets upward taking at most
// target = floor(total*p/100) samples, writes back into the boundary bucket how many it took from it (the clip
// later calls see), and keeps a mean bucket number that it truncates at every update:
// mean = (c*i + count*mean) / (count + c). It returns the count reached and the mean times 100 ns.
func xskRRPercentile(b []uint64, p uint64) XskRRPercentile {
	var total uint64
	for _, c := range b {
		total += c
	}
	target := total * p / 100
	var count, mean uint64
	for i := 0; count < target && i < len(b); i++ {
		c := min(b[i], target-count)
		b[i] = c
		if count != 0 || c != 0 {
			mean = (c*uint64(i) + count*mean) / (count + c)
		}
		count += c
	}
	return XskRRPercentile{P: p, Count: count, Value: mean * XskRRBucketNs}
}

// XskRRExtras are the report numbers that come from outside the histogram.
type XskRRExtras struct {
	EmptyPct    uint64 // "empty:", see XskRRTries
	Rate        uint64 // "rate:", replies in the interval divided by the interval in whole seconds (-l)
	Outstanding uint64 // "outstanding packets:", requests sent minus replies received
}

// AppendReport appends the block xsk_rr prints at the end of an interval, byte for byte:
//
//	(blank line)
//	min: <ns> max: <ns> avg: <ns> empty: <pct>
//	count: <n> p5: <ns>
//	count: <n> p50: <ns>
//	count: <n> p95: <ns>
//	count: <n> p99: <ns>
//	rate: <n>
//	outstanding packets: <n>      ("oustanding" for XskRRv1)
//	(blank line)
//
// It does not end the interval; see Report.
func (x *XskRR) AppendReport(dst []byte, e XskRRExtras) []byte {
	dst = appendUint(dst, "\nmin: ", x.min)
	dst = appendUint(dst, " max: ", x.max)
	dst = appendUint(dst, " avg: ", x.avg)
	dst = appendUint(dst, " empty: ", e.EmptyPct)
	for _, pc := range x.Percentiles() {
		dst = appendUint(dst, "\ncount: ", pc.Count)
		dst = appendUint(dst, " p", pc.P)
		dst = appendUint(dst, ": ", pc.Value)
	}
	dst = appendUint(dst, "\nrate: ", e.Rate)
	label := "\noutstanding packets: "
	if x.version == XskRRv1 {
		label = "\noustanding packets: "
	}
	dst = appendUint(dst, label, e.Outstanding)
	return append(dst, "\n\n"...)
}

func appendUint(dst []byte, label string, v uint64) []byte {
	return strconv.AppendUint(append(dst, label...), v, 10)
}

// EndInterval clears the interval's histogram and sample count, as xsk_rr does after a report; min and max
// carry on, and avg restarts from the next sample because its weight n is back to 0.
func (x *XskRR) EndInterval() {
	clear(x.buckets[:x.top])
	x.top, x.n = 0, 0
}

// FoldExtremes takes a min lo and a max hi seen earlier into x. It lets two XskRR take turns: the measuring
// thread records an interval into one while a reporter prints the other, and folding the extremes reported so
// far into the current one before printing keeps xsk_rr's whole-run min and max without the measuring thread
// ever doing the report's work.
func (x *XskRR) FoldExtremes(lo, hi uint64) {
	x.min = min(x.min, lo)
	x.max = max(x.max, hi)
}

// Merge adds o's interval histogram and sample count to x and folds in its min and max, for a whole-run "pN"
// column. avg is left alone: xsk_rr's avg is a running mean truncated at every sample, which depends on the
// order of the samples and cannot be merged.
func (x *XskRR) Merge(o *XskRR) {
	for i, c := range o.buckets[:o.top] {
		x.buckets[i] += c
	}
	x.top = max(x.top, o.top)
	x.n += o.n
	x.FoldExtremes(o.min, o.max)
}

// Report writes the interval's block to w (see AppendReport) and ends the interval. Its buffer is reused, so a
// report allocates nothing once the first has sized it.
func (x *XskRR) Report(w io.Writer, e XskRRExtras) error {
	x.line = x.AppendReport(x.line[:0], e)
	x.EndInterval()
	_, err := w.Write(x.line)
	return err
}

// XskRRTries counts RX ring peeks for xsk_rr's "empty:" column: every peek, and the peeks that found the ring
// empty (whether or not a kick followed).
type XskRRTries struct {
	All, Empty uint64
}

// Peek counts one look at the RX ring.
func (t *XskRRTries) Peek(empty bool) {
	t.All++
	if empty {
		t.Empty++
	}
}

// Percent is xsk_rr's empty column, 100*Empty/All in integers; 0 before any peek.
func (t *XskRRTries) Percent() uint64 {
	if t.All == 0 {
		return 0
	}
	return t.Empty * 100 / t.All
}

// Reset starts a new interval the way xsk_rr does, which sets both counters to 1 rather than 0 "to avoid divide
// by zero"; so every report after the first counts one phantom empty peek.
func (t *XskRRTries) Reset() { t.All, t.Empty = 1, 1 }
