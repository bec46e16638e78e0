package trace

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/napilab/napilab/internal/sysknob"
)

// Map sizes. A sweep cell watches one or a few NAPIs polled by a handful of threads on a few CPUs.
const (
	maxPollEntries    = 4096
	maxWatched        = 1024
	maxPreemptEntries = 4096
	maxIRQEntries     = 1024
)

// observerKernel is an Observer's kernel side: the loaded tracers and their maps.
type observerKernel struct {
	opts Options
	obj  objects

	napiWant, polls, threads, preempts, irqWant, irqs, drops *ebpf.Map

	host    *sysknob.Root // /proc, for IRQ counts from /proc/interrupts and thread names
	irqNote string        // why IRQs are counted from /proc/interrupts

	irqBefore sysknob.Interrupts
	costStart []ProgramCost
}

func (ob *observerKernel) load(o Options) (err error) {
	ob.opts = o
	defer func() {
		if err != nil {
			ob.close()
		}
	}()
	if ob.host, err = sysknob.Host(); err != nil {
		return err
	}
	var tps []string
	if o.NAPI {
		tps = append(tps, "napi_poll", "softirq_entry", "softirq_exit")
	}
	if o.Sched {
		tps = append(tps, "sched_switch", "sched_wakeup")
	}
	l, err := kernelLayout(tps...)
	if err != nil {
		return err
	}
	if o.Stats {
		if err := ob.obj.enableStats(); err != nil {
			return err
		}
	}
	var m mapFDs
	if ob.drops, err = ob.obj.common(&m); err != nil {
		return err
	}
	// The sched maps come first: napi_poll adds the pollers to them.
	if o.Sched {
		if err := ob.loadSched(&m, l); err != nil {
			return err
		}
	}
	if o.NAPI {
		if err := ob.loadNAPI(&m, l); err != nil {
			return err
		}
	}
	if o.IRQ {
		return ob.loadIRQ(&m)
	}
	return nil
}

func (ob *observerKernel) loadSched(m *mapFDs, l layout) (err error) {
	o := &ob.obj
	if ob.threads, err = o.newMap("napilab_threads", ebpf.Hash, 4, threadValSize, maxWatched, 0); err != nil {
		return err
	}
	if ob.preempts, err = o.newMap("napilab_preempt", ebpf.Hash, preemptKeySize, preemptValSize,
		maxPreemptEntries, 0); err != nil {
		return err
	}
	m.threads, m.preempts = ob.threads.FD(), ob.preempts.FD()
	if err := o.rawTracepoint("napilab_switch", "sched_switch", schedSwitchInsns(*m, l), false); err != nil {
		return err
	}
	return o.rawTracepoint("napilab_wakeup", "sched_wakeup", schedWakeupInsns(*m, l), false)
}

func (ob *observerKernel) loadNAPI(m *mapFDs, l layout) (err error) {
	o := &ob.obj
	if ob.napiWant, err = o.newMap("napilab_napis", ebpf.Hash, 4, 4, maxWatched, 0); err != nil {
		return err
	}
	if ob.polls, err = o.newMap("napilab_polls", ebpf.Hash, pollKeySize, pollValSize, maxPollEntries, 0); err != nil {
		return err
	}
	softirq, err := o.newMap("napilab_netrx", ebpf.PerCPUArray, 4, 4, 1, 0)
	if err != nil {
		return err
	}
	m.napiWant, m.polls, m.softirq = ob.napiWant.FD(), ob.polls.FD(), softirq.FD()
	// softirq_exit before softirq_entry: a softirq running while they attach is then never left marked.
	if err := o.rawTracepoint("napilab_rx_out", "softirq_exit", softirqInsns(*m, false), true); err != nil {
		return err
	}
	if err := o.rawTracepoint("napilab_rx_in", "softirq_entry", softirqInsns(*m, true), true); err != nil {
		return err
	}
	return o.rawTracepoint("napilab_napi", "napi_poll", napiPollInsns(*m, l), false)
}

// loadIRQ loads the IRQ counter; where it cannot load (or Options ask), IRQs come from /proc/interrupts.
func (ob *observerKernel) loadIRQ(m *mapFDs) (err error) {
	if ob.opts.IRQFromProcfs {
		ob.irqNote = "the caller asked for /proc/interrupts"
		return nil
	}
	o := &ob.obj
	if err := tracepointArgsOf("irq_handler_entry"); err != nil {
		ob.irqNote = err.Error()
		return nil
	}
	if ob.irqWant, err = o.newMap("napilab_irqwant", ebpf.Hash, 4, 4, maxWatched, 0); err != nil {
		return err
	}
	if ob.irqs, err = o.newMap("napilab_irqs", ebpf.Hash, irqKeySize, irqValSize, maxIRQEntries, 0); err != nil {
		return err
	}
	m.irqWant, m.irqs = ob.irqWant.FD(), ob.irqs.FD()
	if err := o.rawTracepoint("napilab_irq", "irq_handler_entry", irqEntryInsns(*m), false); err != nil {
		ob.irqWant, ob.irqs = nil, nil
		ob.irqNote = err.Error()
	}
	return nil
}

// tracepointArgsOf checks a tracepoint against the kernel's BTF.
func tracepointArgsOf(tp string) error {
	_, err := kernelLayout(tp)
	return err
}

func (ob *observerKernel) loaded() bool { return ob.obj.maps != nil }

// start clears the counts of earlier observations and watches t.
func (ob *observerKernel) start(t Target) error {
	if err := ob.reset(); err != nil {
		return err
	}
	if err := ob.watch(t); err != nil {
		return errors.Join(err, ob.reset())
	}
	if ob.opts.IRQ && ob.irqs == nil && len(t.IRQs) > 0 {
		s, err := ob.host.Interrupts()
		if err != nil {
			return errors.Join(err, ob.reset())
		}
		ob.irqBefore = s
	}
	ob.costStart = ob.obj.costs()
	if err := ob.obj.attach(); err != nil {
		return errors.Join(err, ob.reset())
	}
	return nil
}

// watch fills the filter maps for t. Threads get their entry (and name) here; their counts start at zero.
func (ob *observerKernel) watch(t Target) error {
	one := uint32(1)
	for _, id := range t.NAPIs {
		if ob.napiWant != nil {
			if err := ob.napiWant.Put(id, one); err != nil {
				return loadError("watch", "NAPI "+strconv.Itoa(int(id)), err)
			}
		}
	}
	for _, irq := range t.IRQs {
		if ob.irqWant != nil {
			if err := ob.irqWant.Put(uint32(irq), one); err != nil {
				return loadError("watch", "IRQ "+strconv.Itoa(irq), err)
			}
		}
	}
	if ob.threads == nil {
		return nil
	}
	for _, tid := range t.Threads {
		name, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/comm")
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("trace: there is no thread %d: give the id of a running thread", tid)
		}
		if err != nil {
			return fmt.Errorf("trace: read the name of thread %d: %w", tid, err)
		}
		_, v := encodeThread(ThreadSched{TID: tid, Comm: strings.TrimSuffix(string(name), "\n")})
		if err := ob.threads.Put(uint32(tid), v); err != nil {
			return loadError("watch", "thread "+strconv.Itoa(tid), err)
		}
	}
	return nil
}

// reset stops watching anything and clears every count. It runs while the tracers are detached.
func (ob *observerKernel) reset() error {
	var errs []error
	for _, m := range []*ebpf.Map{ob.napiWant, ob.irqWant, ob.threads, ob.polls, ob.preempts, ob.irqs} {
		if m != nil {
			errs = append(errs, clearMap(m))
		}
	}
	errs = append(errs, ob.drops.Put(uint32(0), uint64(0)))
	return errors.Join(errs...)
}

// stop detaches the tracers, then fills obs with what was counted and clears the counts.
func (ob *observerKernel) stop(obs *Observation) error {
	// Detach before reading, so the counts read are final.
	errs := []error{ob.obj.detach()}
	errs = append(errs, ob.collect(obs))
	if c := ob.obj.costs(); c != nil {
		obs.Cost = costSince(ob.costStart, c)
	}
	errs = append(errs, ob.reset())
	return errors.Join(errs...)
}

func (ob *observerKernel) collect(obs *Observation) error {
	if ob.polls != nil {
		ks, vs, err := entries(ob.polls, false)
		if err != nil {
			return err
		}
		for i := range ks {
			p, err := decodePoll(ks[i], vs[i])
			if err != nil {
				return err
			}
			obs.Polls = append(obs.Polls, p)
		}
		sortPolls(obs.Polls)
	}
	if ob.threads != nil {
		if err := ob.collectSched(obs); err != nil {
			return err
		}
	}
	if err := ob.collectIRQs(obs); err != nil {
		return err
	}
	return ob.drops.Lookup(uint32(0), &obs.Dropped)
}

func (ob *observerKernel) collectSched(obs *Observation) error {
	// Reading the thread entries removes them: the threads are no longer watched.
	ks, vs, err := entries(ob.threads, true)
	if err != nil {
		return err
	}
	for i := range ks {
		t, err := decodeThread(ks[i], vs[i])
		if err != nil {
			return err
		}
		obs.Threads = append(obs.Threads, t)
	}
	ks, vs, err = entries(ob.preempts, false)
	if err != nil {
		return err
	}
	for i := range ks {
		victim, p, err := decodePreempt(ks[i], vs[i])
		if err != nil {
			return err
		}
		if j := slices.IndexFunc(obs.Threads, func(t ThreadSched) bool { return t.TID == victim }); j >= 0 {
			obs.Threads[j].Preemptors = append(obs.Threads[j].Preemptors, p)
		}
	}
	sortThreads(obs.Threads)
	return nil
}

func (ob *observerKernel) collectIRQs(obs *Observation) error {
	if !ob.opts.IRQ || len(obs.Target.IRQs) == 0 {
		return nil
	}
	if ob.irqs == nil {
		after, err := ob.host.Interrupts()
		if err != nil {
			return err
		}
		obs.IRQs = irqDeltas(ob.irqBefore, after, obs.Target.IRQs)
		obs.IRQSource, obs.IRQNote = IRQSourceProcfs, ob.irqNote
		return nil
	}
	ks, vs, err := entries(ob.irqs, false)
	if err != nil {
		return err
	}
	for i := range ks {
		c, err := decodeIRQ(ks[i], vs[i])
		if err != nil {
			return err
		}
		obs.IRQs = append(obs.IRQs, c)
	}
	sortIRQs(obs.IRQs)
	obs.IRQSource = IRQSourceBPF
	return nil
}

func (ob *observerKernel) close() error {
	err := ob.obj.close()
	if ob.host != nil {
		err = errors.Join(err, ob.host.Close())
	}
	*ob = observerKernel{}
	return err
}
