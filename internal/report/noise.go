package report

import (
	"fmt"
	"io"
	"time"

	"github.com/napilab/napilab/internal/rr"
)

// Noise writes what each CPU's spinning thread lost (rr.MeasureNoise): a row per CPU, then per CPU the source
// that took the most and what to do about it.
func Noise(w io.Writer, r rr.NoiseResult) {
	res := r.CPUs
	if len(res) == 0 {
		return
	}
	fmt.Fprintf(w, "noise: gaps of %s or more between a spinning thread's clock readings, per CPU, all spinning at once\n",
		FormatNs(int64(res[0].Gaps.Min)))
	fmt.Fprintf(w, "%4s %9s %8s %7s %9s %7s %7s %7s %7s %7s   %-20s %-10s %s\n", "cpu", "window", "away", "gaps",
		"longest", "<10µs", "<100µs", "<1ms", "<10ms", "longer", "preempted (times)", "steal", "the rest (interrupts)")
	for _, n := range res {
		b := n.ByDecade
		fmt.Fprintf(w, "%4d %9s %7.3f%% %7d %9s %7d %7d %7d %7d %7d   %-20s %-10s %s\n", n.CPU, FormatNs(int64(n.Window)),
			100*n.Away(), n.Gaps.Count, FormatNs(int64(n.Gaps.Longest)), b[0], b[1], b[2], b[3], b[4],
			fmt.Sprintf("%s (%d)", FormatNs(int64(n.Waited)), n.Preempted), FormatNs(int64(n.Steal)),
			fmt.Sprintf("%s (%d)", FormatNs(int64(n.Unattributed())), n.Interrupts))
	}
	if len(res) > 1 && res[0].Window > 0 {
		t := r.Together
		fmt.Fprintf(w, "  all %d CPUs away at once: %s in %d stretches, the longest %s (%.3f%% of the window)", len(res),
			FormatNs(int64(t.Total)), t.Count, FormatNs(int64(t.Longest)), 100*float64(t.Total)/float64(res[0].Window))
		if r.Unrecorded > 0 {
			fmt.Fprintf(w, ", at least: %d gaps were not recorded", r.Unrecorded)
		}
		fmt.Fprintln(w, ". The whole machine stopped, or its CPUs' timer ticks are aligned: a benchmark's client and "+
			"server stop together, which delays requests due on a schedule (an open loop) but no server's turnaround.")
	}
	if !r.Attributed {
		fmt.Fprintln(w, "  the counters beside the gaps could not be read for every CPU after the run: what caused them "+
			"is not known")
		return
	}
	for _, n := range res {
		fmt.Fprintf(w, "  CPU %d: %s\n", n.CPU, noiseVerdict(n))
	}
}

// noiseVerdict names what took the most of a CPU's gap time, and the fix.
func noiseVerdict(n rr.CPUNoise) string {
	took := func(what string, d time.Duration) string {
		return fmt.Sprintf("%s took the most: %s of the %s away (longest gap %s)", what, FormatNs(int64(d)),
			FormatNs(int64(n.Gaps.Total)), FormatNs(int64(n.Gaps.Longest)))
	}
	const vmFix = ". Fix: dedicated, pinned vCPUs without overcommit, or bare metal; no guest setting prevents it, " +
		"and a spinning benchmark's tail here includes these gaps"
	switch n.Source() {
	case rr.NoiseHypervisor:
		return took("the hypervisor (steal)", n.Steal) + vmFix
	case rr.NoiseUnreported:
		return took("the hypervisor (unreported)", n.Unattributed()) + fmt.Sprintf(": %d of the %d gaps came with "+
			"no interrupt or preemption in this guest, and steal counts none of it", n.Unexplained(), n.Gaps.Count) +
			vmFix
	case rr.NoiseTasks:
		return took(fmt.Sprintf("other tasks of this system (%d times)", n.Preempted), n.Waited) +
			". Fix: keep them off this CPU (isolcpus= or a cpuset for the rest of the system); napilab trace " +
			"sched names them"
	case rr.NoiseInterrupts:
		return took(fmt.Sprintf("interrupts (%d in this guest; on a virtual machine with the hypervisor's time to "+
			"deliver them)", n.Interrupts), n.Unattributed()) + ". Fix: move IRQs off this CPU " +
			"(/proc/irq/N/smp_affinity_list, irqbalance off) and stop its timer tick while one task runs (nohz_full=)"
	}
	return fmt.Sprintf("no gap of %s or more in %s", FormatNs(int64(n.Gaps.Min)), FormatNs(int64(n.Window)))
}
