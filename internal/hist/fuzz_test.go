package hist

import (
	"encoding/binary"
	"slices"
	"testing"
)

// values decodes 8-byte chunks into latencies spread over [-1 s, 29 s): below, inside and above a 1 ns..10 s range.
func values(b []byte) []int64 {
	var vs []int64
	for ; len(b) >= 8; b = b[8:] {
		vs = append(vs, int64(binary.LittleEndian.Uint64(b)%30e9)-1e9)
	}
	return vs
}

func seedBytes(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

func FuzzRecordMerge(f *testing.F) {
	f.Add(seedBytes(1e9+13000, 1e9+14000, 1e9+14000, 1e9+881340), uint8(2))
	f.Add(seedBytes(0, 1, 2, 29e9, 11e9+1, 1e9), uint8(0))
	f.Add(seedBytes(1e9+1, 1e9+1, 1e9+1), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, split uint8) {
		vs := values(b)
		cfg := Config{Lowest: 1, Highest: 10e9, Digits: 2} // DefaultConfig's range in 8x fewer buckets: faster fuzzing
		whole, left, right := newRecorder(t, cfg), newRecorder(t, cfg), newRecorder(t, cfg)
		var below, above uint64
		for i, v := range vs {
			whole.Record(v)
			if i < int(split) {
				left.Record(v)
			} else {
				right.Record(v)
			}
			below += boolToUint(v < cfg.Lowest)
			above += boolToUint(v > cfg.Highest)
		}
		if err := left.Merge(right); err != nil {
			t.Fatal(err)
		}
		s := whole.Summary()
		if left.Summary() != s {
			t.Fatalf("merged %+v\nwhole  %+v", left.Summary(), s)
		}
		if s.Count != uint64(len(vs)) || s.ClampedBelow != below || s.ClampedAbove != above {
			t.Fatalf("count %d clamped %d/%d, want %d, %d/%d", s.Count, s.ClampedBelow, s.ClampedAbove, len(vs), below, above)
		}
		if len(vs) == 0 {
			return
		}
		order := []int64{s.Min, s.P5, s.P50, s.P90, s.P95, s.P99, s.P999, s.P9999, s.Max}
		if !slices.IsSorted(order) {
			t.Fatalf("percentiles out of order: %v", order)
		}
		if float64(s.Min) > s.Mean || s.Mean > float64(s.Max) || s.StdDev < 0 {
			t.Fatalf("mean %v outside [%d, %d] or stddev %v", s.Mean, s.Min, s.Max, s.StdDev)
		}
	})
}

func boolToUint(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// refXskRR is the "pN" algorithm restated over a sorted list of bucket numbers instead of a bucket array: take
// the first floor(len*p/100) entries, update the truncated mean once per distinct bucket, then drop the entries
// of the boundary bucket that were not taken.
func refXskRR(sorted []uint64) [4]XskRRPercentile {
	var out [4]XskRRPercentile
	for k, p := range XskRRPercents {
		target := uint64(len(sorted)) * p / 100
		taken := sorted[:target]
		var count, mean uint64
		for i := 0; i < len(taken); {
			j := i
			for j < len(taken) && taken[j] == taken[i] {
				j++
			}
			c := uint64(j - i)
			mean = (c*taken[i] + count*mean) / (count + c)
			count += c
			i = j
		}
		out[k] = XskRRPercentile{P: p, Count: count, Value: mean * XskRRBucketNs}
		if target > 0 {
			boundary := taken[target-1]
			rest := sorted[target:]
			n := 0
			for n < len(rest) && rest[n] == boundary {
				n++
			}
			sorted = append(slices.Clip(taken), rest[n:]...)
		}
	}
	return out
}

func FuzzXskRR(f *testing.F) {
	f.Add(seedBytes(13000, 13000, 14000, 14000, 14000))
	f.Add(seedBytes(1_999_899, 1_999_900, 5e9, 100, 0, 99))
	f.Add(seedBytes(13050, 13050, 13050, 13050, 13050, 13050, 13050, 13050, 13050, 13050))
	f.Fuzz(func(t *testing.T, b []byte) {
		x := NewXskRR(XskRRv2)
		var buckets []uint64
		for ; len(b) >= 8; b = b[8:] {
			// Mostly a few microseconds, sometimes into the overflow bucket; small byte values repeat buckets.
			rtt := binary.LittleEndian.Uint64(b) % 2_500_000
			x.Record(rtt)
			buckets = append(buckets, min(rtt/XskRRBucketNs, XskRRBuckets-1))
		}
		slices.Sort(buckets)
		got, want := x.Percentiles(), refXskRR(buckets)
		if got != want {
			t.Fatalf("bucket walk %v\nlist walk   %v", got, want)
		}
		for _, pc := range got {
			if pc.Value%XskRRBucketNs != 0 || (pc.Count == 0 && pc.Value != 0) {
				t.Fatalf("column %+v", pc)
			}
			if pc.Count > 0 && (pc.Value < buckets[0]*XskRRBucketNs || pc.Value > buckets[len(buckets)-1]*XskRRBucketNs) {
				t.Fatalf("column %+v outside the recorded buckets %d..%d", pc, buckets[0], buckets[len(buckets)-1])
			}
		}
	})
}
