package napi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// The mode lifecycle: apply, hold, restore. Every holder of a mode goes through Hold — `napilab mode apply
// --until-exit`, the agent a sweep drives on the server host — so that "restored on exit, on signals, on a lost
// connection and after a crash" has one implementation.
//
// A hold may carry a lease. The holder renews it (between sweep cells); when it runs out, the hold restores by
// itself: a silent network partition may never close the controller's pipe, and a stopped controller never
// says goodbye. The lease is also written next to the journal, so that a watchdog — a separate process started
// at apply, which outlives a SIGKILLed or crashed holder — restores when the lease has run out and the journal
// is still there (Watch).

// HoldOptions tune Hold.
type HoldOptions struct {
	ApplyOptions
	Restore RestoreOptions
	// Lease is how long the mode stays without a renewal; 0 holds it until Release.
	Lease time.Duration
	// Watchdog, if set, starts the process that restores the journal at the path it is given once the lease
	// has run out, should this process be gone by then (see Watch). It is started after the apply, with the
	// lease file already in place. Only a hold with a lease has a watchdog.
	Watchdog func(journal string) (*os.Process, error)
}

// Held is a mode in place. Release restores it; so does the lease running out.
type Held struct {
	sys     *System
	applied *Applied
	o       HoldOptions

	mu       sync.Mutex
	timer    *time.Timer
	deadline time.Time
	watchdog *os.Process
	report   *RestoreReport
	err      error
	done     chan struct{}
	expired  bool
}

// Hold applies plan p (see Apply) and holds it: until Release, or until the lease runs out without a renewal.
// The lease file is written, and the watchdog started, before the first change: a holder killed in the middle
// of applying leaves a journal that its watchdog restores when the lease is over, never a change nobody
// guards.
func (s *System) Hold(ctx context.Context, p *Plan, o HoldOptions) (*Held, error) {
	if o.Lease < 0 {
		return nil, fmt.Errorf("lease %v is negative", o.Lease)
	}
	journal := o.Journal
	if journal == "" {
		journal = DefaultJournal
	}
	o.Journal = journal
	h := &Held{sys: s, o: o, done: make(chan struct{})}
	o.held = true
	if o.Lease > 0 {
		h.deadline = time.Now().Add(o.Lease)
		// Apply refuses to replace a journal (or anything else at its path); do not touch its lease either.
		if err := CheckJournalPath(journal); err != nil {
			return nil, err
		}
		if err := writeLease(journal, Lease{Format: leaseFormat, Deadline: h.deadline, Holder: self()}); err != nil {
			return nil, err
		}
		if o.Watchdog != nil {
			wd, err := o.Watchdog(journal)
			if err == nil {
				h.watchdog = wd
				err = writeLease(journal, Lease{Format: leaseFormat, Deadline: h.deadline, Holder: self(),
					Watchdog: processOf(wd.Pid)})
			}
			if err != nil {
				h.stopWatchdog()
				removeLease(journal)
				return nil, fmt.Errorf("start the watchdog that restores %s if napilab dies (nothing was "+
					"changed): %w", p.Mode.Preset, err)
			}
		}
	}
	a, err := s.Apply(ctx, p, o.ApplyOptions)
	if err != nil {
		// Apply rolled back or left its journal for mode restore; either way the watchdog of this hold goes.
		if o.Lease > 0 {
			if _, serr := os.Stat(journal); serr != nil {
				h.stopWatchdog()
				removeLease(journal)
			}
		}
		return nil, err
	}
	h.applied = a
	if o.Lease > 0 {
		h.timer = time.AfterFunc(o.Lease, h.expire)
	}
	return h, nil
}

// stopWatchdog ends the watchdog: its journal is restored (or was never written).
func (h *Held) stopWatchdog() {
	if h.watchdog != nil {
		_ = h.watchdog.Kill()
		_ = h.watchdog.Release()
		h.watchdog = nil
	}
}

// Applied is what the hold put in place.
func (h *Held) Applied() *Applied { return h.applied }

// Done is closed once the mode is restored, by Release or by the lease running out.
func (h *Held) Done() <-chan struct{} { return h.done }

// Deadline is when the lease runs out; zero without a lease.
func (h *Held) Deadline() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deadline
}

// Renew extends the lease to d from now. It fails once the mode is restored: a holder that renews too late
// learns that the system is no longer in the mode it measures.
func (h *Held) Renew(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("lease %v: renew for a positive time", d)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.report != nil {
		why := "it was released"
		if h.expired {
			why = fmt.Sprintf("its lease ran out at %s", h.deadline.Format(time.RFC3339Nano))
		}
		return fmt.Errorf("%s is no longer applied: %s and it was restored", h.applied.Plan.Mode.Preset, why)
	}
	if h.timer == nil {
		return errors.New("this hold has no lease to renew")
	}
	h.deadline = time.Now().Add(d)
	if err := h.rewriteLeaseLocked(); err != nil {
		return err
	}
	h.timer.Reset(d)
	return nil
}

func (h *Held) expire() {
	h.mu.Lock()
	if h.report != nil || time.Now().Before(h.deadline) {
		h.mu.Unlock() // released meanwhile, or renewed while the timer fired
		return
	}
	h.expired = true
	h.mu.Unlock()
	_, _ = h.Release()
}

// Expired reports whether the lease ran out (and the mode was restored because of it).
func (h *Held) Expired() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.expired
}

// Release restores the mode, removes the journal and its lease, and stops the watchdog. It is idempotent and
// safe to call from any goroutine: the first call restores, later ones return the first one's outcome. When
// something could not be restored the journal stays, for `napilab mode restore` (and the watchdog, which is
// then left running to try again when the lease is over).
func (h *Held) Release() (*RestoreReport, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.report != nil {
		return h.report, h.err
	}
	if h.timer != nil {
		h.timer.Stop()
	}
	j := h.applied.Journal
	h.report = h.sys.Restore(j, h.o.Restore)
	if rerr := h.report.Err(); rerr != nil {
		h.err = fmt.Errorf("restore left settings changed; the journal %s stays for napilab mode restore: %w",
			j.Path(), rerr)
	} else {
		h.err = errors.Join(RemoveJournal(j.Path()), removeLease(j.Path()))
		if h.watchdog != nil {
			h.stopWatchdog() // its journal is gone: it has nothing left to do
			_ = os.Remove(WatchdogLog(j.Path()))
		}
	}
	close(h.done)
	return h.report, h.err
}

func (h *Held) rewriteLeaseLocked() error {
	l := Lease{Format: leaseFormat, Deadline: h.deadline, Holder: self()}
	if h.watchdog != nil {
		l.Watchdog = processOf(h.watchdog.Pid)
	}
	return writeLease(h.applied.Journal.Path(), l)
}
