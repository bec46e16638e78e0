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
