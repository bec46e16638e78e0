package report

// The text a napilab rr run prints: live interval lines, the client's and the server's summaries, and the
// per-interval CSV. Package rr returns the data (rr.Document); this is the one place that renders it.

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/napilab/napilab/internal/hist"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/rr"
)

// FormatNs renders nanoseconds for people: "820 ns", "3.51 µs", "1.24 ms", "2.00 s".
func FormatNs(ns int64) string {
	d := float64(ns)
	switch a := max(d, -d); {
	case a < 1e3:
		return strconv.FormatInt(ns, 10) + " ns"
	case a < 1e6:
		return trim(d/1e3) + " µs"
	case a < 1e9:
		return trim(d/1e6) + " ms"
	}
	return trim(d/1e9) + " s"
}

// trim prints three significant digits.
func trim(v float64) string {
	switch a := max(v, -v); {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// IntervalLine writes one live interval line of a client run.
func IntervalLine(w io.Writer, iv rr.Interval) {
	if iv.Replies == 0 {
		fmt.Fprintf(w, "%7.2fs %9.0f req/s  no replies (%d sent)  lost %d\n", iv.Start+iv.Seconds, iv.Rate, iv.Sent,
			iv.Lost)
		return
	}
	fmt.Fprintf(w, "%7.2fs %9.0f req/s  p50 %-9s p99 %-9s p99.9 %-9s max %-9s lost %d reordered %d\n",
		iv.Start+iv.Seconds, iv.Rate, FormatNs(iv.Latency.P50), FormatNs(iv.Latency.P99),
		FormatNs(iv.Latency.P999), FormatNs(iv.Latency.Max), iv.Lost, iv.Reorder)
}

// ClientReport writes the human summary of a client run.
func ClientReport(w io.Writer, d *rr.Document) {
	p, th, r, l := d.Workload, d.Threads, d.Client, d.Link
	fmt.Fprintf(w, "\nnapilab rr client → %s on %s queue %d (%s XDP, %s, NAPI id %d)\n",
		l.PeerIP, l.Dev, l.Queue, l.XDPMode, bindWord(l.ZeroCopy), l.NAPIID)
	load := fmt.Sprintf("closed loop, %d outstanding", p.Outstanding)
	switch {
	case p.Windowed():
		load = fmt.Sprintf("paced window at %.0f req/s, at most %d in flight (period %s, catch-up %s)", p.Rate(),
			p.Outstanding, FormatNs(int64(p.Period)), p.CatchUp)
	case p.OpenLoop():
		load = fmt.Sprintf("open loop at %.0f req/s (period %s, catch-up %s)", p.Rate(), FormatNs(int64(p.Period)), p.CatchUp)
	}
	fmt.Fprintf(w, "  load      %s; %d B %s payload; sender %s, poll %s", load, p.Payload, p.Format,
		r.Placement.Sender, th.Poll)
	if p.Delay > 0 {
		fmt.Fprintf(w, "; %s processing after each reply", FormatNs(int64(p.Delay)))
	}
	fmt.Fprintln(w)
	lossPct := 0.0
	if r.Sent > 0 {
		lossPct = 100 * float64(r.Lost) / float64(r.Sent)
	}
	fmt.Fprintf(w, "  requests  sent %d, answered %d, lost %d (%.3f%%), reordered %d, duplicates %d, late %d, stray %d, malformed %d\n",
		r.Sent, r.Answered, r.Lost, lossPct, r.Reordered, r.Duplicates, r.Late, r.Stray, r.Malformed)
	sent := fmt.Sprintf("sent %.0f req/s (target %.0f)", r.SendRate, r.TargetRate)
	switch {
	case r.TargetRate == 0:
		sent = fmt.Sprintf("sent %.0f req/s", r.SendRate)
	case r.LoadNotKept:
		sent = fmt.Sprintf("sent %.0f req/s, %.0f%% of the %.0f targeted: THE LOAD WAS NOT KEPT", r.SendRate,
			100*r.SendRate/r.TargetRate, r.TargetRate)
	}
	fmt.Fprintf(w, "  window    %s measured after %s warm-up; %s, %.0f replies/s; sender lateness p50 %s p99 %s\n",
		FormatNs(int64(r.Window)), FormatNs(int64(p.Warmup)), sent, r.ReplyRate,
		FormatNs(r.SenderLateness.P50), FormatNs(r.SenderLateness.P99))
	if g := r.LoopGaps; g.Min > 0 {
		fmt.Fprintf(w, "  loop      %s\n", loopGaps(g))
	}
	if r.Measured == 0 {
		// Percentiles of nothing would print as "0 ns": a latency nobody measured.
		fmt.Fprintf(w, "  latency   none measured: no reply came back within the measured window\n")
	} else {
		latencyRows(w, r)
	}
	if u := r.Usage; u != nil {
		fmt.Fprintf(w, "  cpu       process usr %s sys %s over %s; %s CPU per request; context switches %d voluntary, %d involuntary; GC cycles %d\n",
			FormatNs(int64(u.User)), FormatNs(int64(u.Sys)), FormatNs(int64(u.Wall)), FormatNs(int64(r.CPUPerRequest)),
			u.VolCtxSw, u.InvolCtxSw, r.GCCycles)
		for _, c := range u.CPUs {
			fmt.Fprintf(w, "            cpu%d usr %5.1f%% sys %5.1f%% softirq %5.1f%% irq %5.1f%% idle %5.1f%%\n",
				c.CPU, c.User, c.System, c.SoftIRQ, c.IRQ, c.Idle)
		}
		for name, t := range u.Tasks {
			fmt.Fprintf(w, "            %s (%s) on CPU %.1f%%\n", name, t.Name, t.Percent)
		}
		for irq, a := range u.IRQs {
			fmt.Fprintf(w, "            IRQ %s: %d interrupts\n", irq, a.Total)
		}
	}
	x := r.XSK
	fmt.Fprintf(w, "  kernel    XDP stats: rx dropped %d, rx ring full %d, fill ring empty %d, invalid descs rx %d tx %d\n",
		x.RxDropped, x.RxRingFull, x.RxFillRingEmptyDescs, x.RxInvalidDescs, x.TxInvalidDescs)
	writeNotes(w, note.Merge(append([]note.Note{}, l.Notes...), r.Notes...))
}

// loopGaps says how often the receive loop was away from its ring for Min or longer (rr.LoopGaps).
func loopGaps(g rr.LoopGaps) string {
	if g.Count == 0 {
		return fmt.Sprintf("no iteration of the receive loop took %s or longer", FormatNs(int64(g.Min)))
	}
	return fmt.Sprintf("%d iterations of the receive loop took %s or longer, %s in all, the longest %s: its "+
		"thread off the CPU (another task, an interrupt, the hypervisor) or a long kick", g.Count,
		FormatNs(int64(g.Min)), FormatNs(int64(g.Total)), FormatNs(int64(g.Longest)))
}

// latencyRows writes the latency table of a run that measured replies.
func latencyRows(w io.Writer, r *rr.ClientResult) {
	fmt.Fprintf(w, "  latency   %-15s %9s %9s %9s %9s %9s %9s %9s %9s\n", "", "min", "p5", "p50", "p90", "p99", "p99.9", "p99.99", "max")
	row := func(name string, s hist.Summary) {
		fmt.Fprintf(w, "            %-15s %9s %9s %9s %9s %9s %9s %9s %9s\n", name, FormatNs(s.Min), FormatNs(s.P5),
			FormatNs(s.P50), FormatNs(s.P90), FormatNs(s.P99), FormatNs(s.P999), FormatNs(s.P9999), FormatNs(s.Max))
	}
	row("from schedule", r.Latency)
	row("from send", r.LatencyFromSend)
	if r.ServerQueueing.Count > 0 {
		row("server queueing", r.ServerQueueing)
		row("rest of trip", r.RestOfTrip)
	}
	pn := make([]string, 0, 4)
	for _, c := range r.XskRRPN {
		pn = append(pn, fmt.Sprintf("p%d %s", c.P, FormatNs(int64(c.Value))))
	}
	fmt.Fprintf(w, "  xsk_rr    %s  (the original's \"pN\": means of the lowest N%%, not percentiles)\n", strings.Join(pn, "  "))
}

// ServerReport writes the human summary of a server run.
func ServerReport(w io.Writer, d *rr.Document) {
	s, l := d.Server, d.Link
	fmt.Fprintf(w, "\nnapilab rr server on %s queue %d (%s XDP, %s, NAPI id %d), %s replies\n",
		l.Dev, l.Queue, l.XDPMode, bindWord(l.ZeroCopy), l.NAPIID, d.Service.Reply)
	fmt.Fprintf(w, "  requests  received %d, replied %d, refused %d%s, checksums fixed %d, TX full %d, largest backlog %d\n",
		s.Received, s.Replied, s.Refused(), refusals(s), s.ChecksumFixed, s.TXFull, s.MaxBatch)
	if s.Batches > 0 {
		fmt.Fprintf(w, "  loop      %.2f requests per iteration that found any (%d iterations, %d empty polls); "+
			"GC cycles %d\n", s.RequestsPerBatch(), s.Batches, s.EmptyPolls, s.GCCycles)
	}
	for _, r := range []struct {
		name, what string
		s          hist.Summary
	}{{"busy", "per request, RX ring to TX ring", s.Busy}, {"queueing", "on the RX ring, from the XDP stamp", s.Queueing}} {
		if r.s.Count > 0 {
			fmt.Fprintf(w, "  %-9s p50 %s, p99 %s, p99.9 %s, max %s %s (%d samples)\n", r.name, FormatNs(r.s.P50),
				FormatNs(r.s.P99), FormatNs(r.s.P999), FormatNs(r.s.Max), r.what, r.s.Count)
		}
	}
	x := s.XSK
	fmt.Fprintf(w, "  kernel    XDP stats: rx dropped %d, rx ring full %d, fill ring empty %d\n",
		x.RxDropped, x.RxRingFull, x.RxFillRingEmptyDescs)
	writeNotes(w, note.Merge(append([]note.Note{}, l.Notes...), s.Notes...))
}

// refusals lists the reasons a server refused requests for, e.g. " (bad checksum 3, short 1)"; "" for none.
func refusals(s *rr.ServerStats) string {
	var parts []string
	for _, r := range []struct {
		name string
		n    uint64
	}{{"malformed", s.Malformed}, {"other port", s.OtherPort}, {"bad address", s.BadAddress},
		{"shorter than the header", s.Short}, {"wrong size", s.BadSize}, {"bad checksum", s.BadChecksum},
		{"partial checksum", s.PartialChecksum}, {"bad payload", s.BadPayload}} {
		if r.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r.name, r.n))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func writeNotes(w io.Writer, notes []note.Note) {
	for _, n := range notes {
		fmt.Fprintf(w, "  %-9s %s\n", n.Severity, n.Text)
	}
}

func bindWord(zc bool) string {
	if zc {
		return "zero-copy"
	}
	return "copy mode"
}

// IntervalsCSV writes one row per interval: the per-interval samples a plot or a spreadsheet wants.
func IntervalsCSV(w io.Writer, ivs []rr.Interval) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"start_s", "seconds", "replies", "replies_per_s", "sent", "lost", "reordered", "empty_pct",
		"min_ns", "p50_ns", "p90_ns", "p99_ns", "p99_9_ns", "max_ns", "mean_ns", "xsk_rr_p50_ns", "xsk_rr_p99_ns"})
	for _, iv := range ivs {
		l := iv.Latency
		_ = cw.Write([]string{f64(iv.Start), f64(iv.Seconds), u64(iv.Replies), f64(iv.Rate), u64(iv.Sent), u64(iv.Lost),
			u64(iv.Reorder), u64(iv.EmptyPct), i64(l.Min), i64(l.P50), i64(l.P90), i64(l.P99), i64(l.P999), i64(l.Max),
			f64(l.Mean), u64(iv.PN[1].Value), u64(iv.PN[3].Value)})
	}
	cw.Flush()
	return cw.Error()
}

func f64(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
func u64(v uint64) string  { return strconv.FormatUint(v, 10) }
func i64(v int64) string   { return strconv.FormatInt(v, 10) }
