package napi

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/kernel"
)

// generous bounds a wait for something that must happen; it is never a measure of speed.
const generous = 30 * time.Second

func waitDone(t *testing.T, h *Held) {
	t.Helper()
	select {
	case <-h.Done():
	case <-time.After(generous):
		t.Fatal("the hold was not restored")
	}
}

// TestHoldReleaseRestores: Release puts the machine back, removes journal and lease, and is idempotent.
func TestHoldReleaseRestores(t *testing.T) {
	f := newFakeOS(features6_19)
	before := f.state()
	path := journalPath(t)
	h, err := f.system().Hold(t.Context(), mustPlan(t, f, "threaded", "eth1"), HoldOptions{
		ApplyOptions: ApplyOptions{Journal: path}, Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if f.state() == before {
		t.Fatal("hold changed nothing")
	}
	l, err := LoadLease(path)
	if err != nil || l.Holder.PID != os.Getpid() || time.Until(l.Deadline) < 59*time.Minute {
		t.Fatalf("lease %+v, %v: want this process, an hour ahead", l, err)
	}
	rep, err := h.Release()
	if err != nil || !rep.Complete() {
		t.Fatalf("release: %v", err)
	}
	if f.state() != before {
		t.Fatalf("release left the machine different")
	}
	noJournal(t, path)
	if _, err := os.Stat(LeasePath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lease still there: %v", err)
	}
	again, err := h.Release()
	if again != rep || err != nil {
		t.Errorf("a second Release = %p, %v; want the first report and no error", again, err)
	}
	waitDone(t, h)
	if err := h.Renew(time.Minute); err == nil || !strings.Contains(err.Error(), "was released") {
		t.Errorf("renew after release: %v", err)
	}
}

// TestHoldLeaseRunsOut: without renewal the hold restores by itself, and a late renewal says so.
func TestHoldLeaseRunsOut(t *testing.T) {
	f := newFakeOS(features6_19)
	before := f.state()
	path := journalPath(t)
	h, err := f.system().Hold(t.Context(), mustPlan(t, f, "busy-poll", "eth1"), HoldOptions{
		ApplyOptions: ApplyOptions{Journal: path}, Lease: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, h)
	if !h.Expired() {
		t.Error("restored, but not because the lease ran out")
	}
	if f.state() != before {
		t.Fatal("the expired hold left the machine different")
	}
	noJournal(t, path)
	if err := h.Renew(time.Minute); err == nil || !strings.Contains(err.Error(), "lease ran out") {
		t.Errorf("renew after expiry: %v", err)
	}
}

// TestHoldRenewMovesTheDeadline: a renewal moves the deadline in memory and on disk, where a watchdog reads it.
func TestHoldRenewMovesTheDeadline(t *testing.T) {
	f := newFakeOS(features6_19)
	path := journalPath(t)
	h, err := f.system().Hold(t.Context(), mustPlan(t, f, "threaded", "eth1"), HoldOptions{
		ApplyOptions: ApplyOptions{Journal: path}, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	if err := h.Renew(3 * time.Hour); err != nil {
		t.Fatal(err)
	}
	l, err := LoadLease(path)
	if err != nil || !l.Deadline.Equal(h.Deadline()) || time.Until(l.Deadline) < 2*time.Hour {
		t.Fatalf("lease on disk %+v, %v; hold's deadline %v", l, err, h.Deadline())
	}
	if err := h.Renew(-time.Second); err == nil {
		t.Error("a negative renewal was accepted")
	}
}

// TestHoldWithoutLease: no lease file, nothing expires, Release restores.
func TestHoldWithoutLease(t *testing.T) {
	f := newFakeOS(features6_19)
	path := journalPath(t)
	h, err := f.system().Hold(t.Context(), mustPlan(t, f, "threaded", "eth1"), HoldOptions{
		ApplyOptions: ApplyOptions{Journal: path}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(LeasePath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a hold without a lease wrote one: %v", err)
	}
	if err := h.Renew(time.Minute); err == nil {
		t.Error("renewed a hold without a lease")
	}
	if _, err := h.Release(); err != nil {
		t.Fatal(err)
	}
	noJournal(t, path)
}

// TestHoldWatchdogFailure: a hold whose watchdog cannot start changes nothing.
func TestHoldWatchdogFailure(t *testing.T) {
	f := newFakeOS(features6_19)
	before := f.state()
	path := journalPath(t)
	_, err := f.system().Hold(t.Context(), mustPlan(t, f, "threaded", "eth1"), HoldOptions{
		ApplyOptions: ApplyOptions{Journal: path}, Lease: time.Minute,
		Watchdog: func(string) (*os.Process, error) { return nil, errors.New("no fork for you") }})
	if err == nil || !strings.Contains(err.Error(), "no fork for you") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("Hold = %v", err)
	}
	if f.state() != before {
		t.Fatal("the machine was left changed")
	}
	noJournal(t, path)
}

// TestWatchRestoresAfterTheLease: a journal whose lease ran out is restored by the watchdog; one that the
// holder removed ends the watch without a restore.
func TestWatchRestoresAfterTheLease(t *testing.T) {
	f := newFakeOS(features6_19)
	before := f.state()
	path := journalPath(t)
	if _, err := f.system().Apply(t.Context(), mustPlan(t, f, "threaded", "eth1"), ApplyOptions{Journal: path}); err != nil {
		t.Fatal(err)
	}
	if err := writeLease(path, Lease{Format: leaseFormat, Deadline: time.Now().Add(-time.Minute),
		Holder: kernel.Process{PID: 1 << 30}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), generous)
	defer cancel()
	rep, err := Watch(ctx, path, WatchOptions{Open: openFake(f), Poll: time.Millisecond, Grace: time.Millisecond})
	if err != nil || rep == nil || !rep.Complete() {
		t.Fatalf("Watch = %v, %v", rep, err)
	}
	if f.state() != before {
		t.Fatal("the watchdog left the machine different")
	}
	noJournal(t, path)

	rep, err = Watch(ctx, path, WatchOptions{Open: openFake(f)})
	if rep != nil || err != nil {
		t.Fatalf("Watch of a removed journal = %v, %v; want nothing done", rep, err)
	}
}

// TestWatchBeforeTheJournal: a watchdog starts before the first change, so it may find a lease and no journal
// yet; it waits for one, and once the lease is over without any, it removes the lease and restores nothing.
func TestWatchBeforeTheJournal(t *testing.T) {
	f := newFakeOS(features6_19)
	before := f.state()
	path := journalPath(t)
	if err := writeLease(path, Lease{Format: leaseFormat, Deadline: time.Now().Add(20 * time.Millisecond),
		Holder: kernel.Process{PID: 1 << 30}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), generous)
	defer cancel()
	rep, err := Watch(ctx, path, WatchOptions{Open: openFake(f), Poll: time.Millisecond, Grace: time.Millisecond})
	if rep != nil || err != nil {
		t.Fatalf("Watch = %v, %v; want nothing restored", rep, err)
	}
	if _, err := os.Stat(LeasePath(path)); !errors.Is(err, os.ErrNotExist) || f.state() != before {
		t.Fatalf("lease left (%v), or the machine changed", err)
	}
}

// TestHoldStartsTheWatchdogFirst: the watchdog exists, and the lease names it, before the first change.
func TestHoldStartsTheWatchdogFirst(t *testing.T) {
	f := newFakeOS(features6_19)
	path := journalPath(t)
	before := f.state()
	var sawJournal, changed bool
	var leased Lease
	h, err := f.system().Hold(t.Context(), mustPlan(t, f, "threaded", "eth1"), HoldOptions{
		ApplyOptions: ApplyOptions{Journal: path}, Lease: time.Hour,
		Watchdog: func(j string) (*os.Process, error) {
			_, serr := os.Stat(j)
			sawJournal, changed = serr == nil, f.state() != before
			cmd := exec.Command("/bin/sleep", "1000")
			if err := cmd.Start(); err != nil {
				return nil, err
			}
			go cmd.Wait()
			return cmd.Process, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	leased, _ = LoadLease(path)
	if sawJournal || changed || leased.Watchdog.PID == 0 {
		t.Fatalf("watchdog started after the journal (%v) or a change (%v); lease %+v", sawJournal, changed, leased)
	}
	if _, err := h.Release(); err != nil {
		t.Fatal(err)
	}
}

// TestWatchWaitsForTheDeadline: a lease an hour away keeps the watchdog waiting until its context ends.
func TestWatchWaitsForTheDeadline(t *testing.T) {
	f := newFakeOS(features6_19)
	path := journalPath(t)
	if _, err := f.system().Apply(t.Context(), mustPlan(t, f, "threaded", "eth1"), ApplyOptions{Journal: path}); err != nil {
		t.Fatal(err)
	}
	if err := writeLease(path, Lease{Format: leaseFormat, Deadline: time.Now().Add(time.Hour), Holder: self()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Watch(ctx, path, WatchOptions{Open: openFake(f)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch = %v, want it to wait (and stop on cancel)", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the journal of a live lease is gone: %v", err)
	}
}

// deadProcess is a process that has exited.
func deadProcess(t *testing.T) kernel.Process {
	t.Helper()
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Skipf("no /bin/true: %v", err)
	}
	return kernel.Process{PID: cmd.Process.Pid, Start: 1}
}

// TestRestoreStale: a journal whose holder died is restored after its watchdog is stopped for good; the
// journal of a live holder is left alone.
func TestRestoreStale(t *testing.T) {
	f := newFakeOS(features6_19)
	before := f.state()
	dir := t.TempDir()
	stale := filepath.Join(dir, "a"+journalSuffix)
	if _, err := f.system().Apply(t.Context(), mustPlan(t, f, "threaded", "eth1"), ApplyOptions{Journal: stale}); err != nil {
		t.Fatal(err)
	}
	wd := exec.Command("/bin/sleep", "1000")
	if err := wd.Start(); err != nil {
		t.Skipf("no /bin/sleep: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- wd.Wait() }()
	wdp, err := kernel.ProcessOf(wd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeLease(stale, Lease{Format: leaseFormat, Deadline: time.Now().Add(time.Hour),
		Holder: deadProcess(t), Watchdog: wdp}); err != nil {
		t.Fatal(err)
	}
	live := filepath.Join(dir, "b"+journalSuffix)
	if err := os.WriteFile(live, []byte("not read"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeLease(live, Lease{Format: leaseFormat, Deadline: time.Now().Add(time.Hour),
		Holder: kernel.Process{PID: os.Getppid()}}); err != nil {
		t.Fatal(err)
	}

	got, err := RestoreStale(dir, WatchOptions{Open: openFake(f)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Journal != stale || got[0].Preset != "threaded" || got[0].Report == nil {
		t.Fatalf("RestoreStale = %+v; want the one stale journal", got)
	}
	select {
	case <-waited:
	case <-time.After(generous):
		t.Fatal("the watchdog of the stale journal still runs")
	}
	if f.state() != before {
		t.Fatal("the stale journal was not restored")
	}
	noJournal(t, stale)
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("the journal of a live holder was touched: %v", err)
	}
}

// TestLockOneHolder: a second taker is refused with the first holder's name; after Release it gets the lock.
func TestLockOneHolder(t *testing.T) {
	dir := t.TempDir()
	h := Holder{Process: self(), Controller: "laptop", Since: time.Now().UTC(), Command: "napilab sweep"}
	l, err := TakeLock(dir, h)
	if err != nil {
		t.Fatal(err)
	}
	_, err = TakeLock(dir, Holder{Process: self()})
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "driven from laptop") {
		t.Fatalf("second TakeLock = %v; want ErrHeld naming the holder", err)
	}
	if got, err := ReadHolder(dir); err != nil || got.Controller != "laptop" {
		t.Fatalf("ReadHolder = %+v, %v", got, err)
	}
	if err := l.Release(); err != nil || l.Release() != nil {
		t.Fatalf("release: %v", err)
	}
	l2, err := TakeLock(dir, Holder{Process: self()})
	if err != nil {
		t.Fatalf("TakeLock after release: %v", err)
	}
	l2.Release()
}

func FuzzParseLease(f *testing.F) {
	f.Add([]byte(`{"format":"napilab mode lease v1","deadline":"2026-12-02T18:00:00Z","holder":{"pid":7,"start":9}}`))
	f.Add([]byte(`{"format":"napilab mode lease v1","deadline":"2026-12-02T18:00:00Z","holder":{"pid":7,"start":9},` +
		`"watchdog":{"pid":8,"start":10}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLease(b)
		if err != nil {
			return
		}
		if l.Holder.PID <= 0 || l.Deadline.IsZero() || l.Format != leaseFormat {
			t.Fatalf("ParseLease accepted %+v", l)
		}
	})
}

// TestServicePlan: a unit that runs is stopped for the hold and started again on release, also by a restore
// from the journal after a crash; one that does not run is left alone.
func TestServicePlan(t *testing.T) {
	for _, running := range []bool{true, false} {
		f := newFakeOS(features6_19)
		f.units = map[string]bool{"irqbalance.service": running}
		before := f.state()
		sys := f.system()
		target, err := sys.DeviceTarget("eth1")
		if err != nil {
			t.Fatal(err)
		}
		p := ServicePlan(target, "irqbalance.service", "it moves IRQ affinity")
		if !strings.Contains(p.Format(), "systemctl stop irqbalance.service") {
			t.Errorf("plan as shell:\n%s", p.Format())
		}
		path := journalPath(t)
		h, err := sys.Hold(t.Context(), p, HoldOptions{ApplyOptions: ApplyOptions{Journal: path}, Lease: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if on, _ := f.Active("irqbalance.service"); on {
			t.Fatalf("running=%v: the unit runs during the hold", running)
		}
		// A crash: the journal alone puts it back.
		j, err := LoadJournal(path)
		if err != nil {
			t.Fatal(err)
		}
		if j.Entries[0].Prior.Service.Active != running {
			t.Fatalf("journaled %+v, want active=%v", j.Entries[0].Prior.Service, running)
		}
		rep := sys.Restore(j, RestoreOptions{})
		if !rep.Complete() || f.state() != before {
			t.Fatalf("running=%v: restore %s", running, rep.Format())
		}
		if _, err := h.Release(); err != nil || f.state() != before {
			t.Fatalf("running=%v: release %v", running, err)
		}
		noJournal(t, path)
	}
}
