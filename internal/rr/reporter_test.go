package rr

import (
	"testing"
	"time"

	"github.com/napilab/napilab/internal/hist"
)

// BenchmarkSummarise is the reporter's work for one interval of 12 500 replies (a second at the seed's load):
// merging the interval into the run's histograms, its summaries and xsk_rr's report. It runs on a thread of its
// own while the loops spin, and on a machine whose CPUs all spin it takes its time from one of them.
func BenchmarkSummarise(b *testing.B) {
	w := DefaultWorkload()
	r, err := newReporter(w, ClientOptions{XskRRVersion: hist.XskRRv2}, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer r.finish(nil)
	s := r.takeSpare()
	fill := func() {
		for i := range 12500 {
			v := int64(5000 + i%3000 + (i%97)*100)
			s.record(v+50, v)
		}
		s.start, s.end = 0, int64(time.Second)
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		fill()
		b.StartTimer()
		r.summarise(s)
		s.reset()
	}
}
