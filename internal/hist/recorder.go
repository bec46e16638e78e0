package hist

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Config is the range and precision of a Recorder.
type Config struct {
	Lowest  int64 // smallest value recorded, ns, and the finest resolution: no bucket is narrower than about Lowest
	Highest int64 // largest value recorded, ns; larger values are clamped down to it
	Digits  int   // significant decimal digits kept, 1 to 5; 3 means buckets at most 0.1 % wide
}

// DefaultConfig covers 1 ns to 10 s with 3 significant digits.
func DefaultConfig() Config { return Config{Lowest: 1, Highest: 10e9, Digits: 3} }

// maxHighest bounds Highest: HDR geometry must fit in 64 bits, and an hour is no longer a latency.
const maxHighest = 3600e9

// Validate reports why New would refuse c.
func (c Config) Validate() error {
	switch {
	case c.Digits < 1 || c.Digits > 5:
		return fmt.Errorf("histogram precision of %d significant digits is out of range; use 1 to 5", c.Digits)
	case c.Lowest < 1:
		return fmt.Errorf("histogram lowest value %d ns is below 1 ns; use 1 or more", c.Lowest)
	case c.Highest > maxHighest:
		return fmt.Errorf("histogram highest value %d ns is above an hour; use at most %d", c.Highest, int64(maxHighest))
	case c.Highest < 2*c.Lowest:
		return fmt.Errorf("histogram range %d..%d ns is too narrow; make the highest value at least twice the lowest", c.Lowest, c.Highest)
	}
	return nil
}

// Recorder is a latency histogram with exact count, min, max, mean and standard deviation. It is not safe for
// concurrent use: the measuring goroutine owns it.
type Recorder struct {
	cfg          Config
	h            *hdrhistogram.Histogram
	n            uint64
	min, max     int64
	sum          uint128 // of recorded (clamped) values
	sumSq        uint128 // of their squares
	below, above uint64  // values clamped into range
}

type uint128 struct{ hi, lo uint64 }

func (u *uint128) add(hi, lo uint64) {
	var c uint64
	u.lo, c = bits.Add64(u.lo, lo, 0)
	u.hi, _ = bits.Add64(u.hi, hi, c)
}

func (u uint128) big() *big.Int {
	b := new(big.Int).SetUint64(u.hi)
	return b.Lsh(b, 64).Or(b, new(big.Int).SetUint64(u.lo))
}

// New returns an empty Recorder for cfg.
func New(cfg Config) (*Recorder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Recorder{cfg: cfg, h: hdrhistogram.New(cfg.Lowest, cfg.Highest, cfg.Digits)}, nil
}

// Config returns the range and precision r was made with.
func (r *Recorder) Config() Config { return r.cfg }

// Record adds one latency in ns. A value outside the configured range is clamped to its nearest end and counted
// in Clamped, so it still shows in the count, the percentiles and the mean. Record never allocates.
func (r *Recorder) Record(ns int64) {
	switch {
	case ns < r.cfg.Lowest:
		ns = r.cfg.Lowest
		r.below++
	case ns > r.cfg.Highest:
		ns = r.cfg.Highest
		r.above++
	}
	_ = r.h.RecordValue(ns) // cannot fail: ns is within [Lowest, Highest], which New sized the histogram for
	if r.n == 0 || ns < r.min {
		r.min = ns
	}
	if ns > r.max {
		r.max = ns
	}
	r.n++
	r.sum.add(0, uint64(ns))
	r.sumSq.add(bits.Mul64(uint64(ns), uint64(ns)))
}

// Count is the number of recorded values.
func (r *Recorder) Count() uint64 { return r.n }

// Min and Max are the exact smallest and largest recorded values (after clamping); 0 when empty.
func (r *Recorder) Min() int64 { return r.min }
func (r *Recorder) Max() int64 { return r.max }

// Clamped returns how many values were below Lowest and above Highest when recorded.
func (r *Recorder) Clamped() (below, above uint64) { return r.below, r.above }

// Mean is the exact arithmetic mean; 0 when empty.
func (r *Recorder) Mean() float64 {
	if r.n == 0 {
		return 0
	}
	return (float64(r.sum.hi)*0x1p64 + float64(r.sum.lo)) / float64(r.n)
}

// StdDev is the exact population standard deviation, sqrt((N*sum(x^2) - sum(x)^2) / N^2), computed in integers
// so that a narrow spread around a large mean loses nothing to cancellation; 0 when empty.
func (r *Recorder) StdDev() float64 {
	if r.n == 0 {
		return 0
	}
	n := new(big.Int).SetUint64(r.n)
	s := r.sum.big()
	v := new(big.Int).Mul(n, r.sumSq.big())
	v.Sub(v, s.Mul(s, s))
	num, _ := new(big.Float).SetInt(v).Float64()
	return math.Sqrt(num) / float64(r.n)
}

// Percentile returns the nearest-rank p-th percentile (p from 0 to 100, not a fraction) as the top of its
// bucket, within [Min, Max]: never below the true sample of rank ceil(p/100 * N), and above it by less than one
// bucket width (0.1 % of it with 3 digits, or less than Lowest ns near the bottom of the range). p is rounded to
// 0.0001. The first and last ranks are exact: Min and Max. An empty Recorder returns 0.
func (r *Recorder) Percentile(p float64) int64 { return percentile(r.h, r.n, r.min, r.max, p) }

// ErrConfigMismatch is returned when merging recorders with different ranges or precision.
var ErrConfigMismatch = errors.New("histograms have different ranges or precision; create both from the same Config")

// Merge adds everything recorded in o to r. Both must have the same Config.
func (r *Recorder) Merge(o *Recorder) error {
	if r.cfg != o.cfg {
		return fmt.Errorf("merge histogram %+v into %+v: %w", o.cfg, r.cfg, ErrConfigMismatch)
	}
	if o.n == 0 {
		return nil
	}
	if dropped := r.h.Merge(o.h); dropped != 0 {
		return fmt.Errorf("merge histogram: %d values did not fit although the ranges are equal", dropped)
	}
	if r.n == 0 || o.min < r.min {
		r.min = o.min
	}
	r.max = max(r.max, o.max)
	r.n += o.n
	r.sum.add(o.sum.hi, o.sum.lo)
	r.sumSq.add(o.sumSq.hi, o.sumSq.lo)
	r.below += o.below
	r.above += o.above
	return nil
}

// Reset empties r, keeping its memory.
func (r *Recorder) Reset() {
	r.h.Reset()
	*r = Recorder{cfg: r.cfg, h: r.h}
}
