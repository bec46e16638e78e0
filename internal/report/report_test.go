package report

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/agent"
	"github.com/napilab/napilab/internal/hist"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/sweep"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// sample builds a two-mode, two-row, two-repetition result with a skipped mode.
func sample() *sweep.Result {
	spec := sweep.DefaultSpec()
	spec.Modes = []string{"interrupts", "threaded", "threaded-busy-poll"}
	spec.Rows, spec.Reps = spec.Rows[:2], 2
	res := &sweep.Result{Spec: spec}
	for rep := 0; rep < 2; rep++ {
		for mi, mode := range spec.Modes {
			for ri, row := range spec.Rows {
				c := sweep.Cell{Mode: mode, Row: row, Rep: rep}
				if mode == "threaded-busy-poll" {
					c.Skipped = "threaded NAPI busy poll needs Linux 6.19 or newer"
				} else {
					base := int64(5000 + 1000*mi + 100*ri + 10*rep)
					c.Client = &rr.ClientResult{Sent: 1000, Answered: 999, Lost: 1,
						Latency:       hist.Summary{P5: base, P50: base + 500, P95: base + 900, P99: base + 2000, P999: base + 9000},
						CPUPerRequest: time.Duration(80000 + 1000*mi),
						XskRRPN:       [4]hist.XskRRPercentile{{P: 5}, {P: 50, Value: uint64(base)}, {P: 95}, {P: 99, Value: uint64(base + 100)}}}
					c.Notes = []note.Note{note.Warnf("the socket has no NAPI id")}
				}
				res.Cells = append(res.Cells, c)
			}
		}
	}
	return res
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := "testdata/" + name
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestTableGolden(t *testing.T) {
	var b bytes.Buffer
	Table(&b, sample(), SeedStats)
	b.WriteString("\n")
	Notes(&b, sample())
	golden(t, "table.md", b.Bytes())
}

func TestCSVGolden(t *testing.T) {
	var b bytes.Buffer
	if err := CSV(&b, sample()); err != nil {
		t.Fatal(err)
	}
	golden(t, "cells.csv", b.Bytes())
}

func TestMedianAndSpread(t *testing.T) {
	run := fromSweep("sample", sample())
	v, ok := value(run.cellsAt("threaded", run.Loads[1]), P50)
	// threaded is mode 1, row 1: base 6100 and 6110, +500 → 6600 and 6610: median 6605 (rounded), spread 6600–6610.
	if !ok || v != "6605 (6600–6610)" {
		t.Fatalf("value = %q, %v", v, ok)
	}
	if _, ok := value(run.cellsAt("threaded-busy-poll", run.Loads[0]), P50); ok {
		t.Fatal("a skipped mode has a value")
	}
}

// TestSplitTable: the table of where the round trip went shows the client's split and the server's busy time
// where a cell records them, and "–" where it does not (an older result, or an xsk_rr payload).
func TestSplitTable(t *testing.T) {
	res := sample()
	for i := range res.Cells {
		c := &res.Cells[i]
		if c.Client == nil || c.Mode != "threaded" {
			continue
		}
		c.Client.ServerQueueing = hist.Summary{Count: 999, P50: 1200, P99: 4100}
		c.Client.RestOfTrip = hist.Summary{Count: 999, P50: 5300, P99: 9000}
		c.Server = &agent.ServerResult{Stats: rr.ServerStats{Received: 1000, Batches: 800,
			Busy: hist.Summary{Count: 800, P50: 180, P99: 450}}}
	}
	var b bytes.Buffer
	Table(&b, res, SplitStats)
	out := b.String()
	for _, want := range []string{"queueing p50: 1200", "queueing p99: 4100", "rest p50: 5300", "rest p99: 9000",
		"server busy p50: 180", "server busy p99: 450", "requests/iteration: 1.25"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "queueing p50: 0") {
		t.Errorf("a cell without a split shows 0 instead of –:\n%s", out)
	}
}
