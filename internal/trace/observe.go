package trace

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/napilab/napilab/internal/sysknob"
)

// Options choose the tracers an Observer loads.
type Options struct {
	NAPI  bool // who polls the target's NAPIs (napi_poll, with softirq_entry/exit to tell softirq apart)
	Sched bool // context switches, off-CPU time and wake-up latency of the target's threads and of the pollers
	IRQ   bool // handler runs of the target's IRQs (irq_handler_entry, or /proc/interrupts when BPF cannot)
	// IRQFromProcfs counts IRQs from /proc/interrupts deltas even where irq_handler_entry can be traced.
	IRQFromProcfs bool
	// Stats turns the kernel's BPF run-time statistics on while the Observer is open (kernel.bpf_stats_enabled,
	// through a file descriptor, so it goes off again when the Observer closes or the process dies) and reports
	// the tracers' cost per event in each Observation. It makes every BPF program on the machine a little slower.
	Stats bool
}

// covers refuses a target with parts no loaded tracer would watch, rather than leave them out silently.
func (o Options) covers(t Target) error {
	switch {
	case len(t.NAPIs) > 0 && !o.NAPI:
		return fmt.Errorf("trace: the target names NAPIs, but the observer was opened without the NAPI tracer")
	case len(t.Threads) > 0 && !o.Sched:
		return fmt.Errorf("trace: the target names threads, but the observer was opened without the Sched tracer")
	case len(t.IRQs) > 0 && !o.IRQ:
		return fmt.Errorf("trace: the target names IRQs, but the observer was opened without the IRQ tracer")
	}
	return nil
}

// AllOptions is what a sweep cell wants: every tracer, BPF statistics off.
func AllOptions() Options { return Options{NAPI: true, Sched: true, IRQ: true} }

// Observer holds napilab's tracers loaded (and verified) once, for many observations: a sweep loads it, each of
// its cells observes. Start attaches the tracers and Stop detaches them, so between observations they cost the
// machine nothing (only the per-CPU softirq marker, a few tens of nanoseconds per softirq, stays attached).
// Its methods are safe for concurrent use.
type Observer struct {
	mu      sync.Mutex
	opts    Options
	k       observerKernel
	running bool
	target  Target
	started time.Time
}

// NewObserver loads and attaches the tracers o asks for. A tracer the kernel cannot run is an error (matching
// kernel.ErrNotSupported when the kernel lacks something), except IRQ counting, which falls back to
// /proc/interrupts and says why in each Observation.
func NewObserver(o Options) (*Observer, error) {
	if !o.NAPI && !o.Sched && !o.IRQ {
		return nil, fmt.Errorf("trace: an observer with no tracer observes nothing: choose NAPI, Sched or IRQ")
	}
	ob := &Observer{opts: o}
	if err := ob.k.load(o); err != nil {
		return nil, err
	}
	return ob, nil
}

// Start begins an observation of t: counts from earlier observations are cleared, and the target's NAPIs,
// threads and IRQs are watched from now on.
func (ob *Observer) Start(t Target) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if err := ob.opts.covers(t); err != nil {
		return err
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if !ob.k.loaded() {
		return fmt.Errorf("trace: start: %w", os.ErrClosed)
	}
	if ob.running {
		return fmt.Errorf("trace: an observation is already running: stop it first")
	}
	if err := ob.k.start(t); err != nil {
		return err
	}
	ob.running, ob.target, ob.started = true, t, time.Now()
	return nil
}

// Stop ends the observation and returns what it saw.
func (ob *Observer) Stop() (*Observation, error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if !ob.running {
		return nil, fmt.Errorf("trace: stop: no observation is running")
	}
	ob.running = false
	obs := &Observation{Target: ob.target, Duration: time.Since(ob.started)}
	if err := ob.k.stop(obs); err != nil {
		return nil, err
	}
	return obs, nil
}

// Close detaches and frees the tracers. It is idempotent; an observation still running is abandoned.
func (ob *Observer) Close() error {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	ob.running = false
	return ob.k.close()
}

// Target is what one observation watches.
type Target struct {
	NAPIs []uint32 `json:"napi_ids,omitempty"` // NAPI ids (global, unique across network namespaces)
	// Threads are thread ids whose scheduling to record, e.g. a benchmark's threads. Threads that poll a target
	// NAPI outside softirq (the NAPI kthread, a busy-polling thread) are watched anyway from their first poll.
	Threads []int `json:"tids,omitempty"`
	IRQs    []int `json:"irqs,omitempty"` // IRQ numbers to count
}

// Validate reports the first problem with t as one sentence.
func (t Target) Validate() error {
	for _, id := range t.NAPIs {
		if id == 0 {
			return fmt.Errorf("trace: NAPI id 0 is no NAPI (it is what a device or socket without one reports)")
		}
	}
	for _, tid := range t.Threads {
		if tid <= 0 {
			return fmt.Errorf("trace: thread id %d is not valid", tid)
		}
	}
	for _, irq := range t.IRQs {
		if irq < 0 {
			return fmt.Errorf("trace: IRQ %d is not valid", irq)
		}
	}
	return nil
}

// IRQ sources of an Observation.
const (
	IRQSourceBPF    = "irq_handler_entry"
	IRQSourceProcfs = "/proc/interrupts"
)

// Observation is what an Observer saw between Start and Stop: raw counts, JSON-serialisable, from which the
// reports (NAPIs, Attest) are computed.
type Observation struct {
	Target    Target        `json:"target"`
	Duration  time.Duration `json:"duration_ns"`
	Polls     []PollStat    `json:"polls,omitempty"`
	Threads   []ThreadSched `json:"threads,omitempty"`
	IRQs      []IRQCount    `json:"irqs,omitempty"`
	IRQSource string        `json:"irq_source,omitempty"` // IRQSourceBPF, IRQSourceProcfs, or empty when not counted
	IRQNote   string        `json:"irq_note,omitempty"`   // why IRQs came from /proc/interrupts
	Dropped   uint64        `json:"dropped,omitempty"`    // events lost because a map was full
	Cost      []ProgramCost `json:"cost,omitempty"`       // with Options.Stats: the tracers' run time
}

// IRQTotal returns how often the target's IRQs fired.
func (o *Observation) IRQTotal() uint64 {
	var n uint64
	for _, c := range o.IRQs {
		n += c.Count
	}
	return n
}

// Thread returns the scheduling record of thread tid, if it was watched.
func (o *Observation) Thread(tid int) (ThreadSched, bool) {
	i := slices.IndexFunc(o.Threads, func(t ThreadSched) bool { return t.TID == tid })
	if i < 0 {
		return ThreadSched{}, false
	}
	return o.Threads[i], true
}

// ProgramCost is what one eBPF program of a tracer cost during an observation, from the kernel's BPF statistics.
type ProgramCost struct {
	Program string        `json:"program"`
	Runs    uint64        `json:"runs"`
	Time    time.Duration `json:"time_ns"`
	// Missed counts events the kernel did not run the program for because it was already running on that
	// CPU: where syscall tracepoints may fault (newer kernels run them preemptible), a thread preempted inside
	// the program makes the next thread's event on that CPU a miss. Those events are not counted.
	Missed uint64 `json:"missed,omitempty"`
}

// PerRun returns the mean time per run, 0 when it never ran.
func (c ProgramCost) PerRun() time.Duration {
	if c.Runs == 0 {
		return 0
	}
	return c.Time / time.Duration(c.Runs)
}

// irqDeltas returns, per CPU, how often each of irqs fired between two readings of /proc/interrupts. A CPU
// that came online in between counts from zero; an IRQ missing from either reading counts nothing.
func irqDeltas(before, after sysknob.Interrupts, irqs []int) []IRQCount {
	var out []IRQCount
	for _, irq := range irqs {
		a, ok := after.PerCPU(irq)
		if !ok {
			continue
		}
		b, _ := before.PerCPU(irq)
		cpus := make([]int, 0, len(a))
		for cpu := range a {
			cpus = append(cpus, cpu)
		}
		slices.Sort(cpus)
		for _, cpu := range cpus {
			if a[cpu] > b[cpu] {
				d := a[cpu] - b[cpu]
				out = append(out, IRQCount{IRQ: irq, CPU: cpu, Count: d})
			}
		}
	}
	return out
}
