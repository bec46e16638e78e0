package main

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/hist"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/usage"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkSample(t *testing.T, got, want sample) {
	t.Helper()
	got.fromSend, want.fromSend = nil, nil // checked on their own
	got.gaps, want.gaps = nil, nil
	got.steal, want.steal = 0, 0
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// The drop-in's output (captured against a server on the testbed): its total line gives the percentiles, and
// the interval reports after the first give the original's "p50", avg and rate as medians.
func TestParseXskRRDropIn(t *testing.T) {
	s, err := parseXskRR(readTestdata(t, "xskrr-dropin.txt"))
	if err != nil {
		t.Fatal(err)
	}
	checkSample(t, s, sample{p50: 5079, p90: 6491, p99: 19599, p999: 84095, max: 4486318, rate: 12500.3,
		pn50: 4500, avg: 4487})
}

// The original prints no percentiles: its row has only its own statistics, and its first interval (one request
// in the RFC's first second) is left out of the medians.
func TestParseXskRROriginal(t *testing.T) {
	s, err := parseXskRR(readTestdata(t, "xskrr-original.txt"))
	if err != nil {
		t.Fatal(err)
	}
	checkSample(t, s, sample{p50: -1, p90: -1, p99: -1, p999: -1, max: -1, rate: 12384, pn50: 6200, avg: 6229})
}

func TestParseXskRRRefuses(t *testing.T) {
	lost := strings.Replace(string(readTestdata(t, "xskrr-dropin.txt")), "lost: 0", "lost: 3", 1)
	for name, out := range map[string]string{
		"lost":      lost,
		"no report": "xsk_rr: outstanding array full: 1024 requests unanswered\n",
	} {
		if _, err := parseXskRR([]byte(out)); err == nil {
			t.Errorf("%s: parsed without an error", name)
		}
	}
}

func TestParseSockperf(t *testing.T) {
	s, err := parseSockperf(readTestdata(t, "sockperf.txt"))
	if err != nil {
		t.Fatal(err)
	}
	received, seconds := 1099.0, 0.549 // its [Valid Duration] line
	checkSample(t, s, sample{p50: 73428, p90: 90733, p99: 129410, p999: 201727, max: 3777068, rate: received / seconds,
		pn50: -1, avg: -1})
	if _, err := parseSockperf([]byte("sockperf: Test ended\n")); err == nil {
		t.Error("an output without percentiles parsed")
	}
}

func TestParseNetperf(t *testing.T) {
	s, err := parseNetperf(readTestdata(t, "netperf.txt"))
	if err != nil {
		t.Fatal(err)
	}
	checkSample(t, s, sample{p50: 73000, p90: 92000, p99: 146000, p999: -1, max: 4300000, rate: 12506.12, pn50: -1,
		avg: -1})
	for _, out := range []string{"establish control: are you sure there is a netserver listening\n", "1,2,x,4,5\n"} {
		if _, err := parseNetperf([]byte(out)); err == nil {
			t.Errorf("%q parsed", out)
		}
	}
}

// napilab's open loop gives two rows from one run: timed from the scheduled send, and from the actual send.
func TestParseNapilab(t *testing.T) {
	res := &rr.ClientResult{ReplyRate: 12500, LoopGaps: rr.LoopGaps{Min: 20000, Count: 2, Total: 90000, Longest: 70000},
		Latency:         hist.Summary{P50: 6080, P90: 8300, P99: 98300, P999: 2020000, Max: 5400000},
		LatencyFromSend: hist.Summary{P50: 6000, P90: 8000, P99: 36000, P999: 216000, Max: 1470000}}
	doc := func(mod func(*rr.ClientResult)) []byte {
		c := *res
		mod(&c)
		b, err := json.Marshal(rr.Document{Client: &c})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s, err := parseNapilab(doc(func(*rr.ClientResult) {}))
	if err != nil {
		t.Fatal(err)
	}
	checkSample(t, s, sample{p50: 6080, p90: 8300, p99: 98300, p999: 2020000, max: 5400000, rate: 12500, pn50: -1,
		avg: -1})
	if s.fromSend == nil {
		t.Fatal("no figures from the actual send")
	}
	if s.gaps == nil || *s.gaps != res.LoopGaps {
		t.Errorf("loop gaps %+v, want %+v", s.gaps, res.LoopGaps)
	}
	if s.steal != -1 {
		t.Errorf("steal %v from a result without CPU accounting, want -1 (unknown)", s.steal)
	}
	withUsage, err := parseNapilab(doc(func(c *rr.ClientResult) {
		c.Usage = &usage.Usage{Wall: 5 * time.Second, CPUs: []usage.CPUPercent{{CPU: 0, Steal: 0.2}, {CPU: 1, Steal: 0.4}}}
	}))
	if err != nil || withUsage.steal != 30*time.Millisecond {
		t.Errorf("steal %v (%v) from 0.2 %% and 0.4 %% of 5 s, want 30ms", withUsage.steal, err)
	}
	checkSample(t, *s.fromSend, sample{p50: 6000, p90: 8000, p99: 36000, p999: 216000, max: 1470000, rate: 12500,
		pn50: -1, avg: -1})
	for name, out := range map[string][]byte{
		"lost":       doc(func(c *rr.ClientResult) { c.Lost, c.Sent = 2, 100 }),
		"GC":         doc(func(c *rr.ClientResult) { c.GCCycles = 1 }),
		"not a doc":  []byte("napilab: --dev veth-a: no such interface\n"),
		"no results": []byte(`{"schema":"napilab.rr/v2"}`),
	} {
		if _, err := parseNapilab(out); err == nil {
			t.Errorf("%s: parsed without an error", name)
		}
	}
}

func TestMedianWithSpread(t *testing.T) {
	runs := []sample{{p50: 6000}, {p50: 5000}, {p50: 7000}}
	if got, want := med(runs, func(s sample) float64 { return s.p50 }, true), "6.00 µs (5.00 µs–7.00 µs)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := med(runs, func(sample) float64 { return -1 }, true); got != "–" {
		t.Errorf("a figure the tool does not report: got %q", got)
	}
	if got := med(runs[:1], func(s sample) float64 { return s.p50 }, true); got != "6.00 µs" {
		t.Errorf("one run: got %q", got)
	}
}

func TestTailLinesKeepsTheLast(t *testing.T) {
	tl := &tailLines{max: 2}
	if tl.String() != "(nothing)" {
		t.Errorf("empty: %q", tl)
	}
	for _, l := range []string{"a", "b", "c"} {
		tl.add(l)
	}
	if got := tl.String(); got != "b\nc" {
		t.Errorf("got %q", got)
	}
}

// The server comparison takes its differences within each round: a drift that moves both servers' figures
// together leaves the difference alone.
func TestServerPairsDiffersWithinRounds(t *testing.T) {
	runs := func(pn50s ...float64) []sample {
		var s []sample
		for _, v := range pn50s {
			s = append(s, sample{pn50: v, avg: v + 500})
		}
		return s
	}
	tools := []*tool{
		{name: "napilab rr", runs: runs(1, 2, 3)},
		{ends: xskEnds{dropIn, dropIn}, runs: runs(4600, 7800, 5000)},
		{ends: xskEnds{original, dropIn}, runs: runs(4500, 7900, 5200)},
		{ends: xskEnds{dropIn, original}, runs: runs(6000, 6000, 6000)},
	}
	got := serverPairs(tools)
	want := []string{`drop-in client: "p50" -100 ns (-200 ns to 100 ns), 2 of 3; avg -100 ns (-200 ns to 100 ns), 2 of 3`}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	tools = append(tools, &tool{ends: xskEnds{original, original}, runs: runs(6000, 5000, 7000)})
	if got := serverPairs(tools); len(got) != 2 || got[1] != `original client: "p50" 0 ns (-1.00 µs to 1.00 µs), 2 of 3; avg 0 ns (-1.00 µs to 1.00 µs), 2 of 3` {
		t.Errorf("with the original at both ends: %q", got)
	}
}

// napilab trace turnaround --json, captured on the testbed (the drop-in server under the original's client).
func TestParseTurnaround(t *testing.T) {
	got, err := parseTurnaround(readTestdata(t, "turnaround.json"))
	if err != nil || got != (turnaround{p50: 1300, p99: 27800}) {
		t.Errorf("got %+v, %v", got, err)
	}
	for name, out := range map[string][]byte{"not JSON": []byte("napilab: --dev veth-b ..."),
		"no reply": []byte(`{"pid": 1, "count": 0}`)} {
		if _, err := parseTurnaround(out); err == nil {
			t.Errorf("%s: parsed without an error", name)
		}
	}
}

// A median beyond the tracer's histogram is said as such, not as a number.
func TestLoopGapLines(t *testing.T) {
	g := func(longest, total time.Duration) *rr.LoopGaps {
		return &rr.LoopGaps{Min: 20 * time.Microsecond, Count: 3, Longest: longest, Total: total}
	}
	tools := []*tool{
		{name: "sockperf", runs: []sample{{}, {}}},
		{name: "napilab rr", runs: []sample{{gaps: g(4800*time.Microsecond, 39*time.Millisecond), steal: 20 * time.Millisecond},
			{gaps: g(1200*time.Microsecond, 41*time.Millisecond), steal: 10 * time.Millisecond},
			{gaps: g(9700*time.Microsecond, 210*time.Millisecond), steal: 30 * time.Millisecond}}},
		{name: "napilab rr (1 in flight)", runs: []sample{{gaps: g(time.Millisecond, 2*time.Millisecond), steal: -1}}},
	}
	lines, least := loopGapLines(tools)
	want := []string{"napilab rr: longest 4.80 ms (1.20 ms–9.70 ms), in all 41.0 ms (39.0 ms–210 ms); the hypervisor's " +
		"steal meanwhile 20.0 ms (10.0 ms–30.0 ms)", "napilab rr (1 in flight): longest 1.00 ms, in all 2.00 ms"}
	if !slices.Equal(lines, want) || least != 20*time.Microsecond {
		t.Errorf("got  %q, least %v\nwant %q, least 20µs", lines, least, want)
	}
}

func TestTurnaroundsLines(t *testing.T) {
	tools := []*tool{{name: "sockperf"}, {name: "drop-in", turns: []turnaround{{1300, 27800}, {1100, -1}, {1900, -1}}}}
	want := []string{"drop-in: p50 1.30 µs (1.10 µs–1.90 µs), p99 beyond 100 µs (27.8 µs–beyond 100 µs)"}
	if got := turnarounds(tools); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestNoiseLines: napilab noise's JSON read back, a round's line, and per CPU the median over the rounds with
// the spread (a CPU measured in fewer rounds has fewer values); bad output refused.
func TestNoiseLines(t *testing.T) {
	cpu := func(n int, away time.Duration, gaps uint64, longest time.Duration) rr.CPUNoise {
		return rr.CPUNoise{CPU: n, Window: time.Second, Gaps: rr.LoopGaps{Count: gaps, Total: away, Longest: longest}}
	}
	out, err := json.Marshal(rr.NoiseResult{CPUs: []rr.CPUNoise{cpu(1, 40*time.Millisecond, 900, 3*time.Millisecond),
		cpu(0, 30*time.Millisecond, 1200, 9*time.Millisecond)}, Together: rr.NoiseStretches{Total: 12 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	r1, err := parseNoise(out)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := noiseRound(r1), "CPU 1 away 4.00 % in 900 gaps, longest 3.00 ms; CPU 0 away 3.00 % in 1200 gaps, "+
		"longest 9.00 ms; together 12.0 ms"; got != want {
		t.Errorf("round line\n got %q\nwant %q", got, want)
	}
	rounds := []rr.NoiseResult{r1, {CPUs: []rr.CPUNoise{cpu(0, 50*time.Millisecond, 1000, 2*time.Millisecond),
		cpu(1, 40*time.Millisecond, 900, 3*time.Millisecond)}, Together: rr.NoiseStretches{Total: 8 * time.Millisecond}},
		{CPUs: []rr.CPUNoise{cpu(0, 20*time.Millisecond, 1100, 4*time.Millisecond)}}}
	want := []string{"CPU 0: away 3.00 % (2.00 %–5.00 %), gaps 1100 (1000–1200), the longest 4.00 ms (2.00 ms–9.00 ms)",
		"CPU 1: away 4.00 %, gaps 900, the longest 3.00 ms", "all CPUs at once: 12.0 ms (8.00 ms–12.0 ms)"}
	if got := noiseLines(rounds); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	for _, bad := range []string{"", "[]", "{", `{"cpus": []}`, `{"cpus": 0}`} {
		if _, err := parseNoise([]byte(bad)); err == nil {
			t.Errorf("parseNoise(%q) accepted", bad)
		}
	}
}
