package rr

// The machine's noise: what takes a CPU away from a thread that never gives it up. Every spinning benchmark end
// (rr's server and client loops, xsk_rr) has it under its tail, whatever the polling mode: a task of the guest
// that the scheduler runs on the spinner's CPU (the spinner waits, and schedstat counts the wait), an interrupt
// and its softirq (the thread stays current, nothing counts its time), and on a virtual machine the hypervisor
// descheduling the vCPU (the guest sees nothing at all, except the steal time it is told about afterwards).
// MeasureNoise spins one thread per CPU reading the clock and counts the readings that lie far apart, as
// sysjitter and the kernel's osnoise tracer do, then sets what the counters attribute beside it.

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/sysknob"
	"github.com/napilab/napilab/internal/usage"
)

// NoiseOptions says where and how long to measure.
type NoiseOptions struct {
	CPUs     []int         // one spinning thread pinned to each, all at once, as a benchmark's ends spin
	Duration time.Duration // how long they spin
	Min      time.Duration // the shortest gap between two clock readings that counts
}

// The bounds of NoiseOptions: at least a few timer ticks and 100 ms boundaries (where a host's CPU quota
// refills) in a window, and a gap floor above the loop's own iteration (~25 ns) yet below a context switch.
const (
	NoiseMinDuration = 100 * time.Millisecond
	NoiseMaxDuration = 10 * time.Minute
	NoiseMinGap      = time.Microsecond
	NoiseMaxGap      = 100 * time.Millisecond
)

// Validate checks the options without looking at the machine.
func (o NoiseOptions) Validate() error {
	var errs []error
	if len(o.CPUs) == 0 {
		errs = append(errs, kernel.Fieldf("cpus", "is empty: name the CPUs to measure, e.g. 0,1"))
	}
	for i, c := range o.CPUs {
		switch {
		case c < 0:
			errs = append(errs, kernel.Fieldf("cpus", "has %d: CPU numbers start at 0", c))
		case slices.Contains(o.CPUs[:i], c):
			errs = append(errs, kernel.Fieldf("cpus", "names CPU %d twice: one spinning thread per CPU", c))
		}
	}
	if o.Duration < NoiseMinDuration || o.Duration > NoiseMaxDuration {
		errs = append(errs, kernel.Fieldf("duration", "%v is out of range: give %v to %v", o.Duration,
			NoiseMinDuration, NoiseMaxDuration))
	}
	if o.Min < NoiseMinGap || o.Min > NoiseMaxGap {
		errs = append(errs, kernel.Fieldf("min", "%v is out of range: give %v to %v", o.Min, NoiseMinGap, NoiseMaxGap))
	}
	return errors.Join(errs...)
}

// CPUNoise is what one spinning thread lost over its window.
type CPUNoise struct {
	CPU    int           `json:"cpu"`
	Window time.Duration `json:"window_ns"`
	Reads  uint64        `json:"reads"` // clock readings: the loop's iterations
	// Gaps are the successive readings Min or more apart, the time the thread was not running its loop.
	Gaps LoopGaps `json:"gaps"`
	// ByDecade counts the gaps under 10 µs, 100 µs, 1 ms, 10 ms and longer.
	ByDecade [5]uint64 `json:"gaps_by_decade"`
	// Preempted counts the times another task of this system took the CPU (the thread's timeslices after its
	// first), Waited the time it then waited to run again (schedstat's run delay, ns).
	Preempted uint64        `json:"preempted"`
	Waited    time.Duration `json:"preempted_ns"`
	// Interrupts counts the interrupts this guest took on the CPU over the window (/proc/interrupts, all rows):
	// fewer than the gaps means that some gaps had no cause inside the guest.
	Interrupts uint64 `json:"interrupts"`
	// Steal is the time the hypervisor ran something else on this vCPU's behalf over the window (/proc/stat,
	// in 10 ms steps): the guest's tasks, interrupts and clock all stop meanwhile.
	Steal time.Duration `json:"steal_ns"`

	spans      []span // the gaps themselves, as many as were allotted: for NoiseResult.Together
	unrecorded uint64 // gaps beyond them
}

// span is one gap on the monotonic clock, which all CPUs share.
type span struct{ from, to int64 }

// NoiseResult is one measurement: each CPU's, and the stretches when all of them were away at once.
type NoiseResult struct {
	CPUs []CPUNoise `json:"cpus"`
	// Together is the time every measured CPU was away at once: the whole machine stopped (the hypervisor
	// descheduled every vCPU), or something that hits all CPUs at the same moment (aligned timer ticks). A
	// benchmark's client and server then stop together, which delays requests due on a schedule but no server's
	// turnaround. Zero with one CPU.
	Together NoiseStretches `json:"together"`
	// Attributed says that the counters beside the gaps (interrupts, steal) were read for every CPU at both ends of
	// the run; without them the CPUs' Steal and Interrupts are zero and Source says nothing.
	Attributed bool `json:"attributed"`
	// Unrecorded counts the gaps the record had no room for (about 4000 a second are allotted); Together then
	// leaves them out.
	Unrecorded uint64 `json:"unrecorded,omitempty"`
}

// NoiseStretches sums stretches of time: how many, how long in all, the longest.
type NoiseStretches struct {
	Count   uint64        `json:"count"`
	Total   time.Duration `json:"total_ns"`
	Longest time.Duration `json:"longest_ns"`
}

// add counts the gap from..to (ns) and records it while there is room. No preemption check (nosplit): see spin.
//
//go:nosplit
func (n *CPUNoise) add(from, to int64) {
	switch l := len(n.spans); {
	case l > 0 && n.spans[l-1].to == from: // two gaps in a row: one stretch away, for Together
		n.spans[l-1].to = to
	case l < cap(n.spans):
		n.spans = n.spans[:l+1]
		n.spans[l] = span{from, to}
	default:
		n.unrecorded++
	}
	d := to - from
	n.Gaps.add(d)
	i := 0
	for edge := int64(10 * time.Microsecond); i < len(n.ByDecade)-1 && d >= edge; edge *= 10 {
		i++
	}
	n.ByDecade[i]++
}

// Away is the share of the window the thread was away from its loop, 0 to 1.
func (n CPUNoise) Away() float64 {
	if n.Window <= 0 {
		return 0
	}
	return float64(n.Gaps.Total) / float64(n.Window)
}

// Unattributed is the gap time neither the scheduler nor the hypervisor accounts for: interrupts and softirqs
// on the CPU while the thread stayed current, and anything below the steal counter's 10 ms step.
func (n CPUNoise) Unattributed() time.Duration {
	return max(n.Gaps.Total-n.Waited-n.Steal, 0)
}

// Unexplained counts the gaps that neither an interrupt in this guest nor a preemption can account for (each
// accounts for one at most): a lower bound on the gaps the hypervisor made without reporting them as steal.
func (n CPUNoise) Unexplained() uint64 {
	return n.Gaps.Count - min(n.Gaps.Count, n.Interrupts+n.Preempted)
}

// NoiseSource is what took the most of a CPU's gap time.
type NoiseSource string

// The sources MeasureNoise tells apart.
const (
	NoiseNone       NoiseSource = ""           // no gap at all
	NoiseHypervisor NoiseSource = "hypervisor" // steal time
	NoiseUnreported NoiseSource = "unreported" // the hypervisor too: gaps with no cause in the guest, no steal
	NoiseTasks      NoiseSource = "tasks"      // other tasks of this system, run on the CPU
	NoiseInterrupts NoiseSource = "interrupts" // interrupts and softirqs in the guest
)

// Source says what took the most of the gap time: the largest of steal, preemption and the unattributed rest;
// the rest is the hypervisor's, unreported, when most gaps had no interrupt in the guest to cause them, else the
// interrupts'.
func (n CPUNoise) Source() NoiseSource {
	if n.Gaps.Total == 0 {
		return NoiseNone
	}
	switch u := n.Unattributed(); {
	case n.Steal >= n.Waited && n.Steal >= u:
		return NoiseHypervisor
	case n.Waited >= u:
		return NoiseTasks
	case 2*n.Unexplained() >= n.Gaps.Count:
		return NoiseUnreported
	}
	return NoiseInterrupts
}

// MeasureNoise spins a thread on each of o.CPUs for o.Duration, all at once, and returns what each lost. The
// threads are locked, pinned and named noise-cpuN; the process's other threads are kept off their CPUs where
// there is room (as for rr's loops; with a spinner on every CPU there is none, and napilab's own threads then
// count among the preemptions, as they would in a benchmark) and GC is off. The loop calls no function that can
// yield, so with asynchronous preemption off (as napilab runs) the Go runtime's own hand-offs are not part of the
// figure: it is the machine's. Cancelling ctx stops the threads early; the windows measured so far are returned
// with an error, and so are gaps whose counters could not be read after the run (NoiseResult.Attributed).
func MeasureNoise(ctx context.Context, o NoiseOptions) (NoiseResult, error) {
	if err := o.Validate(); err != nil {
		return NoiseResult{}, err
	}
	usable, err := UsableCPUs()
	if err != nil {
		return NoiseResult{}, err
	}
	for _, c := range o.CPUs {
		if !usable.Has(c) {
			return NoiseResult{}, kernel.Fieldf("cpus", "names CPU %d, which this process may not run on (usable: "+
				"%s): name CPUs from that list", c, usable)
		}
	}
	host, err := sysknob.Host()
	if err != nil {
		return NoiseResult{}, err
	}
	defer host.Close()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	defer reserveProcs(len(o.CPUs))()
	var stop atomic.Bool
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()

	type spun struct {
		i   int
		res CPUNoise
		err error
	}
	var end int64 // written before start is closed, read after
	start := make(chan struct{})
	ready, done := make(chan bool, len(o.CPUs)), make(chan spun, len(o.CPUs))
	for i, cpu := range o.CPUs {
		go func() { // a fresh goroutine per thread: a locked, pinned thread exits with it
			res, err := spinForNoise(cpu, o.Min, spanRoom(o.Duration), &stop, ready, start, &end)
			done <- spun{i, res, err}
		}()
	}
	allReady := true
	for range o.CPUs {
		allReady = <-ready && allReady
	}
	var errs []error
	irq0, ierr := host.Interrupts()
	before, err := usage.Take(usage.Spec{})
	if err = errors.Join(err, ierr); err != nil || !allReady {
		errs = append(errs, err) // a thread that is not ready says why itself
		stop.Store(true)
	}
	if ctx.Err() != nil {
		stop.Store(true) // AfterFunc's own goroutine might come later than the threads' first readings
	}
	end = nanotime() + int64(o.Duration)
	close(start)
	out := make([]CPUNoise, len(o.CPUs))
	for range o.CPUs {
		s := <-done
		out[s.i] = s.res
		errs = append(errs, s.err)
	}
	if err := errors.Join(errs...); err != nil {
		return NoiseResult{}, err
	}
	// The counters after the run: they were readable just before it, so a failure now is the machine changing
	// under the measurement (a CPU taken offline). The gaps stand; their attribution is left out, and said so.
	res := NoiseResult{CPUs: out}
	irq1, ierr := host.Interrupts()
	after, err := usage.Take(usage.Spec{})
	if err = errors.Join(err, ierr); err == nil {
		for i := range out {
			steal, okS := usage.StealBetween(before.CPUs, after.CPUs, out[i].CPU)
			a, okA := irq1.OnCPU(out[i].CPU)
			b, okB := irq0.OnCPU(out[i].CPU)
			if !okS || !okA || !okB || a < b {
				err = fmt.Errorf("CPU %d's steal or interrupt count is gone or went back", out[i].CPU)
				break
			}
			out[i].Steal, out[i].Interrupts = steal, a-b
		}
	}
	res.Attributed = err == nil
	if len(out) > 1 {
		all := out[0].spans
		for _, n := range out[1:] {
			all = intersect(all, n.spans)
		}
		for _, sp := range all {
			res.Together.Count++
			res.Together.Total += time.Duration(sp.to - sp.from)
			res.Together.Longest = max(res.Together.Longest, time.Duration(sp.to-sp.from))
		}
	}
	for _, n := range out {
		res.Unrecorded += n.unrecorded
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("noise measurement interrupted: %w", err)
	}
	if !res.Attributed {
		return res, fmt.Errorf("the CPU counters could not be read after the run (%v): the gaps are measured, what "+
			"caused them is not; measure again with every CPU online", err)
	}
	return res, nil
}

// spanRoom is how many gaps a thread records for a window of d: about 4000 a second (this page's 2-vCPU VM has
// 500–1400), at least 4096 and at most 2^20 (16 MiB).
func spanRoom(d time.Duration) int {
	return min(max(int(d.Seconds()*4000), 4096), 1<<20)
}

// intersect returns the stretches that lie in a span of both a and b, each sorted and without overlaps.
func intersect(a, b []span) []span {
	var out []span
	for i, j := 0, 0; i < len(a) && j < len(b); {
		if from, to := max(a[i].from, b[j].from), min(a[i].to, b[j].to); from < to {
			out = append(out, span{from, to})
		}
		if a[i].to < b[j].to {
			i++
		} else {
			j++
		}
	}
	return out
}

// spinForNoise is one measuring thread: locked, pinned, its CPU cleared of the process's other threads where
// there is room, it reports whether it is ready, waits for the start, spins until the end and then says what it
// lost. Its errors come back with its result only.
func spinForNoise(cpu int, minGap time.Duration, room int, stop *atomic.Bool, ready chan<- bool,
	start <-chan struct{}, end *int64) (CPUNoise, error) {
	res := CPUNoise{CPU: cpu, Gaps: LoopGaps{Min: minGap}, spans: prefaulted(room)}
	tid, err := lockThread(fmt.Sprintf("noise-cpu%d", cpu), cpu, 0)
	var sched *schedReader
	if err == nil {
		defer spinningLoops.spin(tid, cpu, 0)()
		sched, err = openSchedReader()
	}
	ready <- err == nil
	<-start
	if err != nil {
		return res, fmt.Errorf("CPU %d: %w", cpu, err)
	}
	defer sched.close()
	res.spin(stop, *end, sched)
	if err := stillOn(cpu); err != nil {
		return res, err
	}
	if res.Waited, res.Preempted, err = sched.delta(); err != nil {
		return res, fmt.Errorf("CPU %d: %w", cpu, err)
	}
	return res, nil
}

// prefaulted returns an empty slice with room for n spans whose memory has been written once, so that recording
// a gap never takes a page fault (which the loop would count as the machine's).
func prefaulted(n int) []span {
	s := make([]span, n)
	for i := range s {
		s[i] = span{-1, -1}
	}
	return s[:0]
}

// spin reads the clock until end or stop, counting the gaps. Nothing in it can yield to the Go scheduler: the
// clock, the flag and the thread's scheduler statistics are read without a call that checks for preemption
// (add has no check either), so the runtime's own hand-offs of a locked thread are neither counted as gaps nor,
// when the runtime preempts the thread right after the loop, as preemptions. Unless stopped before it begins, it
// reads the clock twice at least.
func (n *CPUNoise) spin(stop *atomic.Bool, end int64, sched *schedReader) {
	minGap := int64(n.Gaps.Min)
	sched.readBefore()
	first := nanotime()
	prev, reads := first, uint64(1)
	for !stop.Load() {
		t := nanotime()
		reads++
		if t-prev >= minGap {
			n.add(prev, t)
		}
		prev = t
		if t >= end {
			break
		}
	}
	sched.readAfter()
	n.Reads, n.Window = reads, time.Duration(prev-first)
}
