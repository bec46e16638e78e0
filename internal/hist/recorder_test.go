package hist

import (
	"encoding/json"
	"errors"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
)

func newRecorder(t testing.TB, cfg Config) *Recorder {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// oracle is the nearest-rank percentile of sorted values: the sample of rank ceil(p/100 * N), p in 0.0001 steps.
func oracle(sorted []int64, p float64) int64 {
	ppm := uint64(math.Round(p * 1e4))
	if ppm == 0 {
		return sorted[0]
	}
	hi, lo := bits.Mul64(ppm, uint64(len(sorted)))
	rank, rem := bits.Div64(hi, lo, 1e6)
	if rem != 0 {
		rank++
	}
	return sorted[rank-1]
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{Lowest: 1, Highest: 10e9, Digits: 0},
		{Lowest: 1, Highest: 10e9, Digits: 6},
		{Lowest: 0, Highest: 10e9, Digits: 3},
		{Lowest: 1000, Highest: 1999, Digits: 3},
		{Lowest: 1, Highest: 7200e9, Digits: 3},
		{Lowest: -5, Highest: -1, Digits: 3},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

// TestPercentileNearestRank pins the rank definition on values that HDR stores exactly (below 2048 at 3 digits):
// the p-th percentile of 1..N is ceil(p/100 * N), where hdrhistogram-go by itself would round to nearest.
func TestPercentileNearestRank(t *testing.T) {
	r := newRecorder(t, DefaultConfig())
	for v := int64(1); v <= 10; v++ {
		r.Record(v)
	}
	for _, c := range []struct {
		p    float64
		want int64
	}{{0, 1}, {1, 1}, {10, 1}, {10.0001, 2}, {50, 5}, {54, 6}, {55, 6}, {90, 9}, {99.99, 10}, {100, 10}, {-3, 1}, {250, 10}, {math.NaN(), 1}, {math.Inf(1), 10}} {
		if got := r.Percentile(c.p); got != c.want {
			t.Errorf("p%v of 1..10 = %d, want %d", c.p, got, c.want)
		}
	}
}

// TestPercentileOracle is the property test: for random data of several shapes and sizes, every percentile lies
// in [oracle, oracle + 0.1 %] where the oracle is the nearest-rank sample of the sorted data.
func TestPercentileOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	shapes := map[string]func() int64{
		"exact small":  func() int64 { return 1 + rng.Int64N(2000) },
		"lognormal":    func() int64 { return int64(math.Exp(9.5 + rng.NormFloat64())) },
		"bimodal":      func() int64 { return []int64{13000, 14000}[rng.IntN(2)] + rng.Int64N(50) },
		"heavy tail":   func() int64 { return int64(5000 / math.Pow(rng.Float64()+1e-9, 0.7)) },
		"microseconds": func() int64 { return 1000 * (1 + rng.Int64N(5000)) },
	}
	ps := []float64{0, 5, 50, 90, 95, 99, 99.9, 99.99, 100}
	for name, gen := range shapes {
		for _, n := range []int{1, 2, 3, 10, 99, 1000, 12345} {
			r := newRecorder(t, DefaultConfig())
			vals := make([]int64, n)
			for i := range vals {
				vals[i] = gen()
				r.Record(vals[i])
			}
			slices.Sort(vals)
			for _, p := range append(ps, 100*rng.Float64()) {
				want, got := oracle(vals, p), r.Percentile(p)
				if got < want || got-want > want/1000 {
					t.Fatalf("%s, N=%d: p%v = %d, nearest-rank sample %d", name, n, p, got, want)
				}
			}
			if r.Min() != vals[0] || r.Max() != vals[n-1] || r.Count() != uint64(n) {
				t.Fatalf("%s, N=%d: min %d max %d count %d", name, n, r.Min(), r.Max(), r.Count())
			}
		}
	}
}

func TestMeanStdDevExact(t *testing.T) {
	t.Run("small", func(t *testing.T) {
		r := newRecorder(t, DefaultConfig())
		for _, v := range []int64{2, 4, 4, 4, 5, 5, 7, 9} {
			r.Record(v)
		}
		if r.Mean() != 5 || r.StdDev() != 2 {
			t.Errorf("mean %v stddev %v, want 5 and 2", r.Mean(), r.StdDev())
		}
	})
	t.Run("narrow spread around a large mean", func(t *testing.T) {
		// A million samples alternating 5e9 and 5e9+2: mean 5e9+1, standard deviation exactly 1. Summing squares
		// in float64 would lose the spread to cancellation (the squares are 2.5e19, float64 keeps 16 digits).
		r := newRecorder(t, DefaultConfig())
		for i := range 1_000_000 {
			r.Record(5e9 + 2*int64(i%2))
		}
		if r.Mean() != 5e9+1 || r.StdDev() != 1 {
			t.Errorf("mean %v stddev %v, want 5000000001 and 1", r.Mean(), r.StdDev())
		}
	})
}

func TestRecordClamps(t *testing.T) {
	r := newRecorder(t, Config{Lowest: 100, Highest: 1_000_000, Digits: 3})
	for _, v := range []int64{-5, 0, 99, 100, 5000, 1_000_000, 1_000_001, math.MaxInt64} {
		r.Record(v)
	}
	below, above := r.Clamped()
	if below != 3 || above != 2 || r.Count() != 8 {
		t.Fatalf("clamped %d below, %d above, count %d; want 3, 2, 8", below, above, r.Count())
	}
	s := r.Summary()
	if s.Min != 100 || s.Max != 1_000_000 || s.ClampedBelow != 3 || s.ClampedAbove != 2 {
		t.Errorf("summary %+v", s)
	}
	if s.P99 != 1_000_000 || s.P5 != 100 {
		t.Errorf("clamped values missing from the percentiles: p5 %d p99 %d", s.P5, s.P99)
	}
}

func TestEmpty(t *testing.T) {
	r := newRecorder(t, DefaultConfig())
	if s := r.Summary(); s != (Summary{}) {
		t.Errorf("empty summary %+v", s)
	}
}

func TestMergeAndReset(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	all, a, b := newRecorder(t, DefaultConfig()), newRecorder(t, DefaultConfig()), newRecorder(t, DefaultConfig())
	for i := range 5000 {
		v := rng.Int64N(20e9) - 1e9 // some below and above the range
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if a.Summary() != all.Summary() {
		t.Errorf("merged %+v\nwhole  %+v", a.Summary(), all.Summary())
	}
	empty := newRecorder(t, DefaultConfig())
	if err := empty.Merge(all); err != nil || empty.Summary() != all.Summary() {
		t.Errorf("merge into empty: %v, %+v", err, empty.Summary())
	}
	other := newRecorder(t, Config{Lowest: 1, Highest: 1e9, Digits: 3})
	if err := a.Merge(other); !errors.Is(err, ErrConfigMismatch) {
		t.Errorf("merge across configs: %v", err)
	}
	a.Reset()
	if a.Summary() != (Summary{}) || a.Config() != DefaultConfig() {
		t.Errorf("after Reset: %+v", a.Summary())
	}
	a.Record(42)
	if s := a.Summary(); s.Count != 1 || s.Min != 42 || s.P99 != 42 {
		t.Errorf("after Reset and one record: %+v", s)
	}
}

func TestSummaryJSONNames(t *testing.T) {
	r := newRecorder(t, Config{Lowest: 1, Highest: 1000, Digits: 3})
	r.Record(2000)
	b, err := json.Marshal(r.Summary())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"count", "min_ns", "mean_ns", "stddev_ns", "p5_ns", "p50_ns", "p90_ns", "p95_ns", "p99_ns",
		"p99_9_ns", "p99_99_ns", "max_ns", "clamped_above"}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	if len(m) != len(want) {
		t.Errorf("JSON has %d keys, want %d: %s", len(m), len(want), b)
	}
}

func TestInterval(t *testing.T) {
	iv, err := NewInterval(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for v := int64(1); v <= 100; v++ {
		iv.Record(v)
	}
	first := iv.Rotate()
	if first.Count() != 100 || first.Max() != 100 || iv.Current().Count() != 0 || iv.Cumulative().Count() != 100 {
		t.Fatalf("after the first interval: closed %d, open %d, cumulative %d", first.Count(), iv.Current().Count(), iv.Cumulative().Count())
	}
	iv.Record(1000)
	if iv.Cumulative().Count() != 100 {
		t.Error("the open interval leaked into the cumulative recorder")
	}
	second := iv.Rotate()
	if second.Count() != 1 || second.Min() != 1000 {
		t.Errorf("second interval %+v", second.Summary())
	}
	if c := iv.Cumulative(); c.Count() != 101 || c.Min() != 1 || c.Max() != 1000 || c.Percentile(50) != 51 {
		t.Errorf("cumulative %+v", c.Summary())
	}
	if _, err := NewInterval(Config{}); err == nil {
		t.Error("NewInterval accepted an invalid Config")
	}
}

func TestRecordAllocs(t *testing.T) {
	r := newRecorder(t, DefaultConfig())
	iv, _ := NewInterval(DefaultConfig())
	x := NewXskRR(XskRRv2)
	var v int64
	for name, f := range map[string]func(){
		"Recorder.Record": func() { v += 7919; r.Record(v % 20e9) },
		"Interval.Record": func() { v += 7919; iv.Record(v % 20e9) },
		"Interval.Rotate": func() { iv.Record(v); iv.Rotate() },
		"XskRR.Record":    func() { v += 7919; x.Record(uint64(v % 3e6)) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}

func BenchmarkRecord(b *testing.B) {
	r := newRecorder(b, DefaultConfig())
	iv, _ := NewInterval(DefaultConfig())
	x := NewXskRR(XskRRv2)
	rng := rand.New(rand.NewPCG(1, 1))
	vals := make([]int64, 4096)
	for i := range vals {
		vals[i] = int64(math.Exp(9.5 + rng.NormFloat64()))
	}
	for _, c := range []struct {
		name   string
		record func(int64)
	}{
		{"Recorder", r.Record},
		{"Interval", iv.Record},
		{"XskRR", func(v int64) { x.Record(uint64(v)) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.record(vals[i&4095])
				i++
			}
		})
	}
}

func BenchmarkSummary(b *testing.B) {
	r := newRecorder(b, DefaultConfig())
	rng := rand.New(rand.NewPCG(1, 1))
	for range 100000 {
		r.Record(int64(math.Exp(9.5 + rng.NormFloat64())))
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Summary()
	}
}

func BenchmarkRotate(b *testing.B) {
	iv, _ := NewInterval(DefaultConfig())
	b.ReportAllocs()
	for b.Loop() {
		for v := int64(10000); v < 20000; v += 100 {
			iv.Record(v)
		}
		iv.Rotate()
	}
}
