package sysknob_test

import (
	"errors"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/sysknob"
	"github.com/napilab/napilab/internal/sysknob/sysknobtest"
)

// applyRestore applies v to k and checks, in order: the snapshot holds the file's exact prior text; the file
// then holds wantText (what `echo` would leave); Get returns v; Restore puts the prior bytes back. read returns
// the file's current text.
func applyRestore[T any](t *testing.T, k sysknob.Knob[T], v T, wantText string, read func() string) sysknob.Snapshot {
	t.Helper()
	before := read()
	snap, err := k.Apply(v)
	if err != nil {
		t.Fatalf("Apply(%v) to %s: %v", v, k.Name(), err)
	}
	if snap.Text != before || snap.Path != k.Path() || snap.Knob != k.Name() {
		t.Fatalf("snapshot = %+v, want text %q of %s", snap, before, k.Path())
	}
	if got := read(); got != wantText {
		t.Fatalf("%s holds %q after Apply(%v), want %q", k.Path(), got, v, wantText)
	}
	got, err := k.Get()
	if err != nil {
		t.Fatalf("Get %s: %v", k.Name(), err)
	}
	if !cmp.Equal(got, v) {
		t.Fatalf("Get %s = %v, want %v", k.Name(), got, v)
	}
	if err := k.Restore(snap); err != nil {
		t.Fatalf("Restore %s: %v", k.Name(), err)
	}
	if got := read(); got != before {
		t.Fatalf("%s holds %q after Restore, want the prior %q byte for byte", k.Path(), got, before)
	}
	return snap
}

// roundTrip is applyRestore on the fake tree, plus: restoring an unchanged knob writes nothing.
func roundTrip[T any](t *testing.T, tree *sysknobtest.Tree, k sysknob.Knob[T], v T, wantText string) {
	t.Helper()
	snap := applyRestore(t, k, v, wantText, func() string { return tree.Read(k.Path()) })
	// A write would move the file's modification time.
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(tree.Path(k.Path()), old, old); err != nil {
		t.Fatal(err)
	}
	if err := tree.Root.Restore(snap); err != nil {
		t.Fatalf("second Restore %s: %v", k.Name(), err)
	}
	if fi, err := os.Stat(tree.Path(k.Path())); err != nil || !fi.ModTime().Equal(old) {
		t.Fatalf("second Restore of unchanged %s wrote the file (%v)", k.Name(), err)
	}
}

func TestKnobsRoundTrip(t *testing.T) {
	tree := sysknobtest.New(t)
	r := tree.Root
	t.Run("threaded", func(t *testing.T) { roundTrip(t, tree, r.Threaded("eth0"), true, "1\n") })
	t.Run("napi_defer_hard_irqs", func(t *testing.T) { roundTrip(t, tree, r.NAPIDeferHardIRQs("eth0"), 100, "100\n") })
	t.Run("gro_flush_timeout", func(t *testing.T) {
		roundTrip(t, tree, r.GROFlushTimeout("eth0"), 15*time.Microsecond, "15000\n")
	})
	t.Run("busy_read", func(t *testing.T) { roundTrip(t, tree, r.BusyRead(), 400*time.Microsecond, "400\n") })
	t.Run("busy_poll", func(t *testing.T) { roundTrip(t, tree, r.BusyPoll(), 50*time.Microsecond, "50\n") })
	t.Run("rps_cpus", func(t *testing.T) { roundTrip(t, tree, r.RPSCPUs("eth0", 1), sysknob.CPUs(1, 3), "a\n") })
	t.Run("rps_flow_cnt", func(t *testing.T) { roundTrip(t, tree, r.RPSFlowCnt("eth0", 0), 4096, "4096\n") })
	t.Run("rps_sock_flow_entries", func(t *testing.T) { roundTrip(t, tree, r.RPSSockFlowEntries(), 32768, "32768\n") })
	t.Run("smp_affinity_list", func(t *testing.T) { roundTrip(t, tree, r.IRQAffinity(38), sysknob.CPUs(2), "2\n") })
	t.Run("timer_migration", func(t *testing.T) { roundTrip(t, tree, r.TimerMigration(), false, "0\n") })
	t.Run("sched_rt_runtime_us", func(t *testing.T) { roundTrip(t, tree, r.SchedRTRuntime(), sysknob.Unlimited, "-1\n") })
	t.Run("sched_rt_period_us", func(t *testing.T) { roundTrip(t, tree, r.SchedRTPeriod(), 2*time.Second, "2000000\n") })
	t.Run("smt", func(t *testing.T) { roundTrip(t, tree, r.SMTControl(), sysknob.SMTOff, "off\n") })
	t.Run("workqueue", func(t *testing.T) {
		roundTrip(t, tree, r.WorkqueueCPUMask("writeback"), sysknob.CPURange(1, 3), "e\n")
	})
	t.Run("unbound workqueues", func(t *testing.T) {
		roundTrip(t, tree, r.UnboundWorkqueueCPUMask(), sysknob.CPUs(0), "1\n")
	})
	t.Run("veth", func(t *testing.T) {
		tree.AddVeth("veth0", 4)
		roundTrip(t, tree, r.GROFlushTimeout("veth0"), 20*time.Microsecond, "20000\n")
		roundTrip(t, tree, r.RPSCPUs("veth0", 3), sysknob.CPUs(0), "1\n")
	})
}

// TestManyCPUs runs the mask knobs on a 96-CPU machine, whose kernel masks have three comma-separated groups.
func TestManyCPUs(t *testing.T) {
	tree := sysknobtest.New(t, sysknobtest.CPUs(96))
	r := tree.Root
	if got := tree.Read("/sys/class/net/eth0/queues/rx-0/rps_cpus"); got != "00000000,00000000,00000000\n" {
		t.Fatalf("fake rps_cpus = %q: the fake must print kernel-width masks", got)
	}
	roundTrip(t, tree, r.RPSCPUs("eth0", 0), sysknob.CPUs(0, 64, 95), "80000001,00000000,00000001\n")
	roundTrip(t, tree, r.WorkqueueCPUMask("nvme-wq"), sysknob.CPURange(32, 95), "ffffffff,ffffffff,00000000\n")
	roundTrip(t, tree, r.IRQAffinity(37), sysknob.CPURange(60, 70), "60-70\n")
	online, err := r.OnlineCPUs()
	if err != nil || online.Len() != 96 {
		t.Fatalf("OnlineCPUs = %v, %v; want 96 CPUs", online, err)
	}
}

func TestKnobGetValues(t *testing.T) {
	tree := sysknobtest.New(t)
	r := tree.Root
	if d, err := r.SchedRTRuntime().Get(); err != nil || d != 950*time.Millisecond {
		t.Errorf("sched_rt_runtime_us = %v, %v; want 950ms", d, err)
	}
	if on, err := r.TimerMigration().Get(); err != nil || !on {
		t.Errorf("timer_migration = %v, %v; want true", on, err)
	}
	if s, err := r.SMTControl().Get(); err != nil || s != sysknob.SMTOn {
		t.Errorf("SMT = %q, %v; want on", s, err)
	}
	if m, err := r.RPSCPUs("eth0", 0).Get(); err != nil || !m.IsEmpty() {
		t.Errorf("rps_cpus = %v, %v; want empty", m, err)
	}
	if a, err := r.IRQAffinity(37).Get(); err != nil || a.String() != "0-3" {
		t.Errorf("IRQ 37 affinity = %v, %v; want 0-3", a, err)
	}
	wqs, err := r.Workqueues()
	if err != nil || !slices.Equal(wqs, []string{"blkcg_punt_bio", "nvme-wq", "writeback"}) {
		t.Errorf("Workqueues = %q, %v; want the three with a cpumask (not power/)", wqs, err)
	}
}

// TestSetRefusesBeforeWriting checks that values the kernel would refuse are refused with a sentence naming the
// knob, and that the file is left untouched.
func TestSetRefusesBeforeWriting(t *testing.T) {
	tree := sysknobtest.New(t)
	r := tree.Root
	for _, tc := range []struct {
		name, path string
		set        func() error
		want       string
	}{
		{"negative gro", "/sys/class/net/eth0/gro_flush_timeout",
			func() error { return r.GROFlushTimeout("eth0").Set(-time.Second) }, "set gro_flush_timeout of eth0: -1s is negative"},
		{"sub-µs busy_read", "/proc/sys/net/core/busy_read",
			func() error { return r.BusyRead().Set(1500 * time.Nanosecond) }, "1.5µs is not a whole number of 1µs"},
		{"huge busy_poll", "/proc/sys/net/core/busy_poll",
			func() error { return r.BusyPoll().Set(time.Hour) }, "1h0m0s is above the maximum"},
		{"defer above S32_MAX", "/sys/class/net/eth0/napi_defer_hard_irqs",
			func() error { return r.NAPIDeferHardIRQs("eth0").Set(math.MaxInt32 + 1) }, "2147483648 is above the maximum 2147483647"},
		{"SMT forceoff", "/sys/devices/system/cpu/smt/control",
			func() error { return r.SMTControl().Set(sysknob.SMTForceOff) }, "forceoff lasts until reboot"},
		{"RPS CPU beyond the machine", "/sys/class/net/eth0/queues/rx-0/rps_cpus",
			func() error { return r.RPSCPUs("eth0", 0).Set(sysknob.CPUs(1, 7)) }, "CPU 7 does not exist on this machine (CPUs: 0-3)"},
		{"IRQ affinity beyond the machine", "/proc/irq/38/smp_affinity_list",
			func() error { return r.IRQAffinity(38).Set(sysknob.CPUs(4, 5)) }, "CPUs 4-5 do not exist"},
		{"runtime below -1", "/proc/sys/kernel/sched_rt_runtime_us",
			func() error { return r.SchedRTRuntime().Set(-2 * time.Microsecond) }, "is negative"},
	} {
		before := tree.Read(tc.path)
		err := tc.set()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want it to say %q", tc.name, err, tc.want)
		}
		if got := tree.Read(tc.path); got != before {
			t.Errorf("%s: %s changed from %q to %q", tc.name, tc.path, before, got)
		}
	}
}

func TestBadNames(t *testing.T) {
	tree := sysknobtest.New(t)
	r := tree.Root
	for _, err := range []error{
		r.Threaded("../../kernel").Set(true),
		r.GROFlushTimeout("").Set(0),
		r.NAPIDeferHardIRQs("a-very-long-interface-name").Set(1),
		r.WorkqueueCPUMask("../cpumask").Set(sysknob.CPUs(0)),
	} {
		if err == nil || !strings.Contains(err.Error(), "is not valid") {
			t.Errorf("bad name error = %v, want a sentence saying the name is not valid", err)
		}
	}
	if _, err := r.RPSCPUs("eth0", -1).Get(); err == nil || !strings.Contains(err.Error(), "queue index -1 is negative") {
		t.Errorf("negative queue: %v", err)
	}
	if _, err := r.IRQAffinity(-3).Snapshot(); err == nil || !strings.Contains(err.Error(), "IRQ number -3 is negative") {
		t.Errorf("negative IRQ: %v", err)
	}
}

// TestMissing checks the sentences for knobs that do not exist, and that they match os.ErrNotExist.
func TestMissing(t *testing.T) {
	tree := sysknobtest.New(t)
	r := tree.Root
	tree.Remove("/sys/devices/pci0000:00/0000:00:03.0/virtio2/net/eth0/gro_flush_timeout")
	tree.Remove("/sys/devices/system/cpu/smt/control")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{r.GROFlushTimeout("eth0").Set(time.Microsecond), "device eth0 has no gro_flush_timeout in sysfs"},
		{second(r.NAPIDeferHardIRQs("veth9").Get()), "there is no device veth9 in /sys/class/net of the tree at"},
		{second(r.SMTControl().Snapshot()), "this kernel has no SMT control"},
		{second(r.IRQAffinity(0).Get()), "IRQ 0 has no affinity setting"},
		{second(r.IRQAffinity(77).Get()), "there is no IRQ 77"},
		{r.WorkqueueCPUMask("nope").Set(sysknob.CPUs(0)), "there is no workqueue nope with a CPU mask"},
		{second(r.RPSFlowCnt("eth0", 9).Get()), "device eth0 has no queues/rx-9/rps_flow_cnt in sysfs"},
		{second(r.IRQCounts(77)), "IRQ 77 is not listed in /proc/interrupts"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) || !errors.Is(tc.err, os.ErrNotExist) {
			t.Errorf("error = %v, want os.ErrNotExist saying %q", tc.err, tc.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestSMTNotSupported(t *testing.T) {
	tree := sysknobtest.New(t)
	tree.Write("/sys/devices/system/cpu/smt/control", "notsupported\n")
	k := tree.Root.SMTControl()
	snap, err := k.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	err = k.Set(sysknob.SMTOff)
	if !errors.Is(err, kernel.ErrNotSupported) || !strings.Contains(err.Error(), "cannot switch SMT (smt/control reads notsupported)") {
		t.Errorf("Set on a machine without SMT = %v, want kernel.ErrNotSupported with a sentence", err)
	}
	if err := k.Restore(snap); err != nil {
		t.Errorf("restoring an unchanged notsupported state must be a no-op: %v", err)
	}
}

func TestGarbageInFile(t *testing.T) {
	tree := sysknobtest.New(t)
	tree.Write("/proc/sys/net/core/busy_read", "fast\n")
	_, err := tree.Root.BusyRead().Get()
	if err == nil || !strings.Contains(err.Error(), `read net.core.busy_read (/proc/sys/net/core/busy_read in the tree at`) ||
		!strings.Contains(err.Error(), `unexpected text "fast"`) {
		t.Errorf("Get on garbage = %v", err)
	}
	tree.Write("/sys/class/net/eth0/threaded", "2\n")
	if _, err := tree.Root.Threaded("eth0").Get(); err == nil || !strings.Contains(err.Error(), "want 0 or 1") {
		t.Errorf("Get threaded=2 = %v", err)
	}
}

func TestRestoreRejectsForeignPath(t *testing.T) {
	tree := sysknobtest.New(t)
	for _, p := range []string{"/etc/passwd", "/sys/../etc/passwd", "relative"} {
		err := tree.Root.Restore(sysknob.Snapshot{Knob: "x", Path: p, Text: "0\n"})
		if err == nil || !strings.Contains(err.Error(), "is not below /sys or /proc") {
			t.Errorf("Restore(%q) = %v", p, err)
		}
	}
}

func TestCheckRTThrottling(t *testing.T) {
	tree := sysknobtest.New(t)
	r := tree.Root
	warn, err := r.CheckRTThrottling()
	if err != nil || warn == nil || !strings.Contains(warn.Error(), "loses 5% of its CPU") ||
		!strings.Contains(warn.Error(), "write -1 to /proc/sys/kernel/sched_rt_runtime_us") {
		t.Errorf("default throttling: warn=%v err=%v", warn, err)
	}
	if err := r.SchedRTRuntime().Set(sysknob.Unlimited); err != nil {
		t.Fatal(err)
	}
	if warn, err := r.CheckRTThrottling(); warn != nil || err != nil {
		t.Errorf("throttling off: warn=%v err=%v", warn, err)
	}
	tree.Remove("/proc/sys/kernel/sched_rt_runtime_us")
	if warn, err := r.CheckRTThrottling(); warn != nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("no sysctl: warn=%v err=%v, want an error saying it cannot tell", warn, err)
	}
}

func TestQueueIRQs(t *testing.T) {
	tree := sysknobtest.New(t)
	r := tree.Root
	if got, err := r.QueueIRQs("eth0", 1, 0); err != nil || !slices.Equal(got, []int{39, 40}) {
		t.Errorf("eth0 queue 1 = %v, %v; want [39 40] via the virtio2 device link", got, err)
	}
	if got, err := r.QueueIRQs("eth0", 0, 37); err != nil || !slices.Equal(got, []int{37}) {
		t.Errorf("with the NAPI's irq = %v, %v; want [37]", got, err)
	}
	if _, err := r.QueueIRQs("eth0", 0, 555); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale NAPI irq: %v", err)
	}
	tree.AddVeth("veth0", 1)
	_, err := r.QueueIRQs("veth0", 0, 0)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "found no IRQ of veth0 queue 0") ||
		!strings.Contains(err.Error(), "veth0-TxRx-0") {
		t.Errorf("veth = %v, want os.ErrNotExist listing the names tried", err)
	}
	counts, err := r.IRQCounts(38)
	if err != nil || !cmp.Equal(counts, map[int]uint64{0: 38, 1: 76, 2: 114, 3: 152}) {
		t.Errorf("IRQCounts(38) = %v, %v", counts, err)
	}
}

func TestRootString(t *testing.T) {
	tree := sysknobtest.New(t)
	if got := tree.Root.String(); got != "the tree at "+tree.Dir {
		t.Errorf("String = %q", got)
	}
	if _, err := sysknob.Dir(t.TempDir()); err == nil {
		t.Error("Dir on a directory without sys/ and proc/ must fail")
	}
}
