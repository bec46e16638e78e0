package hist

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Encode returns r's buckets in HdrHistogram's standard interchange form: the V2 compressed encoding in base64
// (it starts "HISTF"), which hdrhistogram-go, the Java and C HdrHistogram and HistogramLogAnalyzer read. It
// carries the buckets and the geometry, not the exact min, max, mean and clamped counts a Summary keeps. It
// allocates and compresses: call it once at the end of a run, never per sample.
func (r *Recorder) Encode() (string, error) {
	b, err := r.h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return "", fmt.Errorf("encode histogram: %w", err)
	}
	return string(b), nil
}

// Buckets is a histogram read back from its encoded form: percentiles at bucket resolution, for plots and for
// HdrHistogram's .hgrm text. Unlike a Recorder it has no exact extremes: Min and Max are the bounds of the
// lowest and highest occupied buckets.
type Buckets struct {
	h *hdrhistogram.Histogram
}

// ErrNotHistogram says that an encoded histogram could not be read.
var ErrNotHistogram = errors.New("not an HdrHistogram in its V2 compressed base64 form")

// Decode reads a histogram written by Encode (or by any HdrHistogram implementation in the V2 compressed base64
// form). Its range and precision must be ones New accepts: 1 to 5 significant digits, values from 1 ns to an
// hour, so that a corrupt or hostile header cannot make it allocate more than a Recorder would.
func Decode(s string) (*Buckets, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrNotHistogram)
	}
	h, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotHistogram, err)
	}
	cfg := Config{Lowest: h.LowestTrackableValue(), Highest: h.HighestTrackableValue(), Digits: int(h.SignificantFigures())}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotHistogram, err)
	}
	if h.TotalCount() < 0 {
		return nil, fmt.Errorf("%w: negative count", ErrNotHistogram)
	}
	return &Buckets{h: h}, nil
}

// Count is the number of recorded values.
func (b *Buckets) Count() uint64 { return uint64(b.h.TotalCount()) }

// Min and Max are the lowest value of the lowest occupied bucket and the highest of the highest; 0 when empty.
func (b *Buckets) Min() int64 {
	if b.h.TotalCount() == 0 {
		return 0
	}
	return b.h.Min()
}

// Max: see Min.
func (b *Buckets) Max() int64 {
	if b.h.TotalCount() == 0 {
		return 0
	}
	return b.h.Max()
}

// Percentile returns the nearest-rank p-th percentile (p from 0 to 100) as the top of its bucket, as
// Recorder.Percentile does; the first and last ranks are Min and Max. An empty histogram returns 0.
func (b *Buckets) Percentile(p float64) int64 {
	return percentile(b.h, b.Count(), b.Min(), b.Max(), p)
}

// WriteHgrm writes the percentile distribution in HdrHistogram's .hgrm text layout (Value, Percentile,
// TotalCount, 1/(1-Percentile), then the mean, deviation, max and count), the file HdrHistogram's plotter and
// wrk2 users read. Values are divided by unitNs: 1e3 writes microseconds.
func (b *Buckets) WriteHgrm(w io.Writer, unitNs float64) error {
	if !(unitNs > 0) || math.IsInf(unitNs, 0) {
		return fmt.Errorf("hgrm unit of %v ns: use a positive number, e.g. 1000 for microseconds", unitNs)
	}
	_, err := b.h.PercentilesPrint(w, 5, unitNs)
	return err
}

// percentile is the nearest-rank percentile of h, which holds n values in [lo, hi]; see Recorder.Percentile.
func percentile(h *hdrhistogram.Histogram, n uint64, lo, hi int64, p float64) int64 {
	if n == 0 {
		return 0
	}
	if !(p > 0) { // also NaN
		return lo
	}
	// The rank, in integers: p in millionths, ceil(ppm*N/1e6) with a 128-bit product.
	ppm := uint64(math.Round(math.Min(p, 100) * 1e4))
	mh, ml := bits.Mul64(ppm, n)
	rank, rem := bits.Div64(mh, ml, 1e6)
	if rem != 0 {
		rank++
	}
	if rank <= 1 {
		return lo
	}
	if rank >= n {
		return hi
	}
	// hdrhistogram-go picks the rank round(q/100 * N) (with q clamped to 0..100 and the rank to 1..N); asking for
	// rank - 1/4 lands on rank under rounding as under ceiling, far from float error at any feasible N.
	v := h.ValueAtPercentile(100 * (float64(rank) - 0.25) / float64(n))
	return min(max(v, lo), hi)
}
