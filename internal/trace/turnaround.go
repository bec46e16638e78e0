package trace

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/kernel"
)

// A server's turnaround is the time from a request's arrival in its AF_XDP socket to the moment its thread asks
// the kernel to send the reply: from the xdp_redirect tracepoint, which fires when an XDP program's redirect into
// an XSKMAP slot succeeds (the frame is copied or handed to the socket right after), to the thread's next sendto
// or sendmsg (raw_syscalls sys_enter), the TX kick. It is the server's own share of a round trip, timed by the
// kernel and the same for any server, whatever language it is written in and whatever it prints; the client's
// latency includes both ends, the wire and the scheduler of the other CPU, and drifts by more than two servers
// differ. The oldest request waiting is paired with the next kick: with one request in flight that is its own
// turnaround; a batch counts once, from its first request. A server that sends without a kick (zero copy without
// need_wakeup) is not seen.

// TurnaroundBucket is the width of a TurnaroundTrace bucket; TurnaroundBuckets of them cover the times the
// histogram resolves, longer ones are only counted.
const (
	TurnaroundBucket  = 100 * time.Nanosecond
	TurnaroundBuckets = 1000
	// TurnaroundSpan is the longest turnaround the histogram resolves.
	TurnaroundSpan = TurnaroundBuckets * TurnaroundBucket
)

// TurnaroundTrace is what a TurnaroundTracer counted.
type TurnaroundTrace struct {
	PID      int           `json:"pid"`
	Thread   string        `json:"thread,omitempty"` // only this thread name of the process
	MapID    uint32        `json:"xskmap_id"`
	Queue    uint32        `json:"queue"`
	Duration time.Duration `json:"duration_ns"`
	Count    uint64        `json:"count"`
	Total    time.Duration `json:"total_ns"`
	Over     uint64        `json:"over"` // turnarounds of TurnaroundSpan or more
	// Buckets[i] counts turnarounds in [i, i+1) × TurnaroundBucket.
	Buckets [TurnaroundBuckets]uint64 `json:"buckets_100ns"`
	Cost    []ProgramCost             `json:"cost,omitempty"`
	// The percentiles, as Percentile gives them (filled in by Read).
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
}

// TurnaroundTarget says whose turnaround to time.
type TurnaroundTarget struct {
	PID    int    // the server process
	Thread string // only its threads of this name (what /proc/PID/task/TID/comm shows), "" for any
	Dev    string // the device whose XDP program steers the server's requests into its XSKMAP
	NetNS  string // the network namespace of Dev: a name under /run/netns or a path, "" for napilab's own
	Queue  uint32 // the XSKMAP slot, the queue id by convention
}

func (t TurnaroundTarget) check() error {
	switch {
	case t.PID <= 0:
		return kernel.Fieldf("pid", "%d is not a process id: give the server's", t.PID)
	case len(t.Thread) >= commLen:
		return kernel.Fieldf("thread", "%q is longer than the kernel keeps a thread's name (%d bytes)", t.Thread,
			commLen-1)
	case t.Dev == "":
		return kernel.Fieldf("dev", "is empty: give the device the server's XDP program is attached to")
	}
	return nil
}

// TurnaroundTracer times a server's turnaround from NewTurnaroundTracer until Close.
type TurnaroundTracer struct {
	k       turnaroundKernel
	target  TurnaroundTarget
	started time.Time
}

// NewTurnaroundTracer finds the XSKMAP of the XDP program on the target's device and attaches to xdp_redirect
// and raw_syscalls sys_enter. stats turns on the kernel's BPF run-time statistics (see Options.Stats).
func NewTurnaroundTracer(target TurnaroundTarget, stats bool) (*TurnaroundTracer, error) {
	if err := target.check(); err != nil {
		return nil, err
	}
	t := &TurnaroundTracer{target: target}
	if err := t.k.load(target, stats); err != nil {
		return nil, err
	}
	t.started = time.Now()
	return t, nil
}

// Read returns what the tracer counted so far.
func (t *TurnaroundTracer) Read() (*TurnaroundTrace, error) {
	if !t.k.loaded() {
		return nil, fmt.Errorf("trace: read turnaround: %w", os.ErrClosed)
	}
	r := &TurnaroundTrace{PID: t.target.PID, Thread: t.target.Thread, MapID: t.k.mapID, Queue: t.target.Queue,
		Duration: time.Since(t.started)}
	if err := t.k.read(r); err != nil {
		return nil, err
	}
	r.fillPercentiles()
	return r, nil
}

// Close detaches the tracer. It is idempotent.
func (t *TurnaroundTracer) Close() error { return t.k.close() }

// Percentile returns the upper edge of the bucket holding the p-th percentile (0 < p ≤ 100) of the turnarounds,
// or -1 when it lies beyond the histogram or nothing was counted.
func (t *TurnaroundTrace) Percentile(p float64) time.Duration {
	if t.Count == 0 || p <= 0 || p > 100 {
		return -1
	}
	rank := uint64(math.Ceil(p / 100 * float64(t.Count))) // the fewest turnarounds at or below the percentile
	var seen uint64
	for i, n := range t.Buckets {
		if seen += n; seen >= rank {
			return time.Duration(i+1) * TurnaroundBucket
		}
	}
	return -1
}

func (t *TurnaroundTrace) fillPercentiles() {
	t.P50, t.P90, t.P99, t.P999 = t.Percentile(50), t.Percentile(90), t.Percentile(99), t.Percentile(99.9)
}

// Format prints the turnaround's percentiles and mean.
func (t *TurnaroundTrace) Format(w io.Writer) error {
	var b strings.Builder
	who := fmt.Sprintf("process %d", t.PID)
	if t.Thread != "" {
		who = fmt.Sprintf("thread %q of process %d", t.Thread, t.PID)
	}
	fmt.Fprintf(&b, "turnaround of %s over %s: request redirected into XSKMAP %d slot %d → the thread's next sendto "+
		"or sendmsg\n\n", who, t.Duration.Round(time.Millisecond), t.MapID, t.Queue)
	if t.Count == 0 {
		b.WriteString("no request was answered with a kick: is the server running, on this queue, and sending with " +
			"sendto or sendmsg?\n")
	} else {
		edge := func(d time.Duration) string {
			if d < 0 {
				return fmt.Sprintf("≥ %v", TurnaroundSpan)
			}
			return "≤ " + d.String()
		}
		fmt.Fprintf(&b, "%d turnarounds, mean %v\np50 %s  p90 %s  p99 %s  p99.9 %s", t.Count,
			(t.Total / time.Duration(t.Count)).Round(time.Nanosecond), edge(t.P50), edge(t.P90), edge(t.P99), edge(t.P999))
		if t.Over > 0 {
			fmt.Fprintf(&b, "  (%d of %v or more)", t.Over, TurnaroundSpan)
		}
		b.WriteString("\n")
	}
	writeFooter(&b, 0, t.Cost)
	_, err := io.WriteString(w, b.String())
	return err
}

// The tracer's one state entry (array map, key 0), written by the programs (programs.go).
const (
	tvPending       = 0  // when the oldest request not yet answered arrived (ns), 0 for none
	tvCount         = 8  // turnarounds counted
	tvTotal         = 16 // their sum (ns)
	tvOver          = 24 // those beyond the histogram
	tvBuckets       = 32 // TurnaroundBuckets u64s
	turnaroundValSz = tvBuckets + 8*TurnaroundBuckets
)

// decodeTurnaround reads the state entry into t's counts.
func decodeTurnaround(v []byte, t *TurnaroundTrace) error {
	if len(v) != turnaroundValSz {
		return sizeError("turnaround value", len(v), turnaroundValSz)
	}
	t.Count, t.Total, t.Over = ne.Uint64(v[tvCount:]), time.Duration(ne.Uint64(v[tvTotal:])), ne.Uint64(v[tvOver:])
	for i := range t.Buckets {
		t.Buckets[i] = ne.Uint64(v[tvBuckets+8*i:])
	}
	return nil
}

// encodeTurnaround is decodeTurnaround's inverse, for tests (pending is left 0).
func encodeTurnaround(t *TurnaroundTrace) []byte {
	v := make([]byte, turnaroundValSz)
	ne.PutUint64(v[tvCount:], t.Count)
	ne.PutUint64(v[tvTotal:], uint64(t.Total))
	ne.PutUint64(v[tvOver:], t.Over)
	for i, n := range t.Buckets {
		ne.PutUint64(v[tvBuckets+8*i:], n)
	}
	return v
}
