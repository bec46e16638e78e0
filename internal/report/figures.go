package report

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// view is what the page shows: one run, or several side by side, with the loads and modes of all of them.
type view struct {
	runs   []*Run
	labels []string // per run, unique
	loads  []Load
	modes  []string
	colors map[string]color.Color
}

func newView(runs []*Run) *view {
	v := &view{runs: runs, modes: sortedModes(runs)}
	v.colors = colors(v.modes)
	seen := map[string]int{}
	for _, r := range runs {
		l := r.Label()
		if seen[l]++; seen[l] > 1 || (l != r.Name && slices.ContainsFunc(runs, func(o *Run) bool { return o != r && o.Label() == l })) {
			l += " (" + r.Name + ")"
		}
		v.labels = append(v.labels, l)
		for _, ld := range r.Loads {
			if !slices.ContainsFunc(v.loads, func(o Load) bool { return o.Rate == ld.Rate && o.Delay == ld.Delay }) {
				v.loads = append(v.loads, ld)
			}
		}
	}
	return v
}

// letter names run i in legends and categories: A, B, C …
func (v *view) letter(i int) string {
	if i < 26 {
		return string(rune('A' + i))
	}
	return fmt.Sprintf("R%d", i+1)
}

// gapf records what a figure lacks, once.
func (f *figure) gapf(format string, args ...any) {
	g := fmt.Sprintf(format, args...)
	if !slices.Contains(f.Gaps, g) {
		f.Gaps = append(f.Gaps, g)
	}
}

// who names a mode in a gap: with its run when runs are compared.
func (v *view) who(run int, mode string) string {
	if len(v.runs) > 1 {
		return mode + " (" + v.letter(run) + ")"
	}
	return mode
}

// skipped marks the cells of a mode under a load that have no figures.
func (v *view) skipped(f *figure, run int, mode string, cells []*Cell) {
	for _, c := range cells {
		if c.Client == nil {
			f.gapf("%s: skipped: %s", v.who(run, mode), c.Skipped)
		}
	}
}

// spectrumFigure is the latency percentile spectrum of one load: a line per mode (and repetition), the
// percentile on a nines axis, latency on a log axis.
func (v *view) spectrumFigure(load Load) *figure {
	f := newFigure("spectrum-"+slug(load.Short), "Latency percentiles at "+load.Label,
		"percentile (nines scale: each step is ten times rarer)", "latency (log)")
	f.logY = true
	f.Caption = "One line per mode and repetition: the latency, from each request's scheduled send time, below " +
		"which that share of requests was answered, from each cell's whole histogram. The right end is the " +
		"slowest request but one."
	var all [][]point
	var summaryOnly []string
	var present []string
	var most uint64
	for ri, r := range v.runs {
		for _, m := range r.Modes {
			cells := r.cellsAt(m, load)
			v.skipped(f, ri, m, cells)
			for _, c := range cells {
				pts, exact := spectrum(c)
				if len(pts) == 0 {
					if c.Client != nil {
						f.gapf("%s: no replies measured", v.who(ri, m))
					}
					continue
				}
				if !exact && !slices.Contains(summaryOnly, v.who(ri, m)) {
					summaryOnly = append(summaryOnly, v.who(ri, m))
				}
				f.addLine(pts, lineStyle(v.colors[m], ri), !exact)
				all = append(all, pts)
				most = max(most, c.Client.Latency.Count)
				if !slices.Contains(present, m) {
					present = append(present, m)
				}
			}
		}
	}
	if len(summaryOnly) > 0 {
		f.gapf("the whole histogram is not recorded in this result for %s: the line joins the recorded "+
			"p50, p90, p99, p99.9 and p99.99 (marked)", strings.Join(summaryOnly, ", "))
	}
	lo, hi, ok := dataRange(all...)
	if !ok {
		f.plot = nil
		return f
	}
	f.plot.X.Scale, f.plot.X.Tick.Marker = ninesScale{}, ninesTicks{}
	f.plot.X.Min, f.plot.X.Max = 0.5, ninesTop(most)
	f.logLatencyY(lo, hi)
	f.seriesLegend(v, orderedLike(present, v.modes))
	return f
}

// byLoadFigure draws one figure per load category: the median over repetitions of get, a line per mode,
// with the min–max spread as error bars when there are several repetitions.
func (v *view) byLoadFigure(id, title, yLabel string, get func(*Cell) (float64, bool), logY bool) *figure {
	f := newFigure(id, title, "offered load (requests/s + client processing per reply)", yLabel)
	f.logY = logY
	names := make([]string, len(v.loads))
	for i, l := range v.loads {
		names[i] = l.Short
	}
	var all [][]point
	var present []string
	for ri, r := range v.runs {
		for _, m := range r.Modes {
			var seg []point
			var bars errBars
			flush := func() {
				if len(seg) > 0 {
					f.addLine(seg, lineStyle(v.colors[m], ri), true)
					all = append(all, seg)
					seg = nil
				}
			}
			for li, l := range v.loads {
				cells := r.cellsAt(m, l)
				med, lo, hi, ok := spreadOf(cells, get)
				if !ok || (logY && med <= 0) {
					flush()
					continue
				}
				seg = append(seg, point{float64(li), med})
				if lo != hi {
					bars = append(bars, struct{ x, y, lo, hi float64 }{float64(li), med, lo, hi})
					all = append(all, []point{{0, lo}, {0, hi}})
				}
				if !slices.Contains(present, m) {
					present = append(present, m)
				}
			}
			flush()
			f.addErrBars(bars, v.colors[m])
		}
	}
	lo, hi, ok := dataRange(all...)
	if !ok && !logY && len(present) > 0 {
		ok, hi = true, 0 // every value is 0 (dataRange ranges positive values only): a linear axis still shows it
	}
	if !ok {
		f.plot = nil
		return f
	}
	f.nominalX(names)
	if logY {
		f.logLatencyY(lo, hi)
	} else {
		// All zeros (no interrupt at all, as on veth) still needs a range to draw the line at 0 in.
		f.plot.Y.Min, f.plot.Y.Max = 0, hi*1.1
		if hi <= 0 {
			f.plot.Y.Max = 1
		}
	}
	f.seriesLegend(v, orderedLike(present, v.modes))
	return f
}

// latencyFigure is one percentile against the load.
func (v *view) latencyFigure(st Stat) *figure {
	f := v.byLoadFigure("latency-"+slug(st.Name), st.Name+" latency against load", st.Name+" latency (log)",
		func(c *Cell) (float64, bool) {
			if c.Client == nil || c.Client.Latency.Count == 0 {
				return 0, false
			}
			return st.Get(c.Client), true
		}, true)
	f.Caption = "The median over repetitions; bars show the lowest and highest repetition."
	return f
}

// cpuSegments are the parts a CPU bar is stacked from, bottom up, with their colours (Paul Tol's muted set).
var cpuSegments = []struct {
	name  string
	color color.RGBA
	get   func(cpuSplit) float64
}{
	{"user", color.RGBA{0x88, 0xcc, 0xee, 0xff}, func(s cpuSplit) float64 { return s.User }},
	{"system", color.RGBA{0x44, 0xaa, 0x99, 0xff}, func(s cpuSplit) float64 { return s.System }},
	{"softirq", color.RGBA{0xdd, 0xcc, 0x77, 0xff}, func(s cpuSplit) float64 { return s.SoftIRQ }},
	{"hard IRQ", color.RGBA{0xcc, 0x66, 0x77, 0xff}, func(s cpuSplit) float64 { return s.IRQ }},
	{"NAPI kthread", color.RGBA{0x88, 0x22, 0x55, 0xff}, func(s cpuSplit) float64 { return s.Kthread }},
}

// cpuFigure is the CPU time per request of each mode under one load, stacked by where it went.
func (v *view) cpuFigure(load Load) *figure {
	f := newFigure("cpu-"+slug(load.Short), "CPU time per request at "+load.Label, "", "CPU time per request (µs)")
	f.Caption = "All CPUs of the measuring machine (the client's; in the demo both ends share it) over the measured " +
		"window, from /proc/stat, per request answered; the mean over repetitions. On a shared machine this " +
		"includes other load. The dot is napilab's own threads plus accounted kthreads: the table's cpu/req."
	var names []string
	var splits []cpuSplit
	var dots plotter.XYs
	kthread := false
	for _, m := range v.modes {
		for ri, r := range v.runs {
			if !slices.Contains(r.Modes, m) {
				continue
			}
			name := m
			if len(v.runs) > 1 {
				name += " " + v.letter(ri)
			}
			cells := r.cellsAt(m, load)
			v.skipped(f, ri, m, cells)
			if !slices.ContainsFunc(cells, func(c *Cell) bool { return c.Client != nil }) {
				name += " (skipped)"
			}
			var sum cpuSplit
			n := 0
			for _, c := range cells {
				s, ok := cpuOf(c)
				if !ok {
					if c.Client != nil {
						f.gapf("%s: no CPU accounting recorded", v.who(ri, m))
					}
					continue
				}
				n++
				sum.User, sum.System, sum.SoftIRQ, sum.IRQ = sum.User+s.User, sum.System+s.System, sum.SoftIRQ+s.SoftIRQ, sum.IRQ+s.IRQ
				sum.Kthread, sum.Process = sum.Kthread+s.Kthread, sum.Process+s.Process
				kthread = kthread || s.KthreadKnown
			}
			if n > 0 {
				d := float64(n)
				sum = cpuSplit{User: sum.User / d, System: sum.System / d, SoftIRQ: sum.SoftIRQ / d, IRQ: sum.IRQ / d,
					Kthread: sum.Kthread / d, Process: sum.Process / d}
				dots = append(dots, plotter.XY{X: float64(len(names)), Y: sum.Process / 1e3})
			}
			names = append(names, name)
			splits = append(splits, sum)
		}
	}
	if !kthread {
		f.gapf("NAPI kthreads are not accounted separately in this result: their time is inside system")
	}
	top := 0.0
	for _, s := range splits {
		top = max(top, s.total()/1e3, s.Process/1e3)
	}
	if top == 0 {
		f.plot = nil
		return f
	}
	width := min(vg.Points(40), vg.Points(300)/vg.Length(len(names)))
	var below *plotter.BarChart
	for _, seg := range cpuSegments {
		if seg.name == "NAPI kthread" && !kthread {
			continue
		}
		vals := make(plotter.Values, len(splits))
		for i, s := range splits {
			vals[i] = seg.get(s) / 1e3
		}
		b, err := plotter.NewBarChart(vals, width)
		if err != nil {
			continue
		}
		b.Color, b.LineStyle.Width = seg.color, 0
		if below != nil {
			b.StackOn(below)
		}
		below = b
		f.plot.Add(b)
		f.addLegend(seg.name, b)
	}
	if len(dots) > 0 {
		s, err := plotter.NewScatter(dots)
		if err == nil {
			s.GlyphStyle = draw.GlyphStyle{Color: color.Black, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}
			f.plot.Add(s)
			f.addLegend("napilab + kthreads", s)
		}
	}
	if len(v.runs) > 1 {
		for i := range v.runs {
			f.addLegend(v.letter(i) + ": " + v.labels[i])
		}
	}
	f.nominalX(names)
	f.plot.Y.Min, f.plot.Y.Max = 0, top*1.1
	if longest := slices.MaxFunc(names, func(a, b string) int { return len(a) - len(b) }); len(names)*len(longest) > 50 {
		f.plot.X.Tick.Label.Rotation = math.Pi / 8
		f.plot.X.Tick.Label.XAlign, f.plot.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
	}
	return f
}

// overTimeFigure is each cell's per-interval p99 under one load: drift and hiccups within a cell.
func (v *view) overTimeFigure(load Load) *figure {
	f := newFigure("p99-over-time-"+slug(load.Short), "p99 latency over each cell's run at "+load.Label,
		"time since the cell's measurement began (s)", "p99 in each interval (log)")
	f.logY = true
	f.Caption = "One line per mode and repetition, one point per reporting interval. A last interval shorter " +
		"than half the others (the run's tail) is left out: its few replies make a p99 of noise."
	var all [][]point
	var present []string
	single := 0
	for ri, r := range v.runs {
		for _, m := range r.Modes {
			cells := r.cellsAt(m, load)
			v.skipped(f, ri, m, cells)
			for _, c := range cells {
				pts := p99Over(c)
				if c.Client != nil && len(c.Client.Intervals) <= 1 {
					single++
				}
				if len(pts) == 0 {
					continue
				}
				f.addLine(pts, lineStyle(v.colors[m], ri), true)
				all = append(all, pts)
				if !slices.Contains(present, m) {
					present = append(present, m)
				}
			}
		}
	}
	if single > 0 {
		f.gapf("%d cell(s) recorded one interval for the whole run: nothing over time to show for them "+
			"(sweeps before napilab recorded intervals per cell)", single)
	}
	lo, hi, ok := dataRange(all...)
	if !ok {
		f.plot = nil
		return f
	}
	f.plot.X.Min = 0
	f.logLatencyY(lo, hi)
	f.seriesLegend(v, orderedLike(present, v.modes))
	return f
}

// traceFigures are the trace's packets per poll and IRQs per request against the load, when any run has them.
func (v *view) traceFigures() []*figure {
	traced := false
	for _, r := range v.runs {
		for _, c := range r.Cells {
			traced = traced || c.Trace != nil
		}
	}
	if !traced {
		return nil
	}
	traceOf := func(get func(*Trace) float64) func(*Cell) (float64, bool) {
		return func(c *Cell) (float64, bool) {
			if c.Trace == nil {
				return 0, false
			}
			return get(c.Trace), true
		}
	}
	ppp := v.byLoadFigure("packets-per-poll", "Packets per NAPI poll", "packets per poll",
		traceOf(func(t *Trace) float64 { return t.PacketsPerPoll }), false)
	ppp.Caption = "Mean packets each poll of the server's queue handled: busy polling that finds one packet per " +
		"pass spends its CPU on empty work."
	irq := v.byLoadFigure("irqs-per-request", "Device interrupts per request", "interrupts per request",
		traceOf(func(t *Trace) float64 { return t.IRQsPerRequest }), false)
	irq.Caption = "Hard interrupts of the server's queue per request answered: polling modes should drive this " +
		"toward zero."
	return []*figure{ppp, irq}
}

// spreadOf is the median, min and max of get over cells.
func spreadOf(cells []*Cell, get func(*Cell) (float64, bool)) (med, lo, hi float64, ok bool) {
	var vals []float64
	for _, c := range cells {
		if x, ok := get(c); ok && !math.IsNaN(x) && !math.IsInf(x, 0) {
			vals = append(vals, x)
		}
	}
	if len(vals) == 0 {
		return 0, 0, 0, false
	}
	slices.Sort(vals)
	med = vals[len(vals)/2]
	if len(vals)%2 == 0 {
		med = (vals[len(vals)/2-1] + vals[len(vals)/2]) / 2
	}
	return med, vals[0], vals[len(vals)-1], true
}

// orderedLike returns the members of set in the order of order.
func orderedLike(set, order []string) []string {
	var out []string
	for _, m := range order {
		if slices.Contains(set, m) {
			out = append(out, m)
		}
	}
	return out
}

// slug makes a string safe as a file name and an HTML id.
func slug(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		case r == '+':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	return b.String()
}

var (
	_ plot.Normalizer = ninesScale{}
	_ plot.Ticker     = ninesTicks{}
	_ plot.Ticker     = durationTicks{}
)
