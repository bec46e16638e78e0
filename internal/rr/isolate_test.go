package rr

import (
	"testing"

	"github.com/napilab/napilab/internal/sysknob"
)

// fakeThreads is a process's threads and their masks, as the kernel would keep them.
type fakeThreads struct {
	cpus  sysknob.CPUSet
	masks map[int]sysknob.CPUSet
}

func (f *fakeThreads) usable() (sysknob.CPUSet, error) { return f.cpus, nil }
func (f *fakeThreads) threads() []int {
	var out []int
	for tid := range f.masks {
		out = append(out, tid)
	}
	return out
}
func (f *fakeThreads) affinity(tid int) (sysknob.CPUSet, error) { return f.masks[tid], nil }
func (f *fakeThreads) setAffinity(tid int, c sysknob.CPUSet) error {
	f.masks[tid] = c
	return nil
}

func (f *fakeThreads) want(t *testing.T, step string, masks map[int]sysknob.CPUSet) {
	t.Helper()
	for tid, m := range masks {
		if !f.masks[tid].Equal(m) {
			t.Fatalf("%s: thread %d has CPUs %s, want %s", step, tid, f.masks[tid], m)
		}
	}
}

// TestSpinRegistry: while loops spin, the process's other threads go to the usable CPUs no loop is pinned to
// when at least two are left and they outnumber other processes' spinners; the spinners keep their pins, a
// thread created meanwhile is placed too, and the last loop's end puts every mask back. With too few CPUs left
// nothing moves, or what moved goes back.
func TestSpinRegistry(t *testing.T) {
	all, pin0, pin1 := sysknob.CPUs(0, 1, 2), sysknob.CPUs(0), sysknob.CPUs(1)
	f := &fakeThreads{cpus: all, masks: map[int]sysknob.CPUSet{1: all, 2: all, 3: sysknob.CPUs(0, 2), 10: pin0,
		11: pin1}}
	r := spinRegistry{os: f}
	done10 := r.spin(10, 0, 0)
	f.want(t, "one loop on CPU 0", map[int]sysknob.CPUSet{1: sysknob.CPUs(1, 2), 2: sysknob.CPUs(1, 2),
		3: sysknob.CPUs(1, 2), 10: pin0, 11: sysknob.CPUs(1, 2)})
	f.masks[11] = pin1 // the second loop pins itself, then registers
	f.masks[12] = sysknob.CPUs(1, 2)
	done11 := r.spin(11, 1, 0)
	f.want(t, "loops on CPUs 0 and 1: one CPU left", map[int]sysknob.CPUSet{1: all, 2: all, 3: sysknob.CPUs(0, 2),
		12: all, 10: pin0, 11: pin1})
	done11()
	f.want(t, "the second loop ended", map[int]sysknob.CPUSet{1: sysknob.CPUs(1, 2), 12: sysknob.CPUs(1, 2),
		10: pin0})
	f.masks[13] = sysknob.CPUs(1, 2)
	done10()
	f.want(t, "every loop ended", map[int]sysknob.CPUSet{1: all, 2: all, 3: sysknob.CPUs(0, 2), 12: all, 13: all})

	four := sysknob.CPUs(0, 1, 2, 3)
	g := &fakeThreads{cpus: four, masks: map[int]sysknob.CPUSet{1: four, 10: pin0}}
	r = spinRegistry{os: g}
	d := r.spin(10, 0, 2)
	g.want(t, "four CPUs, one loop, two elsewhere", map[int]sysknob.CPUSet{1: sysknob.CPUs(1, 2, 3), 10: pin0})
	d()
	d = r.spin(10, 0, 3)
	g.want(t, "four CPUs, one loop, three elsewhere", map[int]sysknob.CPUSet{1: four, 10: pin0})
	d()

	h := &fakeThreads{cpus: sysknob.CPUs(0, 1), masks: map[int]sysknob.CPUSet{1: sysknob.CPUs(0, 1), 10: pin0}}
	r = spinRegistry{os: h}
	r.spin(10, 0, 0)()
	h.want(t, "two CPUs, one loop", map[int]sysknob.CPUSet{1: sysknob.CPUs(0, 1), 10: pin0})
	if r.spin(5, -1, 0)(); r.loops != nil {
		t.Fatal("an unpinned loop was registered")
	}
}
