package napi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/sysknob"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
	"github.com/napilab/napilab/internal/xdp"
)

// Privileged tests run on the real kernel, each in its own Ephemeral testbed
//
//	[ netns a: veth-a ] <------> [ netns b: veth-b ]   GRO on, TSO off: veth-b has one NAPI
//
// whose namespaces disappear with the test (or the killed test binary). The modes configure veth-b. Machine-wide
// knobs a mode touches (busy_read, RT throttling, workqueue masks...) are snapshotted by hostGuard and put back
// when the test ends, even when it fails; SMT is never touched. The same tests run unchanged in the qemu lab,
// where threaded busy poll is expected to work.

const (
	helperEnv  = "NAPILAB_NAPI_HELPER" // the role a re-executed test binary plays
	netnsEnv   = "NAPILAB_NAPI_NETNS"
	devEnv     = "NAPILAB_NAPI_DEV"
	journalEnv = "NAPILAB_NAPI_JOURNAL"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "apply-and-hold":
		helperApplyAndHold()
	case "not-root":
		helperNotRoot()
	}
	fmt.Fprintf(os.Stderr, "unknown %s=%q\n", helperEnv, os.Getenv(helperEnv))
	os.Exit(2)
}

// killMode is what the SIGKILL test applies: a threaded kthread plus machine-wide knobs, so that both kinds of
// state must survive the kill and be restored by another process.
func killMode(dev string) Mode {
	m, _ := Preset("threaded", dev)
	m.BusyRead = ptr(50 * time.Microsecond)
	m.Host.TimerMigrationOff, m.Host.RTThrottlingOff = true, true
	return m
}

// helperApplyAndHold applies killMode in the namespace and journal it is given, says "applied", and waits to be
// killed.
func helperApplyAndHold() {
	err := helperApply(killMode(os.Getenv(devEnv)))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	fmt.Println("applied")
	io.Copy(io.Discard, os.Stdin) // until the parent kills us
	os.Exit(0)
}

// helperApply applies m in the namespace and journal the helper's environment names.
func helperApply(m Mode) error {
	s, err := OpenNetNS(NetNS{Path: os.Getenv(netnsEnv)})
	if err != nil {
		return err
	}
	defer s.Close()
	p, err := resolveAndBuild(s, m)
	if err != nil {
		return err
	}
	_, err = s.Apply(context.Background(), p, ApplyOptions{Journal: os.Getenv(journalEnv)})
	return err
}

// helperNotRoot gives up root (all threads: setuid applies process-wide) and tries to apply a mode.
func helperNotRoot() {
	err := testenv.DropToNobody()
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	m, _ := Preset("busy-poll", os.Getenv(devEnv))
	err = helperApply(m)
	fmt.Println("error", err)
	if errors.Is(err, os.ErrPermission) {
		os.Exit(10)
	}
	os.Exit(11)
}

// hostGuard snapshots every machine-wide knob a mode may change and restores them when the test ends.
func hostGuard(t *testing.T) {
	t.Helper()
	host, err := sysknob.Host()
	if err != nil {
		t.Fatal(err)
	}
	k := NewKnobs(host, host)
	knobs := []Knob{{ID: KnobBusyRead}, {ID: KnobBusyPoll}, {ID: KnobRPSSockFlowEntries}, {ID: KnobTimerMigration},
		{ID: KnobSchedRTRuntime}}
	wqs, err := k.Workqueues()
	if err != nil {
		t.Fatal(err)
	}
	for _, wq := range wqs {
		knobs = append(knobs, Knob{ID: KnobWorkqueueCPUMask, Workqueue: wq})
	}
	snaps := make([]sysknob.Snapshot, len(knobs))
	for i, kn := range knobs {
		if snaps[i], err = k.Snapshot(kn); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for i, kn := range knobs {
			if err := k.Restore(kn, snaps[i]); err != nil {
				t.Errorf("put back %s: %v", kn, err)
			}
		}
		host.Close()
	})
}

// bedB builds a fresh testbed and opens napi's view of host b, where veth-b has its NAPI.
func bedB(t *testing.T, napi bool) (*testbed.Testbed, *System) {
	t.Helper()
	bed := testbedtest.New(t, testbed.Topology{NAPI: napi})
	s, err := OpenNetNS(NetNS{Path: bed.B.NetNSPath()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return bed, s
}

func show(t *testing.T, s *System) *State {
	t.Helper()
	st, err := s.Show("")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Unreadable) > 0 {
		t.Fatalf("show could not read: %q", st.Unreadable)
	}
	return st
}

// device finds a device of a State.
func device(t *testing.T, st *State, name string) *DeviceState {
	t.Helper()
	for i := range st.Devices {
		if st.Devices[i].Name == name {
			return &st.Devices[i]
		}
	}
	t.Fatalf("show reports no device %s", name)
	return nil
}

// privMode is a preset as the privileged tests use it: the last online CPU polls (the seed's CPU 2 may not
// exist) and SMT is left alone.
func privMode(t testing.TB, preset, dev string) Mode {
	m, err := Preset(preset, dev)
	if err != nil {
		t.Fatal(err)
	}
	m.PollCPU, m.Host.SMTOff = AutoCPU, false
	return m
}

// TestPrivModes applies every mode this kernel supports to a veth NAPI, reads each change back through netlink,
// sysfs/procfs and the scheduler independently of Apply's own check, and restores: `show` must then read
// exactly as before.
func TestPrivModes(t *testing.T) {
	testenv.RequirePriv(t)
	for _, preset := range PresetNames() {
		if strings.HasSuffix(preset, "threaded-busy-poll") {
			continue // TestPrivThreadedBusyPoll: this kernel may refuse it
		}
		t.Run(preset, func(t *testing.T) {
			testenv.Exclusive(t) // machine-wide knobs change: keep other packages' privileged tests out
			hostGuard(t)
			bed, s := bedB(t, true)
			roundTrip(t, s, preset, bed.B.Link, nil)
		})
	}
}

// roundTrip plans preset on dev, lets check look at the plan, applies it, reads every change back and restores:
// `show` must then read exactly as before.
func roundTrip(t *testing.T, s *System, preset, dev string, check func(*Plan)) {
	t.Helper()
	before := show(t, s)
	p, err := resolveAndBuild(s, privMode(t, preset, dev))
	if err != nil {
		t.Fatal(err)
	}
	if check != nil {
		check(p)
	}
	a, path := applyGuarded(t, s, p)
	readBack(t, s, p, a)
	if _, err := RestoreFile(path, OpenNetNS, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(before, show(t, s)); d != "" {
		t.Errorf("show differs after restore (-before +after):\n%s", d)
	}
}

// applyGuarded applies p with a journal of the test's own, restored when the test ends if it still exists (a
// failure between apply and the test's own restore).
func applyGuarded(t *testing.T, s *System, p *Plan) (*Applied, string) {
	t.Helper()
	path := journalPath(t)
	a, err := s.Apply(t.Context(), p, ApplyOptions{Journal: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RestoreFile(path, OpenNetNS, RestoreOptions{}) })
	return a, path
}

// readBack checks every applied change on the kernel, through a fresh sysfs view and fresh netlink reads.
func readBack(t *testing.T, s *System, p *Plan, a *Applied) {
	t.Helper()
	host, err := sysknob.Host()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	nsfd, err := os.Open(p.Target.NetNS.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer nsfd.Close()
	view, err := sysknob.NetNS(int(nsfd.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer view.Close()
	fresh := NewKnobs(view, host)
	for i, e := range a.Journal.Entries {
		c := e.Change
		if e.Outcome != "applied" {
			if c.Optional && strings.HasPrefix(e.Outcome, "skipped") {
				continue
			}
			t.Errorf("step %d (%s): outcome %q", i+1, c.Describe(), e.Outcome)
			continue
		}
		switch c.Kind {
		case KindNAPI:
			n, err := s.Netdev.NAPI(c.NAPI)
			if err != nil {
				t.Fatal(err)
			}
			cfg, _ := c.Settings.Config()
			if err := napiMismatch(n, cfg); err != nil {
				t.Errorf("step %d: %v", i+1, err)
			}
		case KindKnob:
			got, err := fresh.Get(*c.Knob)
			if err != nil || !sameKnobValue(*c.Knob, got, c.Value) {
				t.Errorf("step %d: %s reads %q (%v), want %q", i+1, c.Knob, got, err, c.Value)
			}
		case KindKthread:
			n, err := s.Netdev.NAPI(c.NAPI)
			if err != nil || !n.HasPID {
				t.Fatalf("step %d: napi %d has no kthread (%+v, %v)", i+1, c.NAPI, n, err)
			}
			sched, err := host.Sched(int(n.PID))
			if err != nil {
				t.Fatal(err)
			}
			if sched.Policy != sysknob.PolicyFIFO || sched.Priority != c.FIFO || !sched.CPUs.Equal(sysknob.CPUs(p.PollCPU)) {
				t.Errorf("kthread %d is %v %d on CPUs %s, want SCHED_FIFO %d on CPU %d", n.PID, sched.Policy,
					sched.Priority, sched.CPUs, c.FIFO, p.PollCPU)
			}
			comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", n.PID))
			if want := fmt.Sprintf("napi/%s-%d\n", p.Target.Device, c.NAPI); err != nil || string(comm) != want {
				t.Errorf("pid %d is %q (%v), not the NAPI kthread %q", n.PID, comm, err, want)
			}
		}
	}
}

// TestPrivThreadedBusyPoll: on a kernel before 6.19 the mode fails with the version gate and nothing changes;
// on 6.19 and later (the qemu lab) it is applied, its kthread spins at FIFO on the poll CPU, and restore ends
// where it started.
func TestPrivThreadedBusyPoll(t *testing.T) {
	testenv.RequirePriv(t)
	for _, preset := range []string{"threaded-busy-poll", "seed-threaded-busy-poll"} {
		t.Run(preset, func(t *testing.T) {
			testenv.Exclusive(t) // the kthread spins a CPU
			hostGuard(t)
			bed, s := bedB(t, true)
			before := show(t, s)
			p, err := resolveAndBuild(s, privMode(t, preset, bed.B.Link))
			if testenv.ExpectUnsupported(t, err, 6, 19) {
				if !strings.HasPrefix(err.Error(), "threaded-busy-poll needs Linux 6.19 or newer (this kernel is ") {
					t.Errorf("error %q does not say which kernel is needed", err)
				}
				if d := cmp.Diff(before, show(t, s)); d != "" {
					t.Errorf("the refused mode changed something (-before +after):\n%s", d)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a, path := applyGuarded(t, s, p)
			readBack(t, s, p, a)
			if n, err := s.Netdev.NAPI(p.Target.Queues[0].NAPI.ID); err != nil || n.Threaded != netdev.ThreadedBusyPoll {
				t.Errorf("napi %+v (%v) is not in threaded busy poll", n, err)
			}
			if _, err := RestoreFile(path, OpenNetNS, RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(before, show(t, s)); d != "" {
				t.Errorf("show differs after restore (-before +after):\n%s", d)
			}
		})
	}
}

// startHelper runs the test binary in a helper role; it is killed when the test ends.
func startHelper(t *testing.T, role string, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	h := testenv.StartHelper(t, append([]string{helperEnv + "=" + role}, env...))
	return h.Cmd, h.Out
}

// TestPrivKillApplyRestore: a process applies a mode and is killed with SIGKILL; the mode stays in place, and
// a restore from its journal in this process leaves `show --json` identical to before.
func TestPrivKillApplyRestore(t *testing.T) {
	testenv.RequirePriv(t)
	testenv.Exclusive(t)
	hostGuard(t)
	bed, s := bedB(t, true)
	before := show(t, s)
	path := journalPath(t)
	cmd, out := startHelper(t, "apply-and-hold", netnsEnv+"="+bed.B.NetNSPath(),
		devEnv+"="+bed.B.Link, journalEnv+"="+path)
	if !out.Scan() || out.Text() != "applied" {
		t.Fatalf("helper said %q (%v)", out.Text(), out.Err())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("helper did not die by SIGKILL: %v", err)
	}
	t.Cleanup(func() { RestoreFile(path, OpenNetNS, RestoreOptions{}) })
	held := show(t, s)
	napis := device(t, held, bed.B.Link).NAPIs
	if held.Host.BusyReadUS == nil || *held.Host.BusyReadUS != 50 ||
		len(napis) != 1 || napis[0].Threaded != "enabled" || napis[0].Kthread == nil || napis[0].Kthread.Priority != 50 {
		t.Fatalf("the killed process's mode is not in place: %+v", held)
	}
	rep, err := RestoreFile(path, OpenNetNS, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range rep.Items {
		if it.Result == Failed {
			t.Errorf("restore: %+v", it)
		}
	}
	if d := cmp.Diff(before, show(t, s)); d != "" {
		t.Errorf("show --json differs after apply, SIGKILL and restore (-before +after):\n%s", d)
	}
	noJournal(t, path)
}

// TestPrivBadInput: a veth without a NAPI, an unknown device, a CPU that does not exist, a priority out of
// range, a corrupt journal, and a user who is not root each fail with a sentence that says how to fix it, and
// nothing changes.
func TestPrivBadInput(t *testing.T) {
	testenv.RequirePriv(t)
	// "Nothing changes" compares machine-wide knobs too, which other packages' tests change while they hold the
	// lock (a seed preset sets kernel.timer_migration): seen flipping mid-test on a shared machine.
	testenv.Exclusive(t)
	bed, s := bedB(t, false) // GRO off, no XDP: veth-b has no NAPI
	before := show(t, s)
	for _, tc := range []struct {
		name string
		edit func(*Mode)
		want string
		is   error
	}{
		{"queue without NAPI", nil, "veth-b rx queue 0 has no NAPI instance, so there is nothing to poll; a veth " +
			"gets one only while XDP is attached or GRO is on", os.ErrNotExist},
		{"unknown device", func(m *Mode) { m.Device = "nosuchdev0" }, `dev "nosuchdev0" does not exist in`,
			os.ErrNotExist},
		{"priority out of range", func(m *Mode) { m.FIFO = 100 }, "fifo priority 100 is out of range: use 1 to 99", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := privMode(t, "threaded", bed.B.Link)
			if tc.edit != nil {
				tc.edit(&m)
			}
			_, err := s.Resolve(m)
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("CPU out of range", func(t *testing.T) {
		_, s := bedB(t, true)
		m := privMode(t, "threaded", testbed.LinkB)
		m.PollCPU = sysknob.MaxCPUs - 1
		tgt, err := s.Resolve(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Build(m, tgt); err == nil || !strings.Contains(err.Error(), "is not online on this machine") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("corrupt journal", func(t *testing.T) {
		path := journalPath(t)
		os.WriteFile(path, []byte(`{"format": "napilab mode journal v1", "entries": [`), 0o600)
		if _, err := RestoreFile(path, OpenNetNS, RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "is corrupt") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("not root", func(t *testing.T) {
		bed, s := bedB(t, true)
		before := show(t, s)
		dir := t.TempDir()
		cmd, out := startHelper(t, "not-root", netnsEnv+"="+bed.B.NetNSPath(), devEnv+"="+bed.B.Link,
			journalEnv+"="+filepath.Join(dir, "mode.journal"))
		out.Scan()
		err := cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 10 || !strings.Contains(out.Text(), "run as root") {
			t.Errorf("helper without root: %v, said %q; want a permission error that says to run as root", err, out.Text())
		}
		if d := cmp.Diff(before, show(t, s)); d != "" {
			t.Errorf("a refused apply changed something (-before +after):\n%s", d)
		}
	})
	if d := cmp.Diff(before, show(t, s)); d != "" {
		t.Errorf("bad input changed something (-before +after):\n%s", d)
	}
}

// BenchmarkPrivApplyRestore measures switching a veth NAPI into threaded mode (napi-set, kthread FIFO and
// affinity, journal) and back, on the real kernel: the cost a sweep pays per mode change.
func BenchmarkPrivApplyRestore(b *testing.B) {
	testenv.RequirePriv(b)
	testenv.Exclusive(b)
	bed := testbedtest.New(b, testbed.Topology{NAPI: true})
	s, err := OpenNetNS(NetNS{Path: bed.B.NetNSPath()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p, err := resolveAndBuild(s, privMode(b, "threaded", bed.B.Link))
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "mode.journal")
	for b.Loop() {
		if _, err := s.Apply(b.Context(), p, ApplyOptions{Journal: path}); err != nil {
			b.Fatal(err)
		}
		if rep := s.Restore(mustLoad(b, path), RestoreOptions{}); !rep.Complete() {
			b.Fatal(rep.Err())
		}
		if err := RemoveJournal(path); err != nil {
			b.Fatal(err)
		}
	}
}

func mustLoad(b *testing.B, path string) *Journal {
	j, err := LoadJournal(path)
	if err != nil {
		b.Fatal(err)
	}
	return j
}

// TestPrivReassertAfterXDPAttach: with the veth's NAPI kept by GRO, attaching the XDP program leaves the mode
// in place and Reassert has nothing to redo; without GRO the NAPI lives and dies with XDP, so detaching and
// attaching again replaces it with a fresh one, which Reassert records and puts in the mode, and which restore
// then puts back.
func TestPrivReassertAfterXDPAttach(t *testing.T) {
	testenv.RequirePriv(t)
	attach := func(t *testing.T, bed *testbed.Testbed) *xdp.Program {
		t.Helper()
		prog, err := xdp.Load(xdp.Spec{Port: 54321, Queues: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { prog.Close() })
		if err := bed.B.Do(func() error { _, err := prog.Attach(bed.B.Ifindex, xdp.ModeAuto); return err }); err != nil {
			t.Fatal(err)
		}
		return prog
	}
	t.Run("gro", func(t *testing.T) {
		testenv.Exclusive(t)
		hostGuard(t)
		bed, s := bedB(t, true)
		p, err := resolveAndBuild(s, privMode(t, "threaded", bed.B.Link))
		if err != nil {
			t.Fatal(err)
		}
		a, _ := applyGuarded(t, s, p)
		attach(t, bed)
		redone, err := s.Reassert(a)
		if err != nil || len(redone) != 0 {
			t.Errorf("reassert after XDP attach redid %q (%v)", redone, err)
		}
	})
	t.Run("xdp only", func(t *testing.T) {
		testenv.Exclusive(t)
		hostGuard(t)
		bed, s := bedB(t, false)
		prog := attach(t, bed)
		p, err := resolveAndBuild(s, privMode(t, "threaded", bed.B.Link))
		if err != nil {
			t.Fatal(err)
		}
		before := show(t, s)
		a, path := applyGuarded(t, s, p)
		prog.Close()
		attach(t, bed)
		redone, err := s.Reassert(a)
		if err != nil || len(redone) != 2 {
			t.Fatalf("reassert after the NAPI was replaced redid %q (%v), want the napi-set and the kthread", redone, err)
		}
		napis := device(t, show(t, s), bed.B.Link).NAPIs
		if len(napis) != 1 || napis[0].ID == p.Target.Queues[0].NAPI.ID || napis[0].Threaded != "enabled" ||
			napis[0].Kthread == nil || napis[0].Kthread.Policy != "SCHED_FIFO" {
			t.Fatalf("the new NAPI is not in the mode: %+v", napis)
		}
		if _, err := RestoreFile(path, OpenNetNS, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
		after := show(t, s)
		// The NAPI was replaced: its state, not its id, must be as before.
		device(t, after, bed.B.Link).NAPIs[0].ID = device(t, before, bed.B.Link).NAPIs[0].ID
		if d := cmp.Diff(before, after); d != "" {
			t.Errorf("show differs after restore (-before +after):\n%s", d)
		}
	})
}
