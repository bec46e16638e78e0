package napi

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/sysknob"
)

// DefaultThreadedTimeout bounds a napi-set that switches threaded NAPI off during a restore.
//
// The hazard: switching threaded NAPI off waits in the kernel (napi_stop_kthread) until the kthread lets go of
// the NAPI. With an AF_XDP zero-copy socket bound to the queue whose fill ring is starved, that wait never ended
// in the qemu lab (Linux 7.2, virtio_net; lab.md §11), and the netlink call hung in D state. The call cannot be
// interrupted, so napilab makes it from a separate goroutine, stops waiting after this long, reports the hazard,
// and restores the rest without that netlink socket.
const DefaultThreadedTimeout = 10 * time.Second

// RestoreOptions tune Restore.
type RestoreOptions struct {
	ThreadedTimeout time.Duration // 0: DefaultThreadedTimeout
}

// Result says what restoring one entry did.
type Result string

// Results of restoring an entry.
const (
	Restored  Result = "restored"  // the prior state was written back
	Unchanged Result = "unchanged" // the target already held its prior state
	Gone      Result = "gone"      // the target no longer exists (device removed, kthread exited): nothing to do
	Failed    Result = "failed"    // it could not be restored; Detail says why
	// Kept is a machine-wide knob left as it is because another applied mode still holds it at that value; the
	// last holder's restore puts it back.
	Kept Result = "kept"
	// Left is a knob left as it is because it no longer holds what napilab applied: someone changed it since,
	// and napilab does not overwrite that.
	Left Result = "left"
)

// RestoreItem is the outcome for one journal entry. For a knob, Knob names it and From and To are its value
// before and after the restore (equal when it was left alone), with its unit; Applied is what napilab had set.
type RestoreItem struct {
	Step    int    `json:"step"`
	Change  string `json:"change"`
	Result  Result `json:"result"`
	Detail  string `json:"detail,omitempty"`
	Knob    string `json:"knob,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	Applied string `json:"applied,omitempty"`
}

// RestoreReport lists what a restore did, last change first.
type RestoreReport struct {
	Journal string        `json:"journal"`
	Preset  string        `json:"preset"`
	Items   []RestoreItem `json:"items"`
	Notes   []note.Note   `json:"notes,omitempty"`
}

// Complete reports whether nothing failed: every entry is back, or its target is gone.
func (r *RestoreReport) Complete() bool { return r.Err() == nil }

// Err joins the failures, one sentence each.
func (r *RestoreReport) Err() error {
	var errs []error
	for _, it := range r.Items {
		if it.Result == Failed {
			errs = append(errs, fmt.Errorf("step %d (%s): %s", it.Step, it.Change, it.Detail))
		}
	}
	return errors.Join(errs...)
}

// Format renders the report as lines for people: a knob as "restored net.core.busy_read 400 → 0 µs".
func (r *RestoreReport) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "restore %s from %s\n", r.Preset, r.Journal)
	for _, it := range r.Items {
		what := it.Change
		if it.Knob != "" {
			switch {
			case it.From != "" && it.From != it.To:
				what = it.Knob + " " + arrow(it.From, it.To)
			case it.To != "":
				what = it.Knob + " " + it.To
			}
		}
		fmt.Fprintf(&b, "  %2d. %-9s %s", it.Step, it.Result, what)
		if it.Detail != "" {
			fmt.Fprintf(&b, ": %s", it.Detail)
		}
		b.WriteByte('\n')
	}
	if len(r.Items) == 0 {
		b.WriteString("  nothing had been changed\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  %s\n", n)
	}
	return b.String()
}

// arrow joins values, their shared unit written once: "400 µs", "0 µs" → "400 → 0 µs".
func arrow(vals ...string) string {
	unit := ""
	for _, u := range []string{" ns", " µs", " entries"} {
		if !slices.ContainsFunc(vals, func(v string) bool { return !strings.HasSuffix(v, u) }) {
			unit = u
			break
		}
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = strings.TrimSuffix(v, unit)
	}
	return strings.Join(parts, " → ") + unit
}

// Restore puts back what journal j recorded, last change first. It is idempotent: an entry whose target already
// holds its prior state is left alone, so restoring twice changes nothing the second time. Device settings are
// restored only while the journal's device (same name, same ifindex, same namespace) still exists; a device or
// kthread that is gone is reported, not an error. A restore, once started, runs to the end: it takes no context.
//
// Machine-wide knobs go through the host registry (System.Registry): one still held by another applied mode is
// kept, the last holder puts back the value from before the first apply, and a knob that no longer holds what
// was applied is left as someone set it, and said so.
func (s *System) Restore(j *Journal, o RestoreOptions) *RestoreReport {
	reg, err := s.openRegistry()
	r := &restorer{s: s, j: j, timeout: o.ThreadedTimeout, reg: reg}
	rep := r.restore(len(j.Entries) - 1)
	if err != nil {
		rep.Notes = append(rep.Notes, note.Warnf("the host registry could not be read (%v), so machine-wide "+
			"knobs were restored from this journal alone: another applied mode holding one lost it", err))
	}
	if reg != nil {
		if rep.Complete() {
			reg.drop(j.path)
		}
		if err := reg.save(); err != nil {
			rep.Notes = append(rep.Notes, note.Warnf("the host registry could not be updated: %v", err))
		}
		reg.Close()
	}
	return rep
}

// RestoreFile restores the journal at path in the system open returns for the journal's namespace, and removes
// the journal when nothing failed. If the namespace is gone, open is asked for napilab's own namespace
// (NetNS{}) so that machine-wide settings are still restored; the device's settings are then reported gone.
func RestoreFile(path string, open func(NetNS) (*System, error), o RestoreOptions) (*RestoreReport, error) {
	j, err := LoadJournal(path)
	if err != nil {
		return nil, err
	}
	s, err := open(j.NetNS)
	if err != nil && errors.Is(err, os.ErrNotExist) {
		s, err = open(NetNS{})
	}
	if err != nil {
		return nil, fmt.Errorf("restore from %s: %w", path, err)
	}
	defer s.Close()
	rep := s.Restore(j, o)
	if !rep.Complete() {
		return rep, fmt.Errorf("restore from %s left settings changed; the journal stays for another try: %w",
			path, rep.Err())
	}
	return rep, RemoveJournal(path)
}

type restorer struct {
	s       *System
	j       *Journal
	timeout time.Duration
	reg     *Registry // locked by the caller; nil without one

	devGone     string // why the journal's device cannot be addressed; empty when it can
	netdevStuck bool   // a napi-set never returned: the netdev socket is unusable
}

func (r *restorer) restore(last int) *RestoreReport {
	rep := &RestoreReport{Journal: r.j.path, Preset: r.j.Preset}
	if r.timeout <= 0 {
		r.timeout = DefaultThreadedTimeout
	}
	r.devGone = r.checkDevice()
	for i := last; i >= 0; i-- {
		e := r.j.Entries[i]
		if e.Prior == nil {
			continue // never changed
		}
		it := r.entry(e)
		it.Step, it.Change = i+1, e.Change.Describe()
		rep.Items = append(rep.Items, it)
	}
	return rep
}

// checkDevice makes sure device settings go to the device the journal recorded and not to another one that
// took its name or ifindex since.
func (r *restorer) checkDevice() string {
	if r.s.NetNS.Inode != r.j.NetNS.Inode {
		return fmt.Sprintf("%s is gone", r.j.NetNS)
	}
	l, err := r.s.linkByName(r.j.Device)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("device %s (ifindex %d) is gone", r.j.Device, r.j.Ifindex)
	case err != nil:
		return fmt.Sprintf("device %s could not be looked up (%v)", r.j.Device, err)
	case l.Ifindex != r.j.Ifindex:
		return fmt.Sprintf("device %s now has ifindex %d, not %d: it is another device", r.j.Device, l.Ifindex,
			r.j.Ifindex)
	}
	return ""
}

func (r *restorer) entry(e Entry) RestoreItem {
	c := e.Change
	device := c.Kind != KindService && (c.Kind != KindKnob || c.Knob.device())
	if device && r.devGone != "" {
		return RestoreItem{Result: Gone, Detail: r.devGone}
	}
	var (
		it  RestoreItem
		err error
	)
	switch c.Kind {
	case KindNAPI:
		it, err = r.napi(c, *e.Prior.NAPI)
	case KindKnob:
		it, err = r.knob(c, *e.Prior.Knob)
	case KindChannels, KindRings, KindCoalesce:
		it, err = r.ethtool(e)
	case KindKthread:
		it.Result, err = r.kthread(c, *e.Prior.Sched)
	case KindService:
		it.Result, err = r.service(c, *e.Prior.Service)
	}
	switch {
	case err == nil:
	case errors.Is(err, os.ErrNotExist):
		it.Result, it.Detail = Gone, err.Error()
	default:
		it.Result, it.Detail = Failed, err.Error()
	}
	return it
}

// napiGet reads a NAPI, unless an earlier napi-set is still stuck on the netdev socket.
func (r *restorer) napiGet(id uint32) (netdev.NAPI, error) {
	if r.netdevStuck {
		return netdev.NAPI{}, errNetdevStuck
	}
	return r.s.Netdev.NAPI(id)
}

var errNetdevStuck = errors.New("not attempted: the netdev socket is still blocked by the napi-set that timed out")

// napi writes back the fields the change touched (all of them for a record-only entry) that differ now.
func (r *restorer) napi(c Change, prior NAPIPrior) (RestoreItem, error) {
	it := RestoreItem{Result: Failed}
	n, err := r.napiGet(c.NAPI)
	if err != nil {
		return it, err
	}
	cur := priorOf(n)
	if cur.Ifindex != r.j.Ifindex {
		return it, kernel.NotFound("napi %d now belongs to ifindex %d", c.NAPI, cur.Ifindex)
	}
	touched, all := *c.Settings, c.recordOnly()
	var back, now NAPISettings
	if (all || touched.DeferHardIRQs != nil) && cur.DeferHardIRQs != prior.DeferHardIRQs {
		back.DeferHardIRQs, now.DeferHardIRQs = &prior.DeferHardIRQs, &cur.DeferHardIRQs
	}
	if (all || touched.GROFlushTimeout != nil) && cur.GROFlushTimeout != prior.GROFlushTimeout {
		back.GROFlushTimeout, now.GROFlushTimeout = &prior.GROFlushTimeout, &cur.GROFlushTimeout
	}
	if (all || touched.IRQSuspendTimeout != nil) && cur.IRQSuspendTimeout != prior.IRQSuspendTimeout {
		back.IRQSuspendTimeout, now.IRQSuspendTimeout = &prior.IRQSuspendTimeout, &cur.IRQSuspendTimeout
	}
	if (all || touched.Threaded != "") && cur.Threaded != prior.Threaded {
		back.Threaded, now.Threaded = prior.Threaded, cur.Threaded
	}
	if back == (NAPISettings{}) {
		it.Result = Unchanged
		return it, nil
	}
	it = RestoreItem{Result: Restored, Knob: fmt.Sprintf("napi %d", c.NAPI), From: now.String(), To: back.String()}
	cfg, err := back.Config()
	if err != nil {
		return it, err
	}
	if cfg.Threaded == nil {
		return it, r.s.Netdev.SetNAPI(c.NAPI, cfg)
	}
	return it, r.setThreaded(c.NAPI, cfg)
}

// setThreaded makes a napi-set that changes threaded, bounded by the timeout (see DefaultThreadedTimeout).
func (r *restorer) setThreaded(id uint32, cfg netdev.NAPIConfig) error {
	done := make(chan error, 1)
	go func() { done <- r.s.Netdev.SetNAPI(id, cfg) }()
	t := time.NewTimer(r.timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		r.netdevStuck = true
		return fmt.Errorf("napi-set %s on napi %d did not return within %v: the kernel may be stuck stopping the "+
			"NAPI kthread, as seen with an AF_XDP zero-copy socket whose fill ring is starved; close the AF_XDP "+
			"sockets on %s, check dmesg for a hung task, and run napilab mode restore again", cfg, id, r.timeout,
			r.j.Device)
	}
}

// knob puts a knob back. A machine-wide knob another applied mode still holds is kept; the last holder puts
// back the value from before the first apply (the registry's), else the journal's prior value.
func (r *restorer) knob(c Change, prior sysknob.Snapshot) (RestoreItem, error) {
	k, applied := *c.Knob, c.Value
	it := RestoreItem{Knob: k.String(), Applied: knobValue(k, applied)}
	if r.reg != nil && k.machine() {
		if cl := r.reg.claim(k); cl != nil && slices.Contains(cl.Holders, r.j.path) {
			if len(cl.Holders) > 1 {
				_, other := r.reg.release(k, r.j.path)
				it.Result, it.Detail = Kept, r.reg.describe(other)+" still holds it"
				if cur, err := r.s.Knobs.Get(k); err == nil {
					it.From, it.To = knobValue(k, cur), knobValue(k, cur)
				}
				return it, nil
			}
			prior, applied = cl.Original, cl.Value
			it.Applied = knobValue(k, applied)
			defer func() {
				if it.Result != Failed {
					r.reg.release(k, r.j.path)
				}
			}()
		}
	}
	err := r.putBack(k, prior, applied, &it)
	return it, err
}

// putBack writes prior back unless the knob already holds it, or holds neither it nor what napilab applied:
// then someone else set it after the apply, and their value stays.
func (r *restorer) putBack(k Knob, prior sysknob.Snapshot, applied string, it *RestoreItem) error {
	before := knobValue(k, snapshotValue(k, prior))
	cur, err := r.s.Knobs.Get(k)
	if err != nil {
		return err
	}
	it.From, it.To = knobValue(k, cur), before
	if snap, err := r.s.Knobs.Snapshot(k); err == nil && snap.Text == prior.Text {
		it.Result = Unchanged
		return nil
	}
	if !sameKnobValue(k, cur, applied) {
		it.Result, it.To = Left, it.From
		it.Detail = arrow(before, knobValue(k, applied), it.From) + ": someone changed it after napilab applied " +
			"it, and napilab leaves their value"
		return nil
	}
	it.Result = Restored
	return r.s.Knobs.Restore(k, prior)
}

// snapshotValue is a snapshot's value as Knobs.Get spells it: the text without its newline, CPU masks as lists.
func snapshotValue(k Knob, s sysknob.Snapshot) string {
	v := strings.TrimSpace(s.Text)
	if k.mask() {
		if set, err := sysknob.ParseCPUMask(v); err == nil {
			return set.String()
		}
	}
	return v
}

func (r *restorer) ethtool(e Entry) (RestoreItem, error) {
	et, dev := r.s.Ethtool, ethtool.Device{Index: int(r.j.Ifindex), Name: r.j.Device}
	switch p := e.Prior; e.Change.Kind {
	case KindChannels:
		return restoreEthtool(dev, "channels of "+dev.Name, *p.Channels, et.Channels, et.SetChannels,
			func(c ethtool.Channels) string { return channelsText(c, " ") })
	case KindRings:
		return restoreEthtool(dev, "rx ring of "+dev.Name, *p.Rings, et.Rings, et.SetRings,
			func(r ethtool.Rings) string { return fmt.Sprintf("%d entries", r.RX) })
	default:
		return restoreEthtool(dev, "coalescing of "+dev.Name, *p.Coalesce, et.Coalesce, et.SetCoalesce,
			func(c ethtool.Coalesce) string { return coalesceText(c, " ") })
	}
}

// restoreEthtool sets an ethtool object back to prior unless it already is.
func restoreEthtool[T comparable](dev ethtool.Device, what string, prior T, get func(ethtool.Device) (T, error),
	set func(ethtool.Device, T) error, text func(T) string) (RestoreItem, error) {
	cur, err := get(dev)
	if err != nil {
		return RestoreItem{}, err
	}
	it := RestoreItem{Knob: what, From: text(cur), To: text(prior), Result: Restored}
	if cur == prior {
		it.Result = Unchanged
		return it, nil
	}
	return it, set(dev, prior)
}

// kthread puts back the scheduling of the kthread the mode changed, if that kthread still serves the NAPI.
func (r *restorer) kthread(c Change, prior sysknob.Sched) (Result, error) {
	n, err := r.napiGet(c.NAPI)
	if err != nil {
		return Failed, err
	}
	if !n.HasPID || int(n.PID) != prior.PID {
		return Gone, kernel.NotFound("kthread %d exited (threaded NAPI was switched off or the driver "+
			"reset the NAPI)", prior.PID)
	}
	cur, err := r.s.Sched.Sched(prior.PID)
	if err != nil {
		return Failed, err
	}
	if cur.Policy == prior.Policy && cur.Priority == prior.Priority && cur.Nice == prior.Nice &&
		cur.CPUs.Equal(prior.CPUs) {
		return Unchanged, nil
	}
	return Restored, r.s.Sched.RestoreSched(prior)
}

// service starts again a unit that ran before the apply stopped it; one that runs already (someone started it
// meanwhile) is left alone.
func (r *restorer) service(c Change, prior ServicePrior) (Result, error) {
	if !prior.Active {
		return Unchanged, nil
	}
	active, err := r.s.services().Active(c.Service)
	if err != nil {
		return Failed, err
	}
	if active {
		return Unchanged, nil
	}
	return Restored, r.s.services().Start(c.Service)
}
