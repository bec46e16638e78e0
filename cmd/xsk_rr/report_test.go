package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/hist"
	"github.com/napilab/napilab/internal/rr"
)

// fields parses a line of "key: value" pairs, as a script reading the reports would.
func fields(t *testing.T, line string) map[string]int64 {
	t.Helper()
	f := strings.Fields(line)
	out := map[string]int64{}
	for i := 0; i+1 < len(f); i += 2 {
		key, ok := strings.CutSuffix(f[i], ":")
		if !ok {
			t.Fatalf("%q: %q is not a key", line, f[i])
		}
		v, err := strconv.ParseFloat(f[i+1], 64)
		if err != nil {
			t.Fatalf("%q: value of %s: %v", line, key, err)
		}
		out[key] = int64(v)
	}
	return out
}

// interval builds an interval the way the engine's reporter does, from known round trips.
func interval(t *testing.T, rtts []int64) rr.Interval {
	t.Helper()
	x := hist.NewXskRR(hist.XskRRv2)
	rec, err := hist.New(hist.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rtts {
		x.Record(uint64(v))
		rec.Record(v)
	}
	var tries hist.XskRRTries
	tries.Peek(true)
	tries.Peek(false)
	return rr.Interval{Seconds: 1.0004, Replies: uint64(len(rtts)), Rate: float64(len(rtts)) / 1.0004, Sent: uint64(len(rtts)) + 1,
		LatencyToSent: rec.Summary(),
		XskRR:         string(x.AppendReport(nil, hist.XskRRExtras{EmptyPct: tries.Percent(), Rate: uint64(len(rtts)), Outstanding: 1}))}
}

// TestIntervalReport: the original's block comes first and unchanged, then one true line whose percentiles are
// real ones: for 100 samples at 13 µs and 100 at 14 µs the original's "p99" says 13.4 µs, the true p99 14 µs.
func TestIntervalReport(t *testing.T) {
	var rtts []int64
	for range 100 {
		rtts = append(rtts, 13000, 14000)
	}
	iv := interval(t, rtts)
	if got := string(appendInterval(nil, iv, true)); got != iv.XskRR {
		t.Fatalf("--exact-output printed %q, want the block alone %q", got, iv.XskRR)
	}
	out := string(appendInterval(nil, iv, false))
	rest, ok := strings.CutPrefix(out, iv.XskRR)
	if !ok {
		t.Fatalf("report %q does not start with the original's block", out)
	}
	if !strings.HasPrefix(rest, "true: ") || strings.Count(rest, "\n") != 1 || !strings.HasSuffix(rest, "\n") {
		t.Fatalf("after the block: %q, want one true line", rest)
	}
	f := fields(t, strings.TrimPrefix(rest, "true:"))
	if f["p99"] < 13990 || f["p99"] > 14010 || f["p50"] < 12990 || f["p50"] > 13010 || f["sent"] != 201 || f["rate"] != 199 {
		t.Fatalf("true line %q", rest)
	}
	if !strings.Contains(iv.XskRR, "p99: 13800\n") {
		t.Fatalf("the original's column should read 13800 for this input: %q", iv.XskRR)
	}
}

func TestTotals(t *testing.T) {
	rec, _ := hist.New(hist.DefaultConfig())
	rec.Record(5000)
	res := &rr.ClientResult{Sent: 1000, Answered: 998, Lost: 2, Window: time.Second, ReplyRate: 998, LatencyFromSend: rec.Summary(),
		LoopGaps: rr.LoopGaps{Min: 20 * time.Microsecond, Count: 4, Total: 7 * time.Millisecond, Longest: 3 * time.Millisecond}}
	f := fields(t, strings.TrimPrefix(string(appendClientTotal(nil, res)), "total:"))
	if f["sent"] != 1000 || f["answered"] != 998 || f["lost"] != 2 || f["rate"] != 998 || f["p50"] < 4995 || f["max"] != 5000 ||
		f["loop-away"] != 7e6 || f["loop-away-max"] != 3e6 {
		t.Fatalf("client total %v", f)
	}
	st := rr.ServerStats{Received: 12, Replied: 9, BadPayload: 1, BadChecksum: 2, MaxBatch: 3,
		Busy: hist.Summary{P50: 210, P99: 480}}
	f = fields(t, strings.TrimPrefix(string(appendServerTotal(nil, st)), "total:"))
	if f["received"] != 12 || f["replied"] != 9 || f["bad-payload"] != 1 || f["refused"] != 3 || f["max_desc"] != 3 ||
		f["busy-p50"] != 210 || f["busy-p99"] != 480 {
		t.Fatalf("server total %v", f)
	}
}

// TestMaxDesc: the server thread's callback never allocates or blocks, and the printer shows each new maximum
// it sees, the last one included.
func TestMaxDesc(t *testing.T) {
	var out bytes.Buffer
	md := newMaxDesc(&out)
	if n := testing.AllocsPerRun(100, func() { md.note(1) }); n != 0 {
		t.Fatalf("note allocates %v times", n)
	}
	go md.run()
	md.note(1)
	md.note(5)
	md.stop()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) == 0 || lines[len(lines)-1] != "max_desc: 5" {
		t.Fatalf("printed %q; want the last maximum last", out.String())
	}
}

// TestRun: --help, bad input and a missing interface end the way a script expects: usage on stdout and status
// 0, or one "xsk_rr: ..." line per problem on stderr, nothing on stdout and status 1.
func TestRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--help"}, &stdout, &stderr); code != 0 || stdout.String() != usage || stderr.Len() != 0 {
		t.Fatalf("--help: status %d, stdout %d bytes, stderr %q", code, stdout.Len(), stderr.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-B"}, "xsk_rr: option -B needs a value\n"},
		{[]string{"-4", "-p", "1"}, "xsk_rr: all MAC and IP addresses must be set: -m, -M, -S and -D\n"},
		{with("-i", "nosuchdev0"), `xsk_rr: -i "nosuchdev0" does not exist in this process's network namespace: check the device's name`},
	} {
		stdout.Reset()
		stderr.Reset()
		code := run(tc.args, &stdout, &stderr)
		if code != 1 || stdout.Len() != 0 || !strings.HasPrefix(stderr.String(), tc.want) {
			t.Errorf("run(%q): status %d stdout %q stderr %q; want status 1 and %q", tc.args, code, stdout.String(), stderr.String(), tc.want)
		}
	}
}

// TestUsageNamesEveryOption keeps --help true to the getopt string.
func TestUsageNamesEveryOption(t *testing.T) {
	for _, c := range strings.ReplaceAll(optstring, ":", "") {
		if !strings.Contains(usage, " -"+string(c)+" ") {
			t.Errorf("--help does not describe -%c", c)
		}
	}
}
