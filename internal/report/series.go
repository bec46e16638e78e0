package report

import (
	"math"
	"strconv"
	"time"

	"github.com/napilab/napilab/internal/hist"
)

// point is one plotted value: x in the plot's data unit, y in ns (latency) or ns per request (CPU).
type point struct{ X, Y float64 }

// nines is −log10(1−q): 0.9 → 1, 0.99 → 2, 0.999 → 3. On this scale each "nine" of a percentile gets the same
// room, which is how HdrHistogram's plotter, wrk2 and the netdev list draw latency spectra: the tail, where
// polling modes differ, is not squeezed against the right edge.
func nines(q float64) float64 {
	return -math.Log10(1 - min(max(q, 0), maxQuantile))
}

// maxQuantile keeps nines finite: a quantile of exactly 1 would be infinitely far right.
const maxQuantile = 1 - 1e-9

// ninesScale is a plot.Normalizer for a quantile axis on the nines scale.
type ninesScale struct{}

// Normalize maps q in [lo, hi] to [0, 1] linearly in nines.
func (ninesScale) Normalize(lo, hi, q float64) float64 {
	a, b := nines(lo), nines(hi)
	if b <= a {
		return 0
	}
	return (nines(q) - a) / (b - a)
}

// spectrumStep is the spacing of a spectrum's points in nines: 40 points per decade of the tail.
const spectrumStep = 0.025

// spectrum is a cell's latency percentile spectrum: quantile (0.5 up to the highest rank the cell has, 1−1/N)
// against latency in ns. From the cell's whole histogram when the result carries it (exact is true); otherwise
// the summary's percentiles, the few points the result does record.
func spectrum(c *Cell) (pts []point, exact bool) {
	r := c.Client
	if r == nil || r.Latency.Count == 0 {
		return nil, false
	}
	n := float64(r.Latency.Count)
	if b, err := hist.Decode(r.LatencyHDR); err == nil && b.Count() > 0 {
		// From the median to the highest rank but one (q = 1−1/N), where the spectrum meets the maximum.
		top := max(math.Log10(float64(b.Count())), math.Log10(2))
		for k := 0; ; k++ {
			x := min(math.Log10(2)+float64(k)*spectrumStep, top)
			q := 1 - math.Pow(10, -x)
			pts = append(pts, point{q, float64(b.Percentile(100 * q))})
			if x >= top {
				return pts, true
			}
		}
	}
	l := r.Latency
	for _, s := range []struct {
		q float64
		v int64
	}{{0.5, l.P50}, {0.9, l.P90}, {0.99, l.P99}, {0.999, l.P999}, {0.9999, l.P9999}} {
		// A percentile beyond the highest rank is the maximum again: it says nothing new.
		if s.q <= 1-1/n || s.q == 0.5 {
			pts = append(pts, point{s.q, float64(s.v)})
		}
	}
	return pts, false
}

// cpuSplit is where a cell's CPU time went, per request, in ns: all CPUs of the machine that measured (the
// client's; in the demo both ends share it), from /proc/stat over the measured window, with the NAPI kthreads'
// time (schedstat) carved out of system time when the run accounted them. Process is napilab's own CPU plus
// accounted kthreads per request: the table's cpu/req.
type cpuSplit struct {
	User, System, SoftIRQ, IRQ, Kthread float64
	Process                             float64
	KthreadKnown                        bool
}

func (s cpuSplit) total() float64 { return s.User + s.System + s.SoftIRQ + s.IRQ + s.Kthread }

// cpuOf splits a cell's CPU time; false when the cell recorded no CPU accounting or no replies.
func cpuOf(c *Cell) (cpuSplit, bool) {
	r := c.Client
	if r == nil || r.Usage == nil || r.Measured == 0 || r.Usage.Wall <= 0 || len(r.Usage.CPUs) == 0 {
		return cpuSplit{}, false
	}
	u := r.Usage
	perReq := float64(u.Wall) / 100 / float64(r.Measured) // one percent of one CPU over the window, per request
	var s cpuSplit
	for _, c := range u.CPUs {
		s.User += c.User * perReq
		s.System += c.System * perReq
		s.SoftIRQ += c.SoftIRQ * perReq
		s.IRQ += c.IRQ * perReq
	}
	for _, t := range u.Tasks {
		if !t.Own && !t.Gone {
			s.KthreadKnown = true
			s.Kthread += float64(t.OnCPU) / float64(r.Measured)
		}
	}
	// A kthread's polling shows in /proc/stat as system time: move it out, never below zero (the two clocks
	// differ in resolution).
	s.Kthread = min(s.Kthread, s.System)
	s.System -= s.Kthread
	s.Process = float64(r.CPUPerRequest)
	return s, true
}

// p99Over is a cell's per-interval p99 against the time since its measurement began (the end of each interval),
// in seconds. Intervals without replies have no p99, and a last, partial interval shorter than half the
// reporting interval holds too few replies for one: both are left out.
func p99Over(c *Cell) []point {
	if c.Client == nil {
		return nil
	}
	ivs := c.Client.Intervals
	full := 0.0
	for _, iv := range ivs {
		full = max(full, iv.Seconds)
	}
	var pts []point
	for i, iv := range ivs {
		if iv.Latency.Count == 0 || (i == len(ivs)-1 && i > 0 && iv.Seconds < full/2) {
			continue
		}
		pts = append(pts, point{iv.Start + iv.Seconds, float64(iv.Latency.P99)})
	}
	return pts
}

// latencyStats are the figures the latency-against-load plots show.
var latencyStats = []Stat{P50, P99, P999}

// durationLabel renders ns for an axis tick: "500 ns", "20 µs", "1 ms".
func durationLabel(ns float64) string {
	d := time.Duration(math.Round(ns))
	switch {
	case d < time.Microsecond:
		return FormatNs(int64(d))
	case d < time.Millisecond:
		return trimFloat(ns/1e3) + " µs"
	case d < time.Second:
		return trimFloat(ns/1e6) + " ms"
	}
	return trimFloat(ns/1e9) + " s"
}

func trimFloat(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) }
