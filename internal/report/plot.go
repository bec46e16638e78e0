package report

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// figure is one plot of the page: an id (its anchor and PNG file name), a title and caption, the gonum plot, a
// legend drawn beside the data rather than over it, and what the result lacks for it (marked on the page).
type figure struct {
	ID, Title, Caption string
	Gaps               []string
	plot               *plot.Plot
	legend             plot.Legend
	legendNames        []string
	yLabel             text.Style
	yLabelText         string
	logY               bool // the Y axis is logarithmic: only positive values can be drawn
	w, h               vg.Length
}

// Figure sizes: a wide one for plots with many categories, a normal one for the rest.
const (
	figW      = 6.4 * vg.Inch
	figH      = 3.6 * vg.Inch
	legendGap = 8 * vg.Length(1) // points
)

// draw draws the Y label, the plot and, to its right, the legend. The figure draws the Y label itself: gonum
// places the label's bounding box at the linear midpoint of the axis's data range, which on a log axis lies
// near the top, and then shrinks the plot to make room for a label that is not there.
func (f *figure) draw(c draw.Canvas) {
	lw := vg.Length(0)
	if f.legendEntries() > 0 {
		lw = f.legendWidth() + legendGap
	}
	yw := f.yLabel.Height(f.yLabelText) + vg.Points(4)
	mid := vg.Point{X: c.Min.X + yw/2, Y: (c.Min.Y + c.Max.Y) / 2}
	c.FillText(f.yLabel, mid, f.yLabelText)
	f.plot.Draw(draw.Crop(c, yw, -lw, 0, 0))
	if lw > 0 {
		l := f.legend
		l.Top, l.Left = true, true
		l.YOffs = -vg.Points(8)
		l.Draw(draw.Crop(c, c.Max.X-c.Min.X-lw+legendGap, 0, 0, 0))
	}
}

// render draws the figure, turning a panic of the plotting library (it panics on data it cannot scale) into an
// error the page shows in place of the plot: a result file must never crash the report.
func (f *figure) render(c draw.Canvas) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("this plot could not be drawn: %v", r)
		}
	}()
	f.draw(c)
	return nil
}

// legendEntries counts the legend's lines; gonum keeps them private, so the figure counts what it adds.
func (f *figure) legendEntries() int { return len(f.legendNames) }

func (f *figure) legendWidth() vg.Length {
	var w vg.Length
	for _, n := range f.legendNames {
		w = max(w, f.legend.TextStyle.Width(n))
	}
	// The SVG names its font: where Liberation Sans and Arial are both missing, the browser substitutes a wider
	// sans-serif (DejaVu Sans is about 15 % wider), and the legend must still fit.
	return w*5/4 + f.legend.ThumbnailWidth + f.legend.TextStyle.Width(" ")
}

// addLegend adds a legend line.
func (f *figure) addLegend(name string, thumbs ...plot.Thumbnailer) {
	f.legend.Add(name, thumbs...)
	f.legendNames = append(f.legendNames, name)
}

// newFigure starts a figure with napilab's plot style: sans-serif text (Liberation Sans, metric-compatible with
// Arial and Helvetica, so an SVG that names the font lays out the same where it is substituted), a light grid.
func newFigure(id, title, xLabel, yLabel string) *figure {
	p := plot.New()
	p.Title.Text, p.X.Label.Text = title, xLabel
	sans := func(s *font.Font, size vg.Length) {
		s.Variant, s.Size = "Sans", size
	}
	sans(&p.Title.TextStyle.Font, 11)
	sans(&p.X.Label.TextStyle.Font, 9.5)
	sans(&p.X.Tick.Label.Font, 8.5)
	sans(&p.Y.Tick.Label.Font, 8.5)
	p.Title.Padding = vg.Points(6)
	grid := plotter.NewGrid()
	grid.Vertical.Color, grid.Horizontal.Color = color.Gray{Y: 225}, color.Gray{Y: 225}
	p.Add(grid)
	f := &figure{ID: id, Title: title, plot: p, legend: plot.NewLegend(), w: figW, h: figH, yLabelText: yLabel,
		yLabel: p.X.Label.TextStyle}
	f.yLabel.Rotation, f.yLabel.XAlign, f.yLabel.YAlign = math.Pi/2, draw.XCenter, draw.YCenter
	sans(&f.legend.TextStyle.Font, 8.5)
	f.legend.ThumbnailWidth = vg.Points(18)
	return f
}

// Colours: one per mode, the same in every plot and page (Okabe and Ito's palette, readable by colour-blind
// readers); modes napilab does not know take the spare ones in order of appearance.
var (
	modeColors = map[string]color.RGBA{
		"interrupts":         {0x00, 0x72, 0xb2, 0xff},
		"busy-poll":          {0xe6, 0x9f, 0x00, 0xff},
		"busy-poll-separate": {0x00, 0x9e, 0x73, 0xff},
		"threaded":           {0xcc, 0x79, 0xa7, 0xff},
		"threaded-busy-poll": {0xd5, 0x5e, 0x00, 0xff},
		"irq-suspend":        {0x56, 0xb4, 0xe9, 0xff},
	}
	spareColors = []color.RGBA{{0x00, 0x00, 0x00, 0xff}, {0x88, 0x88, 0x88, 0xff}, {0xb8, 0xa0, 0x00, 0xff}}
)

// colors assigns each mode its colour.
func colors(modes []string) map[string]color.Color {
	out := map[string]color.Color{}
	spare := 0
	for _, m := range modes {
		if c, ok := modeColors[m]; ok {
			out[m] = c
			continue
		}
		out[m] = spareColors[spare%len(spareColors)]
		spare++
	}
	return out
}

// runDashes tells compared runs apart: solid, dashed, dotted, dash-dotted.
var runDashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(1.5), vg.Points(2)},
	{vg.Points(6), vg.Points(2), vg.Points(1.5), vg.Points(2)}}

func runDash(i int) []vg.Length { return runDashes[i%len(runDashes)] }

// lineStyle is the line of one mode in one run.
func lineStyle(c color.Color, run int) draw.LineStyle {
	return draw.LineStyle{Color: c, Width: vg.Points(1.4), Dashes: runDash(run)}
}

// seriesLegend adds one line per mode (its colour) and, when runs are compared, one per run (its dash).
func (f *figure) seriesLegend(v *view, modes []string) {
	for _, m := range modes {
		f.addLegend(m, &plotter.Line{LineStyle: lineStyle(v.colors[m], 0)})
	}
	if len(v.runs) > 1 {
		for i := range v.runs {
			f.addLegend(v.letter(i)+": "+v.labels[i], &plotter.Line{LineStyle: lineStyle(color.Gray{Y: 60}, i)})
		}
	}
}

// addLine adds a line through pts with markers; a line needs finite points, so anything else is dropped.
func (f *figure) addLine(pts []point, ls draw.LineStyle, marks bool) {
	xys := make(plotter.XYs, 0, len(pts))
	for _, p := range pts {
		if !math.IsNaN(p.X+p.Y) && !math.IsInf(p.X+p.Y, 0) && (p.Y > 0 || !f.logY) {
			xys = append(xys, plotter.XY{X: p.X, Y: p.Y})
		}
	}
	if len(xys) == 0 {
		return
	}
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return
	}
	l.LineStyle = ls
	s.GlyphStyle = draw.GlyphStyle{Color: ls.Color, Radius: vg.Points(1.6), Shape: draw.CircleGlyph{}}
	if marks {
		f.plot.Add(l, s)
	} else {
		f.plot.Add(l)
	}
}

// logLatencyY makes the Y axis a logarithmic latency axis over [lo, hi] ns, with unit-bearing ticks. Set logY
// before adding data, so that values a log axis cannot show are left out.
func (f *figure) logLatencyY(lo, hi float64) {
	lo, hi = max(lo, 1), max(hi, 1)
	f.plot.Y.Scale = plot.LogScale{}
	f.plot.Y.Tick.Marker = durationTicks{}
	f.plot.Y.Min, f.plot.Y.Max = lo/1.25, hi*1.25
}

// durationTicks labels a log axis of nanoseconds at each decade ("1 µs", "10 µs") and, over a narrow range,
// also at 2 and 5 of each decade.
type durationTicks struct{}

// Ticks implements plot.Ticker.
func (durationTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) {
		return nil
	}
	narrow := hi/lo < 1000
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		dec := math.Pow(10, e)
		for m := 1.0; m < 10; m++ {
			v := m * dec
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || (narrow && (m == 2 || m == 5)) {
				t.Label = durationLabel(v)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// ninesTicks labels a quantile axis at 50 %, 90 %, 99 %, 99.9 % … up to its end.
type ninesTicks struct{}

// Ticks implements plot.Ticker.
func (ninesTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for k := 0; k <= 9; k++ {
		q, label := 0.5, "50%"
		if k > 0 {
			q, label = 1-math.Pow(10, -float64(k)), ninesLabel(k)
		}
		if q >= lo-1e-12 && q <= hi+1e-12 {
			ticks = append(ticks, plot.Tick{Value: q, Label: label})
		}
	}
	return ticks
}

// ninesLabel writes 1−10^−k as a percentage from its digits: "90%", "99%", "99.9%", "99.99%".
func ninesLabel(k int) string {
	switch k {
	case 1:
		return "90%"
	case 2:
		return "99%"
	}
	return "99." + strings.Repeat("9", k-2) + "%"
}

// ninesTop is the end of a nines axis that shows n samples: the first tick (99 %, 99.9 % …) at or beyond the
// highest rank but one, 1−1/n; at least 99.99 %, at most 99.9999 %.
func ninesTop(n uint64) float64 {
	k := math.Ceil(math.Log10(max(float64(n), 1)))
	k = min(max(k, 4), 6)
	return 1 - math.Pow(10, -k)
}

// nominalX puts categories on the X axis at 0, 1, 2 …
func (f *figure) nominalX(names []string) {
	f.plot.NominalX(names...)
	f.plot.X.Min, f.plot.X.Max = -0.5, float64(len(names))-0.5
}

// errBars is a median with its min–max spread, for YErrorBars.
type errBars []struct{ x, y, lo, hi float64 }

func (e errBars) Len() int                        { return len(e) }
func (e errBars) XY(i int) (float64, float64)     { return e[i].x, e[i].y }
func (e errBars) YError(i int) (float64, float64) { return e[i].y - e[i].lo, e[i].hi - e[i].y }

func (f *figure) addErrBars(e errBars, c color.Color) {
	e = slices.DeleteFunc(e, func(b struct{ x, y, lo, hi float64 }) bool { return f.logY && b.lo <= 0 })
	if len(e) == 0 {
		return
	}
	b, err := plotter.NewYErrorBars(e)
	if err != nil {
		return
	}
	b.LineStyle = draw.LineStyle{Color: c, Width: vg.Points(1)}
	b.CapWidth = vg.Points(5)
	f.plot.Add(b)
}

// dataRange is the smallest and largest positive y of pts; ok is false when there is none.
func dataRange(pts ...[]point) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, ps := range pts {
		for _, p := range ps {
			if p.Y > 0 && !math.IsInf(p.Y, 0) {
				lo, hi, ok = min(lo, p.Y), max(hi, p.Y), true
			}
		}
	}
	return lo, hi, ok
}

// sortedModes lists modes in the order of the first run that has them.
func sortedModes(runs []*Run) []string {
	var out []string
	for _, r := range runs {
		for _, m := range r.Modes {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}
