package hist

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// record adds count samples of rtt ns.
func record(x *XskRR, rtt, count uint64) {
	for range count {
		x.Record(rtt)
	}
}

func TestXskRRToyExample(t *testing.T) {
	// notes/xsk_rr.md §8.2: 100 samples at 13.0 µs and 100 at 14.0 µs. By hand, with xsk_rr's integer steps
	// (bucket numbers 130 and 140):
	//   p5:  total 200, target 10: bucket 130 gives 10 (clipped to 10): mean 130             -> 13000
	//   p50: total 10+100 = 110, target 55: 130 gives 10, 140 gives 45 (clipped to 45):
	//        mean (45*140 + 10*130)/55 = 7600/55 = 138                                         -> 13800
	//   p95: total 10+45 = 55, target 52: 140 gives 42: (42*140 + 10*130)/52 = 7180/52 = 138   -> 13800
	//   p99: total 10+42 = 52, target 51: 140 gives 41: (41*140 + 10*130)/51 = 7040/51 = 138   -> 13800
	// and p99 alone on the fresh histogram: target 198, 130 gives 100, 140 gives 98:
	//        (98*140 + 100*130)/198 = 26720/198 = 134                                         -> 13400
	x := NewXskRR(XskRRv2)
	record(x, 13000, 100)
	record(x, 14000, 100)
	want := [4]XskRRPercentile{{5, 10, 13000}, {50, 55, 13800}, {95, 52, 13800}, {99, 51, 13800}}
	if got := x.Percentiles(); got != want {
		t.Errorf("in sequence: %v, want %v", got, want)
	}
	fresh := x.buckets
	if got := xskRRPercentile(fresh[:], 99); got != (XskRRPercentile{99, 198, 13400}) {
		t.Errorf("p99 alone: %+v, want count 198, 13400", got)
	}
	// Percentiles works on a copy: asking again gives the same answer.
	if got := x.Percentiles(); got != want {
		t.Errorf("second call: %v", got)
	}
}

func TestXskRRTruncatesEveryStep(t *testing.T) {
	// RFC v2's print_percentile truncates the running mean at every bucket, not once at the end. With one sample
	// in each of buckets 130..133 and six in 134, p50 (target 5) walks 130, 131, 132, 133, 134 and the truncated
	// mean never leaves 130: (131+130)/2 = 130, (132+260)/3 = 130, (133+390)/4 = 130, (134+520)/5 = 130.
	// The exact mean of those five, 132, would print 13200.
	x := NewXskRR(XskRRv2)
	for b := uint64(130); b <= 133; b++ {
		x.Record(b * 100)
	}
	record(x, 13400, 6)
	b := x.buckets
	if got := xskRRPercentile(b[:], 50); got != (XskRRPercentile{50, 5, 13000}) {
		t.Errorf("p50 = %+v, want count 5, 13000", got)
	}
}

// TestXskRRPublishedSample rebuilds the sample block of the RFC cover letter from a histogram constructed to fit
// it: 124,990 samples whose pN walk removes 1,974 samples at the p5 boundary (so p50's target is 50 % of
// 123,016), 2,565 at p50's and 94 at p95's, as the published counts require.
func TestXskRRPublishedSample(t *testing.T) {
	x := NewXskRR(XskRRv1)
	record(x, 13069, 3124) // the sample's min
	record(x, 14000, 5099)
	record(x, 14100, 57824)
	record(x, 15600, 53014)
	record(x, 18000, 5928)
	x.Record(881340) // the sample's max
	if x.IntervalCount() != 124990 {
		t.Fatalf("%d samples", x.IntervalCount())
	}
	var out bytes.Buffer
	err := x.Report(&out, XskRRExtras{EmptyPct: 98, Rate: x.IntervalCount() / 10, Outstanding: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("\nmin: 13069 max: 881340 avg: %d empty: 98\n", x.Avg()) +
		"count: 6249 p5: 13500\n" +
		"count: 61508 p50: 14000\n" +
		"count: 114428 p95: 14700\n" +
		"count: 119153 p99: 14800\n" +
		"rate: 12499\n" +
		"oustanding packets: 3\n\n"
	if out.String() != want {
		t.Errorf("report\n%q\nwant\n%q", out.String(), want)
	}
	if x.IntervalCount() != 0 || x.Percentiles()[0].Count != 0 {
		t.Error("Report did not end the interval")
	}
}

func TestXskRROverflowBucket(t *testing.T) {
	x := NewXskRR(XskRRv2)
	x.Record(1_999_899) // bucket 19998
	x.Record(1_999_900) // the last bucket
	x.Record(5_000_000_000)
	if x.buckets[19998] != 1 || x.buckets[19999] != 2 {
		t.Fatalf("buckets 19998: %d, 19999: %d", x.buckets[19998], x.buckets[19999])
	}
	x.EndInterval()
	record(x, 3_000_000, 10000)
	for _, pc := range x.Percentiles() {
		if pc.Value != 1_999_900 {
			t.Errorf("p%d of overflowing samples = %d, want 1999900 (the last bucket)", pc.P, pc.Value)
		}
	}
	if x.Max() != 5_000_000_000 {
		t.Errorf("max %d: the overflow bucket must not cap max", x.Max())
	}
}

func TestXskRRClippingOrder(t *testing.T) {
	// 1000 samples, 20 in each bucket from 100 to 149. p5 (target 50) takes buckets 100 and 101 and 10 of the 20
	// in 102, clipping 102 to 10: p50 then sees 990 samples and aims at 495, not 500; and p99 in sequence reads
	// a different total again than p99 of the fresh histogram (target 990).
	x := NewXskRR(XskRRv2)
	for i := range uint64(1000) {
		x.Record(10_000 + (i%50)*100)
	}
	seq := x.Percentiles()
	fresh := x.buckets
	alone := xskRRPercentile(fresh[:], 99)
	if seq[0].Count != 50 || seq[1].Count != 495 {
		t.Errorf("targets p5 %d, p50 %d; want 50 and 495", seq[0].Count, seq[1].Count)
	}
	if alone.Count != 990 || seq[3].Count == alone.Count {
		t.Errorf("p99 in sequence %+v, alone %+v: the earlier columns' clipping must show", seq[3], alone)
	}
}

func TestXskRRSingleBucketShrinks(t *testing.T) {
	// With every sample in one bucket each column clips that bucket to its own target, so the totals shrink
	// 100 -> 5 -> 2 -> 1 and xsk_rr prints p99 as 0 with count 0.
	x := NewXskRR(XskRRv2)
	record(x, 13050, 100)
	want := [4]XskRRPercentile{{5, 5, 13000}, {50, 2, 13000}, {95, 1, 13000}, {99, 0, 0}}
	if got := x.Percentiles(); got != want {
		t.Errorf("%v, want %v", got, want)
	}
}

func TestXskRRAvgMinMax(t *testing.T) {
	x := NewXskRR(XskRRv2)
	if x.Min() != ^uint64(0) || x.Max() != 0 {
		t.Errorf("initial min %d max %d", x.Min(), x.Max())
	}
	for _, c := range []struct{ rtt, avg uint64 }{
		{10, 10}, // (0*0 + 10)/1
		{20, 15}, // (10*1 + 20)/2
		{16, 15}, // (15*2 + 16)/3 = 46/3
		{3, 12},  // (15*3 + 3)/4 = 48/4
	} {
		x.Record(c.rtt)
		if x.Avg() != c.avg {
			t.Fatalf("after %d: avg %d, want %d", c.rtt, x.Avg(), c.avg)
		}
	}
	x.EndInterval()
	x.Record(7)
	if x.Avg() != 7 || x.Min() != 3 || x.Max() != 20 {
		t.Errorf("next interval: avg %d (restarts), min %d max %d (carry on)", x.Avg(), x.Min(), x.Max())
	}
	// The running mean stalls: after 1000 samples at 1000 ns, a sample at 1999 ns is lost to truncation,
	// (1000*1000 + 1999)/1001 = 1000.998 -> 1000.
	x.EndInterval()
	record(x, 1000, 1000)
	x.Record(1999)
	if x.Avg() != 1000 {
		t.Errorf("avg %d, want 1000", x.Avg())
	}
}

func TestXskRRReportFormat(t *testing.T) {
	for _, c := range []struct {
		v     XskRRVersion
		label string
	}{{XskRRv1, "oustanding"}, {XskRRv2, "outstanding"}} {
		x := NewXskRR(c.v)
		// xsk_rr's first report comes with the first reply: one sample, every target floor(1*p/100) = 0.
		x.Record(12345)
		got := string(x.AppendReport(nil, XskRRExtras{EmptyPct: 7, Rate: 1, Outstanding: 0}))
		want := "\nmin: 12345 max: 12345 avg: 12345 empty: 7\n" +
			"count: 0 p5: 0\ncount: 0 p50: 0\ncount: 0 p95: 0\ncount: 0 p99: 0\n" +
			"rate: 1\n" + c.label + " packets: 0\n\n"
		if got != want {
			t.Errorf("v%d: %q\nwant %q", c.v, got, want)
		}
	}
}

func TestXskRRTries(t *testing.T) {
	var tr XskRRTries
	if tr.Percent() != 0 {
		t.Error("no peeks yet, but a percentage")
	}
	for i := range 3 {
		tr.Peek(i < 2)
	}
	if tr.Percent() != 66 { // 200/3 truncated
		t.Errorf("2 empty of 3: %d%%", tr.Percent())
	}
	tr.Reset()
	tr.Peek(false)
	if tr.All != 2 || tr.Empty != 1 || tr.Percent() != 50 {
		t.Errorf("after Reset and one full peek: %+v, %d%%", tr, tr.Percent())
	}
}

func TestXskRRReportAllocs(t *testing.T) {
	x := NewXskRR(XskRRv2)
	e := XskRRExtras{EmptyPct: 99, Rate: 12_000_000_000, Outstanding: 1 << 40}
	if err := x.Report(io.Discard, e); err != nil { // sizes the buffer
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(10, func() {
		x.Record(18446744073709551615)
		_ = x.Report(io.Discard, e)
	})
	if n != 0 {
		t.Errorf("Report allocates %v times", n)
	}
}

func TestXskRRReportWriteError(t *testing.T) {
	x := NewXskRR(XskRRv2)
	x.Record(1)
	if err := x.Report(failWriter{}, XskRRExtras{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Report hid the write error: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }

func BenchmarkXskRRReport(b *testing.B) {
	x := NewXskRR(XskRRv2)
	b.ReportAllocs()
	for b.Loop() {
		record(x, 13000, 10)
		_ = x.Report(io.Discard, XskRRExtras{})
	}
}

// TestXskRRTakingTurns checks that two XskRR alternating intervals, with FoldExtremes before each report, print
// exactly what one XskRR recording everything prints.
func TestXskRRTakingTurns(t *testing.T) {
	intervals := [][]uint64{{13000, 14000, 900}, {12000, 50000}, {13500}, {700, 2_000_000_000}}
	one := NewXskRR(XskRRv2)
	turns := [2]*XskRR{NewXskRR(XskRRv2), NewXskRR(XskRRv2)}
	var prev *XskRR
	for i, iv := range intervals {
		cur := turns[i%2]
		for _, rtt := range iv {
			one.Record(rtt)
			cur.Record(rtt)
		}
		if prev != nil {
			cur.FoldExtremes(prev.Min(), prev.Max())
		}
		e := XskRRExtras{Rate: uint64(len(iv))}
		want := string(one.AppendReport(nil, e))
		if got := string(cur.AppendReport(nil, e)); got != want {
			t.Fatalf("interval %d: taking turns printed\n%s\nwant\n%s", i, got, want)
		}
		one.EndInterval()
		cur.EndInterval()
		prev = cur
	}
}

func TestXskRRMerge(t *testing.T) {
	a, b, all := NewXskRR(XskRRv2), NewXskRR(XskRRv2), NewXskRR(XskRRv2)
	for i, rtt := range []uint64{13000, 14000, 900, 12000, 50000, 2_000_000_000, 700} {
		all.Record(rtt)
		if i%2 == 0 {
			a.Record(rtt)
		} else {
			b.Record(rtt)
		}
	}
	a.Merge(b)
	if a.Percentiles() != all.Percentiles() || a.Min() != all.Min() || a.Max() != all.Max() || a.IntervalCount() != all.IntervalCount() {
		t.Fatalf("merged %v min %d max %d n %d; want %v min %d max %d n %d", a.Percentiles(), a.Min(), a.Max(),
			a.IntervalCount(), all.Percentiles(), all.Min(), all.Max(), all.IntervalCount())
	}
}
