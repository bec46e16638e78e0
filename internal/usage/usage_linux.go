package usage

import (
	"fmt"
	"os"
	"runtime/metrics"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/sysknob"
)

// Take reads the accounting state now. A task that has exited is marked Gone rather than failing the snapshot:
// a NAPI kthread disappears when threaded NAPI is switched off.
func Take(spec Spec) (Snapshot, error) {
	s := Snapshot{At: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, fmt.Errorf("read CPU times: %w", err)
	}
	if s.CPUs, err = ParseStat(b); err != nil {
		return s, err
	}
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return s, fmt.Errorf("getrusage: %w", err)
	}
	s.User, s.Sys = time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
	s.VolCtxSw, s.InvolCtxSw = ru.Nvcsw, ru.Nivcsw
	s.GCCycles = GCCycles()

	if len(spec.Threads)+len(spec.Tasks) > 0 {
		s.Tasks = map[string]TaskTimes{}
	}
	pid := os.Getpid()
	for role, tid := range spec.Threads {
		t := readTask(fmt.Sprintf("/proc/%d/task/%d", pid, tid))
		t.Own = true
		s.Tasks[role] = t
	}
	for role, p := range spec.Tasks {
		s.Tasks[role] = readTask("/proc/" + strconv.Itoa(p))
	}
	if len(spec.IRQs) > 0 {
		b, err := os.ReadFile("/proc/interrupts")
		if err != nil {
			return s, fmt.Errorf("read interrupt counts: %w", err)
		}
		if s.IRQs, err = irqCounts(string(b), spec.IRQs); err != nil {
			return s, err
		}
	}
	return s, nil
}

func readTask(dir string) TaskTimes {
	var t TaskTimes
	stat, err1 := os.ReadFile(dir + "/stat")
	sched, err2 := os.ReadFile(dir + "/schedstat")
	if err1 != nil || err2 != nil { // the task exited (ESRCH/ENOENT) between listing and reading
		t.Gone = true
		return t
	}
	var err error
	if t.Name, t.User, t.Sys, err = ParseTaskStat(stat); err != nil {
		t.Gone = true
		return t
	}
	if t.OnCPU, t.WaitRun, t.Timeslices, err = ParseSchedstat(sched); err != nil {
		t.Gone = true
	}
	return t
}

// GCCycles returns the number of completed GC cycles of this process. Reading it does not stop the world.
func GCCycles() uint64 {
	sample := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return sample[0].Value.Uint64()
}

// irqCounts picks the per-CPU counts of the given IRQ lines out of /proc/interrupts, indexed by CPU number.
func irqCounts(text string, irqs []int) (map[int][]uint64, error) {
	all, err := sysknob.ParseInterrupts(text)
	if err != nil {
		return nil, err
	}
	out := map[int][]uint64{}
	for _, irq := range irqs {
		perCPU, ok := all.PerCPU(irq)
		if !ok {
			continue
		}
		counts := make([]uint64, slices.Max(all.CPUs)+1)
		for cpu, n := range perCPU {
			counts[cpu] = n
		}
		out[irq] = counts
	}
	return out, nil
}

// CPUModel returns the CPU's model name from /proc/cpuinfo, or "" when it has none (some architectures).
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	return parseCPUModel(string(b))
}
