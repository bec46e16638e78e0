package trace

import (
	"testing"
	"time"

	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/testenv"
)

// BenchmarkPrivTracerCost measures what observing costs, two ways, on the veth testbed with threaded NAPI (the
// kthread, napi_poll, softirq and the scheduler all busy): the kernel's BPF statistics give each program's mean
// run time per event (ns/<program>), and rr's median round trip is measured with the tracers attached and
// without (p50-ns-traced, p50-ns-untraced), interleaved. Each iteration is one 1000-request exchange of each.
func BenchmarkPrivTracerCost(b *testing.B) {
	testenv.RequirePriv(b)
	bed := newBed(b)
	bn := newBench(b, bed, rr.PollNone)
	applyMode(b, bed, "threaded", 0)
	dev, err := ResolveDevice(bed.B.NetNSPath(), bed.B.Link)
	if err != nil {
		b.Fatal(err)
	}
	o := AllOptions()
	o.Stats = true
	var runs = map[string]ProgramCost{}
	var traced, untraced time.Duration
	for range b.N {
		res, _ := bn.run(b)
		untraced += time.Duration(res.Latency.P50)
		ob, err := NewObserver(o)
		if err != nil {
			b.Fatal(err)
		}
		if err := ob.Start(dev.Target()); err != nil {
			b.Fatal(err)
		}
		res, _ = bn.run(b)
		traced += time.Duration(res.Latency.P50)
		obs, err := ob.Stop()
		ob.Close()
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range obs.Cost {
			r := runs[c.Program]
			r.Runs, r.Time = r.Runs+c.Runs, r.Time+c.Time
			runs[c.Program] = r
		}
	}
	for name, c := range runs {
		b.ReportMetric(float64(c.Time.Nanoseconds())/float64(max(c.Runs, 1)), "ns/"+name)
	}
	b.ReportMetric(float64(traced.Nanoseconds())/float64(b.N), "p50-ns-traced")
	b.ReportMetric(float64(untraced.Nanoseconds())/float64(b.N), "p50-ns-untraced")
}
