package napi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/napilab/napilab/internal/kernel"
)

// leaseFormat heads every lease file.
const leaseFormat = "napilab mode lease v1"

// LeaseGrace is how long after a lease's deadline the watchdog waits before it restores: the holder's own timer
// restores at the deadline, so the watchdog acts only when the holder could not.
const LeaseGrace = 2 * time.Second

// Lease says until when a journaled mode is meant to stay, who holds it, and which watchdog guards it. It lives
// beside the journal (LeasePath).
type Lease struct {
	Format   string         `json:"format"`
	Deadline time.Time      `json:"deadline"`
	Holder   kernel.Process `json:"holder"`
	Watchdog kernel.Process `json:"watchdog,omitzero"`
}

// LeasePath is the lease file of the journal at path.
func LeasePath(journal string) string { return journal + ".lease" }

// WatchdogLog is where the watchdog of the journal at path writes what it did; a hold that restores by itself
// removes it with the journal, so a log that stays tells of a watchdog that acted or failed.
func WatchdogLog(journal string) string { return journal + ".watchdog.log" }

// ParseLease decodes and checks a lease file.
func ParseLease(b []byte) (Lease, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l Lease
	if err := dec.Decode(&l); err != nil {
		return Lease{}, err
	}
	if dec.More() {
		return Lease{}, errors.New("data after the lease")
	}
	if l.Format != leaseFormat {
		return Lease{}, fmt.Errorf("format %q is not %q", l.Format, leaseFormat)
	}
	if l.Deadline.IsZero() || l.Holder.PID <= 0 || l.Watchdog.PID < 0 {
		return Lease{}, errors.New("a lease needs a deadline and a holder")
	}
	return l, nil
}

// LoadLease reads the lease of the journal at path.
func LoadLease(journal string) (Lease, error) {
	b, err := os.ReadFile(LeasePath(journal))
	if err != nil {
		return Lease{}, err
	}
	l, err := ParseLease(b)
	if err != nil {
		return Lease{}, fmt.Errorf("lease %s: %w", LeasePath(journal), err)
	}
	return l, nil
}

// writeLease replaces the lease atomically: a watchdog reads either the old deadline or the new one.
func writeLease(journal string, l Lease) error {
	b, err := json.MarshalIndent(l, "", "\t")
	if err != nil {
		return err
	}
	path := LeasePath(journal)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return journalError("create the journal directory", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := writeSynced(tmp, append(b, '\n')); err != nil {
		os.Remove(tmp)
		return journalError("write lease", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return journalError("install lease", path, err)
	}
	return nil
}

func removeLease(journal string) error {
	if err := os.Remove(LeasePath(journal)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return journalError("remove lease", LeasePath(journal), err)
	}
	return nil
}

func self() kernel.Process {
	p, _ := kernel.Self()
	return p
}

func processOf(pid int) kernel.Process {
	p, err := kernel.ProcessOf(pid)
	if err != nil {
		return kernel.Process{PID: pid}
	}
	return p
}

// WatchOptions tune Watch.
type WatchOptions struct {
	Restore RestoreOptions
	// Open opens the system a journal's namespace refers to; napi.OpenNetNS when nil.
	Open func(NetNS) (*System, error)
	// Poll bounds how long the watchdog goes without looking at the journal; 0 means a second.
	Poll time.Duration
	// Grace is how long after the deadline it waits; 0 means LeaseGrace.
	Grace time.Duration
}

// Watch is the watchdog of a held mode, started before the first change: it returns nil as soon as journal and
// lease are both gone (the holder restored, or gave up before applying), restores the journal itself (and
// removes it and its lease) once the lease has run out by more than the grace and the journal is there, and
// removes a lease whose journal never appeared. A lease that cannot be read counts as run out: a journal with
// no valid promise of a holder is restored. It runs in a process of its own (`napilab agent --watchdog JOURNAL`),
// detached from the holder's session, so neither a SIGKILL nor a crash of the holder, nor the end of its ssh
// session, takes it along. ctx ends the watch without restoring.
func Watch(ctx context.Context, journal string, o WatchOptions) (*RestoreReport, error) {
	if o.Open == nil {
		o.Open = OpenNetNS
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Grace <= 0 {
		o.Grace = LeaseGrace
	}
	for {
		_, jerr := os.Stat(journal)
		l, lerr := LoadLease(journal)
		switch {
		case errors.Is(jerr, fs.ErrNotExist) && errors.Is(lerr, fs.ErrNotExist):
			return nil, nil // the holder restored, or gave up before applying
		case errors.Is(jerr, fs.ErrNotExist) && (lerr != nil || time.Now().After(l.Deadline.Add(o.Grace))):
			return nil, removeLease(journal) // the holder died before it wrote the journal: nothing changed
		}
		wait := time.Duration(0)
		if lerr == nil {
			wait = time.Until(l.Deadline.Add(o.Grace))
		}
		if wait <= 0 && jerr == nil {
			rep, err := RestoreFile(journal, o.Open, o.Restore)
			if err == nil {
				err = removeLease(journal)
			}
			return rep, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(wait, o.Poll)):
		}
	}
}

// Stale is a journal left by a holder that is gone.
type Stale struct {
	Journal string         `json:"journal"`
	Preset  string         `json:"preset"`
	Holder  kernel.Process `json:"holder"`
	Report  *RestoreReport `json:"report,omitempty"`
	Err     string         `json:"error,omitempty"`
}

// RestoreStale restores every journal in dir whose holder is gone, first stopping the watchdog that still waits
// to restore it (it would otherwise restore again, later, over whatever is applied next). Journals of a live
// holder are left alone. The caller must hold dir's lock (TakeLock), so that no new holder appears meanwhile.
func RestoreStale(dir string, o WatchOptions) ([]Stale, error) {
	if o.Open == nil {
		o.Open = OpenNetNS
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list journals in %s: %w", dir, err)
	}
	var out []Stale
	var errs []error
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), journalSuffix) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		s := Stale{Journal: path}
		j, jerr := LoadJournal(path)
		if jerr == nil {
			s.Preset, s.Holder = j.Preset, kernel.Process{PID: j.PID}
		}
		l, lerr := LoadLease(path)
		if lerr == nil {
			s.Holder = l.Holder
		}
		if s.Holder.PID != os.Getpid() && s.Holder.Alive() {
			continue // a live holder: its hold, not a stale one
		}
		if lerr == nil && l.Watchdog.PID > 0 {
			if err := stopProcess(l.Watchdog); err != nil {
				errs = append(errs, fmt.Errorf("stop the watchdog of %s: %w", path, err))
				continue
			}
		}
		rep, err := RestoreFile(path, o.Open, o.Restore)
		s.Report = rep
		if err == nil {
			err = removeLease(path)
		}
		if err != nil {
			s.Err = err.Error()
			errs = append(errs, err)
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

// journalSuffix names the journals of a device directory (DeviceDir).
const journalSuffix = ".journal"

// stopProcess kills p if it still runs and waits until it is gone, so that whatever it was about to do cannot
// happen after this returns.
func stopProcess(p kernel.Process) error {
	if !p.Alive() {
		return nil
	}
	pidfd, err := pidfdOpen(p.PID)
	if err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	defer closeFD(pidfd)
	if !p.Alive() { // the PID may have been reused between the check and pidfd_open
		return nil
	}
	if err := pidfdKill(pidfd); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return pidfdWait(pidfd, 10*time.Second)
}

// DeviceDir is where holds of a device keep their lock and journals: one directory per (network namespace,
// ifindex), under /run/napilab, so two controllers of one device meet there and two devices never do.
func DeviceDir(t Target) string {
	return filepath.Join(filepath.Dir(DefaultJournal), "devices", fmt.Sprintf("net%d-if%d", t.NetNS.Inode, t.Ifindex))
}

// NewJournalPath names a fresh journal in a device directory: one per hold, so a watchdog never mistakes the
// journal of a later hold for its own.
func NewJournalPath(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("%s-%d%s", time.Now().UTC().Format("20060102T150405.000000000"),
		os.Getpid(), journalSuffix))
}

// Journals lists the journals in a device directory, oldest first.
func Journals(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), journalSuffix) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// DeviceDirOf is the device directory (DeviceDir) of dev in the system's namespace.
func (s *System) DeviceDirOf(dev string) (string, error) {
	l, err := s.linkByName(dev)
	if err != nil {
		return "", err
	}
	return DeviceDir(Target{NetNS: s.NetNS, Ifindex: l.Ifindex}), nil
}
