package napi

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// hostSystem is the fake machine with a host registry in a scratch directory: every System it returns shares
// that registry, as every napilab process on a machine shares /run/napilab/host.json.
type hostSystem struct {
	f        *fakeOS
	registry string
}

func newHostSystem(t *testing.T) *hostSystem {
	return &hostSystem{f: newFakeOS(features6_19), registry: filepath.Join(t.TempDir(), "host.json")}
}

func (h *hostSystem) system() *System {
	s := h.f.system()
	s.Registry = h.registry
	return s
}

func (h *hostSystem) apply(t *testing.T, preset, dev string) (*Applied, error) {
	t.Helper()
	p := mustPlan(t, h.f, preset, dev)
	return h.system().Apply(t.Context(), p, ApplyOptions{Journal: filepath.Join(t.TempDir(), preset+"-"+dev+".journal")})
}

func (h *hostSystem) restore(t *testing.T, a *Applied) *RestoreReport {
	t.Helper()
	rep, err := RestoreFile(a.Journal.Path(), func(NetNS) (*System, error) { return h.system(), nil }, RestoreOptions{})
	if err != nil {
		t.Fatalf("restore %s: %v\n%s", a.Journal.Path(), err, rep.Format())
	}
	return rep
}

func item(rep *RestoreReport, knob string) RestoreItem {
	for _, it := range rep.Items {
		if it.Knob == knob {
			return it
		}
	}
	return RestoreItem{}
}

// TestTwoHoldersOneKnob: two modes that want busy_read 400 µs on two devices, each with its own journal, share
// the machine-wide knob: whichever is restored first keeps it (the other still needs it), the last puts back
// what it held before the first apply. In either order the machine ends as it began.
func TestTwoHoldersOneKnob(t *testing.T) {
	for _, order := range []string{"apply order", "reverse order"} {
		t.Run(order, func(t *testing.T) {
			h := newHostSystem(t)
			before := h.f.state()
			first, err := h.apply(t, "busy-poll", "eth1")
			if err != nil {
				t.Fatal(err)
			}
			second, err := h.apply(t, "busy-poll", "vb")
			if err != nil {
				t.Fatalf("a second holder wanting the same value was refused: %v", err)
			}
			if order == "reverse order" {
				first, second = second, first
			}
			rep := h.restore(t, first)
			if it := item(rep, "net.core.busy_read"); it.Result != Kept || it.To != "400 µs" ||
				!strings.Contains(it.Detail, "busy-poll on "+second.Journal.Device) {
				t.Fatalf("first restore: busy_read %+v; want it kept at 400 µs for the other holder\n%s", it, rep.Format())
			}
			if v, _ := h.f.Get(Knob{ID: KnobBusyRead}); v != "400" {
				t.Fatalf("busy_read is %s while a mode still holds it at 400", v)
			}
			rep = h.restore(t, second)
			if it := item(rep, "net.core.busy_read"); it.Result != Restored || it.From != "400 µs" || it.To != "0 µs" {
				t.Fatalf("last restore: busy_read %+v; want 400 → 0 µs\n%s", it, rep.Format())
			}
			if !strings.Contains(rep.Format(), "restored  net.core.busy_read 400 → 0 µs") {
				t.Fatalf("the report does not say old → new:\n%s", rep.Format())
			}
			if got := h.f.state(); got != before {
				t.Fatalf("the machine did not end as it began:\n%s\nwant\n%s", got, before)
			}
		})
	}
}

// TestSecondHolderRefused: a mode that wants another value of a machine-wide knob another mode holds is refused
// before anything changes, naming the holder and how to free the knob.
func TestSecondHolderRefused(t *testing.T) {
	h := newHostSystem(t)
	first, err := h.apply(t, "busy-poll", "eth1")
	if err != nil {
		t.Fatal(err)
	}
	h.f.takeLog()
	mid := h.f.state()
	_, err = h.apply(t, "interrupts", "vb")
	if err == nil || !strings.Contains(err.Error(), "net.core.busy_read is held at 400 µs by busy-poll on eth1") ||
		!strings.Contains(err.Error(), "interrupts wants 0 µs") ||
		!strings.Contains(err.Error(), "napilab mode restore --journal "+first.Journal.Path()) ||
		!strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("error %v; want a refusal naming the holder", err)
	}
	if h.f.state() != mid || h.f.takeLog() != "" {
		t.Fatal("the refused apply changed the machine")
	}
	h.restore(t, first)
	if _, err := h.apply(t, "interrupts", "vb"); err != nil {
		t.Fatalf("once the holder is restored, the knob is free: %v", err)
	}
}

// TestRestoreLeavesWhatOthersSet: a knob someone changed after the apply is left as they set it, and the report
// says so with its history (before → applied → now); with or without the registry.
func TestRestoreLeavesWhatOthersSet(t *testing.T) {
	for _, registry := range []bool{true, false} {
		t.Run(map[bool]string{true: "registry", false: "journal alone"}[registry], func(t *testing.T) {
			h := newHostSystem(t)
			if !registry {
				h.registry = ""
			}
			a, err := h.apply(t, "busy-poll", "eth1")
			if err != nil {
				t.Fatal(err)
			}
			if err := h.f.Set(Knob{ID: KnobBusyRead}, "7"); err != nil {
				t.Fatal(err)
			}
			rep := h.restore(t, a)
			it := item(rep, "net.core.busy_read")
			if it.Result != Left || it.To != "7 µs" || !strings.Contains(it.Detail, "0 → 400 → 7 µs") {
				t.Fatalf("busy_read %+v; want it left at 7 µs with its history\n%s", it, rep.Format())
			}
			if v, _ := h.f.Get(Knob{ID: KnobBusyRead}); v != "7" {
				t.Fatalf("restore overwrote the value someone set: busy_read %s", v)
			}
			if !rep.Complete() {
				t.Fatalf("leaving another's value is not a failure: %v", rep.Err())
			}
		})
	}
}

// TestRegistryForgetsRolledBack: an apply that fails and rolls back leaves no claim behind: the next mode with
// another value is not refused because of it.
func TestRegistryForgetsRolledBack(t *testing.T) {
	h := newHostSystem(t)
	h.f.before = func(op string) error {
		if strings.HasPrefix(op, "napi-set") {
			return errors.New("injected failure")
		}
		return nil
	}
	if _, err := h.apply(t, "busy-poll", "eth1"); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("apply with a failing step: %v", err)
	}
	h.f.before = nil
	g, err := OpenRegistry(h.registry)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Modes()) != 0 || len(g.Claims()) != 0 {
		t.Fatalf("a rolled-back apply is still registered: %+v %+v", g.Modes(), g.Claims())
	}
	g.Close()
	if _, err := h.apply(t, "interrupts", "vb"); err != nil {
		t.Fatal(err)
	}
}

// TestRegistryPrunesVanishedJournals: a journal removed by hand takes its claims with it, so it blocks nobody.
func TestRegistryPrunesVanishedJournals(t *testing.T) {
	h := newHostSystem(t)
	a, err := h.apply(t, "busy-poll", "eth1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(a.Journal.Path()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.apply(t, "interrupts", "vb"); err != nil {
		t.Fatalf("a vanished journal still holds its knobs: %v", err)
	}
}

// TestJournalPathRefusals: a directory, or a file that is not a journal, at the journal's path is a precise
// sentence before anything changes; restoring from such a path says what it is.
func TestJournalPathRefusals(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte("my notes, not a journal\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, want string
	}{
		{dir, "is a directory: give a file path, such as " + filepath.Join(dir, "mode.journal")},
		{text, "exists and is not a napilab mode journal: choose another path"},
	} {
		f := newFakeOS(features6_19)
		_, err := f.system().Apply(t.Context(), mustPlan(t, f, "busy-poll", "eth1"), ApplyOptions{Journal: c.path})
		if err == nil || !strings.Contains(err.Error(), c.want) || f.takeLog() != "" {
			t.Errorf("apply --journal %s: %v; want %q before any change", c.path, err, c.want)
		}
		_, err = RestoreFile(c.path, openFake(f), RestoreOptions{})
		if !errors.Is(err, ErrNotJournal) || strings.Contains(err.Error(), "corrupt") {
			t.Errorf("restore --journal %s: %v; want it called no journal, not a corrupt one", c.path, err)
		}
	}
	if b, _ := os.ReadFile(text); string(b) != "my notes, not a journal\n" {
		t.Fatal("the file that is not a journal was changed")
	}
}

// TestPlanOutsideInitialNetNS: from a namespace without the machine-wide network sysctls, a plan that sets one
// is refused, saying where they are; a plan that sets none is fine.
func TestPlanOutsideInitialNetNS(t *testing.T) {
	f := newFakeOS(features6_19)
	s := f.system()
	s.NetSysctls = "napilab runs in network namespace lab"
	m, err := Preset("busy-poll", "eth1")
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := s.Resolve(m)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(m, tgt)
	if !errors.Is(err, ErrNotInitialNetNS) || !strings.Contains(err.Error(), "net.core.busy_read exists only in "+
		"the initial network namespace, and napilab runs in network namespace lab") {
		t.Fatalf("Build = %v; want the sentence about the initial namespace", err)
	}
	m, _ = Preset("threaded", "eth1")
	m.BusyRead, m.BusyPoll = nil, nil
	if tgt, err = s.Resolve(m); err == nil {
		_, err = Build(m, tgt)
	}
	if err != nil {
		t.Fatalf("a plan without network sysctls: %v", err)
	}
}

// TestListApplied: the registry lists an applied mode with its holder and how to restore it; one whose
// namespace is gone (the fake's /run/netns/lab never existed) is an orphan; a restored one is gone from it.
func TestListApplied(t *testing.T) {
	h := newHostSystem(t)
	a, err := h.apply(t, "busy-poll", "eth1")
	if err != nil {
		t.Fatal(err)
	}
	modes, err := ListApplied(h.registry)
	if err != nil {
		t.Fatal(err)
	}
	var m *ModeState
	for i := range modes {
		if modes[i].Journal == a.Journal.Path() {
			m = &modes[i]
		}
	}
	if m == nil || m.Preset != "busy-poll" || m.Device != "eth1" || m.Held || !m.HolderAlive ||
		!strings.Contains(m.Orphaned, "is gone with eth1") || m.Fix != "napilab mode restore --journal "+a.Journal.Path() {
		t.Fatalf("applied modes %+v; want busy-poll on eth1, orphaned with its namespace", modes)
	}
	h.restore(t, a)
	if modes, _ := ListApplied(h.registry); slices.ContainsFunc(modes, func(m ModeState) bool {
		return m.Journal == a.Journal.Path()
	}) {
		t.Fatal("a restored mode is still listed")
	}
}
