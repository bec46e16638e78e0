package rr

import (
	"sync"

	"github.com/napilab/napilab/internal/sysknob"
)

// A spinning loop owns its CPU only if nothing else of this process runs there: the Go runtime's own threads
// (sysmon wakes every 10 ms while a loop spins, and preempting the loop hands its P to another thread and back),
// the goroutines that report and account, timers. Each one that lands on a spinner's CPU preempts the spinner for
// a context switch and its run. So while loops spin, every other thread of the process is kept on the usable CPUs
// no loop is pinned to; threads created meanwhile inherit that mask from their creators (a locked spinner creates
// none itself: the runtime makes threads for it from its template thread).
//
// Only where there is room: the free CPUs must outnumber the spinning threads of other processes on the machine
// (Threads.Colocated), and be at least two, since one free CPU is usually another process's spinner's (the
// testbed's client and server on a 2-vCPU machine). Measured there, moving the server's threads onto the client's
// CPU made the server's loop wait about 40 times a second for its own preemption to come back from that busy
// CPU, and the client no better off: each process's threads preempted the other's loop instead of its own. So
// with too few CPUs the threads keep their masks.

// spinRegistry tracks the spinning loops of the process and the masks it changed.
type spinRegistry struct {
	mu      sync.Mutex
	loops   map[int]int            // spinner thread id → its CPU
	others  map[int]int            // spinner thread id → spinning threads of other processes it counts on
	saved   map[int]sysknob.CPUSet // other thread → its mask before isolation
	process sysknob.CPUSet         // the usable CPUs when isolation began
	placed  bool                   // other threads have been moved: a thread first seen now inherited a moved mask
	os      threadOS
}

// threadOS is what the registry needs from the kernel; tests give it a fake.
type threadOS interface {
	usable() (sysknob.CPUSet, error)
	threads() []int
	affinity(tid int) (sysknob.CPUSet, error)
	setAffinity(tid int, cpus sysknob.CPUSet) error
}

var spinningLoops = spinRegistry{os: procThreads{}}

// spin registers the calling thread (tid) as a spinning loop pinned to cpu, with colocated spinning threads of
// other processes on the machine, and moves the process's other threads off the spinners' CPUs where there is
// room; the returned function unregisters it and, with the last spinner gone, puts every other thread's mask
// back. cpu < 0 (unpinned) registers nothing. A thread that cannot be moved stays where it was: isolation is an
// improvement, never a condition of a run.
func (r *spinRegistry) spin(tid, cpu, colocated int) (done func()) {
	if cpu < 0 || tid <= 0 {
		return func() {}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loops == nil {
		usable, err := r.os.usable()
		if err != nil {
			return func() {}
		}
		r.loops, r.others, r.saved, r.process = map[int]int{}, map[int]int{}, map[int]sysknob.CPUSet{}, usable
	}
	r.loops[tid], r.others[tid] = cpu, colocated
	r.place()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.loops) == 1 {
			r.restore() // the ending loop's thread keeps its pin: it is about to exit with its goroutine
			r.loops = nil
			return
		}
		delete(r.loops, tid)
		delete(r.others, tid)
		r.place()
	}
}

// free is where the process's other threads may run: the usable CPUs without a spinner of this process, when
// there are at least two of them and more than other processes' spinners; else empty.
func (r *spinRegistry) free() sysknob.CPUSet {
	var busy []int
	colocated := 0
	for tid, c := range r.loops {
		busy = append(busy, c)
		colocated = max(colocated, r.others[tid])
	}
	free := r.process.Minus(sysknob.CPUs(busy...))
	if free.Len() < 2 || free.Len() <= colocated {
		return sysknob.CPUSet{}
	}
	return free
}

// place gives every thread that is not a spinner the mask free(), or its own back when there is no room. Threads
// are listed twice: one created while the first pass ran got its creator's old mask.
func (r *spinRegistry) place() {
	to := r.free()
	if to.IsEmpty() {
		r.restore()
		return
	}
	for range 2 {
		for _, tid := range r.os.threads() {
			if _, ok := r.loops[tid]; ok {
				continue
			}
			if _, ok := r.saved[tid]; !ok {
				m, err := r.os.affinity(tid)
				if err != nil {
					continue // gone
				}
				if r.placed {
					m = r.process // created since: its mask came from a moved thread
				}
				r.saved[tid] = m
			}
			_ = r.os.setAffinity(tid, to)
		}
		r.placed = true
	}
}

// restore gives the threads whose masks were changed their masks back, and a thread created meanwhile (which
// inherited a changed mask) the process's usable CPUs.
func (r *spinRegistry) restore() {
	if !r.placed {
		return
	}
	for _, tid := range r.os.threads() {
		if _, ok := r.loops[tid]; ok {
			continue
		}
		m, ok := r.saved[tid]
		if !ok {
			m = r.process
		}
		_ = r.os.setAffinity(tid, m)
	}
	clear(r.saved)
	r.placed = false
}
