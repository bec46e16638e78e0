package napi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/sysknob"
)

// Machine-wide knobs have one value for the whole machine (net.core.busy_read, busy_poll,
// rps_sock_flow_entries, kernel.timer_migration, sched_rt_runtime_us, SMT, workqueue masks, IRQ affinity), while
// any number of modes may be applied at once, on different devices, each with its own journal. A journal alone
// records what its knob held before that one apply; two applies of busy_read 400 µs restored in apply order
// would leave 400 for good, and a restore would overwrite a value someone set after the apply. So one file on
// the host, the registry, owns them: under an flock, it lists every applied mode's journal and, per machine-wide
// knob, the value before any napilab mode touched it, the value applied, and the journals holding it. A second
// apply wanting the same value joins the holders; one wanting another value is refused, naming the first. The
// last holder to restore puts back the value from before the first, and only if the knob still holds what was
// applied: a value someone changed since is left as it is, and the restore says so.

// DefaultRegistry is the host registry. Like the journals it lives in /run, which a reboot empties together
// with everything it could restore.
const DefaultRegistry = "/run/napilab/host.json"

const registryFormat = "napilab host registry v1"

// registryWait bounds how long an apply or a restore waits for another napilab to let go of the registry;
// holders keep it only while they apply or restore.
const registryWait = 30 * time.Second

// AppliedMode is a mode in place as the registry lists it: its journal and who applied it.
type AppliedMode struct {
	Journal string         `json:"journal"`
	Preset  string         `json:"preset"`
	Device  string         `json:"device"`
	NetNS   NetNS          `json:"netns"`
	Holder  kernel.Process `json:"holder"`
	// Held says the holder restores the mode when it exits (mode apply --until-exit, a sweep's agent); a plain
	// mode apply stays until mode restore, its holder long gone.
	Held    bool      `json:"held,omitzero"`
	Created time.Time `json:"created"`
}

// Claim is one machine-wide knob that applied modes changed: what it held before the first of them, the value
// they applied, and the journals that hold it, first holder first.
type Claim struct {
	Knob     Knob             `json:"knob"`
	Original sysknob.Snapshot `json:"original"`
	Value    string           `json:"value"`
	Holders  []string         `json:"holders"`
}

// registryFile is the registry on disk.
type registryFile struct {
	Format string        `json:"format"`
	Modes  []AppliedMode `json:"modes"`
	Claims []Claim       `json:"claims"`
}

// Registry is the host registry, locked: one process at a time reads and changes it.
type Registry struct {
	path string
	lock *os.File
	r    registryFile
}

func registryLockPath(path string) string { return path + ".lock" }

// OpenRegistry locks the registry at path and reads it (a missing one is empty). Entries whose journal no
// longer exists are dropped: their mode was restored, or its journal removed by hand, and nothing can be done
// for them any more. Close unlocks it.
func OpenRegistry(path string) (*Registry, error) {
	if err := mkdirAll(filepath.Dir(path)); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(registryLockPath(path), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, journalError("open the host registry's lock", registryLockPath(path), err)
	}
	if err := lockWait(f, registryWait); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock the host registry %s: %w", path, err)
	}
	g := &Registry{path: path, lock: f}
	if err := g.load(); err != nil {
		g.Close()
		return nil, err
	}
	g.prune()
	return g, nil
}

// Close unlocks the registry. It is idempotent and safe on nil.
func (g *Registry) Close() error {
	if g == nil || g.lock == nil {
		return nil
	}
	err := g.lock.Close() // closing the descriptor drops the flock
	g.lock = nil
	return err
}

func (g *Registry) load() error {
	b, err := os.ReadFile(g.path)
	if errors.Is(err, fs.ErrNotExist) {
		g.r = registryFile{Format: registryFormat}
		return nil
	}
	if err != nil {
		return journalError("read the host registry", g.path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g.r); err != nil || g.r.Format != registryFormat {
		return fmt.Errorf("the host registry %s is not one this napilab reads (%v): with no mode applied, "+
			"delete it; otherwise restore each mode's journal first", g.path, errors.Join(err,
			formatError(g.r.Format)))
	}
	return nil
}

func formatError(f string) error {
	if f == registryFormat {
		return nil
	}
	return fmt.Errorf("format %q", f)
}

func (g *Registry) save() error {
	b, err := json.MarshalIndent(g.r, "", "\t")
	if err != nil {
		return err
	}
	tmp := g.path + ".tmp"
	if err := writeSynced(tmp, append(b, '\n')); err != nil {
		os.Remove(tmp)
		return journalError("write the host registry", tmp, err)
	}
	if err := os.Rename(tmp, g.path); err != nil {
		os.Remove(tmp)
		return journalError("install the host registry", g.path, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// prune drops modes whose journal is gone, and claims that no remaining journal holds.
func (g *Registry) prune() {
	g.r.Modes = slices.DeleteFunc(g.r.Modes, func(m AppliedMode) bool { return !exists(m.Journal) })
	for i := range g.r.Claims {
		c := &g.r.Claims[i]
		c.Holders = slices.DeleteFunc(c.Holders, func(j string) bool { return !exists(j) })
	}
	g.r.Claims = slices.DeleteFunc(g.r.Claims, func(c Claim) bool { return len(c.Holders) == 0 })
}

// Modes lists the applied modes the registry knows, oldest first.
func (g *Registry) Modes() []AppliedMode { return slices.Clone(g.r.Modes) }

// Claims lists the machine-wide knobs applied modes hold.
func (g *Registry) Claims() []Claim { return slices.Clone(g.r.Claims) }

func (g *Registry) mode(journal string) (AppliedMode, bool) {
	i := slices.IndexFunc(g.r.Modes, func(m AppliedMode) bool { return m.Journal == journal })
	if i < 0 {
		return AppliedMode{}, false
	}
	return g.r.Modes[i], true
}

func (g *Registry) claim(k Knob) *Claim {
	for i := range g.r.Claims {
		if g.r.Claims[i].Knob == k {
			return &g.r.Claims[i]
		}
	}
	return nil
}

// machine reports whether a knob has one value for the whole machine rather than one per device.
func (k Knob) machine() bool { return !k.device() }

// check refuses journal j when it changes a machine-wide knob that another applied mode holds at another
// value, naming that mode: one value serves the whole machine. It changes nothing.
func (g *Registry) check(j *Journal) error {
	var errs []error
	for _, e := range j.Entries {
		c := e.Change
		if c.Kind != KindKnob || !c.Knob.machine() || e.Outcome != "" {
			continue
		}
		cl := g.claim(*c.Knob)
		if cl == nil || sameKnobValue(*c.Knob, cl.Value, c.Value) {
			continue
		}
		errs = append(errs, fmt.Errorf("%s is held at %s by %s, and %s wants %s: one value serves the whole "+
			"machine, so restore that mode first (napilab mode restore --journal %s) or apply one that wants %s",
			c.Knob, knobValue(*c.Knob, cl.Value), g.describe(cl.Holders[0]), j.Preset, knobValue(*c.Knob, c.Value),
			cl.Holders[0], knobValue(*c.Knob, cl.Value)))
	}
	return errors.Join(errs...)
}

// describe names the mode that journal holds: "busy-poll on veth-b (napilab pid 42, running)".
func (g *Registry) describe(journal string) string {
	m, ok := g.mode(journal)
	if !ok {
		return "the mode journaled in " + journal
	}
	state := "exited"
	if m.Holder.Alive() {
		state = "running"
	}
	return fmt.Sprintf("%s on %s (napilab pid %d, %s)", m.Preset, m.Device, m.Holder.PID, state)
}

// add records journal j, saved at its path, as applied: its mode, and it as a holder of every machine-wide knob
// it changes. A knob no mode held yet gets the value recorded before the change as its original. Call check
// first.
func (g *Registry) add(j *Journal, held bool) error {
	g.r.Modes = append(g.r.Modes, AppliedMode{Journal: j.path, Preset: j.Preset, Device: j.Device, NetNS: j.NetNS,
		Holder: self(), Held: held, Created: j.Created})
	for _, e := range j.Entries {
		c := e.Change
		if c.Kind != KindKnob || !c.Knob.machine() || e.Outcome != "" || e.Prior == nil {
			continue
		}
		if cl := g.claim(*c.Knob); cl != nil {
			cl.Holders = append(cl.Holders, j.path)
			continue
		}
		g.r.Claims = append(g.r.Claims, Claim{Knob: *c.Knob, Original: *e.Prior.Knob, Value: c.Value,
			Holders: []string{j.path}})
	}
	return g.save()
}

// release drops journal from the holders of knob k. It returns what to put back: nothing when other journals
// still hold the knob (others names the first of them), else the claim as it stood, which it removes.
func (g *Registry) release(k Knob, journal string) (last *Claim, others string) {
	cl := g.claim(k)
	if cl == nil || !slices.Contains(cl.Holders, journal) {
		return nil, ""
	}
	cl.Holders = slices.DeleteFunc(cl.Holders, func(h string) bool { return h == journal })
	if len(cl.Holders) > 0 {
		return nil, cl.Holders[0]
	}
	out := *cl
	g.r.Claims = slices.DeleteFunc(g.r.Claims, func(c Claim) bool { return c.Knob == k })
	return &out, ""
}

// drop removes journal from the registry altogether: its mode and its hold of every knob.
func (g *Registry) drop(journal string) {
	g.forget(journal)
	for i := range g.r.Claims {
		c := &g.r.Claims[i]
		c.Holders = slices.DeleteFunc(c.Holders, func(h string) bool { return h == journal })
	}
	g.r.Claims = slices.DeleteFunc(g.r.Claims, func(c Claim) bool { return len(c.Holders) == 0 })
}

// forget removes journal's mode once it is restored.
func (g *Registry) forget(journal string) {
	g.r.Modes = slices.DeleteFunc(g.r.Modes, func(m AppliedMode) bool { return m.Journal == journal })
}

// knobValue spells a knob's value with its unit for messages: "400 µs", "0-3", "none".
func knobValue(k Knob, v string) string {
	v = strings.TrimSpace(v)
	if v == "" && k.mask() {
		return "none"
	}
	if u := k.unit(); u != "" && v != "-1" {
		return v + " " + u
	}
	return v
}

// ModeState is an applied mode as show and doctor report it: who holds it, and whether anyone will restore it.
type ModeState struct {
	AppliedMode
	HolderAlive bool `json:"holder_alive"`
	// Orphaned says why nobody will restore the mode by itself: its holder meant to and died, or the namespace
	// of its device is gone while what it changed machine-wide stays. Empty otherwise.
	Orphaned string `json:"orphaned,omitempty"`
	Fix      string `json:"fix"`
}

// ListApplied lists the modes applied on this machine: those the registry at path knows, and any journal at
// DefaultJournal or in a device directory it does not know (written by a napilab without the registry). An empty
// path lists nothing: a system without a registry is not the machine's.
func ListApplied(registry string) ([]ModeState, error) {
	if registry == "" {
		return nil, nil
	}
	// Read without the lock: saves replace the file atomically, so a reader sees one version or the next, and
	// a user without the right to lock it (show as non-root) still reads it.
	g := &Registry{path: registry}
	if err := g.load(); err != nil {
		return nil, err
	}
	g.prune()
	modes := g.Modes()
	known := func(path string) bool {
		return slices.ContainsFunc(modes, func(m AppliedMode) bool { return m.Journal == path })
	}
	found := []string{DefaultJournal}
	devices := filepath.Join(filepath.Dir(DefaultJournal), "devices", "*", "*"+journalSuffix)
	if dirs, err := filepath.Glob(devices); err == nil {
		found = append(found, dirs...)
	}
	for _, path := range found {
		if known(path) {
			continue
		}
		j, err := LoadJournal(path)
		if err != nil {
			continue
		}
		m := AppliedMode{Journal: path, Preset: j.Preset, Device: j.Device, NetNS: j.NetNS,
			Holder: kernel.Process{PID: j.PID}, Created: j.Created}
		if l, err := LoadLease(path); err == nil {
			m.Holder, m.Held = l.Holder, true
		}
		modes = append(modes, m)
	}
	out := make([]ModeState, 0, len(modes))
	for _, m := range modes {
		out = append(out, modeState(m))
	}
	return out, nil
}

func modeState(m AppliedMode) ModeState {
	st := ModeState{AppliedMode: m, HolderAlive: m.Holder.Alive(),
		Fix: "napilab mode restore --journal " + m.Journal}
	switch {
	case m.NetNS.Path != "" && !sameNetNS(m.NetNS):
		st.Orphaned = fmt.Sprintf("%s is gone with %s, and what the mode changed machine-wide stays changed",
			m.NetNS, m.Device)
	case m.Held && !st.HolderAlive:
		st.Orphaned = fmt.Sprintf("its holder, napilab pid %d, exited without restoring it", m.Holder.PID)
		if l, err := LoadLease(m.Journal); err == nil && l.Watchdog.Alive() {
			st.Orphaned = "" // the watchdog restores it when the lease runs out
			st.Fix = fmt.Sprintf("its watchdog (pid %d) restores it when the lease runs out at %s, or: %s",
				l.Watchdog.PID, l.Deadline.Local().Format(time.DateTime), st.Fix)
		}
	}
	return st
}

// sameNetNS reports whether the namespace a journal names still exists (same path, same inode).
func sameNetNS(ns NetNS) bool {
	ino, err := netns.Inode(ns.Path)
	return err == nil && (ns.Inode == 0 || ino == ns.Inode)
}

// String says what the mode is and who holds it, for show.
func (m ModeState) String() string {
	state := "exited"
	if m.HolderAlive {
		state = "running"
	}
	s := fmt.Sprintf("%s on %s in %s, journal %s, applied by napilab pid %d (%s)", m.Preset, m.Device,
		m.NetNS, m.Journal, m.Holder.PID, state)
	switch {
	case m.Orphaned != "":
		s += ": ORPHANED, " + m.Orphaned
	case m.Held && m.HolderAlive:
		s += ", which restores it when it exits"
	case !m.Held:
		s += "; it stays until mode restore"
	}
	return s
}
