package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/hist"
	"github.com/napilab/napilab/internal/rr"
)

func clientDoc(r *rr.ClientResult) *rr.Document {
	w := rr.DefaultWorkload()
	th := rr.DefaultThreads()
	d := rr.NewDocument(rr.RoleClient, rr.DefaultLink("veth-a"), th, rr.LinkInfo{Dev: "veth-a"})
	d.Workload, d.Client = &w, r
	return &d
}

// TestClientReportNothingMeasured: a run without a single reply prints no latency at all, never "0 ns".
func TestClientReportNothingMeasured(t *testing.T) {
	var b bytes.Buffer
	r := &rr.ClientResult{Sent: 1000, Lost: 1000, TargetRate: 12500, SendRate: 12500, Window: time.Second}
	ClientReport(&b, clientDoc(r))
	IntervalLine(&b, rr.Interval{Start: 0, Seconds: 1, Sent: 12500, Lost: 12500})
	out := b.String()
	if strings.Contains(out, "from schedule") || strings.Contains(out, "p50 0 ns p99 0 ns p99.9") ||
		!strings.Contains(out, "none measured") || !strings.Contains(out, "no replies") {
		t.Fatalf("a run without replies reads:\n%s", out)
	}
}

// TestClientReportLoadNotKept: the summary says in its own line that the load was not kept.
func TestClientReportLoadNotKept(t *testing.T) {
	rec, _ := hist.New(hist.DefaultConfig())
	rec.Record(5000)
	var b bytes.Buffer
	r := &rr.ClientResult{Sent: 150000, Answered: 150000, Measured: 1, TargetRate: 1.5e6, SendRate: 150000,
		Window: time.Second, LoadNotKept: true, Latency: rec.Summary(), LatencyFromSend: rec.Summary()}
	ClientReport(&b, clientDoc(r))
	if !strings.Contains(b.String(), "sent 150000 req/s, 10% of the 1500000 targeted: THE LOAD WAS NOT KEPT") {
		t.Fatalf("the report does not say the load was not kept:\n%s", b.String())
	}
}

// TestReportsShowTheSplit: the client's summary has rows for the server's queueing and the rest when its result
// has them, and none when it does not; the server's summary gives its busy time, queueing and batching.
func TestReportsShowTheSplit(t *testing.T) {
	rec, _ := hist.New(hist.DefaultConfig())
	rec.Record(5000)
	r := &rr.ClientResult{Sent: 1, Answered: 1, Measured: 1, Window: time.Second, Latency: rec.Summary(),
		LatencyFromSend: rec.Summary()}
	var b bytes.Buffer
	ClientReport(&b, clientDoc(r))
	if strings.Contains(b.String(), "server queueing") {
		t.Fatalf("a run without a split shows one:\n%s", b.String())
	}
	q, rest := rec.Summary(), rec.Summary()
	q.P50, rest.P50 = 1200, 3800
	r.ServerQueueing, r.RestOfTrip = q, rest
	b.Reset()
	ClientReport(&b, clientDoc(r))
	for _, want := range []string{"server queueing", "1.20 µs", "rest of trip", "3.80 µs"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("the client's report lacks %q:\n%s", want, b.String())
		}
	}

	st := &rr.ServerStats{Received: 10, Replied: 10, Batches: 8, EmptyPolls: 99,
		Busy: hist.Summary{Count: 8, P50: 150, P99: 420, P999: 420, Max: 420}, Queueing: q}
	d := rr.NewDocument(rr.RoleServer, rr.DefaultLink("veth-b"), rr.DefaultThreads(), rr.LinkInfo{Dev: "veth-b"})
	svc := rr.DefaultService()
	d.Service, d.Server = &svc, st
	b.Reset()
	ServerReport(&b, &d)
	for _, want := range []string{"1.25 requests per iteration", "busy      p50 150 ns, p99 420 ns",
		"queueing  p50 1.20 µs"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("the server's report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestClientReportLoopGaps: the summary says how long the receive loop was away from its ring, and that it never
// was when no iteration reached the threshold; a result without the figure (an older document) has no line.
func TestClientReportLoopGaps(t *testing.T) {
	r := &rr.ClientResult{Sent: 1, Window: time.Second, LoopGaps: rr.LoopGaps{Min: 20 * time.Microsecond, Count: 3,
		Total: 7300 * time.Microsecond, Longest: 4800 * time.Microsecond}}
	for _, c := range []struct {
		gaps rr.LoopGaps
		want string
	}{
		{r.LoopGaps, "loop      3 iterations of the receive loop took 20.0 µs or longer, 7.30 ms in all, the longest 4.80 ms"},
		{rr.LoopGaps{Min: 20 * time.Microsecond}, "loop      no iteration of the receive loop took 20.0 µs or longer"},
		{rr.LoopGaps{}, ""},
	} {
		r.LoopGaps = c.gaps
		var b bytes.Buffer
		ClientReport(&b, clientDoc(r))
		if got := b.String(); (c.want == "") == strings.Contains(got, "  loop  ") || !strings.Contains(got, c.want) {
			t.Errorf("with %+v the report reads:\n%s\nwant a line %q", c.gaps, got, c.want)
		}
	}
}
