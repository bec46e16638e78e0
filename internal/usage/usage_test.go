package usage

import (
	"testing"
	"time"
)

const statSample = `cpu  5843 0 3006 263232 202 0 46 5 0 0
cpu0 2577 0 1300 132236 17 0 14 2 0 0
cpu1 3265 1 1706 130996 184 7 32 3 0 0
intr 1234 0 0
ctxt 99
`

func TestParseStat(t *testing.T) {
	cpus, err := ParseStat([]byte(statSample))
	if err != nil {
		t.Fatal(err)
	}
	want := CPUTimes{CPU: 1, User: 3265, Nice: 1, System: 1706, Idle: 130996, IOWait: 184, IRQ: 7, SoftIRQ: 32, Steal: 3}
	if len(cpus) != 2 || cpus[1] != want {
		t.Fatalf("got %+v; want cpu1 = %+v", cpus, want)
	}
	for _, bad := range []string{"", "cpu 1 2 3\n", "cpuX 1 2 3 4 5 6 7 8\n", "cpu0 1 2 3\n", "cpu0 1 2 3 4 5 6 x\n"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) accepted", bad)
		}
	}
}

func TestParseTaskStat(t *testing.T) {
	// A comm with spaces and parentheses, as a NAPI kthread or a hostile process name may have.
	line := "4242 (napi/vb-2 (x)) S 2 0 0 0 -1 2129984 0 0 0 0 150 25 0 0 20 0 1 0 136400 0 0\n"
	name, user, sys, err := ParseTaskStat([]byte(line))
	if err != nil || name != "napi/vb-2 (x)" || user != 1500*time.Millisecond || sys != 250*time.Millisecond {
		t.Fatalf("got %q %v %v %v", name, user, sys, err)
	}
	for _, bad := range []string{"", "12 no parens", "1 (x) S 1 2"} {
		if _, _, _, err := ParseTaskStat([]byte(bad)); err == nil {
			t.Errorf("ParseTaskStat(%q) accepted", bad)
		}
	}
}

func TestParseSchedstat(t *testing.T) {
	run, wait, n, err := ParseSchedstat([]byte("1020000000 5000 77\n"))
	if err != nil || run != 1020*time.Millisecond || wait != 5*time.Microsecond || n != 77 {
		t.Fatalf("got %v %v %v %v", run, wait, n, err)
	}
	if _, _, _, err := ParseSchedstat([]byte("1 2")); err == nil {
		t.Fatal("accepted two fields")
	}
}

func TestSub(t *testing.T) {
	t0 := time.Now()
	before := Snapshot{At: t0, CPUs: []CPUTimes{{CPU: 0, User: 100, System: 100, Idle: 800}},
		User: time.Second, GCCycles: 3,
		Tasks: map[string]TaskTimes{"napi": {OnCPU: time.Second}, "receiver": {Own: true, OnCPU: 0}},
		IRQs:  map[int][]uint64{29: {10, 20}}}
	after := Snapshot{At: t0.Add(2 * time.Second), CPUs: []CPUTimes{{CPU: 0, User: 150, System: 110, SoftIRQ: 20, Idle: 820}},
		User: 3 * time.Second, GCCycles: 3,
		Tasks: map[string]TaskTimes{"napi": {OnCPU: 3 * time.Second}, "receiver": {Own: true, OnCPU: 2 * time.Second}},
		IRQs:  map[int][]uint64{29: {15, 20}}}
	u := Sub(before, after)
	c := u.CPUs[0]
	if c.User != 50 || c.System != 10 || c.SoftIRQ != 20 || c.Idle != 20 {
		t.Fatalf("cpu split %+v; want usr 50 sys 10 softirq 20 idle 20", c)
	}
	if u.Tasks["napi"].Percent != 100 || u.IRQs["29"].Total != 5 || u.GCCycles != 0 {
		t.Fatalf("tasks/irqs %+v %+v", u.Tasks, u.IRQs)
	}
	// 2 s of process CPU plus 2 s of kthread CPU over 1000 ops; the receiver thread is already in the process time.
	if got := u.CPUPerOp(1000); got != 4*time.Millisecond {
		t.Fatalf("CPUPerOp = %v; want 4ms", got)
	}
}

func FuzzParsers(f *testing.F) {
	f.Add([]byte(statSample))
	f.Add([]byte("4242 (napi/vb-2) S 2 0 0 0 -1 2129984 0 0 0 0 150 25 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseStat(b)
		_, _, _, _ = ParseTaskStat(b)
		_, _, _, _ = ParseSchedstat(b)
	})
}

func TestParseCPUModel(t *testing.T) {
	in := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n"
	if got := parseCPUModel(in); got != "AMD EPYC 7B13" {
		t.Fatalf("parseCPUModel = %q", got)
	}
	if got := parseCPUModel("processor : 0\n"); got != "" {
		t.Fatalf("no model name gave %q", got)
	}
}

// TestStealBetween: a CPU's steal in ticks becomes a duration; a CPU missing from either reading, or a count
// that went back, is unknown.
func TestStealBetween(t *testing.T) {
	before := []CPUTimes{{CPU: 0, Steal: 100}, {CPU: 1, Steal: 50}}
	after := []CPUTimes{{CPU: 1, Steal: 53}, {CPU: 0, Steal: 99}, {CPU: 2, Steal: 7}}
	if d, ok := StealBetween(before, after, 1); !ok || d != 30*time.Millisecond {
		t.Errorf("CPU 1: %v, %v; want 30ms", d, ok)
	}
	for _, cpu := range []int{0, 2, 3} {
		if d, ok := StealBetween(before, after, cpu); ok {
			t.Errorf("CPU %d: %v, want unknown", cpu, d)
		}
	}
}
