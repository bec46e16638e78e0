package netdev

import (
	"testing"

	"github.com/napilab/napilab/internal/testenv"
)

// Control-plane costs, for scale: a mode switch reads and writes a handful of NAPIs, so these only need to stay
// far below the millisecond a user would notice.

func BenchmarkParseNAPIs(b *testing.B) {
	reply := msgs(captured(b)["napi-get.257"])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseNAPIs(reply); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseQStats(b *testing.B) {
	r := captured(b)
	reply := msgs(r["qstats-get.eth0.queue.rx0"], r["qstats-get.eth0.queue.tx0"], r["qstats-get.eth0.device"])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseQStats(reply); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPrivNAPIGet is one napi-get round trip to the running kernel.
func BenchmarkPrivNAPIGet(b *testing.B) {
	testenv.RequirePriv(b)
	c, err := Dial(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ns, err := c.NAPIs(0)
	if err != nil || len(ns) == 0 {
		b.Skipf("no NAPI instance in this namespace to read (%v)", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.NAPI(ns[0].ID); err != nil {
			b.Fatal(err)
		}
	}
}
