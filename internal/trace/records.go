package trace

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// The layouts of the tracers' map entries, shared by the eBPF programs that write them (programs.go) and the
// decoders below that read them. Fields are in the machine's byte order at their natural alignment; a hash
// map's key is compared byte for byte, so keys have no padding.

const (
	commLen  = 16 // TASK_COMM_LEN
	histSize = 8 * Buckets
)

// napi_poll: one entry per (NAPI, thread, CPU, context).
const (
	pkNAPI        = 0
	pkTID         = 4
	pkCPU         = 8
	pkFlags       = 12 // flagSoftirq
	pollKeySize   = 16
	pvPolls       = 0
	pvPackets     = 8
	pvHist        = 16 // packets per poll
	pvPID         = pvHist + histSize
	pvTaskFlags   = pvPID + 4 // taskKthread
	pvComm        = pvTaskFlags + 4
	pollValSize   = pvComm + commLen
	flagSoftirq   = 1 // the poll ran in NET_RX softirq
	taskKthread   = 1 // the polling task is a kernel thread (PF_KTHREAD)
	taskAutoWatch = 2 // sched entry made by napi_poll for a thread that polled outside softirq
)

// sched_switch and sched_wakeup: one entry per watched thread (key: tid, u32); a thread is watched while it has
// an entry.
const (
	tvVoluntary   = 0
	tvInvoluntary = 8
	tvWakeups     = 16
	tvOffCPU      = 24 // total ns
	tvWakeLat     = 32 // total ns
	tvOutTS       = 40 // when the thread last left the CPU; 0 while it runs
	tvWakeTS      = 48 // when it was last woken; 0 once it ran
	tvOffHist     = 56
	tvWakeHist    = tvOffHist + histSize
	tvComm        = tvWakeHist + histSize
	tvFlags       = tvComm + commLen // taskAutoWatch
	tvOutBy       = tvFlags + 8      // u32: who took the CPU when the thread was last preempted; 0 after a voluntary switch
	threadValSize = tvOutBy + 8
	// preemptions: key (victim tid, preempting tid), value count, the victim's time off CPU from those
	// preemptions (summed and longest: until it ran again, whoever ran meanwhile) and the preempting task's comm.
	prkVictim      = 0
	prkBy          = 4
	preemptKeySize = 8
	prvCount       = 0
	prvOffCPU      = 8
	prvLongest     = 16
	prvComm        = 24
	preemptValSize = prvComm + commLen
)

// irq_handler_entry: key (irq, cpu), value a count.
const (
	ikIRQ      = 0
	ikCPU      = 4
	irqKeySize = 8
	irqValSize = 8
)

// raw_syscalls: the start of a syscall in flight per thread (key tid), and one entry per (thread, syscall).
const (
	ssTS         = 0
	ssNR         = 8
	startValSize = 16
	skTID        = 0
	skNR         = 4
	sysKeySize   = 8
	svCount      = 0
	svErrors     = 8
	svTotal      = 16
	svHist       = 24
	svPID        = svHist + histSize
	svComm       = svPID + 8
	sysValSize   = svComm + commLen
)

// xsk_recvmsg: a Hist followed by the total nanoseconds, in the one entry of an array.
const (
	xvHist     = 0
	xvTotal    = histSize
	xskValSize = xvTotal + 8
)

// zeroValSize is the size of the all-zero value new hash entries are copied from: the largest value above.
const zeroValSize = threadValSize

var ne = binary.NativeEndian

// sizeError says a map entry has the wrong size for its layout: the programs and decoders disagree, or the bytes
// are not an entry at all.
func sizeError(what string, got, want int) error {
	return fmt.Errorf("trace: a %s of %d bytes, want %d", what, got, want)
}

func decodeHist(b []byte) Hist {
	var h Hist
	for i := range h.Counts {
		h.Counts[i] = ne.Uint64(b[8*i:])
	}
	return h
}

func encodeHist(b []byte, h *Hist) {
	for i, c := range h.Counts {
		ne.PutUint64(b[8*i:], c)
	}
}

// comm decodes a task name: the bytes up to the first NUL, at most 15 (the kernel terminates the name within its
// 16 bytes; an entry that is not terminated is read as if it were).
func comm(b []byte) string {
	b = b[:min(len(b), commLen-1)]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// PollStat is what the napi_poll tracer counted for one NAPI polled by one thread on one CPU in one context.
type PollStat struct {
	NAPIID  uint32 `json:"napi_id"`
	TID     int    `json:"tid"` // the polling thread, or for a softirq poll the task it interrupted
	PID     int    `json:"pid"` // its process (thread group)
	CPU     int    `json:"cpu"`
	Comm    string `json:"comm"`
	Softirq bool   `json:"softirq"` // ran in NET_RX softirq
	Kthread bool   `json:"kthread"` // the task is a kernel thread
	Polls   uint64 `json:"polls"`
	Packets uint64 `json:"packets"`
	PerPoll Hist   `json:"packets_per_poll"`
}

// Kind says who polled: softirq if the poll ran in NET_RX softirq (whatever task it interrupted, ksoftirqd
// included), the NAPI's kthread if a kernel thread napi/<dev>-<id> polled outside softirq, and otherwise a busy
// poll by the thread that polled (an application thread in napi_busy_loop, or an io_uring poller).
func (p PollStat) Kind() Kind {
	switch {
	case p.Softirq:
		return KindSoftirq
	case p.Kthread && strings.HasPrefix(p.Comm, "napi/"):
		return KindKthread
	}
	return KindBusyPoll
}

func decodePoll(k, v []byte) (PollStat, error) {
	if len(k) != pollKeySize {
		return PollStat{}, sizeError("napi_poll key", len(k), pollKeySize)
	}
	if len(v) != pollValSize {
		return PollStat{}, sizeError("napi_poll value", len(v), pollValSize)
	}
	return PollStat{
		NAPIID:  ne.Uint32(k[pkNAPI:]),
		TID:     int(ne.Uint32(k[pkTID:])),
		CPU:     int(ne.Uint32(k[pkCPU:])),
		Softirq: ne.Uint32(k[pkFlags:])&flagSoftirq != 0,
		Polls:   ne.Uint64(v[pvPolls:]),
		Packets: ne.Uint64(v[pvPackets:]),
		PerPoll: decodeHist(v[pvHist:]),
		PID:     int(ne.Uint32(v[pvPID:])),
		Kthread: ne.Uint32(v[pvTaskFlags:])&taskKthread != 0,
		Comm:    comm(v[pvComm : pvComm+commLen]),
	}, nil
}

// encodePoll is decodePoll's inverse, for tests and fuzzing.
func encodePoll(p PollStat) (k, v []byte) {
	k, v = make([]byte, pollKeySize), make([]byte, pollValSize)
	ne.PutUint32(k[pkNAPI:], p.NAPIID)
	ne.PutUint32(k[pkTID:], uint32(p.TID))
	ne.PutUint32(k[pkCPU:], uint32(p.CPU))
	if p.Softirq {
		ne.PutUint32(k[pkFlags:], flagSoftirq)
	}
	ne.PutUint64(v[pvPolls:], p.Polls)
	ne.PutUint64(v[pvPackets:], p.Packets)
	encodeHist(v[pvHist:], &p.PerPoll)
	ne.PutUint32(v[pvPID:], uint32(p.PID))
	if p.Kthread {
		ne.PutUint32(v[pvTaskFlags:], taskKthread)
	}
	copy(v[pvComm:pvComm+commLen-1], p.Comm)
	return k, v
}

// ThreadSched is what the scheduler tracer saw of one thread while it was watched.
type ThreadSched struct {
	TID         int           `json:"tid"`
	Comm        string        `json:"comm"`
	Poller      bool          `json:"poller,omitempty"` // watched because it polled a NAPI outside softirq
	Voluntary   uint64        `json:"voluntary_switches"`
	Involuntary uint64        `json:"involuntary_switches"` // preempted while runnable, as /proc's nonvoluntary_ctxt_switches
	OffCPU      time.Duration `json:"off_cpu_ns"`           // from leaving the CPU to running again, summed
	OffCPUHist  Hist          `json:"off_cpu_hist"`
	Wakeups     uint64        `json:"wakeups"`
	WakeLatency time.Duration `json:"wake_latency_ns"` // from being woken to running, summed
	WakeHist    Hist          `json:"wake_latency_hist"`
	Preemptors  []Preemptor   `json:"preemptors,omitempty"` // who took the CPU when it was preempted, the longest off CPU in all first
}

// Preemptor is a task that took a watched thread's CPU while the thread was runnable, and how long the thread
// then waited to run again (the preemptor's run and whatever else ran before the thread's turn came back).
type Preemptor struct {
	TID     int           `json:"tid"`
	Comm    string        `json:"comm"`
	Count   uint64        `json:"count"`
	OffCPU  time.Duration `json:"off_cpu_ns"`
	Longest time.Duration `json:"longest_off_cpu_ns"`
}

func decodeThread(k, v []byte) (ThreadSched, error) {
	if len(k) != 4 {
		return ThreadSched{}, sizeError("thread key", len(k), 4)
	}
	if len(v) != threadValSize {
		return ThreadSched{}, sizeError("thread value", len(v), threadValSize)
	}
	return ThreadSched{
		TID:         int(ne.Uint32(k)),
		Comm:        comm(v[tvComm : tvComm+commLen]),
		Poller:      ne.Uint32(v[tvFlags:])&taskAutoWatch != 0,
		Voluntary:   ne.Uint64(v[tvVoluntary:]),
		Involuntary: ne.Uint64(v[tvInvoluntary:]),
		Wakeups:     ne.Uint64(v[tvWakeups:]),
		OffCPU:      time.Duration(ne.Uint64(v[tvOffCPU:])),
		WakeLatency: time.Duration(ne.Uint64(v[tvWakeLat:])),
		OffCPUHist:  decodeHist(v[tvOffHist:]),
		WakeHist:    decodeHist(v[tvWakeHist:]),
	}, nil
}

func encodeThread(t ThreadSched) (k, v []byte) {
	k, v = make([]byte, 4), make([]byte, threadValSize)
	ne.PutUint32(k, uint32(t.TID))
	copy(v[tvComm:tvComm+commLen-1], t.Comm)
	if t.Poller {
		ne.PutUint32(v[tvFlags:], taskAutoWatch)
	}
	ne.PutUint64(v[tvVoluntary:], t.Voluntary)
	ne.PutUint64(v[tvInvoluntary:], t.Involuntary)
	ne.PutUint64(v[tvWakeups:], t.Wakeups)
	ne.PutUint64(v[tvOffCPU:], uint64(t.OffCPU))
	ne.PutUint64(v[tvWakeLat:], uint64(t.WakeLatency))
	encodeHist(v[tvOffHist:], &t.OffCPUHist)
	encodeHist(v[tvWakeHist:], &t.WakeHist)
	return k, v
}

// decodePreempt decodes a preemption entry: the victim's tid and who preempted it, how often and for how long.
func decodePreempt(k, v []byte) (victim int, p Preemptor, err error) {
	if len(k) != preemptKeySize {
		return 0, Preemptor{}, sizeError("preemption key", len(k), preemptKeySize)
	}
	if len(v) != preemptValSize {
		return 0, Preemptor{}, sizeError("preemption value", len(v), preemptValSize)
	}
	return int(ne.Uint32(k[prkVictim:])), Preemptor{TID: int(ne.Uint32(k[prkBy:])),
		Comm: comm(v[prvComm : prvComm+commLen]), Count: ne.Uint64(v[prvCount:]),
		OffCPU: time.Duration(ne.Uint64(v[prvOffCPU:])), Longest: time.Duration(ne.Uint64(v[prvLongest:]))}, nil
}

func encodePreempt(victim int, p Preemptor) (k, v []byte) {
	k, v = make([]byte, preemptKeySize), make([]byte, preemptValSize)
	ne.PutUint32(k[prkVictim:], uint32(victim))
	ne.PutUint32(k[prkBy:], uint32(p.TID))
	ne.PutUint64(v[prvCount:], p.Count)
	ne.PutUint64(v[prvOffCPU:], uint64(p.OffCPU))
	ne.PutUint64(v[prvLongest:], uint64(p.Longest))
	copy(v[prvComm:prvComm+commLen-1], p.Comm)
	return k, v
}

// IRQCount is how often an IRQ's handler ran on one CPU.
type IRQCount struct {
	IRQ   int    `json:"irq"`
	CPU   int    `json:"cpu"`
	Count uint64 `json:"count"`
}

func decodeIRQ(k, v []byte) (IRQCount, error) {
	if len(k) != irqKeySize {
		return IRQCount{}, sizeError("irq key", len(k), irqKeySize)
	}
	if len(v) != irqValSize {
		return IRQCount{}, sizeError("irq value", len(v), irqValSize)
	}
	return IRQCount{IRQ: int(ne.Uint32(k[ikIRQ:])), CPU: int(ne.Uint32(k[ikCPU:])), Count: ne.Uint64(v)}, nil
}

// SyscallStat is the time one thread spent in one system call, as raw_syscalls sys_enter and sys_exit saw it.
type SyscallStat struct {
	TID    int           `json:"tid"`
	PID    int           `json:"pid"`
	Comm   string        `json:"comm"`
	NR     int           `json:"nr"`
	Name   string        `json:"syscall"`
	Count  uint64        `json:"count"`
	Errors uint64        `json:"errors"` // calls that returned an error (EAGAIN included)
	Total  time.Duration `json:"total_ns"`
	Time   Hist          `json:"time_ns"` // syscall time, enter to exit
}

func decodeSyscall(k, v []byte) (SyscallStat, error) {
	if len(k) != sysKeySize {
		return SyscallStat{}, sizeError("syscall key", len(k), sysKeySize)
	}
	if len(v) != sysValSize {
		return SyscallStat{}, sizeError("syscall value", len(v), sysValSize)
	}
	return SyscallStat{
		TID:    int(ne.Uint32(k[skTID:])),
		NR:     int(ne.Uint32(k[skNR:])),
		Count:  ne.Uint64(v[svCount:]),
		Errors: ne.Uint64(v[svErrors:]),
		Total:  time.Duration(ne.Uint64(v[svTotal:])),
		Time:   decodeHist(v[svHist:]),
		PID:    int(ne.Uint32(v[svPID:])),
		Comm:   comm(v[svComm : svComm+commLen]),
	}, nil
}

// decodeXSK decodes the xsk_recvmsg tracer's histogram and total time.
func decodeXSK(v []byte) (Hist, time.Duration, error) {
	if len(v) != xskValSize {
		return Hist{}, 0, sizeError("xsk_recvmsg value", len(v), xskValSize)
	}
	return decodeHist(v[xvHist:]), time.Duration(ne.Uint64(v[xvTotal:])), nil
}
