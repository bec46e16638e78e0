package hist

// Summary is a Recorder reduced to plain numbers for reports and JSON. The names are stable: --json output and
// stored sweep results use them.
type Summary struct {
	Count  uint64  `json:"count"`
	Min    int64   `json:"min_ns"`
	Mean   float64 `json:"mean_ns"`
	StdDev float64 `json:"stddev_ns"`
	P5     int64   `json:"p5_ns"`
	P50    int64   `json:"p50_ns"`
	P90    int64   `json:"p90_ns"`
	P95    int64   `json:"p95_ns"`
	P99    int64   `json:"p99_ns"`
	P999   int64   `json:"p99_9_ns"`  // 99.9th percentile
	P9999  int64   `json:"p99_99_ns"` // 99.99th percentile
	Max    int64   `json:"max_ns"`

	// Values recorded outside the Recorder's range, counted in the numbers above at the nearest end of it.
	ClampedBelow uint64 `json:"clamped_below,omitempty"`
	ClampedAbove uint64 `json:"clamped_above,omitempty"`
}

// Summary computes r's Summary. It reads r once per percentile: call it per interval, not per sample.
func (r *Recorder) Summary() Summary {
	return Summary{
		Count:        r.n,
		Min:          r.min,
		Mean:         r.Mean(),
		StdDev:       r.StdDev(),
		P5:           r.Percentile(5),
		P50:          r.Percentile(50),
		P90:          r.Percentile(90),
		P95:          r.Percentile(95),
		P99:          r.Percentile(99),
		P999:         r.Percentile(99.9),
		P9999:        r.Percentile(99.99),
		Max:          r.max,
		ClampedBelow: r.below,
		ClampedAbove: r.above,
	}
}
