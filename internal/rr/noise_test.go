package rr

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/testenv"
)

// TestNoiseOptionsValidate: each bad field is named, and every problem is reported at once.
func TestNoiseOptionsValidate(t *testing.T) {
	ok := NoiseOptions{CPUs: []int{0, 1}, Duration: time.Second, Min: 10 * time.Microsecond}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	for _, c := range []struct {
		name   string
		edit   func(*NoiseOptions)
		fields []string
	}{
		{"no CPU", func(o *NoiseOptions) { o.CPUs = nil }, []string{"cpus"}},
		{"negative CPU", func(o *NoiseOptions) { o.CPUs = []int{-1} }, []string{"cpus"}},
		{"CPU twice", func(o *NoiseOptions) { o.CPUs = []int{1, 0, 1} }, []string{"cpus"}},
		{"too short", func(o *NoiseOptions) { o.Duration = NoiseMinDuration - 1 }, []string{"duration"}},
		{"too long", func(o *NoiseOptions) { o.Duration = NoiseMaxDuration + 1 }, []string{"duration"}},
		{"gap floor too low", func(o *NoiseOptions) { o.Min = NoiseMinGap - 1 }, []string{"min"}},
		{"gap floor too high", func(o *NoiseOptions) { o.Min = NoiseMaxGap + 1 }, []string{"min"}},
		{"all three", func(o *NoiseOptions) { *o = NoiseOptions{} }, []string{"cpus", "duration", "min"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := ok
			o.CPUs = append([]int(nil), ok.CPUs...)
			c.edit(&o)
			err := o.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *kernel.FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("%v is not a field error", e)
				}
				got = append(got, fe.Field)
			}
			if strings.Join(got, ",") != strings.Join(c.fields, ",") {
				t.Errorf("fields %v, want %v (%v)", got, c.fields, err)
			}
		})
	}
}

// TestCPUNoiseAdd: a gap lands in its decade, its edges included in the decade above, and in the totals.
func TestCPUNoiseAdd(t *testing.T) {
	var n CPUNoise
	us := int64(time.Microsecond)
	var total time.Duration
	for _, d := range []int64{5 * us, 10*us - 1, 10 * us, 99 * us, 100 * us, 999 * us, 1000 * us, 10000 * us, 1e9} {
		n.add(100, 100+d)
		total += time.Duration(d)
	}
	if want := [5]uint64{2, 2, 2, 1, 2}; n.ByDecade != want {
		t.Errorf("by decade %v, want %v", n.ByDecade, want)
	}
	if n.Gaps.Count != 9 || n.Gaps.Longest != time.Second || n.Gaps.Total != total {
		t.Errorf("gaps %+v", n.Gaps)
	}
}

// TestCPUNoiseRecordsSpans: gaps are recorded while there is room, counted beyond it; two in a row make one
// stretch (while each still counts as a gap).
func TestCPUNoiseRecordsSpans(t *testing.T) {
	n := CPUNoise{spans: make([]span, 0, 2)}
	n.add(10, 20)
	n.add(30, 45)
	n.add(45, 47) // right after the last: the same stretch
	n.add(50, 60)
	if len(n.spans) != 2 || n.spans[1] != (span{30, 47}) || n.unrecorded != 1 || n.Gaps.Count != 4 ||
		n.Gaps.Longest != 15 {
		t.Errorf("spans %v, unrecorded %d, gaps %+v", n.spans, n.unrecorded, n.Gaps)
	}
	if got := spanRoom(3 * time.Second); got != 12000 {
		t.Errorf("room for 3 s: %d", got)
	}
	if spanRoom(time.Millisecond) != 4096 || spanRoom(time.Hour) != 1<<20 {
		t.Error("the room is not bounded")
	}
}

// TestIntersect: the stretches in a gap of both lists, whatever their overlaps' shapes.
func TestIntersect(t *testing.T) {
	a := []span{{0, 10}, {20, 30}, {40, 50}, {60, 100}}
	b := []span{{5, 25}, {30, 40}, {45, 46}, {47, 48}, {90, 200}}
	want := []span{{5, 10}, {20, 25}, {45, 46}, {47, 48}, {90, 100}}
	got := intersect(a, b)
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if len(intersect(a, nil)) != 0 || len(intersect(nil, b)) != 0 {
		t.Error("an empty list intersects")
	}
}

// TestCPUNoiseSource: the largest of steal, preemption and the rest names the source; the rest is the
// hypervisor's when most gaps had no interrupt or preemption to cause them.
func TestCPUNoiseSource(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name                  string
		total, waited, steal  time.Duration
		count, irqs, preempts uint64
		want                  NoiseSource
		rest                  time.Duration
		unexplained           uint64
	}{
		{"no gap", 0, 0, 0, 0, 10, 0, NoiseNone, 0, 0},
		{"steal", 30 * ms, 5 * ms, 20 * ms, 100, 300, 2, NoiseHypervisor, 5 * ms, 0},
		{"tasks", 30 * ms, 20 * ms, 0, 100, 300, 40, NoiseTasks, 10 * ms, 0},
		{"interrupts", 30 * ms, 1 * ms, 10 * ms, 400, 300, 5, NoiseInterrupts, 19 * ms, 95},
		{"unreported", 30 * ms, 1 * ms, 10 * ms, 1000, 300, 5, NoiseUnreported, 19 * ms, 695},
		{"accounted beyond the gaps", 30 * ms, 25 * ms, 20 * ms, 10, 0, 10, NoiseTasks, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := CPUNoise{Window: time.Second, Gaps: LoopGaps{Count: c.count, Total: c.total}, Waited: c.waited,
				Steal: c.steal, Interrupts: c.irqs, Preempted: c.preempts}
			if got := n.Source(); got != c.want {
				t.Errorf("source %q, want %q", got, c.want)
			}
			if got := n.Unattributed(); got != c.rest {
				t.Errorf("unattributed %v, want %v", got, c.rest)
			}
			if got := n.Unexplained(); got != c.unexplained {
				t.Errorf("unexplained %d, want %d", got, c.unexplained)
			}
			if got, want := n.Away(), float64(c.total)/float64(time.Second); got != want {
				t.Errorf("away %v, want %v", got, want)
			}
		})
	}
	if (CPUNoise{Gaps: LoopGaps{Total: 1}}).Away() != 0 {
		t.Error("a result without a window says it was away")
	}
}

// TestNoiseSpin: the loop reads the clock until the end, twice at least, every gap it counts is within the
// window and in a decade, and a stop flag set before it begins ends it at once.
func TestNoiseSpin(t *testing.T) {
	testenv.Exclusive(t)
	n := CPUNoise{Gaps: LoopGaps{Min: time.Microsecond}, spans: prefaulted(8)}
	var stop atomic.Bool
	n.spin(&stop, nanotime()+int64(20*time.Millisecond), nil)
	if n.Reads < 2 || n.Window <= 0 {
		t.Errorf("%d reads over %v", n.Reads, n.Window)
	}
	var sum uint64
	for _, c := range n.ByDecade {
		sum += c
	}
	if sum != n.Gaps.Count || n.Gaps.Total > n.Window || n.Gaps.Longest > n.Gaps.Total {
		t.Errorf("gaps %+v by decade %v over %v", n.Gaps, n.ByDecade, n.Window)
	}
	late := CPUNoise{Gaps: LoopGaps{Min: time.Microsecond}}
	late.spin(&stop, 0, nil) // its end long past
	if late.Reads != 2 {
		t.Errorf("a loop started after its end read the clock %d times, want 2", late.Reads)
	}
	stop.Store(true)
	s := CPUNoise{Gaps: LoopGaps{Min: time.Microsecond}}
	s.spin(&stop, nanotime()+int64(time.Hour), nil)
	if s.Reads != 1 || s.Window != 0 {
		t.Errorf("stopped before it began: %d reads over %v", s.Reads, s.Window)
	}
}
