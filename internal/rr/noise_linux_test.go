package rr

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/testenv"
)

// TestMeasureNoise spins on every CPU this process may use at once, as a benchmark's two ends do, and checks
// what comes back: one result per CPU in the order asked, a window that was spun, gaps that fit in it and in
// their decades, and the process as it was (no goroutine or descriptor left, GC back on).
func TestMeasureNoise(t *testing.T) {
	testenv.Exclusive(t)
	testenv.CheckLeaks(t)
	cpus := usableCPUs(t)
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
		// Each gap is recorded, merged with the one before it (two in a row are one stretch) or counted as left out.
		if rec := uint64(len(n.spans)); rec+n.unrecorded > n.Gaps.Count || (n.Gaps.Count > 0 && rec+n.unrecorded == 0) {
			t.Errorf("CPU %d: %d stretches recorded and %d gaps not, of %d gaps", n.CPU, rec, n.unrecorded, n.Gaps.Count)
		}
		// Together lies within every CPU's own stretches away (a stretch is one gap or several in a row).
		var longest int64
		for _, sp := range n.spans {
			longest = max(longest, sp.to-sp.from)
		}
		if len(res) > 1 && (r.Together.Total > n.Gaps.Total || int64(r.Together.Longest) > longest) {
			t.Errorf("together %+v beyond CPU %d's gaps %+v (longest stretch %d ns)", r.Together, n.CPU, n.Gaps, longest)
		}
	}
	if len(res) == 1 && r.Together != (NoiseStretches{}) {
		t.Errorf("one CPU away together with itself: %+v", r.Together)
	}
	if !r.Attributed {
		t.Error("the counters were not read around the run")
	}
	if now := debug.SetGCPercent(gc); now != gc {
		t.Errorf("GC percent %d after the measurement, want %d back", now, gc)
	}
}

// TestMeasureNoiseRefuses: a CPU the process may not run on is named before anything spins; a context already
// cancelled stops the threads at once and says so, with the (empty) windows it has.
func TestMeasureNoiseRefuses(t *testing.T) {
	testenv.Exclusive(t)
	testenv.CheckLeaks(t)
	cpu := usableCPUs(t)[0]
	o := NoiseOptions{CPUs: []int{cpu, 4095}, Duration: time.Second, Min: 10 * time.Microsecond}
	_, err := MeasureNoise(context.Background(), o)
	var fe *kernel.FieldError
	if !errors.As(err, &fe) || fe.Field != "cpus" {
		t.Fatalf("CPU 4095: %v, want a field error on cpus", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o.CPUs = []int{cpu}
	r, err := MeasureNoise(ctx, o)
	if res := r.CPUs; !errors.Is(err, context.Canceled) || len(res) != 1 || res[0].CPU != cpu || res[0].Reads != 1 {
		t.Fatalf("cancelled: %+v, %v", res, err)
	}
}

// TestSchedReader: the readings around a stretch in which the locked thread slept once count its new timeslice,
// and readings that do not parse are refused with what was read; stillOn holds for a pinned thread and fails
// for one that may run on two CPUs.
func TestSchedReader(t *testing.T) {
	usable := usableCPUs(t)
	done := make(chan error)
	go func() {
		cpu := usable[0]
		if _, err := lockThread("noise-test", cpu, 0); err != nil {
			done <- err
			return
		}
		r, err := openSchedReader()
		if err != nil {
			done <- err
			return
		}
		defer r.close()
		r.readBefore()
		// Not synchronisation: the sleep is the voluntary switch under test (the thread leaves the CPU, and its
		// next timeslice begins when it wakes), whatever its length.
		time.Sleep(time.Millisecond)
		r.readAfter()
		_, slices, err := r.delta()
		if err == nil && slices == 0 {
			err = fmt.Errorf("blocking once gave no new timeslice: %q, then %q", r.before[:r.nBefore], r.after[:r.nAfter])
		}
		if err == nil {
			err = stillOn(cpu)
		}
		if err == nil && len(usable) > 1 {
			if err = stillOn(usable[1]); err == nil {
				err = errors.New("stillOn holds for a CPU the thread is not pinned to")
			} else {
				err = nil
			}
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	bad := schedReader{nBefore: 3, nAfter: 2}
	copy(bad.before[:], "1 2")
	if _, _, err := bad.delta(); err == nil || !strings.Contains(err.Error(), `"1 2"`) {
		t.Errorf("a truncated reading: %v", err)
	}
}

// usableCPUs returns the CPUs this process may run on, in order.
func usableCPUs(t *testing.T) []int {
	t.Helper()
	usable, err := UsableCPUs()
	if err != nil {
		t.Fatal(err)
	}
	return usable.List()
}
