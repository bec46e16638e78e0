// Package report renders sweep results the way people compare polling modes: the threaded-NAPI-busy-poll cover
// letter's table (one row per load, one column per mode, p5/p50/p95/p99 in ns per cell), with true percentiles
// instead of xsk_rr's truncated means, the loss and the CPU each mode spent beside them, and the same data as CSV.
// With several repetitions a cell shows the median and the spread (min–max) across them.
//
// The same results become one self-contained HTML page (WritePage): the latency percentile spectrum on a
// "nines" axis, where each step to the right is ten times rarer (how HdrHistogram, wrk2 and the netdev list read
// tails), the percentiles against the load, the CPU per request stacked by where it went, each cell's p99 over
// time, and, when a result carries them, the trace's packets per poll and interrupts per request. The plots are
// gonum/plot SVG inlined into the page, with fonts named rather than embedded (a few KB per plot instead of about
// half a MB) and metric-compatible fallbacks; the page needs no JavaScript, refers to nothing outside itself and
// embeds the result documents, so it opens offline and travels by mail. WritePNGs and WriteHgrms export the
// plots and each cell's histogram (HdrHistogram's .hgrm text) for issues, mails and HdrHistogram's own tools.
//
// Everything here reads results through one adapter (Read → fromSweep) into Run: a new result layout changes
// that function only, and a field a result does not record is marked on the page, never filled in.
package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/napilab/napilab/internal/hist"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/sweep"
)

// Stat picks one figure out of a cell.
type Stat struct {
	Name string
	Get  func(*rr.ClientResult) float64
	Unit string // "ns", "%", "us"
	// Of, when set, replaces Get: a figure that only some cells record (ok false: not recorded), or one of the
	// server's.
	Of func(*Cell) (float64, bool)
}

// The figures of the cover letter's table, as true percentiles of the latency from the scheduled send time.
var (
	P5  = Stat{Name: "p5", Get: func(r *rr.ClientResult) float64 { return float64(r.Latency.P5) }, Unit: "ns"}
	P50 = Stat{Name: "p50", Get: func(r *rr.ClientResult) float64 { return float64(r.Latency.P50) }, Unit: "ns"}
	P95 = Stat{Name: "p95", Get: func(r *rr.ClientResult) float64 { return float64(r.Latency.P95) }, Unit: "ns"}
	P99 = Stat{Name: "p99", Get: func(r *rr.ClientResult) float64 { return float64(r.Latency.P99) }, Unit: "ns"}
	// P999 goes past what the cover letter could show.
	P999 = Stat{Name: "p99.9", Get: func(r *rr.ClientResult) float64 { return float64(r.Latency.P999) }, Unit: "ns"}
	// CPU is CPU time per request, of the whole process and any kthread polling for it.
	CPU = Stat{Name: "cpu/req", Get: func(r *rr.ClientResult) float64 { return float64(r.CPUPerRequest) / 1e3 }, Unit: "us"}
	// Loss is the share of requests never answered.
	Loss = Stat{Name: "lost", Unit: "%", Get: func(r *rr.ClientResult) float64 {
		if r.Sent == 0 {
			return 0
		}
		return 100 * float64(r.Lost) / float64(r.Sent)
	}}
	// XskRRP50 and XskRRP99 are the original tool's "p50"/"p99" columns, for comparison with published tables.
	XskRRP50 = Stat{Name: "xsk_rr p50", Get: func(r *rr.ClientResult) float64 { return float64(r.XskRRPN[1].Value) }, Unit: "ns"}
	XskRRP99 = Stat{Name: "xsk_rr p99", Get: func(r *rr.ClientResult) float64 { return float64(r.XskRRPN[3].Value) }, Unit: "ns"}
)

// SeedStats are the lines of a cell in the cover letter's table, plus napilab's additions.
var SeedStats = []Stat{P5, P50, P95, P99, P999, Loss, CPU}

// Where the round trip goes: the server's queueing on its RX ring (from the XDP arrival stamp, napilab payloads)
// and the rest of the round trip from the actual send, and the server thread's busy time per request and
// requests per loop iteration that found any.
var (
	QueueingP50 = clientSummary("queueing p50", func(r *rr.ClientResult) (hist.Summary, int64) {
		return r.ServerQueueing, r.ServerQueueing.P50
	})
	QueueingP99 = clientSummary("queueing p99", func(r *rr.ClientResult) (hist.Summary, int64) {
		return r.ServerQueueing, r.ServerQueueing.P99
	})
	RestP50 = clientSummary("rest p50", func(r *rr.ClientResult) (hist.Summary, int64) {
		return r.RestOfTrip, r.RestOfTrip.P50
	})
	RestP99 = clientSummary("rest p99", func(r *rr.ClientResult) (hist.Summary, int64) {
		return r.RestOfTrip, r.RestOfTrip.P99
	})
	BusyP50 = Stat{Name: "server busy p50", Unit: "ns", Of: func(c *Cell) (float64, bool) {
		return float64(c.serverBusy().P50), c.serverBusy().Count > 0
	}}
	BusyP99 = Stat{Name: "server busy p99", Unit: "ns", Of: func(c *Cell) (float64, bool) {
		return float64(c.serverBusy().P99), c.serverBusy().Count > 0
	}}
	PerBatch = Stat{Name: "requests/iteration", Unit: "", Of: func(c *Cell) (float64, bool) {
		if c.Server == nil || c.Server.Batches == 0 {
			return 0, false
		}
		return c.Server.RequestsPerBatch(), true
	}}
)

// SplitStats are the lines of the table that says where the round trip went.
var SplitStats = []Stat{QueueingP50, QueueingP99, RestP50, RestP99, BusyP50, BusyP99, PerBatch}

// clientSummary is a figure of one of the client's summaries that only some results record.
func clientSummary(name string, pick func(*rr.ClientResult) (hist.Summary, int64)) Stat {
	return Stat{Name: name, Unit: "ns", Of: func(c *Cell) (float64, bool) {
		if c.Client == nil {
			return 0, false
		}
		s, v := pick(c.Client)
		return float64(v), s.Count > 0
	}}
}

func (c *Cell) serverBusy() hist.Summary {
	if c.Server == nil {
		return hist.Summary{}
	}
	return c.Server.Busy
}

// value summarises one figure over a cell's repetitions: the median, and the spread when there are several.
func value(cells []*Cell, st Stat) (string, bool) {
	med, lo, hi, ok := spreadOf(cells, func(c *Cell) (float64, bool) {
		switch {
		case st.Of != nil:
			return st.Of(c)
		case c.Client == nil:
			return 0, false
		}
		return st.Get(c.Client), true
	})
	if !ok {
		return "", false
	}
	s := num(med, st.Unit)
	if lo != hi {
		s += " (" + num(lo, st.Unit) + "–" + num(hi, st.Unit) + ")"
	}
	return s, true
}

func num(v float64, unit string) string {
	switch unit {
	case "ns":
		return strconv.FormatInt(int64(v+0.5), 10)
	case "%":
		if v == 0 {
			return "0%"
		}
		return strconv.FormatFloat(v, 'g', 3, 64) + "%"
	case "":
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + unit
}

// grid is the cover letter's table as data: a column per mode, and per load a label and one line per figure.
// The terminal's Markdown and the page's HTML are two renderings of it.
type grid struct {
	Modes []string
	Rows  []gridRow
}

type gridRow struct {
	Label string
	Lines [][]string // per figure, per mode
}

func (r *Run) grid(stats []Stat) grid {
	g := grid{Modes: r.Modes}
	for li, load := range r.Loads {
		row := gridRow{Label: load.Label}
		for si, st := range stats {
			line := make([]string, 0, len(r.Modes))
			for _, mode := range r.Modes {
				cells := r.cellsAt(mode, load)
				if v, ok := value(cells, st); ok {
					line = append(line, st.Name+": "+v)
					continue
				}
				// A mode that was skipped says why once, under its first row.
				if si == 0 && li == 0 && len(cells) > 0 && cells[0].Skipped != "" {
					line = append(line, "skipped: "+cells[0].Skipped)
				} else {
					line = append(line, "–")
				}
			}
			row.Lines = append(row.Lines, line)
		}
		if r.traced() {
			line := make([]string, 0, len(r.Modes))
			for _, mode := range r.Modes {
				line = append(line, observed(r.cellsAt(mode, load)))
			}
			row.Lines = append(row.Lines, line)
		}
		g.Rows = append(g.Rows, row)
	}
	return g
}

// traced reports whether any cell carries a trace of the server's NAPIs.
func (r *Run) traced() bool {
	return slices.ContainsFunc(r.Cells, func(c Cell) bool { return c.Trace != nil })
}

// observed is the poller the server's trace saw in a mode's cells, marked "≠ mode" when it contradicts the mode
// in any repetition: the cell did not measure what its name says.
func observed(cells []*Cell) string {
	var kinds []string
	bad := false
	for _, c := range cells {
		if c.Trace != nil && !slices.Contains(kinds, c.Trace.Kind) {
			kinds = append(kinds, c.Trace.Kind)
		}
		bad = bad || c.Mismatch != ""
	}
	if len(kinds) == 0 {
		return "–"
	}
	s := "polled by: " + strings.Join(kinds, "/")
	if bad {
		s += " ≠ mode"
	}
	return s
}

// Table writes the cover letter's table as Markdown: a header row of modes, then for each load a label row and
// one row per statistic ("| | p50: 13100 | ..."). A mode that was skipped shows why, once, under its first row.
func (r *Run) Table(w io.Writer, stats []Stat) {
	g := r.grid(stats)
	fmt.Fprintf(w, "| Experiment | %s |\n", strings.Join(g.Modes, " | "))
	fmt.Fprintf(w, "|---|%s\n", strings.Repeat("---|", len(g.Modes)))
	for _, row := range g.Rows {
		fmt.Fprintf(w, "| %s |%s\n", row.Label, strings.Repeat(" |", len(g.Modes)))
		for _, line := range row.Lines {
			fmt.Fprintf(w, "|  | %s |\n", strings.Join(line, " | "))
		}
	}
}

// WriteNotes lists, once each, the caveats attached to cells: what a reader must know to read the numbers.
func (r *Run) WriteNotes(w io.Writer) {
	for _, n := range r.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

// String is the note as a line: "mode: text", with the severity when the result grades it.
func (n Note) String() string {
	s := n.Text
	if n.Severity != "" {
		s = string(n.Severity) + ": " + s
	}
	if n.Mode != "" { // a note of the whole run has no mode to name
		s = n.Mode + ": " + s
	}
	return s
}

// CSV writes one row per cell and repetition: the machine-readable form of the sweep.
func (r *Run) CSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"mode", "rate", "delay_ns", "rep", "skipped", "sent", "answered", "lost", "reordered",
		"send_rate", "min_ns", "p5_ns", "p50_ns", "p90_ns", "p95_ns", "p99_ns", "p99_9_ns", "max_ns",
		"xsk_rr_p50_ns", "xsk_rr_p99_ns", "sender_lateness_p99_ns", "cpu_per_request_ns", "gc_cycles"})
	for _, c := range r.Cells {
		rec := []string{c.Mode, f(c.Load.Rate), i(int64(c.Load.Delay)), i(int64(c.Rep)), c.Skipped}
		if r := c.Client; r != nil {
			l := r.Latency
			rec = append(rec, u(r.Sent), u(r.Answered), u(r.Lost), u(r.Reordered), f(r.SendRate), i(l.Min), i(l.P5),
				i(l.P50), i(l.P90), i(l.P95), i(l.P99), i(l.P999), i(l.Max), u(r.XskRRPN[1].Value),
				u(r.XskRRPN[3].Value), i(r.SenderLateness.P99), i(int64(r.CPUPerRequest)), u(r.GCCycles))
		}
		_ = cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

// Table is Run.Table for a result in memory.
func Table(w io.Writer, res *sweep.Result, stats []Stat) { fromSweep("", res).Table(w, stats) }

// Notes is Run.WriteNotes for a result in memory.
func Notes(w io.Writer, res *sweep.Result) { fromSweep("", res).WriteNotes(w) }

// CSV is Run.CSV for a result in memory.
func CSV(w io.Writer, res *sweep.Result) error { return fromSweep("", res).CSV(w) }

func f(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
func i(v int64) string   { return strconv.FormatInt(v, 10) }
func u(v uint64) string  { return strconv.FormatUint(v, 10) }
