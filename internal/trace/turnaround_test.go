package trace

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// Percentile gives the upper edge of the bucket where the p-th percentile falls, and says when it lies beyond
// the histogram.
func TestTurnaroundPercentile(t *testing.T) {
	var r TurnaroundTrace
	if r.Percentile(50) != -1 {
		t.Error("a percentile of nothing")
	}
	r.Buckets[17], r.Buckets[20], r.Buckets[250], r.Over = 90, 8, 1, 1 // 1.7 µs, 2.0 µs, 25 µs, over
	r.Count = 100
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{1, 1800 * time.Nanosecond}, {50, 1800 * time.Nanosecond}, {90, 1800 * time.Nanosecond},
		{90.5, 2100 * time.Nanosecond}, {98, 2100 * time.Nanosecond}, {99, 25100 * time.Nanosecond}, {99.5, -1},
		{100, -1}, {0, -1}, {101, -1}} {
		if got := r.Percentile(c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	r.fillPercentiles()
	var b strings.Builder
	if err := r.Format(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"100 turnarounds", "p50 ≤ 1.8µs", "p99 ≤ 25.1µs", "p99.9 ≥ 100µs", "(1 of 100µs or more)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestTurnaroundTargetCheck(t *testing.T) {
	for _, c := range []struct {
		target TurnaroundTarget
		want   string
	}{
		{TurnaroundTarget{PID: 0, Dev: "veth0"}, "0 is not a process id"},
		{TurnaroundTarget{PID: 1, Dev: "veth0", Thread: "a-thread-name-too-long"}, "longer than the kernel keeps"},
		{TurnaroundTarget{PID: 1}, "dev is empty"},
	} {
		if err := c.target.check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error saying %q", c.target, err, c.want)
		}
	}
	if err := (TurnaroundTarget{PID: 1, Dev: "veth0", Thread: "rr-server"}).check(); err != nil {
		t.Error(err)
	}
}

func FuzzDecodeTurnaround(f *testing.F) {
	var r TurnaroundTrace
	r.Count, r.Total, r.Over, r.Buckets[19], r.Buckets[999] = 1001, 2_500_000, 1, 999, 1
	v := encodeTurnaround(&r)
	f.Add(v)
	f.Add(v[:40])
	f.Fuzz(func(t *testing.T, v []byte) {
		var got TurnaroundTrace
		err := decodeTurnaround(v, &got)
		if (err == nil) != (len(v) == turnaroundValSz) {
			t.Fatalf("decode of %d bytes: error %v", len(v), err)
		}
		if err != nil {
			return
		}
		var again TurnaroundTrace
		if err := decodeTurnaround(encodeTurnaround(&got), &again); err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("decode(encode(%+v)) differs: %v", got.Count, err)
		}
		got.Percentile(99.9) // never panics, whatever the counts
	})
}
