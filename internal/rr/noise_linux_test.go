package rr

import (
	"context"
	"errors"
	"runtime/debug"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/testenv"
)

// TestMeasureNoise spins on every CPU this process may use at once, as a benchmark's two ends do, and checks
// what comes back: one result per CPU in the order asked, a window that was spun, gaps that fit in it and in
// their decades, and the process as it was (no goroutine or descriptor left, GC back on).
func TestMeasureNoise(t *testing.T) {
	testenv.CheckLeaks(t)
	usable, err := UsableCPUs()
	if err != nil {
		t.Fatal(err)
	}
	cpus := usable.List()
	for i, j := 0, len(cpus)-1; i < j; i, j = i+1, j-1 { // the order asked, not the CPUs' order, is kept
		cpus[i], cpus[j] = cpus[j], cpus[i]
	}
	gc := debug.SetGCPercent(100)
	debug.SetGCPercent(gc)
	const d = 200 * time.Millisecond
	r, err := MeasureNoise(context.Background(), NoiseOptions{CPUs: cpus, Duration: d, Min: 10 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	res := r.CPUs
	if len(res) != len(cpus) {
		t.Fatalf("%d results for %d CPUs", len(res), len(cpus))
	}
	for i, n := range res {
		if n.CPU != cpus[i] {
			t.Errorf("result %d is CPU %d, want %d", i, n.CPU, cpus[i])
		}
		if n.Reads < 2 || n.Window <= 0 || n.Window > d+time.Minute {
			t.Errorf("CPU %d: %d reads over %v", n.CPU, n.Reads, n.Window)
		}
		var sum uint64
		for _, c := range n.ByDecade {
			sum += c
		}
		if n.Gaps.Min != 10*time.Microsecond || sum != n.Gaps.Count || n.Gaps.Total > n.Window ||
			n.Gaps.Longest > n.Gaps.Total {
			t.Errorf("CPU %d: gaps %+v by decade %v over %v", n.CPU, n.Gaps, n.ByDecade, n.Window)
		}
		if uint64(len(n.spans))+n.unrecorded != n.Gaps.Count {
			t.Errorf("CPU %d: %d gaps recorded and %d not, of %d", n.CPU, len(n.spans), n.unrecorded, n.Gaps.Count)
		}
		// Together lies within every CPU's own gaps.
		if len(res) > 1 && (r.Together.Total > n.Gaps.Total || r.Together.Longest > n.Gaps.Longest) {
			t.Errorf("together %+v beyond CPU %d's gaps %+v", r.Together, n.CPU, n.Gaps)
		}
	}
	if len(res) == 1 && r.Together != (NoiseStretches{}) {
		t.Errorf("one CPU away together with itself: %+v", r.Together)
	}
	if now := debug.SetGCPercent(gc); now != gc {
		t.Errorf("GC percent %d after the measurement, want %d back", now, gc)
	}
}

// TestMeasureNoiseRefuses: a CPU the process may not run on is named before anything spins; a context already
// cancelled stops the threads at once and says so, with the (empty) windows it has.
func TestMeasureNoiseRefuses(t *testing.T) {
	testenv.CheckLeaks(t)
	o := NoiseOptions{CPUs: []int{0, 4095}, Duration: time.Second, Min: 10 * time.Microsecond}
	_, err := MeasureNoise(context.Background(), o)
	var fe *kernel.FieldError
	if !errors.As(err, &fe) || fe.Field != "cpus" {
		t.Fatalf("CPU 4095: %v, want a field error on cpus", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o.CPUs = []int{0}
	r, err := MeasureNoise(ctx, o)
	if res := r.CPUs; !errors.Is(err, context.Canceled) || len(res) != 1 || res[0].CPU != 0 || res[0].Window >= o.Duration {
		t.Fatalf("cancelled: %+v, %v", res, err)
	}
}
