package trace

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// SyscallTracer times the AF_XDP kick system calls (recvfrom, sendto, poll, ppoll) of one process's threads,
// from raw_syscalls sys_enter to sys_exit. It counts from NewSyscallTracer until Close.
type SyscallTracer struct {
	k       syscallKernel
	pid     int
	started time.Time
}

// NewSyscallTracer attaches to raw_syscalls sys_enter and sys_exit for process pid. stats turns on the kernel's
// BPF run-time statistics (see Options.Stats).
func NewSyscallTracer(pid int, stats bool) (*SyscallTracer, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("trace: process id %d is not valid: give the pid of the process to trace", pid)
	}
	t := &SyscallTracer{pid: pid}
	if err := t.k.load(pid, stats); err != nil {
		return nil, err
	}
	t.started = time.Now()
	return t, nil
}

// Read returns what the tracer counted so far.
func (t *SyscallTracer) Read() (*SyscallTrace, error) {
	if !t.k.loaded() {
		return nil, fmt.Errorf("trace: read syscalls: %w", os.ErrClosed)
	}
	s := &SyscallTrace{PID: t.pid, Duration: time.Since(t.started)}
	if err := t.k.read(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Close detaches the tracer. It is idempotent.
func (t *SyscallTracer) Close() error { return t.k.close() }

// SyscallTrace is the syscall time of one process's AF_XDP kicks: per thread and system call, how often and how
// long, from raw_syscalls sys_enter to sys_exit. It stands in for the seed's xsk_recvmsg histogram where fentry
// is refused: recvfrom on an AF_XDP socket is xsk_recvmsg plus the system call's entry and exit.
type SyscallTrace struct {
	PID      int           `json:"pid"`
	Duration time.Duration `json:"duration_ns"`
	Syscalls []SyscallStat `json:"syscalls"` // by thread, then system call
	Dropped  uint64        `json:"dropped,omitempty"`
	Cost     []ProgramCost `json:"cost,omitempty"`
}

// Count returns the calls of the named system call, over all threads.
func (s *SyscallTrace) Count(name string) uint64 {
	var n uint64
	for _, c := range s.Syscalls {
		if c.Name == name {
			n += c.Count
		}
	}
	return n
}

func sortSyscalls(s []SyscallStat) {
	slices.SortFunc(s, func(a, b SyscallStat) int {
		return cmp.Or(cmp.Compare(a.TID, b.TID), cmp.Compare(a.NR, b.NR))
	})
}

// Format prints the trace: a line per thread and system call, then its histogram in bpftrace's layout.
func (s *SyscallTrace) Format(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "syscall time of process %d's AF_XDP kicks over %s (raw_syscalls sys_enter to sys_exit)\n",
		s.PID, s.Duration.Round(time.Millisecond))
	if len(s.Syscalls) == 0 {
		b.WriteString("no recvfrom, sendto or poll call was made\n")
	}
	for _, c := range s.Syscalls {
		mean := time.Duration(0)
		if c.Count > 0 {
			mean = c.Total / time.Duration(c.Count)
		}
		fmt.Fprintf(&b, "\n%s (tid %d) %s: %d calls, %d returned an error, mean %v\n", c.Comm, c.TID, c.Name,
			c.Count, c.Errors, mean)
		if err := c.Time.WriteBpftrace(&b, fmt.Sprintf("@syscall_time_ns[%s, %s]", c.Comm, c.Name)); err != nil {
			return err
		}
	}
	writeFooter(&b, s.Dropped, s.Cost)
	_, err := io.WriteString(w, b.String())
	return err
}

// XSKRecvTracer times xsk_recvmsg with fentry and fexit, as the seed's bpftrace script does with kprobes.
type XSKRecvTracer struct {
	k       xskKernel
	pid     int
	started time.Time
}

const xskTarget = "xsk_recvmsg"

// NewXSKRecvTracer attaches to xsk_recvmsg for process pid (0: every process). Where the kernel refuses BPF
// trampolines (fentry/fexit) while it accepts other tracing, the error is a *kernel.UnsupportedError that says
// so and names the stand-in, SyscallTracer.
func NewXSKRecvTracer(pid int, stats bool) (*XSKRecvTracer, error) {
	if pid < 0 {
		return nil, fmt.Errorf("trace: process id %d is not valid: give a pid, or 0 for every process", pid)
	}
	t := &XSKRecvTracer{pid: pid}
	if err := t.k.load(pid, stats); err != nil {
		return nil, err
	}
	t.started = time.Now()
	return t, nil
}

// Read returns what the tracer measured so far.
func (t *XSKRecvTracer) Read() (*XSKRecvTrace, error) {
	if !t.k.loaded() {
		return nil, fmt.Errorf("trace: read %s: %w", xskTarget, os.ErrClosed)
	}
	x := &XSKRecvTrace{PID: t.pid, Duration: time.Since(t.started)}
	if err := t.k.read(x); err != nil {
		return nil, err
	}
	return x, nil
}

// Close detaches the tracer. It is idempotent.
func (t *XSKRecvTracer) Close() error { return t.k.close() }

// XSKRecvTrace is the time spent in the kernel's xsk_recvmsg, measured with fentry and fexit: the seed's
// bpftrace histogram, without bpftrace.
type XSKRecvTrace struct {
	PID      int           `json:"pid,omitempty"` // 0: every process
	Duration time.Duration `json:"duration_ns"`
	Calls    uint64        `json:"calls"`
	Total    time.Duration `json:"total_ns"`
	Time     Hist          `json:"time_ns"`
	Cost     []ProgramCost `json:"cost,omitempty"`
}

// Format prints the histogram as the seed's script prints it (@xsk_recvfrom_hist), so the two compare at a
// glance.
func (x *XSKRecvTrace) Format(w io.Writer) error {
	var b strings.Builder
	who := "every process"
	if x.PID != 0 {
		who = fmt.Sprintf("process %d", x.PID)
	}
	mean := time.Duration(0)
	if x.Calls > 0 {
		mean = x.Total / time.Duration(x.Calls)
	}
	fmt.Fprintf(&b, "xsk_recvmsg time of %s over %s (fentry to fexit): %d calls, mean %v\n\n", who,
		x.Duration.Round(time.Millisecond), x.Calls, mean)
	if err := x.Time.WriteBpftrace(&b, "@xsk_recvfrom_hist"); err != nil {
		return err
	}
	writeFooter(&b, 0, x.Cost)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeFooter notes lost events and, with BPF statistics on, what the tracers cost per event.
func writeFooter(b *strings.Builder, dropped uint64, cost []ProgramCost) {
	if dropped > 0 {
		fmt.Fprintf(b, "%d events were not counted: a tracer's map was full\n", dropped)
	}
	for _, c := range cost {
		fmt.Fprintf(b, "tracer %s: %d runs, %v per run", c.Program, c.Runs, c.PerRun())
		if c.Missed > 0 {
			fmt.Fprintf(b, "; %d events missed (the program was already running on that CPU), not counted", c.Missed)
		}
		b.WriteByte('\n')
	}
}
