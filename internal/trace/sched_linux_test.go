package trace

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/sysknob"
	"github.com/napilab/napilab/internal/testenv"
)

// procSwitches reads a thread's context switch counts from /proc, as the kernel keeps them (nvcsw, nivcsw).
func procSwitches(t *testing.T, tid int) (voluntary, involuntary uint64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", tid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		switch k {
		case "voluntary_ctxt_switches":
			voluntary = n
		case "nonvoluntary_ctxt_switches":
			involuntary = n
		}
	}
	return voluntary, involuntary
}

// threadState is the state letter of a thread of this process (R running, S sleeping, ...).
func threadState(t *testing.T, tid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+3 > len(b) {
		t.Fatalf("malformed stat of thread %d: %q", tid, b)
	}
	return string(b[i+2 : i+3])
}

// waitAsleep returns once thread tid sleeps. The bound only keeps a broken kernel from hanging the test.
func waitAsleep(t *testing.T, tid int) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); threadState(t, tid) != "S"; {
		if time.Now().After(deadline) {
			t.Fatalf("thread %d never went to sleep", tid)
		}
		runtime.Gosched()
	}
}

// stopFor stops the observation and returns what it saw of thread tid.
func stopFor(t *testing.T, ob *Observer, tid int) ThreadSched {
	t.Helper()
	obs, err := ob.Stop()
	if err != nil {
		t.Fatal(err)
	}
	th, ok := obs.Thread(tid)
	if !ok {
		t.Fatalf("thread %d was not in the observation: %+v", tid, obs.Threads)
	}
	return th
}

// TestPrivSchedMatchesProc: the sched tracer counts exactly the context switches the kernel counts for a
// watched thread (/proc's voluntary and nonvoluntary_ctxt_switches), and records an off-CPU time and a wake-up
// for what it saw. The thread sleeps outside the window, so nothing happens between the two readings of either.
func TestPrivSchedMatchesProc(t *testing.T) {
	testenv.RequirePriv(t)
	ob, err := NewObserver(Options{Sched: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	tids, start, done, exit := make(chan int), make(chan struct{}), make(chan struct{}), make(chan struct{})
	const naps = 20
	go func() {
		runtime.LockOSThread() // never unlocked: the thread leaves with the goroutine
		tids <- unix.Gettid()
		<-start
		for range naps {
			unix.Nanosleep(&unix.Timespec{Nsec: int64(time.Millisecond)}, nil)
		}
		close(done)
		<-exit
	}()
	defer close(exit)
	tid := <-tids
	waitAsleep(t, tid)
	if err := ob.Start(Target{Threads: []int{tid}}); err != nil {
		t.Fatal(err)
	}
	v0, i0 := procSwitches(t, tid)
	close(start)
	<-done
	waitAsleep(t, tid)
	v1, i1 := procSwitches(t, tid)
	th := stopFor(t, ob, tid)
	t.Logf("%+v", th)
	if th.Voluntary != v1-v0 || th.Involuntary != i1-i0 {
		t.Errorf("traced %d voluntary and %d involuntary switches; the kernel counted %d and %d",
			th.Voluntary, th.Involuntary, v1-v0, i1-i0)
	}
	if th.Voluntary < naps {
		t.Errorf("%d voluntary switches for %d sleeps", th.Voluntary, naps)
	}
	if th.Wakeups == 0 || th.WakeHist.Count() != th.Wakeups || th.OffCPUHist.Count() == 0 || th.OffCPU <= 0 {
		t.Errorf("wake-ups %d (histogram %d), off-CPU %v (histogram %d): want the sleeps measured",
			th.Wakeups, th.WakeHist.Count(), th.OffCPU, th.OffCPUHist.Count())
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/comm", tid)); th.Comm != strings.TrimSpace(string(comm)) {
		t.Errorf("thread name %q, /proc says %q", th.Comm, comm)
	}
}

// interrupts reads /proc/interrupts.
func interrupts(t *testing.T) sysknob.Interrupts {
	t.Helper()
	host, err := sysknob.Host()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	s, err := host.Interrupts()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// irqWindow is /proc/interrupts read before and after an observation (outer) and right after its Start and
// right before its Stop (inner): every traced count must lie between the two deltas.
type irqWindow struct{ outer0, inner0, inner1, outer1 sysknob.Interrupts }

// observe runs work under an observation of target, reading /proc/interrupts around and inside it, and checks
// the traced IRQ counts against those readings.
func (w *irqWindow) observe(t *testing.T, ob *Observer, target Target, work func()) *Observation {
	t.Helper()
	w.outer0 = interrupts(t)
	if err := ob.Start(target); err != nil {
		t.Fatal(err)
	}
	w.inner0 = interrupts(t)
	work()
	w.inner1 = interrupts(t)
	obs, err := ob.Stop()
	if err != nil {
		t.Fatal(err)
	}
	w.outer1 = interrupts(t)
	w.check(t, obs)
	return obs
}

func (w irqWindow) check(t *testing.T, obs *Observation) {
	t.Helper()
	sum := func(cs []IRQCount) map[int]uint64 {
		m := map[int]uint64{}
		for _, c := range cs {
			m[c.IRQ] += c.Count
		}
		return m
	}
	irqs := obs.Target.IRQs
	got, lo, hi := sum(obs.IRQs), sum(irqDeltas(w.inner0, w.inner1, irqs)), sum(irqDeltas(w.outer0, w.outer1, irqs))
	for _, irq := range irqs {
		if got[irq] < lo[irq] || got[irq] > hi[irq] {
			t.Errorf("IRQ %d: traced %d, /proc/interrupts counted %d inside and %d outside the observation",
				irq, got[irq], lo[irq], hi[irq])
		}
	}
	t.Logf("%d IRQ handler runs traced: %v", obs.IRQTotal(), got)
}

// TestPrivIRQsMatchProc: the IRQ tracer counts what /proc/interrupts counts, for every numbered IRQ, and so does
// its fallback, which reads /proc/interrupts itself. Writing and syncing a file makes a disk interrupt where
// /tmp is on one (the lab's is not: its NIC test checks IRQs that certainly fire).
func TestPrivIRQsMatchProc(t *testing.T) {
	for _, procfs := range []bool{false, true} {
		t.Run(map[bool]string{false: "bpf", true: "procfs"}[procfs], func(t *testing.T) { irqsMatchProc(t, procfs) })
	}
}

func irqsMatchProc(t *testing.T, procfs bool) {
	testenv.RequirePriv(t)
	ob, err := NewObserver(Options{IRQ: true, IRQFromProcfs: procfs})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	var irqs []int
	for _, in := range interrupts(t).IRQs {
		if in.IRQ >= 0 {
			irqs = append(irqs, in.IRQ)
		}
	}
	var w irqWindow
	obs := w.observe(t, ob, Target{IRQs: irqs}, func() {
		f, err := os.Create(t.TempDir() + "/irq")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for range 10 {
			f.Write(bytes.Repeat([]byte{1}, 1<<16))
			f.Sync()
		}
	})
	want := map[bool]string{false: IRQSourceBPF, true: IRQSourceProcfs}[procfs]
	if obs.IRQSource != want {
		t.Errorf("IRQs counted by %q (%s), want %s", obs.IRQSource, obs.IRQNote, want)
	}
}

// TestPrivDetachedBetweenObservations: between observations the tracers are detached: the scheduler tracer, run
// thousands of times a second while attached, does not run at all after Stop, whatever the machine does.
func TestPrivDetachedBetweenObservations(t *testing.T) {
	testenv.RequirePriv(t)
	ob, err := NewObserver(Options{Sched: true, Stats: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	runs := func() uint64 {
		for _, c := range ob.k.obj.costs() {
			if c.Program == "napilab_switch" {
				return c.Runs
			}
		}
		t.Fatal("no napilab_switch program")
		return 0
	}
	sleep := func() {
		for range 10 {
			unix.Nanosleep(&unix.Timespec{Nsec: int64(time.Millisecond)}, nil)
		}
	}
	before := runs()
	sleep()
	if n := runs(); n != before {
		t.Errorf("sched_switch ran %d times before any observation", n-before)
	}
	if err := ob.Start(Target{Threads: []int{unix.Gettid()}}); err != nil {
		t.Fatal(err)
	}
	sleep()
	if _, err := ob.Stop(); err != nil {
		t.Fatal(err)
	}
	during := runs()
	if during == before {
		t.Error("sched_switch never ran while observing ten sleeps")
	}
	sleep()
	if n := runs(); n != during {
		t.Errorf("sched_switch ran %d times after Stop", n-during)
	}
	if err := ob.Start(Target{NAPIs: []uint32{259}}); err == nil {
		t.Error("a target with NAPIs started on an observer without the NAPI tracer")
	}
}

// TestPrivPreemptionTimeCharged: two busy threads on one CPU preempt each other; every involuntary switch of the
// watched one is charged to exactly one preemptor (the other thread, or the Go runtime's thread that hands a
// preempted locked goroutine its P back), with its time off CPU, part of the thread's whole time off CPU. The watched thread spins until /proc counts a preemption
// of it, and the hog until the watched thread is done: outcomes, not durations.
func TestPrivPreemptionTimeCharged(t *testing.T) {
	testenv.RequirePriv(t)
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err != nil {
		t.Fatal(err)
	}
	cpu := 0
	for !mask.IsSet(cpu) {
		cpu++
	}
	var one unix.CPUSet
	one.Set(cpu)
	ob, err := NewObserver(Options{Sched: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()

	pinned := func(tids chan<- int) {
		runtime.LockOSThread() // never unlocked: the thread leaves with the goroutine
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			t.Error(err)
		}
		tids <- unix.Gettid()
	}
	victimTIDs, hogTIDs := make(chan int), make(chan int)
	start, done, exit := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	defer close(exit)
	go func() {
		pinned(hogTIDs)
		<-start
		for !finished.Load() { // busy: the CPU is the watched thread's only if the scheduler takes it from this one
		}
		<-exit
	}()
	go func() {
		pinned(victimTIDs)
		tid := unix.Gettid()
		<-start
		_, i0 := procSwitches(t, tid)
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
			if _, i := procSwitches(t, tid); i > i0 {
				break
			}
		}
		finished.Store(true)
		close(done)
		<-exit
	}()
	victim, hog := <-victimTIDs, <-hogTIDs
	waitAsleep(t, victim)
	if err := ob.Start(Target{Threads: []int{victim}}); err != nil {
		t.Fatal(err)
	}
	close(start)
	<-done
	waitAsleep(t, victim)
	th := stopFor(t, ob, victim)
	t.Log(th.summary())
	if th.Involuntary == 0 {
		t.Fatalf("no involuntary switch traced for a thread sharing its CPU with a busy one: %+v", th)
	}
	var count uint64
	var off time.Duration
	for _, p := range th.Preemptors {
		count += p.Count
		off += p.OffCPU
		// Every preemption ended within the observation (the thread ran again to finish), so each preemptor
		// has time charged, and its longest stretch is one of its preemptions.
		if p.Count == 0 || p.Longest <= 0 || p.Longest > p.OffCPU {
			t.Errorf("preemptor %s (tid %d): longest %v of %v off CPU in %d preemptions", p.Comm, p.TID, p.Longest,
				p.OffCPU, p.Count)
		}
	}
	if count != th.Involuntary || off > th.OffCPU {
		t.Errorf("preemptors %+v: %d preemptions for %d involuntary switches, %v off CPU of %v in all (the busy "+
			"thread is %d)", th.Preemptors, count, th.Involuntary, off, th.OffCPU, hog)
	}
}
