package napi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/sysknob"
)

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Journal is where the journal goes; DefaultJournal when empty. Apply refuses to run while one exists.
	Journal string
	// AllowSMT lets a plan switch SMT off: that takes the sibling CPUs of every core offline for the whole
	// machine, so it happens only when asked for.
	AllowSMT bool
	// ThreadedTimeout bounds a rollback's napi-set that switches threaded NAPI off (see Restore); 0 means
	// DefaultThreadedTimeout.
	ThreadedTimeout time.Duration

	held bool // Hold applies: its holder restores on exit
}

// Applied is a plan in place, with its journal.
type Applied struct {
	Plan    *Plan
	Journal *Journal
}

// Kthreads returns the NAPI kthreads the mode scheduled, from the journal.
func (a *Applied) Kthreads() []sysknob.Sched {
	var out []sysknob.Sched
	for _, e := range a.Journal.Entries {
		if e.Change.Kind == KindKthread && e.Outcome == "applied" {
			out = append(out, sysknob.Sched{PID: e.Prior.Sched.PID, Policy: sysknob.PolicyFIFO,
				Priority: e.Change.FIFO, CPUs: e.Change.CPUs})
		}
	}
	return out
}

// Apply puts plan p in place. Before the first change it records every target in the journal on stable
// storage; it then applies the changes in order, reads each back, and for threaded modes finds the NAPI kthread
// (napi-get pid) and gives it its priority and CPU. Steps a driver lacks (Change.Optional) are recorded as
// skipped. If a step fails, or ctx ends, everything applied so far is rolled back and the journal removed; the
// error says so, or lists what could not be rolled back (the journal then stays for napilab mode restore).
func (s *System) Apply(ctx context.Context, p *Plan, o ApplyOptions) (*Applied, error) {
	if !o.AllowSMT {
		for _, c := range p.Changes {
			if c.Kind == KindKnob && c.Knob.ID == KnobSMT {
				return nil, fmt.Errorf("%s switches SMT off, which takes every core's sibling CPUs offline for the "+
					"whole machine: pass --allow-smt to do it (napilab mode restore switches it back on)", p.Mode.Preset)
			}
		}
	}
	t := p.Target
	if t.NetNS.Inode != s.NetNS.Inode {
		return nil, fmt.Errorf("the plan is for %s, but this system addresses %s: resolve the plan here", t.NetNS,
			s.NetNS)
	}
	if err := checkNetSysctls(p.Changes, t.NetSysctls); err != nil {
		return nil, err
	}
	j := &Journal{Format: journalFormat, Preset: p.Mode.Preset, Created: time.Now().UTC(), PID: os.Getpid(),
		Kernel: t.Kernel, NetNS: t.NetNS, Device: t.Device, Ifindex: t.Ifindex, path: o.Journal}
	if j.path == "" {
		j.path = DefaultJournal
	}
	if abs, err := filepath.Abs(j.path); err == nil {
		j.path = abs // the registry names journals by path, whatever directory napilab ran in
	}
	if err := CheckJournalPath(j.path); err != nil {
		return nil, err
	}
	for _, c := range p.Changes {
		j.Entries = append(j.Entries, Entry{Change: c})
	}
	reg, err := s.openRegistry()
	if err != nil {
		return nil, err
	}
	defer reg.Close()
	a := &applier{s: s, j: j, dev: ethtool.Device{Index: int(t.Ifindex), Name: t.Device}, timeout: o.ThreadedTimeout,
		reg: reg}
	for i := range j.Entries {
		if err := a.record(i); err != nil {
			return nil, fmt.Errorf("record the state before applying %s (nothing was changed): %w", p.Mode.Preset, err)
		}
	}
	if reg != nil {
		if err := reg.check(j); err != nil {
			return nil, fmt.Errorf("%w (nothing was changed)", err)
		}
	}
	if err := j.save(); err != nil {
		return nil, err
	}
	if reg != nil {
		if err := reg.add(j, o.held); err != nil {
			return nil, errors.Join(fmt.Errorf("%w (nothing was changed)", err), RemoveJournal(j.path))
		}
	}
	for i := range j.Entries {
		if err := context.Cause(ctx); err != nil {
			return nil, a.rollback(i-1, fmt.Errorf("apply %s interrupted before step %d: %w", p.Mode.Preset, i+1, err))
		}
		if err := a.apply(i); err != nil {
			return nil, a.rollback(i, fmt.Errorf("apply %s, step %d (%s): %w", p.Mode.Preset, i+1,
				j.Entries[i].Change.Describe(), err))
		}
	}
	j.Complete = true
	if err := j.save(); err != nil {
		return nil, a.rollback(len(j.Entries)-1, err)
	}
	return &Applied{Plan: p, Journal: j}, nil
}

type applier struct {
	s       *System
	j       *Journal
	dev     ethtool.Device
	timeout time.Duration
	reg     *Registry // locked for the whole apply; nil without one
}

// record takes the prior state of entry i's target, if it has none yet. A kthread that does not exist yet (the
// NAPI is not threaded before the apply) is recorded later, right before it is scheduled. An optional step whose
// target the driver lacks is marked skipped.
func (a *applier) record(i int) error {
	e := &a.j.Entries[i]
	if e.Prior != nil || e.Outcome != "" {
		return nil
	}
	p, err := a.snapshot(e.Change)
	if err != nil {
		return e.skipIfOptional(err)
	}
	e.Prior = p
	return nil
}

// skipIfOptional marks an optional step that the driver does not support as skipped; any other error is
// returned.
func (e *Entry) skipIfOptional(err error) error {
	if e.Change.Optional && errors.Is(err, kernel.ErrNotSupported) {
		e.Outcome = "skipped: " + err.Error()
		return nil
	}
	return err
}

func (a *applier) snapshot(c Change) (*Prior, error) {
	s := a.s
	switch c.Kind {
	case KindNAPI:
		n, err := s.Netdev.NAPI(c.NAPI)
		p := priorOf(n)
		return &Prior{NAPI: &p}, err
	case KindKnob:
		snap, err := s.Knobs.Snapshot(*c.Knob)
		return &Prior{Knob: &snap}, err
	case KindChannels:
		ch, err := s.Ethtool.Channels(a.dev)
		return &Prior{Channels: &ch}, err
	case KindRings:
		r, err := s.Ethtool.Rings(a.dev)
		return &Prior{Rings: &r}, err
	case KindCoalesce:
		co, err := s.Ethtool.Coalesce(a.dev)
		return &Prior{Coalesce: &co}, err
	case KindService:
		active, err := s.services().Active(c.Service)
		return &Prior{Service: &ServicePrior{Active: active}}, err
	case KindKthread:
		n, err := s.Netdev.NAPI(c.NAPI)
		if err != nil || !n.HasPID {
			return nil, err // not threaded yet: recorded once the kthread exists
		}
		sched, err := s.Sched.Sched(int(n.PID))
		return &Prior{Sched: &sched}, err
	}
	return nil, fmt.Errorf("unknown kind of change %q", c.Kind)
}

// apply makes entry i's change and reads it back.
func (a *applier) apply(i int) error {
	e := &a.j.Entries[i]
	if e.Outcome != "" {
		return nil // skipped when recorded
	}
	if e.Change.Kind == KindKthread {
		if err := a.recordKthread(e); err != nil {
			return err
		}
	}
	if e.Prior == nil {
		return fmt.Errorf("its target was not recorded, so it could not be restored: not changing it")
	}
	err := a.change(e)
	if err == nil {
		err = a.verify(e)
	}
	if err != nil {
		return e.skipIfOptional(err)
	}
	e.Outcome = "applied"
	if k := e.Change.Kind; k == KindChannels || k == KindRings {
		return a.remap(i)
	}
	return nil
}

// recordKthread makes sure the entry's prior state is that of the NAPI's current kthread, which napi-set
// threaded created a moment ago (or a driver reset replaced), and is in the journal before it is changed.
func (a *applier) recordKthread(e *Entry) error {
	n, err := a.s.Netdev.NAPI(e.Change.NAPI)
	if err != nil {
		return err
	}
	if !n.HasPID {
		return fmt.Errorf("napi %d reports no kthread pid although it is threaded (%v): the driver may have "+
			"reset the NAPI; run napilab mode restore and apply again", n.ID, n.Threaded)
	}
	if e.Prior != nil && e.Prior.Sched.PID == int(n.PID) {
		return nil
	}
	sched, err := a.s.Sched.Sched(int(n.PID))
	if err != nil {
		return err
	}
	e.Prior = &Prior{Sched: &sched}
	return a.j.save()
}

func (a *applier) change(e *Entry) error {
	c, s := e.Change, a.s
	switch c.Kind {
	case KindNAPI:
		if c.recordOnly() {
			return nil
		}
		cfg, err := c.Settings.Config()
		if err != nil {
			return err
		}
		return s.Netdev.SetNAPI(c.NAPI, cfg)
	case KindKnob:
		return s.Knobs.Set(*c.Knob, c.Value)
	case KindChannels:
		return s.Ethtool.SetChannels(a.dev, *c.Channels)
	case KindRings:
		return s.Ethtool.SetRings(a.dev, *c.Rings)
	case KindCoalesce:
		return s.Ethtool.SetCoalesce(a.dev, *c.Coalesce)
	case KindService:
		if !e.Prior.Service.Active {
			return nil // not running: nothing to stop
		}
		return s.services().Stop(c.Service)
	case KindKthread:
		pid := e.Prior.Sched.PID
		if err := s.Sched.SetFIFO(pid, c.FIFO); err != nil {
			return err
		}
		return s.Sched.SetAffinity(pid, c.CPUs)
	}
	return fmt.Errorf("unknown kind of change %q", c.Kind)
}

// verify reads the change back: the kernel accepting a write is not proof that it holds the value (a driver
// may clamp, a file may normalise).
func (a *applier) verify(e *Entry) error {
	c, s := e.Change, a.s
	mismatch := func(what string, got, want any) error {
		return fmt.Errorf("%s reads back %v after napilab set %v", what, got, want)
	}
	switch c.Kind {
	case KindNAPI:
		if c.recordOnly() {
			return nil
		}
		n, err := s.Netdev.NAPI(c.NAPI)
		if err != nil {
			return err
		}
		cfg, err := c.Settings.Config()
		if err != nil {
			return err
		}
		return napiMismatch(n, cfg)
	case KindKnob:
		got, err := s.Knobs.Get(*c.Knob)
		if err != nil {
			return err
		}
		if !sameKnobValue(*c.Knob, got, c.Value) {
			return mismatch(c.Knob.String(), fmt.Sprintf("%q", got), fmt.Sprintf("%q", c.Value))
		}
	case KindChannels:
		got, err := s.Ethtool.Channels(a.dev)
		if err != nil {
			return err
		}
		w := *c.Channels
		if got.RX != w.RX || got.TX != w.TX || got.Other != w.Other || got.Combined != w.Combined {
			return mismatch("channels of "+a.dev.Name, channelsText(got, " "), channelsText(w, " "))
		}
	case KindRings:
		got, err := s.Ethtool.Rings(a.dev)
		if err != nil {
			return err
		}
		if got.RX != c.Rings.RX {
			return mismatch("the rx ring of "+a.dev.Name, got.RX, c.Rings.RX)
		}
	case KindCoalesce:
		got, err := s.Ethtool.Coalesce(a.dev)
		if err != nil {
			return err
		}
		if coalesceText(got, " ") != coalesceText(*c.Coalesce, " ") {
			return mismatch("coalescing of "+a.dev.Name, coalesceText(got, " "), coalesceText(*c.Coalesce, " "))
		}
	case KindService:
		active, err := s.services().Active(c.Service)
		if err != nil {
			return err
		}
		if active {
			return mismatch(c.Service, "active", "stopped")
		}
	case KindKthread:
		got, err := s.Sched.Sched(e.Prior.Sched.PID)
		if err != nil {
			return err
		}
		if got.Policy != sysknob.PolicyFIFO || got.Priority != c.FIFO || !got.CPUs.Equal(c.CPUs) {
			return mismatch(fmt.Sprintf("kthread %d of napi %d", got.PID, c.NAPI),
				fmt.Sprintf("%v %d on CPUs %s", got.Policy, got.Priority, got.CPUs),
				fmt.Sprintf("SCHED_FIFO %d on CPUs %s", c.FIFO, c.CPUs))
		}
	}
	return nil
}

// napiMismatch compares a napi-get reply with the settings of a napi-set.
func napiMismatch(n netdev.NAPI, cfg netdev.NAPIConfig) error {
	var diffs []string
	if v := cfg.DeferHardIRQs; v != nil && n.DeferHardIRQs != *v {
		diffs = append(diffs, fmt.Sprintf("defer-hard-irqs %d (want %d)", n.DeferHardIRQs, *v))
	}
	if v := cfg.GROFlushTimeout; v != nil && n.GROFlushTimeout != *v {
		diffs = append(diffs, fmt.Sprintf("gro-flush-timeout %v (want %v)", n.GROFlushTimeout, *v))
	}
	if v := cfg.IRQSuspendTimeout; v != nil && n.IRQSuspendTimeout != *v {
		diffs = append(diffs, fmt.Sprintf("irq-suspend-timeout %v (want %v)", n.IRQSuspendTimeout, *v))
	}
	if v := cfg.Threaded; v != nil {
		if n.Threaded != *v {
			diffs = append(diffs, fmt.Sprintf("threaded %v (want %v)", n.Threaded, *v))
		} else if *v != netdev.ThreadedDisabled && !n.HasPID {
			diffs = append(diffs, "no kthread pid although threaded")
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("napi %d reads back %s after napi-set", n.ID, strings.Join(diffs, ", "))
}

// sameKnobValue compares knob texts, CPU lists as sets.
func sameKnobValue(k Knob, a, b string) bool {
	if k.mask() || k.ID == KnobIRQAffinity {
		sa, ea := sysknob.ParseCPUList(a)
		sb, eb := sysknob.ParseCPUList(b)
		return ea == nil && eb == nil && sa.Equal(sb)
	}
	return a == b
}

// remap follows the queues to their NAPIs again after a channel or ring change: drivers without persistent
// NAPI configuration create new NAPI instances then, and later steps must address those.
func (a *applier) remap(i int) error {
	rxq, err := a.s.rxNAPIs(a.j.Ifindex)
	if err != nil {
		return err
	}
	for k := i + 1; k < len(a.j.Entries); k++ {
		e := &a.j.Entries[k]
		c := &e.Change
		if (c.Kind != KindNAPI || c.recordOnly()) && c.Kind != KindKthread {
			continue
		}
		id, err := rxq.napiOf(a.j.Device, c.Queue)
		if err != nil {
			return err
		}
		if id == c.NAPI {
			continue
		}
		// A new NAPI: what it holds now is what restore must put back; the old one is gone with its state.
		p, err := a.snapshot(Change{Kind: c.Kind, NAPI: id})
		if err != nil {
			return err
		}
		c.NAPI, e.Prior = id, p
	}
	return a.j.save()
}

// rollback restores entries 0..last and removes the journal when that fully succeeds.
func (a *applier) rollback(last int, cause error) error {
	r := &restorer{s: a.s, j: a.j, timeout: a.timeout, reg: a.reg}
	rep := r.restore(last)
	if rep.Complete() && a.reg != nil {
		a.reg.drop(a.j.path) // the changes never made were claimed too
		if err := a.reg.save(); err != nil {
			return fmt.Errorf("%w; every change was rolled back, but: %w", cause, err)
		}
	}
	if rep.Complete() {
		if err := RemoveJournal(a.j.path); err != nil {
			return fmt.Errorf("%w; every change was rolled back, but: %w", cause, err)
		}
		return fmt.Errorf("%w; every change was rolled back", cause)
	}
	return fmt.Errorf("%w; rolling back failed too (%w): the journal %s keeps the rest for napilab mode restore",
		cause, rep.Err(), a.j.path)
}

// Reassert makes sure an applied mode still holds after something that may reset the driver, such as attaching
// an XDP program or binding an AF_XDP socket (idpf, for one, reverts settings then; a veth without GRO creates a
// new NAPI): it follows each queue to its NAPI again, recording a new NAPI's state in the journal before
// changing it, reads every applied change back, writes again what drifted, and schedules a replaced kthread.
// It returns what it had to redo.
func (s *System) Reassert(a *Applied) ([]string, error) {
	j := a.Journal
	ap := &applier{s: s, j: j, dev: ethtool.Device{Index: int(j.Ifindex), Name: j.Device}}
	if err := ap.remap(-1); err != nil {
		return nil, fmt.Errorf("reassert %s: %w", j.Preset, err)
	}
	var redone []string
	for i := range j.Entries {
		e := &j.Entries[i]
		if e.Outcome != "applied" {
			continue
		}
		if e.Change.Kind == KindKthread {
			if err := ap.recordKthread(e); err != nil {
				return redone, err
			}
		}
		if err := ap.verify(e); err == nil {
			continue
		}
		if err := ap.change(e); err != nil {
			return redone, fmt.Errorf("reassert %s: %w", e.Change.Describe(), err)
		}
		if err := ap.verify(e); err != nil {
			return redone, fmt.Errorf("reassert %s: %w", e.Change.Describe(), err)
		}
		redone = append(redone, e.Change.Describe())
	}
	return redone, nil
}
