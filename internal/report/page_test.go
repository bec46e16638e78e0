package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/napilab/napilab/internal/version"
)

// demoFile is a real result: `napilab demo --modes interrupts,busy-poll,threaded,threaded-busy-poll --duration
// 500ms --warmup 100ms --load 12.5k,12.5k+30us --reps 2 --json` on a 2-vCPU Debian 12 machine (kernel 6.18,
// veth), with the server's trace in every cell; threaded-busy-poll was skipped there (no CPU of its own).
const demoFile = "testdata/demo.json"

func readDemo(t testing.TB) *Run {
	t.Helper()
	raw, err := os.ReadFile(demoFile)
	if err != nil {
		t.Fatal(err)
	}
	run, err := Read("demo.json", raw)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// page renders runs, with character references resolved (html/template writes "+" as "&#43;") so that tests can
// look for text as a reader sees it.
func page(t testing.TB, runs ...*Run) string {
	t.Helper()
	return html.UnescapeString(rawPage(t, runs...))
}

func rawPage(t testing.TB, runs ...*Run) string {
	t.Helper()
	var b bytes.Buffer
	if err := WritePage(&b, runs); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestNinesAxis(t *testing.T) {
	n := ninesScale{}
	for _, c := range []struct{ q, want float64 }{
		{0.5, 0},
		{0.9999, 1},
		{0.99, (2 - math.Log10(2)) / (4 - math.Log10(2))},
		{0.9, (1 - math.Log10(2)) / (4 - math.Log10(2))},
	} {
		if got := n.Normalize(0.5, 0.9999, c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Normalize(0.5, 0.9999, %v) = %v, want %v", c.q, got, c.want)
		}
	}
	// Each nine takes the same room.
	a, b := n.Normalize(0.5, 0.9999, 0.99)-n.Normalize(0.5, 0.9999, 0.9), n.Normalize(0.5, 0.9999, 0.999)-n.Normalize(0.5, 0.9999, 0.99)
	if math.Abs(a-b) > 1e-9 {
		t.Errorf("90→99 %% takes %v, 99→99.9 %% takes %v", a, b)
	}
	if got := n.Normalize(0.5, 0.9999, 1); math.IsInf(got, 0) || math.IsNaN(got) {
		t.Errorf("a quantile of 1 normalises to %v", got)
	}
	var labels []string
	for _, tk := range (ninesTicks{}).Ticks(0.5, ninesTop(25000)) {
		labels = append(labels, tk.Label)
	}
	if want := []string{"50%", "90%", "99%", "99.9%", "99.99%", "99.999%"}; !slices.Equal(labels, want) {
		t.Errorf("nines ticks %q, want %q", labels, want)
	}
	for n, want := range map[uint64]float64{0: 0.9999, 1000: 0.9999, 25000: 0.99999, 1e9: 0.999999} {
		if got := ninesTop(n); math.Abs(got-want) > 1e-12 {
			t.Errorf("ninesTop(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestDurationTicks(t *testing.T) {
	var labels []string
	for _, tk := range (durationTicks{}).Ticks(800, 600e3) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	// Under three decades: every decade, and 2 and 5 of each.
	want := []string{"1 µs", "2 µs", "5 µs", "10 µs", "20 µs", "50 µs", "100 µs", "200 µs", "500 µs"}
	if !slices.Equal(labels, want) {
		t.Errorf("labels %q, want %q", labels, want)
	}
	for _, tk := range (durationTicks{}).Ticks(1e3, 1e9) {
		if tk.Label != "" && !slices.Contains([]string{"1 µs", "10 µs", "100 µs", "1 ms", "10 ms", "100 ms", "1 s"}, tk.Label) {
			t.Errorf("a wide axis labels %q: only decades expected", tk.Label)
		}
	}
	if ticks := (durationTicks{}).Ticks(0, 10); ticks != nil {
		t.Errorf("a range from 0 has ticks %v: a log axis cannot show 0", ticks)
	}
}

// skeleton reduces the page to its structure: one line per element (with its id or class) and per piece of
// text, path data and coordinates left out, runs of identical lines folded. It is what the golden file pins: a
// change of layout, a lost plot, a new legend entry or tick label shows; a pixel does not.
func skeleton(t *testing.T, page string) string {
	t.Helper()
	page = strings.ReplaceAll(page, version.String(), "VERSION")
	z := html.NewTokenizer(strings.NewReader(page))
	var lines []string
	depth := 0
	inScript := false
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return fold(lines)
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			line := strings.Repeat(" ", depth) + tok.Data
			for _, a := range tok.Attr {
				if a.Key == "id" || a.Key == "class" || a.Key == "type" {
					line += " " + a.Key + "=" + a.Val
				}
			}
			lines = append(lines, line)
			inScript = tok.Data == "script"
			if tt == html.StartTagToken && !voidElement(tok.Data) {
				depth++
			}
		case html.EndTagToken:
			depth--
			inScript = false
		case html.TextToken:
			text := strings.Join(strings.Fields(string(z.Text())), " ")
			if inScript {
				text = fmt.Sprintf("(%d bytes of JSON)", len(text))
			}
			if text != "" {
				lines = append(lines, strings.Repeat(" ", depth)+"“"+text+"”")
			}
		}
	}
}

func voidElement(tag string) bool {
	return slices.Contains([]string{"meta", "br", "img", "link", "input", "hr"}, tag)
}

func fold(lines []string) string {
	var b strings.Builder
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && lines[j] == lines[i] {
			j++
		}
		b.WriteString(lines[i])
		if j-i > 1 {
			fmt.Fprintf(&b, " ×%d", j-i)
		}
		b.WriteString("\n")
		i = j
	}
	return b.String()
}

func TestPageGolden(t *testing.T) {
	golden(t, "page.skeleton", []byte(skeleton(t, rawPage(t, readDemo(t)))))
}

func TestPageHasEveryPlot(t *testing.T) {
	p := page(t, readDemo(t))
	for _, id := range []string{"latency-p50", "latency-p99", "latency-p99.9",
		"spectrum-12.5k", "cpu-12.5k", "p99-over-time-12.5k",
		"spectrum-12.5k+30us", "cpu-12.5k+30us", "p99-over-time-12.5k+30us", "packets-per-poll", "irqs-per-request"} {
		re := regexp.MustCompile(`<figure id="` + regexp.QuoteMeta(id) + `">\s*<svg class="plot"[^>]*>\s*<title[^>]*>[^<]+</title>`)
		if !re.MatchString(p) {
			t.Errorf("figure %s has no inline SVG plot", id)
		}
	}
	for _, want := range []string{
		"threaded-busy-poll: skipped: needs a CPU of its own", // the skipped cell, marked under its plots
		"polled by: softirq ≠ mode",                           // the trace's attestation: busy polling on veth reaches no NAPI
		"napilab demo --modes interrupts,busy-poll,threaded,threaded-busy-poll --duration 500ms --warmup 100ms " +
			"--load 12.5k,12.5k+30us --reps 2", // as recorded
		"p99.9: ", "xsk_rr p50: ", // both of the terminal's tables
	} {
		if !strings.Contains(p, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// TestPageIsSelfContained: nothing in the page refers outside it. Inline SVG in HTML5 needs no namespace
// declaration, so the page carries none, and no address of any kind appears, not even as a namespace name.
func TestPageIsSelfContained(t *testing.T) {
	p := rawPage(t, readDemo(t))
	for _, bad := range []string{"http://", "https://", "url(", "@import", "<link", "<img", "<iframe", "xmlns", "//"} {
		if i := strings.Index(p, bad); i >= 0 && !(bad == "//" && inScriptJSON(p, i)) {
			t.Errorf("the page contains %q: …%s…", bad, p[max(i-60, 0):min(i+60, len(p))])
		}
	}
	for _, m := range regexp.MustCompile(`(?i)\b(?:href|src)="([^"]*)"`).FindAllStringSubmatch(p, -1) {
		if !strings.HasPrefix(m[1], "#") {
			t.Errorf("the page refers to %q", m[1])
		}
	}
	if strings.Contains(strings.ToLower(p), "<script>") || strings.Contains(p, "javascript") {
		t.Error("the page has executable script; it must need none")
	}
}

func inScriptJSON(page string, i int) bool {
	open := strings.LastIndex(page[:i], `<script type="application/json"`)
	return open >= 0 && !strings.Contains(page[open:i], "</script>")
}

// embedded returns the JSON documents the page embeds, by element id.
func embedded(t *testing.T, page string) map[string]string {
	t.Helper()
	out := map[string]string{}
	re := regexp.MustCompile(`(?s)<script type="application/json" id="([^"]+)">(.*?)</script>`)
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		out[m[1]] = m[2]
	}
	return out
}

func TestEmbeddedJSONRoundTrips(t *testing.T) {
	raw, err := os.ReadFile(demoFile)
	if err != nil {
		t.Fatal(err)
	}
	docs := embedded(t, rawPage(t, readDemo(t)))
	if docs["result-1"] != string(raw) {
		t.Fatalf("the embedded document (%d bytes) differs from the file (%d bytes)", len(docs["result-1"]), len(raw))
	}
	// The page is its own data: report reads the embedded document back to the same run.
	again, err := Read("again", []byte(docs["result-1"]))
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Cells) != len(readDemo(t).Cells) {
		t.Fatalf("read back %d cells", len(again.Cells))
	}

	// A hand-written document whose text would close the script element still round-trips, as JSON.
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	cells := doc["cells"].([]any)
	cells[0].(map[string]any)["notes"] = []any{map[string]any{"severity": "warning",
		"text": "</script><script>alert(1)</script><!-- x"}}
	var hostile bytes.Buffer
	enc := json.NewEncoder(&hostile)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	run, err := Read("hostile.json", hostile.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	p := rawPage(t, run)
	if strings.Count(p, "</script>") != 1 || strings.Contains(p, "<script>") {
		t.Fatal("the note's text closed or opened a script element")
	}
	var got, want any
	if err := json.Unmarshal([]byte(embedded(t, p)["result-1"]), &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(hostile.Bytes(), &want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatal("the embedded document does not read as the original")
	}
}

func TestReadBadInput(t *testing.T) {
	raw, err := os.ReadFile(demoFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ in, want string }{
		"not JSON":      {"p50 13100 p99 25000\n", "is not a JSON object"},
		"truncated":     {string(raw[:len(raw)/2]), "is not a JSON object"},
		"an array":      {"[1, 2]", "is not a JSON object"},
		"other JSON":    {`{"hello": "world"}`, `has schema ""`},
		"an rr run":     {`{"schema": "napilab.rr/v1", "client": {}}`, "is one rr run (napilab.rr/v1)"},
		"newer schema":  {`{"schema": "napilab.sweep/v9", "cells": []}`, "is a napilab.sweep/v9 result, which this napilab cannot read"},
		"older schema":  {`{"schema": "napilab.sweep/v0", "cells": []}`, "use the napilab version that wrote it"},
		"unversioned":   {`{"spec": {"modes": ["interrupts"]}, "cells": [{"mode": "interrupts"}]}`, "from an older napilab"},
		"foreign":       {`{"schema": "something/v1"}`, `has schema "something/v1"`},
		"empty sweep":   {`{"schema": "napilab.sweep/v2", "spec": {"modes": ["interrupts"], "rows": [{"rate": 1000}]}, "cells": []}`, "holds no cells"},
		"wrong types":   {`{"schema": "napilab.sweep/v2", "spec": {"modes": "interrupts"}, "cells": []}`, "does not read as a sweep result"},
		"null cells":    {`{"schema": "napilab.sweep/v2", "spec": {}, "cells": null}`, "has no spec and cells"},
		"JSON null":     {`null`, "has schema"},
		"empty file":    {"", "is not a JSON object"},
		"wrong in cell": {`{"schema": "napilab.sweep/v2", "spec": {}, "cells": [{"mode": 5}]}`, "does not read as a sweep result"},
	} {
		_, err := Read("in.json", []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "in.json ") {
			t.Errorf("%s: err = %v, want one naming in.json and saying %q", name, err, c.want)
		}
		if err != nil && !errors.Is(err, ErrNotResult) && !strings.Contains(err.Error(), "holds no cells") {
			t.Errorf("%s: %v is not ErrNotResult", name, err)
		}
	}
}

// TestOlderResultMarksGaps: a result written before cells carried histograms, intervals and CPU accounting
// still makes a page; what it lacks is marked, not drawn from guesses.
func TestOlderResultMarksGaps(t *testing.T) {
	raw, err := os.ReadFile(demoFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range doc["cells"].([]any) {
		if cl, ok := c.(map[string]any)["client"].(map[string]any); ok {
			delete(cl, "latency_hdr")
			delete(cl, "usage")
			cl["intervals"] = cl["intervals"].([]any)[:1]
		}
	}
	old, _ := json.Marshal(doc)
	run, err := Read("old.json", old)
	if err != nil {
		t.Fatal(err)
	}
	p := page(t, run)
	for _, want := range []string{
		"the whole histogram is not recorded in this result for interrupts, busy-poll, threaded",
		"cell(s) recorded one interval for the whole run",
		"interrupts: no CPU accounting recorded",
		"nothing to draw: no cell has these figures", // the CPU plots
	} {
		if !strings.Contains(p, want) {
			t.Errorf("the page lacks the gap %q", want)
		}
	}
	// The spectrum is still drawn, from the summary's recorded percentiles.
	if !regexp.MustCompile(`<figure id="spectrum-12.5k">\s*<svg`).MatchString(p) {
		t.Error("no spectrum from the summary percentiles")
	}
	if _, err := WriteHgrms(t.TempDir(), []*Run{run}); !errors.Is(err, ErrNoHistograms) {
		t.Errorf("hgrm export of a result without histograms: %v, want ErrNoHistograms", err)
	}
}

func TestAllSkipped(t *testing.T) {
	run, err := Read("skipped.json", []byte(`{"schema": "napilab.sweep/v2", "spec": {"modes": ["threaded-busy-poll"], "rows": [{"rate": 12500}],
		"reps": 1}, "cells": [{"mode": "threaded-busy-poll", "row": {"rate": 12500}, "skipped": "needs Linux 6.19"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	p := page(t, run)
	if strings.Contains(p, "<svg") {
		t.Error("a sweep with no figures drew a plot")
	}
	if !strings.Contains(p, "threaded-busy-poll: skipped: needs Linux 6.19") || !strings.Contains(p, "nothing to draw") {
		t.Error("the skipped cell is not marked")
	}
}

func TestCompareRuns(t *testing.T) {
	a, b := readDemo(t), readDemo(t)
	b.Name = "after.json"
	aLabel := a.Label()
	b.Header.Server.Host, b.Header.Server.Kernel, b.Header.Server.NICDriver = "lab2", "7.1.0", "virtio_net"
	p := page(t, a, b)
	for _, want := range []string{"<b>A</b>: " + aLabel, "<b>B</b>: lab2 7.1.0 virtio_net", "napilab: " + aLabel + " vs lab2 7.1.0 virtio_net",
		`id="result-1"`, `id="result-2"`, "interrupts B", "threaded-busy-poll (B): skipped"} {
		if !strings.Contains(p, want) {
			t.Errorf("the comparison lacks %q", want)
		}
	}
	// Legends name each run by its header.
	if !strings.Contains(p, ">B: lab2 7.1.0 virtio_net</text>") {
		t.Error("no legend line names run B by its header")
	}
	again := readDemo(t)
	again.Name = "again.json"
	if v := newView([]*Run{a, again}); v.labels[0] == v.labels[1] {
		t.Errorf("two runs share the label %q", v.labels[0])
	}
}

func TestTracePlots(t *testing.T) {
	run := readDemo(t)
	for i := range run.Cells {
		if c := &run.Cells[i]; c.Client != nil {
			c.Trace = &Trace{PacketsPerPoll: 1 + float64(i%3), IRQsPerRequest: 0.5,
				Pollers: []Poller{{Name: "napi/veth-b-8193", Polls: 1000}}}
		}
	}
	p := page(t, run)
	for _, id := range []string{"packets-per-poll", "irqs-per-request"} {
		if !regexp.MustCompile(`<figure id="` + id + `">\s*<svg`).MatchString(p) {
			t.Errorf("no %s plot", id)
		}
	}
	if !strings.Contains(p, "napi/veth-b-8193 (1000 polls)") || strings.Contains(p, "Trace data (who polled") {
		t.Error("the pollers are not listed, or the trace is still marked missing")
	}
}

// TestTableMarksTheObservedPoller: with trace data the table says who polled each mode's cells, and marks a
// cell whose poller contradicts its mode.
func TestTableMarksTheObservedPoller(t *testing.T) {
	run := readDemo(t)
	for i := range run.Cells {
		c := &run.Cells[i]
		if c.Client == nil {
			continue
		}
		c.Trace = &Trace{Kind: "softirq"}
		if c.Mode == "threaded" {
			c.Trace.Kind, c.Mismatch = "kthread", ""
		}
		if c.Mode == "busy-poll" {
			c.Mismatch = "busy-poll expects an application thread, but softirq in effect"
		}
	}
	var b strings.Builder
	run.Table(&b, SeedStats)
	for _, want := range []string{"polled by: softirq |", "polled by: kthread |", "polled by: softirq ≠ mode |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestExports(t *testing.T) {
	dir := t.TempDir()
	run := readDemo(t)
	pngs, err := WritePNGs(filepath.Join(dir, "png"), []*Run{run})
	if err != nil {
		t.Fatal(err)
	}
	if len(pngs) != 11 {
		t.Errorf("%d PNGs, want the page's 11 plots: %v", len(pngs), pngs)
	}
	for _, f := range pngs {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 10000 {
			t.Errorf("%s is not a plausible PNG (%d bytes, %v)", f, len(b), err)
		}
	}
	hgrms, err := WriteHgrms(filepath.Join(dir, "hgrm"), []*Run{run})
	if err != nil {
		t.Fatal(err)
	}
	if len(hgrms) != 12 { // 3 measured modes × 2 loads × 2 repetitions; the skipped mode has none
		t.Errorf("%d histograms, want 12: %v", len(hgrms), hgrms)
	}
	b, err := os.ReadFile(filepath.Join(dir, "hgrm", "interrupts_12.5k+30us_rep1.hgrm"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Value\tPercentile\tTotalCount\t1/(1-Percentile)") ||
		!strings.Contains(string(b), "#[Max     =") {
		t.Errorf("not an .hgrm file:\n%.300s", b)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "*", ".*")); len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

// fuzzSeed is one measured and one skipped cell of the recorded demo, compacted: a real document small enough
// for the fuzzer to mutate quickly.
const fuzzSeed = "testdata/fuzz-seed.json"

func FuzzRead(f *testing.F) {
	raw, err := os.ReadFile(fuzzSeed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte(`{"spec": {"modes": ["interrupts"], "rows": [{"rate": 12500}]}, "cells": [{"mode": "interrupts",
		"row": {"rate": 12500}, "client": {"measured": 3, "latency": {"count": 3, "p50_ns": 5, "p99_ns": 9},
		"intervals": [{"seconds": 1, "latency": {"count": 3, "p99_ns": 9}}],
		"usage": {"wall_ns": 1000, "cpus": [{"usr_pct": 50}]}}}]}`))
	f.Add([]byte(`{"spec": {}, "cells": [{"mode": "x", "row": {"rate": -1, "delay_ns": -5}, "client": {}}]}`))
	f.Add([]byte(`{"schema": "napilab.sweep/v2"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		run, err := Read("fuzz.json", b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.json ") {
				t.Fatalf("the error does not name the file: %v", err)
			}
			return
		}
		var page bytes.Buffer
		if err := WritePage(&page, []*Run{run}); err != nil {
			t.Fatal(err)
		}
		// The page survives a plotting panic, but every input must be one the figures handle themselves.
		if i := strings.Index(page.String(), "could not be drawn"); i >= 0 {
			t.Fatalf("a plot failed: %s", page.String()[i:min(i+300, page.Len())])
		}
	})
}
