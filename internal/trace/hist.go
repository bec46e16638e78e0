package trace

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Buckets is the number of buckets of a Hist: bucket 0 holds the value 0, bucket i (1 ≤ i < Buckets-1) the
// values in [2^(i-1), 2^i), and the last bucket everything from 2^(Buckets-2) up (for nanoseconds, 2^40 ns is
// about 18 minutes). These are bpftrace's hist() buckets, so the two print alike.
const Buckets = 42

// Hist is a power-of-two histogram, as the tracers keep it in the kernel: counting a value is finding its highest
// set bit and adding one, cheap enough for an eBPF program run millions of times a second.
type Hist struct {
	Counts [Buckets]uint64
}

// BucketOf returns the bucket of v. The tracers' eBPF programs compute the same function (bucketInsns).
func BucketOf(v uint64) int {
	return min(bits.Len64(v), Buckets-1)
}

// BucketBounds returns the values bucket i holds, [lo, hi); hi is math.MaxUint64 for the last bucket, whose
// values have no upper bound.
func BucketBounds(i int) (lo, hi uint64) {
	switch {
	case i <= 0:
		return 0, 1
	case i >= Buckets-1:
		return 1 << (Buckets - 2), math.MaxUint64
	}
	return 1 << (i - 1), 1 << i
}

// Record counts v.
func (h *Hist) Record(v uint64) { h.Counts[BucketOf(v)]++ }

// Add adds o's counts to h.
func (h *Hist) Add(o *Hist) {
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
}

// Count returns the number of values counted.
func (h *Hist) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile returns an upper bound of the q-quantile (0 ≤ q ≤ 1): the top of the bucket holding the value of rank
// ceil(q·N), the largest value that bucket can hold; 0 for an empty histogram. For the last bucket, which has no
// top, it returns that bucket's lower bound.
func (h *Hist) Quantile(q float64) uint64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			lo, hi := BucketBounds(i)
			if hi == math.MaxUint64 {
				return lo
			}
			return hi - 1
		}
	}
	return 0
}

// bucketJSON is one non-empty bucket in JSON: the values it holds, [lo, hi), and how many were counted. hi is
// omitted for the last bucket, which has no upper bound.
type bucketJSON struct {
	Lo    uint64  `json:"lo"`
	Hi    *uint64 `json:"hi,omitempty"`
	Count uint64  `json:"count"`
}

// MarshalJSON writes the non-empty buckets, lowest first.
func (h Hist) MarshalJSON() ([]byte, error) {
	out := []bucketJSON{}
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		lo, hi := BucketBounds(i)
		b := bucketJSON{Lo: lo, Count: c}
		if hi != math.MaxUint64 {
			b.Hi = &hi
		}
		out = append(out, b)
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes; a bucket whose bounds are not one of Hist's is an error.
func (h *Hist) UnmarshalJSON(b []byte) error {
	var in []bucketJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*h = Hist{}
	for _, bk := range in {
		i := BucketOf(bk.Lo)
		lo, hi := BucketBounds(i)
		if lo != bk.Lo || (bk.Hi == nil) != (hi == math.MaxUint64) || (bk.Hi != nil && *bk.Hi != hi) {
			return fmt.Errorf("histogram bucket [%d, %s) is not a power-of-two bucket", bk.Lo, hiText(bk.Hi))
		}
		h.Counts[i] += bk.Count
	}
	return nil
}

func hiText(hi *uint64) string {
	if hi == nil {
		return "..."
	}
	return strconv.FormatUint(*hi, 10)
}

// barWidth is the width of bpftrace's histogram bars.
const barWidth = 52

// WriteBpftrace prints h as bpftrace prints a hist() map: the line "@name:", one line per bucket from the first
// to the last non-empty one with its range, count and a bar scaled to the largest count, then an empty line.
// An empty histogram prints the name line and the empty line only, as bpftrace prints nothing for a map that
// was never written.
func (h *Hist) WriteBpftrace(w io.Writer, name string) error {
	var b strings.Builder
	b.WriteString(name + ":\n")
	first, last := -1, -1
	var peak uint64
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
		peak = max(peak, c)
	}
	for i := first; i >= 0 && i <= last; i++ {
		c := h.Counts[i]
		bar := int(float64(c) / float64(peak) * barWidth)
		fmt.Fprintf(&b, "%-16s%8d |%-*s|\n", bucketLabel(i), c, barWidth, strings.Repeat("@", bar))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// bucketLabel is bpftrace's label of bucket i: [0], [1], [2, 4), ..., [1K, 2K), and [2^n, ...) for the last.
func bucketLabel(i int) string {
	lo, hi := BucketBounds(i)
	switch {
	case hi-lo == 1:
		return "[" + sizeLabel(lo) + "]"
	case hi == math.MaxUint64:
		return "[" + sizeLabel(lo) + ", ...)"
	}
	return "[" + sizeLabel(lo) + ", " + sizeLabel(hi) + ")"
}

// sizeLabel prints a power of two as bpftrace does: in the largest power-of-1024 unit that divides it.
func sizeLabel(v uint64) string {
	units := []string{"", "K", "M", "G", "T", "P", "E"}
	u := 0
	for v >= 1024 && v%1024 == 0 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return strconv.FormatUint(v, 10) + units[u]
}
