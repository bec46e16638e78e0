package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"regexp"
	"strings"
	"time"

	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/napilab/napilab/internal/version"
)

//go:embed page.html.tmpl
var pageTemplate string

var pageTmpl = template.Must(template.New("page").Parse(pageTemplate))

// WritePage writes the report of runs as one self-contained HTML page: inline SVG plots, the tables the terminal
// shows, the header of both ends, the notes, how to reproduce each run, and each result document itself in a
// <script type="application/json"> block. It needs no JavaScript and refers to nothing outside itself, so it
// opens offline and travels as a mail attachment.
func WritePage(w io.Writer, runs []*Run) error {
	if len(runs) == 0 {
		return fmt.Errorf("report: no results to show")
	}
	v := newView(runs)
	data := pageData{Generated: version.String()}
	var titles []string
	for i, r := range runs {
		titles = append(titles, v.labels[i])
		data.Runs = append(data.Runs, v.runView(i, r))
	}
	data.Title = "napilab: " + strings.Join(titles, " vs ")
	data.Compare = len(runs) > 1
	s := v.sections()
	data.Summary = svgsOf(s.summary)
	for i, l := range v.loads {
		data.Loads = append(data.Loads, loadView{Label: l.Label, ID: "load-" + slug(l.Short), Figures: svgsOf(s.loads[i])})
	}
	data.Trace = svgsOf(s.trace)
	data.Pollers = v.pollers()
	return pageTmpl.Execute(w, data)
}

// sections are the page's figures: latency against load, then per load its spectrum, CPU and p99 over time,
// then the trace's.
type sections struct {
	summary []*figure
	loads   [][]*figure // per v.loads
	trace   []*figure
}

func (v *view) sections() sections {
	var s sections
	for _, st := range latencyStats {
		s.summary = append(s.summary, v.latencyFigure(st))
	}
	for _, l := range v.loads {
		s.loads = append(s.loads, []*figure{v.spectrumFigure(l), v.cpuFigure(l), v.overTimeFigure(l)})
	}
	s.trace = v.traceFigures()
	return s
}

func svgsOf(fs []*figure) []figView {
	out := make([]figView, len(fs))
	for i, f := range fs {
		out[i] = svgOf(f)
	}
	return out
}

type pageData struct {
	Title, Generated string
	Compare          bool
	Runs             []runView
	Summary          []figView
	Loads            []loadView
	Trace            []figView
	Pollers          []pollerRow
}

type loadView struct {
	Label, ID string
	Figures   []figView
}

type figView struct {
	ID, Title, Caption string
	Gaps               []string
	SVG                template.HTML // empty: nothing to draw
}

type runView struct {
	Letter, Label, Name, Schema string
	Compare                     bool
	Header                      []headerRow
	Started                     string
	Command, Derived            string
	Apps                        []headerRow
	Tables                      []tableView
	Notes                       []Note
	JSON                        template.JS
	JSONID                      string
}

// headerRow is one line of the header: a field and its value at each end ("" is a gap).
type headerRow struct{ Field, Server, Client string }

type tableView struct {
	Caption string
	Grid    grid
	Cols    int
}

type pollerRow struct {
	Run, Mode, Load, Pollers string
}

func (v *view) runView(i int, r *Run) runView {
	h := r.Header
	s, c := h.Server, h.Client
	rv := runView{Letter: v.letter(i), Label: v.labels[i], Name: r.Name, Schema: r.Schema, Compare: len(v.runs) > 1,
		Command: h.Command, Derived: h.Derived, Notes: r.Notes, JSONID: fmt.Sprintf("result-%d", i+1),
		JSON: template.JS(escapeJSON(r.Raw))}
	if !h.Started.IsZero() {
		rv.Started = h.Started.UTC().Format(time.RFC3339) + ", " + h.Elapsed.Round(time.Second).String() + " in all"
	}
	rv.Header = []headerRow{
		{"host", s.Host, c.Host},
		{"napilab", s.Napilab, c.Napilab},
		{"kernel", s.Kernel, c.Kernel},
		{"CPU model", s.CPUModel, c.CPUModel},
		{"NIC driver", s.NICDriver, c.NICDriver},
		{"NIC firmware", s.NICFirmware, c.NICFirmware},
		{"device", s.Device, c.Device},
		{"queue", s.Queue, c.Queue},
		{"XDP", s.XDP, c.XDP},
		{"NAPI ids", s.NAPIIDs, c.NAPIIDs},
		{"benchmark CPU", s.CPU, c.CPU},
	}
	for _, m := range r.Modes {
		if a, ok := h.App[m]; ok {
			rv.Apps = append(rv.Apps, headerRow{Field: m, Server: a})
		}
	}
	rv.Tables = []tableView{
		{Caption: "Latency in ns from each request's scheduled send time to its reply (true percentiles), loss, " +
			"and CPU time per request; median (min–max) over repetitions.", Grid: r.grid(SeedStats)},
		{Caption: "The original xsk_rr's \"pN\" columns for the same runs (means of the lowest N %, as the cover " +
			"letter's table printed them; not percentiles).", Grid: r.grid([]Stat{XskRRP50, XskRRP99})},
		{Caption: "Where the round trip went, in ns: how long requests waited on the server's RX ring (queueing, " +
			"from the XDP program's arrival stamp to the server thread; on veth the stamp is taken in the client's " +
			"softirq right after it sends), the rest of the round trip from the actual send, the server thread's " +
			"busy time per request from RX ring to TX ring, and the requests it found per loop iteration; median " +
			"(min–max) over repetitions, – where a result does not record it.", Grid: r.grid(SplitStats)},
	}
	for i := range rv.Tables {
		rv.Tables[i].Cols = len(r.Modes) + 1
	}
	return rv
}

// pollers lists who polled each traced cell.
func (v *view) pollers() []pollerRow {
	var rows []pollerRow
	for i, r := range v.runs {
		for _, c := range r.Cells {
			if c.Trace == nil || len(c.Trace.Pollers) == 0 {
				continue
			}
			var ps []string
			for _, p := range c.Trace.Pollers {
				ps = append(ps, fmt.Sprintf("%s (%d polls)", p.Name, p.Polls))
			}
			rows = append(rows, pollerRow{Run: v.letter(i), Mode: c.Mode, Load: c.Load.Short, Pollers: strings.Join(ps, ", ")})
		}
	}
	return rows
}

// escapeJSON makes a JSON document safe inside a <script> element: '<' only occurs inside JSON strings, where
// \u003c means the same character, so no "</script>" or "<!--" can end or alter the block. Go's encoder
// already writes '<' that way, so napilab's own results embed byte for byte.
func escapeJSON(raw []byte) string {
	return strings.ReplaceAll(string(raw), "<", `\u003c`)
}

// svgOf renders a figure as inline SVG for the page.
func svgOf(f *figure) figView {
	fv := figView{ID: f.ID, Title: f.Title, Caption: f.Caption, Gaps: f.Gaps}
	if f.plot == nil {
		fv.Gaps = append([]string{"nothing to draw: no cell has these figures"}, fv.Gaps...)
		return fv
	}
	c := vgsvg.NewWith(vgsvg.UseWH(f.w, f.h))
	if err := f.render(draw.New(c)); err != nil {
		fv.Gaps = append(fv.Gaps, err.Error())
		return fv
	}
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		fv.Gaps = append(fv.Gaps, "the plot could not be drawn: "+err.Error())
		return fv
	}
	fv.SVG = template.HTML(inlineSVG(b.String(), f.ID, f.Title))
	return fv
}

var (
	svgPrelude = regexp.MustCompile(`(?s)\A.*?<svg\b[^>]*>`)
	svgSize    = regexp.MustCompile(`width="([^"]+)" height="([^"]+)" viewBox="([^"]+)"`)
	fontFamily = regexp.MustCompile(`font-family:Liberation (Sans|Serif|Mono)`)
)

// inlineSVG turns vgsvg's standalone document into an element for an HTML5 page: without the XML declaration,
// the generator comment and the namespace declarations (the HTML parser puts <svg> in the SVG namespace by
// itself, and a namespace name is not something to fetch, but the page should not even look as if it had an
// address in it), with a title for screen readers, and with fonts named with their metric-compatible
// fallbacks so text keeps its measured width where Liberation is not installed.
func inlineSVG(doc, id, title string) string {
	open := svgPrelude.FindString(doc)
	m := svgSize.FindStringSubmatch(open)
	if m == nil {
		return ""
	}
	tag := fmt.Sprintf(`<svg class="plot" width="%s" height="%s" viewBox="%s" role="img" aria-labelledby="%s-title">`+
		"\n<title id=\"%s-title\">%s</title>", m[1], m[2], m[3], id, id, template.HTMLEscapeString(title))
	body := doc[len(open):]
	body = fontFamily.ReplaceAllStringFunc(body, func(s string) string {
		switch {
		case strings.HasSuffix(s, "Sans"):
			return "font-family:'Liberation Sans',Arial,Helvetica,sans-serif"
		case strings.HasSuffix(s, "Mono"):
			return "font-family:'Liberation Mono','Courier New',monospace"
		}
		return "font-family:'Liberation Serif','Times New Roman',serif"
	})
	return tag + body
}
