package napi

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
)

// openFake returns an open function for RestoreFile that hands out the fake.
func openFake(f *fakeOS) func(NetNS) (*System, error) {
	return func(NetNS) (*System, error) { return f.system(), nil }
}

func journalPath(t *testing.T) string { return filepath.Join(t.TempDir(), "mode.journal") }

func mustPlan(t *testing.T, f *fakeOS, preset, dev string, edit ...func(*Mode)) *Plan {
	t.Helper()
	p, err := planFor(t, f, preset, dev, edit...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func noJournal(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("journal %s still exists (%v)", path, err)
	}
}

// TestApplyRestoreGolden pins, for every preset, the exact operations Apply makes on the machine and those
// Restore makes to undo them, and checks that the machine ends exactly as it started.
func TestApplyRestoreGolden(t *testing.T) {
	for _, name := range PresetNames() {
		t.Run(name, func(t *testing.T) {
			f := newFakeOS(features6_19)
			before := f.state()
			p := mustPlan(t, f, name, "eth1")
			path := journalPath(t)
			a, err := f.system().Apply(t.Context(), p, ApplyOptions{Journal: path, AllowSMT: true})
			if err != nil {
				t.Fatal(err)
			}
			applied := f.takeLog()
			if !a.Journal.Complete {
				t.Error("journal not marked complete")
			}
			if f.state() == before {
				t.Fatal("apply changed nothing")
			}
			rep, err := RestoreFile(path, openFake(f), RestoreOptions{})
			if err != nil {
				t.Fatal(err)
			}
			restored := f.takeLog()
			if after := f.state(); after != before {
				t.Errorf("restore left the machine different:\nbefore %s\nafter %s", before, after)
			}
			noJournal(t, path)
			golden(t, "apply/"+name+".txt", "# apply\n"+applied+"\n\n# restore\n"+restored+"\n\n# report\n"+
				strings.ReplaceAll(rep.Format(), path, "JOURNAL"))
		})
	}
}

// TestCrashAtEveryStep kills the applying "process" just before each of its changes in turn (the goroutine
// ends with nothing deferred, as after SIGKILL), then restores from the journal in another System: the machine
// must end as it started, whatever the step.
func TestCrashAtEveryStep(t *testing.T) {
	for _, preset := range []string{"seed-threaded-busy-poll", "threaded", "irq-suspend"} {
		t.Run(preset, func(t *testing.T) {
			steps := len(strings.Split(applyLog(t, preset), "\n"))
			for n := 1; n <= steps; n++ {
				f := newFakeOS(features6_19)
				before := f.state()
				p := mustPlan(t, f, preset, "eth1")
				path := journalPath(t)
				f.crashAt(n)
				done := make(chan struct{})
				go func() {
					defer close(done)
					f.system().Apply(context.Background(), p, ApplyOptions{Journal: path, AllowSMT: true})
					t.Errorf("step %d: apply returned instead of dying", n)
				}()
				<-done
				f.before = nil
				if _, err := RestoreFile(path, openFake(f), RestoreOptions{}); err != nil {
					t.Fatalf("crash before change %d: restore: %v", n, err)
				}
				if after := f.state(); after != before {
					t.Fatalf("crash before change %d: the machine differs after restore:\nbefore %s\nafter %s", n,
						before, after)
				}
				noJournal(t, path)
			}
		})
	}
}

// applyLog returns the changes a full apply of preset makes on a fresh fake.
func applyLog(t *testing.T, preset string) string {
	f := newFakeOS(features6_19)
	p := mustPlan(t, f, preset, "eth1")
	if _, err := f.system().Apply(t.Context(), p, ApplyOptions{Journal: journalPath(t), AllowSMT: true}); err != nil {
		t.Fatal(err)
	}
	return f.takeLog()
}

// TestRollbackOnFailure: a step that fails rolls back everything before it, and the journal goes away.
func TestRollbackOnFailure(t *testing.T) {
	f := newFakeOS(features6_19)
	before := f.state()
	p := mustPlan(t, f, "seed-threaded-busy-poll", "eth1")
	f.before = func(op string) error {
		if strings.HasPrefix(op, "chrt") {
			return &kernel.OpError{Op: "sched_setattr", Err: os.ErrPermission}
		}
		return nil
	}
	path := journalPath(t)
	_, err := f.system().Apply(t.Context(), p, ApplyOptions{Journal: path, AllowSMT: true})
	if err == nil || !strings.Contains(err.Error(), "step 20 (kthread of napi 8193: SCHED_FIFO 50 on CPU 2)") ||
		!strings.Contains(err.Error(), "every change was rolled back") || !errors.Is(err, os.ErrPermission) {
		t.Fatalf("error %v, want step 20 failing with a permission error, rolled back", err)
	}
	if after := f.state(); after != before {
		t.Errorf("rollback left the machine different:\nbefore %s\nafter %s", before, after)
	}
	noJournal(t, path)
}

// TestRollbackOnCancel: ending the context mid-apply (SIGINT) rolls back too.
func TestRollbackOnCancel(t *testing.T) {
	f := newFakeOS(features6_19)
	before := f.state()
	p := mustPlan(t, f, "busy-poll", "eth1")
	ctx, cancel := context.WithCancelCause(t.Context())
	f.before = func(op string) error {
		if strings.HasPrefix(op, "write net.core.busy_read") {
			cancel(errors.New("interrupt"))
		}
		return nil
	}
	path := journalPath(t)
	_, err := f.system().Apply(ctx, p, ApplyOptions{Journal: path})
	if err == nil || !strings.Contains(err.Error(), "interrupted before step 2") {
		t.Fatalf("error %v, want an interruption before step 2", err)
	}
	if f.state() != before {
		t.Error("the machine differs after an interrupted apply")
	}
	noJournal(t, path)
}

// TestOptionalStepSkipped: a driver that refuses an optional step as not supported does not fail the apply.
func TestOptionalStepSkipped(t *testing.T) {
	f := newFakeOS(features6_19)
	p := mustPlan(t, f, "seed-busy-poll", "eth1")
	f.before = func(op string) error {
		if strings.HasPrefix(op, "ethtool -C") {
			return &kernel.OpError{Op: "coalesce-set", Err: kernel.ErrNotSupported}
		}
		return nil
	}
	a, err := f.system().Apply(t.Context(), p, ApplyOptions{Journal: journalPath(t), AllowSMT: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range a.Journal.Entries {
		if e.Change.Kind == KindCoalesce && !strings.HasPrefix(e.Outcome, "skipped: coalesce-set") {
			t.Errorf("coalescing outcome %q, want skipped", e.Outcome)
		}
	}
}

func TestApplyRefusals(t *testing.T) {
	t.Run("second apply", func(t *testing.T) {
		f := newFakeOS(features6_19)
		path := journalPath(t)
		if _, err := f.system().Apply(t.Context(), mustPlan(t, f, "busy-poll", "eth1"), ApplyOptions{Journal: path}); err != nil {
			t.Fatal(err)
		}
		f.takeLog()
		mid := f.state()
		_, err := f.system().Apply(t.Context(), mustPlan(t, f, "threaded", "eth1"), ApplyOptions{Journal: path})
		if err == nil || !strings.Contains(err.Error(), "holds busy-poll, applied on eth1 and not restored yet") {
			t.Fatalf("error %v, want a refusal", err)
		}
		if f.state() != mid || f.takeLog() != "" {
			t.Error("the refused apply changed the machine")
		}
	})
	t.Run("SMT without --allow-smt", func(t *testing.T) {
		f := newFakeOS(features6_19)
		_, err := f.system().Apply(t.Context(), mustPlan(t, f, "seed-busy-poll", "eth1"), ApplyOptions{Journal: journalPath(t)})
		if err == nil || !strings.Contains(err.Error(), "pass --allow-smt") || f.takeLog() != "" {
			t.Fatalf("error %v, want a refusal before any change", err)
		}
	})
	t.Run("plan for another namespace", func(t *testing.T) {
		f := newFakeOS(features6_19)
		p := mustPlan(t, f, "busy-poll", "eth1")
		p.Target.NetNS.Inode++
		_, err := f.system().Apply(t.Context(), p, ApplyOptions{Journal: journalPath(t)})
		if err == nil || !strings.Contains(err.Error(), "resolve the plan here") || f.takeLog() != "" {
			t.Fatalf("error %v, want a refusal before any change", err)
		}
	})
	t.Run("journal not writable", func(t *testing.T) {
		f := newFakeOS(features6_19)
		dir := t.TempDir()
		blocker := filepath.Join(dir, "file")
		os.WriteFile(blocker, nil, 0o600)
		_, err := f.system().Apply(t.Context(), mustPlan(t, f, "busy-poll", "eth1"),
			ApplyOptions{Journal: filepath.Join(blocker, "mode.journal")})
		if err == nil || !strings.Contains(err.Error(), "create the journal directory") || f.takeLog() != "" {
			t.Fatalf("error %v, want a journal error before any change", err)
		}
	})
}

// TestRestoreIdempotent: a second restore of the same journal finds everything in place and writes nothing.
func TestRestoreIdempotent(t *testing.T) {
	f := newFakeOS(features6_19)
	a, err := f.system().Apply(t.Context(), mustPlan(t, f, "seed-threaded-busy-poll", "eth1"),
		ApplyOptions{Journal: journalPath(t), AllowSMT: true})
	if err != nil {
		t.Fatal(err)
	}
	before := f.state()
	f.takeLog()
	first := f.system().Restore(a.Journal, RestoreOptions{})
	if !first.Complete() || f.state() == before {
		t.Fatalf("first restore: %v", first.Err())
	}
	f.takeLog()
	restored := f.state()
	second := f.system().Restore(a.Journal, RestoreOptions{})
	if log := f.takeLog(); log != "" || f.state() != restored {
		t.Errorf("the second restore changed something:\n%s", log)
	}
	for _, it := range second.Items {
		if it.Result != Unchanged && it.Result != Gone {
			t.Errorf("second restore: %+v", it)
		}
	}
	if _, err := RestoreFile(journalPath(t), openFake(f), RestoreOptions{}); !errors.Is(err, os.ErrNotExist) ||
		!strings.Contains(err.Error(), "nothing to restore") {
		t.Errorf("restore without a journal: %v", err)
	}
}

// TestRestoreDeviceGone: settings of a device that disappeared (or whose name now belongs to another device)
// are reported gone and never written; machine-wide settings are restored anyway.
func TestRestoreDeviceGone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(f *fakeOS)
		want   string
	}{
		{"removed", func(f *fakeOS) { f.links = f.links[:2] }, "device vb (ifindex 5) is gone"},
		{"replaced", func(f *fakeOS) { f.links[2].Ifindex = 9 }, "device vb now has ifindex 9, not 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeOS(features6_19)
			path := journalPath(t)
			if _, err := f.system().Apply(t.Context(), mustPlan(t, f, "threaded", "vb"), ApplyOptions{Journal: path}); err != nil {
				t.Fatal(err)
			}
			f.takeLog()
			tc.change(f)
			rep, err := RestoreFile(path, openFake(f), RestoreOptions{})
			if err != nil {
				t.Fatal(err)
			}
			log := f.takeLog()
			if strings.Contains(log, "napi-set") || strings.Contains(log, "sched") {
				t.Errorf("restore touched the device:\n%s", log)
			}
			if !strings.Contains(log, "restore net.core.busy_poll=50") {
				t.Errorf("machine-wide busy_poll not restored:\n%s", log)
			}
			gone := 0
			for _, it := range rep.Items {
				if it.Result == Gone && strings.HasPrefix(it.Detail, tc.want) {
					gone++
				}
			}
			if gone != 2 {
				t.Errorf("want the napi-set and kthread entries gone (%q):\n%s", tc.want, rep.Format())
			}
			noJournal(t, path)
		})
	}
}

// TestRestoreThreadedHang: a napi-set switching threaded off that never returns (lab.md §11) is abandoned
// after the timeout and reported with the hazard; later netdev steps are not attempted; the journal stays.
func TestRestoreThreadedHang(t *testing.T) {
	f := newFakeOS(features6_19)
	path := journalPath(t)
	if _, err := f.system().Apply(t.Context(), mustPlan(t, f, "threaded", "vb"), ApplyOptions{Journal: path}); err != nil {
		t.Fatal(err)
	}
	// Make the plan's first netdev step come after the hanging one: a record-only entry is restored last.
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	f.before = func(op string) error {
		if strings.Contains(op, "threaded=disabled") {
			<-hang
		}
		return nil
	}
	rep, err := RestoreFile(path, openFake(f), RestoreOptions{ThreadedTimeout: 1})
	if err == nil || !strings.Contains(err.Error(), "did not return within") ||
		!strings.Contains(err.Error(), "AF_XDP zero-copy socket whose fill ring is starved") {
		t.Fatalf("error %v, want the hang reported with its hazard", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the journal must stay after an incomplete restore: %v", err)
	}
	var failed int
	for _, it := range rep.Items {
		if it.Result == Failed {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("want exactly the napi-set failed:\n%s", rep.Format())
	}
}

// TestReassert: after a driver reset replaced the kthread and reverted a setting, Reassert records the new
// kthread, schedules it and writes the setting again; restore still ends where the machine started.
func TestReassert(t *testing.T) {
	f := newFakeOS(features6_19)
	before := f.state()
	path := journalPath(t)
	a, err := f.system().Apply(t.Context(), mustPlan(t, f, "threaded", "vb"), ApplyOptions{Journal: path})
	if err != nil {
		t.Fatal(err)
	}
	f.takeLog()
	redone, err := f.system().Reassert(a)
	if err != nil || len(redone) != 0 || f.takeLog() != "" {
		t.Fatalf("reassert of an intact mode redid %q (%v)", redone, err)
	}
	f.mu.Lock() // the reset: a new kthread, defer back to the driver's default
	n := f.napis[259]
	old := n.PID
	f.setThreaded(n, netdev.ThreadedDisabled)
	f.setThreaded(n, netdev.ThreadedEnabled)
	n.GROFlushTimeout = 0
	f.mu.Unlock()
	redone, err = f.system().Reassert(a)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("napi-set id=259 defer-hard-irqs=0 gro-flush-timeout=15µs threaded=enabled\n"+
		"chrt -f -p 50 %[1]d\ntaskset -pc 3 %[1]d", old+1)
	if log := f.takeLog(); log != want {
		t.Errorf("reassert did\n%s\nwant\n%s", log, want)
	}
	if len(redone) != 2 {
		t.Errorf("redone %q, want the napi-set and the kthread", redone)
	}
	f.mu.Lock() // a driver that re-creates the NAPI (veth without GRO, on XDP attach): a fresh one, defaults
	delete(f.sched, int(f.napis[259].PID))
	delete(f.napis, 259)
	f.napis[300] = &netdev.NAPI{ID: 300, Ifindex: 5}
	f.mu.Unlock()
	if redone, err = f.system().Reassert(a); err != nil || len(redone) != 2 {
		t.Fatalf("reassert after the NAPI was replaced redid %q (%v)", redone, err)
	}
	if n := f.napis[300]; n.Threaded != netdev.ThreadedEnabled || f.sched[int(n.PID)].Priority != 50 {
		t.Fatalf("the new NAPI is not in the mode: %+v", n)
	}
	if _, err := RestoreFile(path, openFake(f), RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := *f.napis[300]; n != (netdev.NAPI{ID: 300, Ifindex: 5}) {
		t.Errorf("restore left the new NAPI at %+v, not its defaults", n)
	}
	f.mu.Lock() // put the original NAPI back in place of the replacement to compare the rest with the start
	f.napis = map[uint32]*netdev.NAPI{8193: f.napis[8193], 8194: f.napis[8194], 259: {ID: 259, Ifindex: 5}}
	f.mu.Unlock()
	if f.napis[8193] == nil || f.state() != before {
		t.Errorf("the machine differs after restore:\n%s\nwant\n%s", f.state(), before)
	}
}

// TestRemapAfterChannels: a driver that re-creates its NAPIs when the channel count changes gets the later
// steps addressed to the new NAPI.
func TestRemapAfterChannels(t *testing.T) {
	f := newFakeOS(features6_19)
	f.before = func(op string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if strings.HasPrefix(op, "ethtool -L eth1 combined=1") {
			n := *f.napis[8193]
			n.ID = 9001
			delete(f.napis, 8193)
			delete(f.napis, 8194)
			f.napis[9001] = &n
			f.queues[0].NAPIID, f.queues[2].NAPIID = 9001, 9001
		}
		return nil
	}
	p := mustPlan(t, f, "threaded", "eth1", func(m *Mode) { m.Channels = 1 })
	path := journalPath(t)
	a, err := f.system().Apply(t.Context(), p, ApplyOptions{Journal: path})
	if err != nil {
		t.Fatal(err)
	}
	log := f.takeLog()
	if !strings.Contains(log, "napi-set id=9001") || strings.Contains(log, "napi-set id=8193") {
		t.Errorf("apply did not follow the new NAPI:\n%s", log)
	}
	if a.Kthreads()[0].PID == 0 {
		t.Error("no kthread recorded")
	}
	rep, err := RestoreFile(path, openFake(f), RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.napis[9001].Threaded != netdev.ThreadedDisabled || f.channels["eth1"].Combined != 2 {
		t.Errorf("restore did not put back the new NAPI and the channels:\n%s", rep.Format())
	}
}

// TestRandomSequences drives random applies, restores and reasserts: applies never stack, restores always
// return the machine to where it started, and a restore without an apply finds nothing.
func TestRandomSequences(t *testing.T) {
	presets := PresetNames()
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 1))
		f := newFakeOS(features6_19)
		initial := f.state()
		path := journalPath(t)
		var applied *Applied
		for step := range 60 {
			switch op := rng.IntN(3); {
			case op == 0:
				dev := []string{"eth1", "vb"}[rng.IntN(2)]
				p := mustPlan(t, f, presets[rng.IntN(len(presets))], dev, func(m *Mode) { m.PollCPU = 1 })
				mid := f.state()
				a, err := f.system().Apply(t.Context(), p, ApplyOptions{Journal: path, AllowSMT: true})
				switch {
				case applied != nil && (err == nil || f.state() != mid):
					t.Fatalf("seed %d step %d: a second apply ran (%v)", seed, step, err)
				case applied == nil && err != nil:
					t.Fatalf("seed %d step %d: apply %s: %v", seed, step, p.Mode.Preset, err)
				case applied == nil:
					applied = a
				}
			case op == 1:
				_, err := RestoreFile(path, openFake(f), RestoreOptions{})
				switch {
				case applied == nil && !errors.Is(err, os.ErrNotExist):
					t.Fatalf("seed %d step %d: restore without apply: %v", seed, step, err)
				case applied != nil && err != nil:
					t.Fatalf("seed %d step %d: restore: %v", seed, step, err)
				}
				if f.state() != initial {
					t.Fatalf("seed %d step %d: the machine differs after restore", seed, step)
				}
				applied = nil
			case applied != nil:
				mid := f.state()
				if _, err := f.system().Reassert(applied); err != nil || f.state() != mid {
					t.Fatalf("seed %d step %d: reassert of an intact mode: %v", seed, step, err)
				}
			}
			f.takeLog()
		}
	}
}
