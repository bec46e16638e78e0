package trace

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestBucketOf(t *testing.T) {
	values := []uint64{0, 1, 2, 3, 4, 7, 8, 63, 64, 65, 127, 128, 1000, 1 << 20, 1<<39 - 1, 1 << 39, 1<<40 - 1,
		1 << 40, 1 << 41, 1<<63 + 5, math.MaxUint64}
	prev := 0
	for _, v := range values {
		b := BucketOf(v)
		lo, hi := BucketBounds(b)
		if v < lo || (hi != math.MaxUint64 && v >= hi) {
			t.Errorf("BucketOf(%d) = %d, whose values are [%d, %d)", v, b, lo, hi)
		}
		if b < prev || b < 0 || b >= Buckets {
			t.Errorf("BucketOf(%d) = %d after %d: buckets must grow with the value and stay in range", v, b, prev)
		}
		prev = b
	}
	if BucketOf(0) != 0 || BucketOf(1) != 1 || BucketOf(2) != 2 || BucketOf(3) != 2 || BucketOf(4) != 3 {
		t.Error("the first buckets are not bpftrace's [0], [1], [2, 4), [4, 8)")
	}
	for i := range Buckets - 1 {
		_, hi := BucketBounds(i)
		if lo, _ := BucketBounds(i + 1); lo != hi {
			t.Errorf("bucket %d ends at %d but bucket %d starts at %d", i, hi, i+1, lo)
		}
	}
}

func TestHistJSON(t *testing.T) {
	var h Hist
	for _, v := range []uint64{0, 0, 1, 5, 6, 7, 300, 1 << 45} {
		h.Record(v)
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	const want = `[{"lo":0,"hi":1,"count":2},{"lo":1,"hi":2,"count":1},{"lo":4,"hi":8,"count":3},` +
		`{"lo":256,"hi":512,"count":1},{"lo":1099511627776,"count":1}]`
	if string(b) != want {
		t.Fatalf("JSON %s\nwant %s", b, want)
	}
	var back Hist
	if err := json.Unmarshal(b, &back); err != nil || back != h {
		t.Fatalf("round trip: %v, %v; want %v", back, err, h)
	}
	if err := json.Unmarshal([]byte(`[{"lo":3,"hi":4,"count":1}]`), &back); err == nil {
		t.Error("a bucket [3, 4) was accepted")
	}
	if b, _ := json.Marshal(Hist{}); string(b) != "[]" {
		t.Errorf("an empty histogram is %s, want []", b)
	}
}

func TestQuantile(t *testing.T) {
	var h Hist
	if h.Quantile(0.5) != 0 {
		t.Error("quantile of an empty histogram is not 0")
	}
	for range 90 {
		h.Record(3) // [2, 4)
	}
	for range 10 {
		h.Record(100) // [64, 128)
	}
	if q := h.Quantile(0.5); q != 3 {
		t.Errorf("p50 = %d, want 3 (top of [2, 4))", q)
	}
	if q := h.Quantile(0.9); q != 3 {
		t.Errorf("p90 = %d, want 3: the 90th of 100 values is in [2, 4)", q)
	}
	if q := h.Quantile(0.91); q != 127 {
		t.Errorf("p91 = %d, want 127", q)
	}
	if q := h.Quantile(0); q != 3 {
		t.Errorf("p0 = %d, want the first bucket's top, 3", q)
	}
}

// TestBpftraceLayoutOfTheSeed: the seed's histogram of xsk_recvmsg time, put into a Hist, prints as bpftrace
// printed it in the cover letter: the same rows, counts and bars (the letter's mail collapsed the padding, which
// the golden file keeps as bpftrace writes it).
func TestBpftraceLayoutOfTheSeed(t *testing.T) {
	var h Hist
	for lo, c := range map[uint64]uint64{128: 24073, 256: 55633, 512: 20974, 1024: 34234, 2048: 3266, 4096: 19} {
		h.Counts[BucketOf(lo)] = c
	}
	var b strings.Builder
	if err := h.WriteBpftrace(&b, "@xsk_recvfrom_hist"); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/seed_hist.txt")
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	// The bars of the cover letter: 22, 52, 19, 31, 3 and 0 characters.
	var bars []int
	for _, line := range strings.Split(b.String(), "\n")[1:] {
		if _, bar, ok := strings.Cut(line, "|"); ok {
			bars = append(bars, strings.Count(bar, "@"))
		}
	}
	if want := []int{22, 52, 19, 31, 3, 0}; !slices.Equal(bars, want) {
		t.Errorf("bars %v, the seed has %v", bars, want)
	}
	var empty strings.Builder
	if err := (&Hist{}).WriteBpftrace(&empty, "@x"); err != nil || empty.String() != "@x:\n\n" {
		t.Errorf("an empty histogram prints %q", empty.String())
	}
}

func TestBucketLabels(t *testing.T) {
	for i, want := range map[int]string{0: "[0]", 1: "[1]", 2: "[2, 4)", 10: "[512, 1K)", 11: "[1K, 2K)",
		21: "[1M, 2M)", 31: "[1G, 2G)", Buckets - 1: "[1T, ...)"} {
		if got := bucketLabel(i); got != want {
			t.Errorf("bucket %d label %q, want %q", i, got, want)
		}
	}
}
