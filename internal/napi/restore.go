package napi

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
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
)

// RestoreItem is the outcome for one journal entry.
type RestoreItem struct {
	Step   int    `json:"step"`
	Change string `json:"change"`
	Result Result `json:"result"`
	Detail string `json:"detail,omitempty"`
}

// RestoreReport lists what a restore did, last change first.
type RestoreReport struct {
	Journal string        `json:"journal"`
	Preset  string        `json:"preset"`
	Items   []RestoreItem `json:"items"`
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

// Format renders the report as lines for people.
func (r *RestoreReport) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "restore %s from %s\n", r.Preset, r.Journal)
	for _, it := range r.Items {
		fmt.Fprintf(&b, "  %2d. %-9s %s", it.Step, it.Result, it.Change)
		if it.Detail != "" {
			fmt.Fprintf(&b, ": %s", it.Detail)
		}
		b.WriteByte('\n')
	}
	if len(r.Items) == 0 {
		b.WriteString("  nothing had been changed\n")
	}
	return b.String()
}

// Restore puts back what journal j recorded, last change first. It is idempotent: an entry whose target already
// holds its prior state is left alone, so restoring twice changes nothing the second time. Device settings are
// restored only while the journal's device (same name, same ifindex, same namespace) still exists; a device or
// kthread that is gone is reported, not an error. A restore, once started, runs to the end: it takes no context.
func (s *System) Restore(j *Journal, o RestoreOptions) *RestoreReport {
	r := &restorer{s: s, j: j, timeout: o.ThreadedTimeout}
	return r.restore(len(j.Entries) - 1)
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
		res, detail := r.entry(e)
		rep.Items = append(rep.Items, RestoreItem{Step: i + 1, Change: e.Change.Describe(), Result: res, Detail: detail})
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

func (r *restorer) entry(e Entry) (Result, string) {
	c := e.Change
	device := c.Kind != KindKnob || c.Knob.device()
	if device && r.devGone != "" {
		return Gone, r.devGone
	}
	var (
		res Result
		err error
	)
	switch c.Kind {
	case KindNAPI:
		res, err = r.napi(c, *e.Prior.NAPI)
	case KindKnob:
		res, err = r.knob(*c.Knob, *e.Prior.Knob)
	case KindChannels, KindRings, KindCoalesce:
		res, err = r.ethtool(e)
	case KindKthread:
		res, err = r.kthread(c, *e.Prior.Sched)
	}
	switch {
	case err == nil:
		return res, ""
	case errors.Is(err, os.ErrNotExist):
		return Gone, err.Error()
	}
	return Failed, err.Error()
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
func (r *restorer) napi(c Change, prior NAPIPrior) (Result, error) {
	n, err := r.napiGet(c.NAPI)
	if err != nil {
		return Failed, err
	}
	cur := priorOf(n)
	if cur.Ifindex != r.j.Ifindex {
		return Gone, kernel.NotFound("napi %d now belongs to ifindex %d", c.NAPI, cur.Ifindex)
	}
	touched, all := *c.Settings, c.recordOnly()
	var back NAPISettings
	if (all || touched.DeferHardIRQs != nil) && cur.DeferHardIRQs != prior.DeferHardIRQs {
		back.DeferHardIRQs = &prior.DeferHardIRQs
	}
	if (all || touched.GROFlushTimeout != nil) && cur.GROFlushTimeout != prior.GROFlushTimeout {
		back.GROFlushTimeout = &prior.GROFlushTimeout
	}
	if (all || touched.IRQSuspendTimeout != nil) && cur.IRQSuspendTimeout != prior.IRQSuspendTimeout {
		back.IRQSuspendTimeout = &prior.IRQSuspendTimeout
	}
	if (all || touched.Threaded != "") && cur.Threaded != prior.Threaded {
		back.Threaded = prior.Threaded
	}
	if back == (NAPISettings{}) {
		return Unchanged, nil
	}
	cfg, err := back.Config()
	if err != nil {
		return Failed, err
	}
	if cfg.Threaded == nil {
		return Restored, r.s.Netdev.SetNAPI(c.NAPI, cfg)
	}
	return Restored, r.setThreaded(c.NAPI, cfg)
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

func (r *restorer) knob(k Knob, prior sysknob.Snapshot) (Result, error) {
	if cur, err := r.s.Knobs.Snapshot(k); err == nil && cur.Text == prior.Text {
		return Unchanged, nil
	}
	return Restored, r.s.Knobs.Restore(k, prior)
}

func (r *restorer) ethtool(e Entry) (Result, error) {
	et, dev := r.s.Ethtool, ethtool.Device{Index: int(r.j.Ifindex), Name: r.j.Device}
	switch p := e.Prior; e.Change.Kind {
	case KindChannels:
		return restoreEthtool(dev, *p.Channels, et.Channels, et.SetChannels)
	case KindRings:
		return restoreEthtool(dev, *p.Rings, et.Rings, et.SetRings)
	default:
		return restoreEthtool(dev, *p.Coalesce, et.Coalesce, et.SetCoalesce)
	}
}

// restoreEthtool sets an ethtool object back to prior unless it already is.
func restoreEthtool[T comparable](dev ethtool.Device, prior T, get func(ethtool.Device) (T, error),
	set func(ethtool.Device, T) error) (Result, error) {
	cur, err := get(dev)
	if err != nil {
		return Failed, err
	}
	if cur == prior {
		return Unchanged, nil
	}
	return Restored, set(dev, prior)
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
