package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/rr"
)

// TestNoise: a row per CPU with its figures, then per CPU the source that took the most and its fix, one for
// each source the measurement tells apart.
func TestNoise(t *testing.T) {
	ms := time.Millisecond
	cpu := func(n int, total, waited, steal time.Duration, count, irqs, preempted uint64) rr.CPUNoise {
		return rr.CPUNoise{CPU: n, Window: 2 * time.Second, Reads: 1e6, ByDecade: [5]uint64{0, count, 0, 0, 0},
			Gaps:   rr.LoopGaps{Min: 10 * time.Microsecond, Count: count, Total: total, Longest: 4 * ms},
			Waited: waited, Steal: steal, Interrupts: irqs, Preempted: preempted}
	}
	res := []rr.CPUNoise{
		cpu(0, 40*ms, 2*ms, 30*ms, 100, 500, 3),
		cpu(3, 40*ms, 2*ms, 10*ms, 1200, 500, 3),
		cpu(5, 40*ms, 30*ms, 0, 100, 500, 250),
		cpu(6, 40*ms, 2*ms, 10*ms, 600, 500, 3),
		{CPU: 7, Window: 2 * time.Second, Gaps: rr.LoopGaps{Min: 10 * time.Microsecond}},
	}
	var b bytes.Buffer
	together := rr.NoiseStretches{Count: 40, Total: 2 * ms, Longest: 300 * time.Microsecond}
	Noise(&b, rr.NoiseResult{CPUs: res, Together: together, Unrecorded: 12, Attributed: true})
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 3+2*len(res) {
		t.Fatalf("%d lines, want a title, a header, two per CPU and the CPUs together:\n%s", len(lines), b.String())
	}
	for _, c := range []struct {
		line  int
		words []string
	}{
		{0, []string{"10.0 µs"}},
		{2, []string{"0", "2.00 s", "2.000%", "100", "4.00 ms", "2.00 ms (3)", "30.0 ms", "8.00 ms (500)"}},
		{3, []string{"3", "1200", "28.0 ms (500)"}},
		{7, []string{"all 5 CPUs away at once: 2.00 ms in 40 stretches, the longest 300 µs (0.100% of the window), " +
			"at least: 12 gaps were not recorded", "no server's turnaround"}},
		{8, []string{"CPU 0: the hypervisor (steal) took the most: 30.0 ms of the 40.0 ms away", "pinned vCPUs"}},
		{9, []string{"CPU 3: the hypervisor (unreported)", "697 of the 1200 gaps", "pinned vCPUs"}},
		{10, []string{"CPU 5: other tasks of this system (250 times) took the most: 30.0 ms", "isolcpus="}},
		{11, []string{"CPU 6: interrupts (500 in this guest", "took the most: 28.0 ms", "smp_affinity_list"}},
		{12, []string{"CPU 7: no gap of 10.0 µs or more in 2.00 s"}},
	} {
		for _, w := range c.words {
			if !strings.Contains(lines[c.line], w) {
				t.Errorf("line %d lacks %q:\n%s", c.line, w, lines[c.line])
			}
		}
	}
	b.Reset()
	Noise(&b, rr.NoiseResult{CPUs: res[:1]})
	if out := b.String(); !strings.Contains(out, "what caused them is not known") || strings.Contains(out, "CPU 0:") {
		t.Errorf("a result without its counters reads:\n%s", out)
	}
	b.Reset()
	Noise(&b, rr.NoiseResult{})
	if b.Len() != 0 {
		t.Errorf("no result printed %q", b.String())
	}
}
