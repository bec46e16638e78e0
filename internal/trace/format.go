package trace

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// NAPITrace is what napilab trace napi reports: who polled each NAPI of a device.
type NAPITrace struct {
	Device   string        `json:"device"`
	NetNS    string        `json:"netns,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	NAPIs    []NAPIReport  `json:"napis"`
	Threads  []ThreadSched `json:"threads,omitempty"` // scheduling of the pollers that have a thread of their own
	Dropped  uint64        `json:"dropped,omitempty"`
	Cost     []ProgramCost `json:"cost,omitempty"`
}

// NewNAPITrace reports an observation of device d's NAPIs.
func NewNAPITrace(d Device, o *Observation) *NAPITrace {
	return &NAPITrace{Device: d.Name, NetNS: d.NetNS, Duration: o.Duration, NAPIs: o.NAPIs(), Threads: o.Threads,
		Dropped: o.Dropped, Cost: o.Cost}
}

// Format prints, per NAPI, its polls, its pollers, a histogram of packets per poll and the verdict.
func (n *NAPITrace) Format(w io.Writer) error {
	var b strings.Builder
	where := ""
	if n.NetNS != "" {
		where = " in " + n.NetNS
	}
	fmt.Fprintf(&b, "NAPIs of %s%s over %s (napi_poll)\n", n.Device, where, n.Duration.Round(time.Millisecond))
	for _, r := range n.NAPIs {
		fmt.Fprintf(&b, "\nNAPI %d: %d polls (%.0f/s), %d empty, %d packets\n", r.ID, r.Polls, r.PollsPerSec,
			r.EmptyPolls, r.Packets)
		if len(r.Pollers) > 0 {
			tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  POLLER\tTID\tKIND\tCPUS\tPOLLS\tEMPTY\tPACKETS\tOF POLLS\tOF PACKETS")
			for _, p := range r.Pollers {
				fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", p.Comm, p.TID, p.Kind, ints(p.CPUs), p.Polls,
					p.EmptyPolls, p.Packets, percent(p.PollShare), percent(p.PacketShare))
			}
			tw.Flush()
			if err := r.PerPoll.WriteBpftrace(&b, fmt.Sprintf("@packets_per_poll[%d]", r.ID)); err != nil {
				return err
			}
		}
		fmt.Fprintf(&b, "verdict: %s\n", r.Verdict)
	}
	for _, t := range n.Threads {
		fmt.Fprintf(&b, "\n%s\n", t.summary())
	}
	writeFooter(&b, n.Dropped, n.Cost)
	_, err := io.WriteString(w, b.String())
	return err
}

func times(n uint64) string {
	if n == 1 {
		return "once"
	}
	return strconv.FormatUint(n, 10) + " times"
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// summary is one line about a thread's scheduling, with who preempted it.
func (t ThreadSched) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (tid %d): %d voluntary and %d involuntary context switches, %v off CPU", t.Comm, t.TID,
		t.Voluntary, t.Involuntary, t.OffCPU.Round(time.Microsecond))
	if t.Wakeups > 0 {
		fmt.Fprintf(&b, ", %d wake-ups with a mean latency of %v", t.Wakeups,
			(t.WakeLatency / time.Duration(t.Wakeups)).Round(100*time.Nanosecond))
	}
	if len(t.Preemptors) > 0 {
		var by []string
		for _, p := range t.Preemptors {
			line := fmt.Sprintf("%s (tid %d) %s", p.Comm, p.TID, times(p.Count))
			if p.OffCPU > 0 {
				line += fmt.Sprintf(" for %v (longest %v)", p.OffCPU.Round(time.Microsecond), p.Longest.Round(time.Microsecond))
			}
			by = append(by, line)
		}
		fmt.Fprintf(&b, "; preempted by %s", strings.Join(by, ", "))
	}
	return b.String()
}

// SchedTrace is what napilab trace sched reports: the scheduling of the watched threads, and IRQ counts.
type SchedTrace struct {
	Duration  time.Duration `json:"duration_ns"`
	Threads   []ThreadSched `json:"threads"`
	IRQs      []IRQCount    `json:"irqs,omitempty"`
	IRQSource string        `json:"irq_source,omitempty"`
	IRQNote   string        `json:"irq_note,omitempty"`
	Dropped   uint64        `json:"dropped,omitempty"`
	Cost      []ProgramCost `json:"cost,omitempty"`
}

// NewSchedTrace reports the scheduling part of an observation.
func NewSchedTrace(o *Observation) *SchedTrace {
	return &SchedTrace{Duration: o.Duration, Threads: o.Threads, IRQs: o.IRQs, IRQSource: o.IRQSource,
		IRQNote: o.IRQNote, Dropped: o.Dropped, Cost: o.Cost}
}

// Format prints a summary per thread with its off-CPU and wake-up latency histograms, then the IRQs.
func (s *SchedTrace) Format(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "scheduling over %s (sched_switch, sched_wakeup)\n", s.Duration.Round(time.Millisecond))
	if len(s.Threads) == 0 {
		b.WriteString("no thread was watched\n")
	}
	for _, t := range s.Threads {
		fmt.Fprintf(&b, "\n%s\n", t.summary())
		if t.OffCPUHist.Count() > 0 {
			if err := t.OffCPUHist.WriteBpftrace(&b, fmt.Sprintf("@off_cpu_ns[%s]", t.Comm)); err != nil {
				return err
			}
		}
		if t.WakeHist.Count() > 0 {
			if err := t.WakeHist.WriteBpftrace(&b, fmt.Sprintf("@wake_latency_ns[%s]", t.Comm)); err != nil {
				return err
			}
		}
	}
	if s.IRQSource != "" {
		fmt.Fprintf(&b, "\nIRQs (%s", s.IRQSource)
		if s.IRQNote != "" {
			fmt.Fprintf(&b, ": %s", s.IRQNote)
		}
		b.WriteString(")\n")
		if len(s.IRQs) == 0 {
			b.WriteString("none fired\n")
		}
		for _, c := range s.IRQs {
			fmt.Fprintf(&b, "IRQ %d on CPU %d: %d (%.0f/s)\n", c.IRQ, c.CPU, c.Count, float64(c.Count)/s.Duration.Seconds())
		}
	}
	writeFooter(&b, s.Dropped, s.Cost)
	_, err := io.WriteString(w, b.String())
	return err
}
