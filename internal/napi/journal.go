package napi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/sysknob"
)

// DefaultJournal is where apply records what it changes. /run is meant to be emptied at boot (a tmpfs on most
// distributions), which is right: a reboot also resets everything the journal could restore.
const DefaultJournal = "/run/napilab/mode.journal"

// journalFormat heads every journal, so a file that is not one (or a future format) is never half-understood.
const journalFormat = "napilab mode journal v1"

// Journal is the write-ahead record of an apply: for every change of the plan, in order, the target's state
// before it. It is on stable storage before the change is made, so another process can restore after the
// applying one died, even by SIGKILL.
type Journal struct {
	Format   string    `json:"format"`
	Preset   string    `json:"preset"`
	Created  time.Time `json:"created"`
	PID      int       `json:"pid"` // the applying process
	Kernel   string    `json:"kernel"`
	NetNS    NetNS     `json:"netns"`
	Device   string    `json:"device"`
	Ifindex  uint32    `json:"ifindex"`
	Entries  []Entry   `json:"entries"`
	Complete bool      `json:"complete"` // apply finished; false if it died or is still running

	path    string
	created bool // the file exists: later saves replace it
}

// Entry is one change and what its target held before.
type Entry struct {
	Change Change `json:"change"`
	// Prior is nil until the target was recorded; an entry without one was never changed.
	Prior   *Prior `json:"prior,omitempty"`
	Outcome string `json:"outcome,omitempty"` // "applied", "skipped: <why>"; empty if apply did not get there
}

// Prior is the state of one change's target before the change; the field of the change's kind is set.
type Prior struct {
	NAPI     *NAPIPrior        `json:"napi,omitempty"`
	Knob     *sysknob.Snapshot `json:"knob,omitempty"`
	Channels *ethtool.Channels `json:"channels,omitempty"`
	Rings    *ethtool.Rings    `json:"rings,omitempty"`
	Coalesce *ethtool.Coalesce `json:"coalesce,omitempty"`
	Sched    *sysknob.Sched    `json:"sched,omitempty"`
	Service  *ServicePrior     `json:"service,omitempty"`
}

// ServicePrior is whether a unit ran before napilab stopped it.
type ServicePrior struct {
	Active bool `json:"active"`
}

// NAPIPrior is what napi-get reported for a NAPI before the change.
type NAPIPrior struct {
	Ifindex           uint32        `json:"ifindex"`
	DeferHardIRQs     uint32        `json:"defer_hard_irqs"`
	GROFlushTimeout   time.Duration `json:"gro_flush_timeout_ns"`
	IRQSuspendTimeout time.Duration `json:"irq_suspend_timeout_ns"`
	Threaded          string        `json:"threaded"`
}

func priorOf(n netdev.NAPI) NAPIPrior {
	return NAPIPrior{Ifindex: n.Ifindex, DeferHardIRQs: n.DeferHardIRQs, GROFlushTimeout: n.GROFlushTimeout,
		IRQSuspendTimeout: n.IRQSuspendTimeout, Threaded: n.Threaded.String()}
}

// Path is where the journal is stored.
func (j *Journal) Path() string { return j.path }

// save writes the journal atomically: a temporary file in the same directory, fsynced, then linked (the first
// time, which fails if a journal exists: one apply at a time) or renamed over the old one, and the directory
// fsynced. A crash at any point leaves either the previous version or the new one, never a mix.
func (j *Journal) save() error {
	b, err := json.MarshalIndent(j, "", "\t")
	if err != nil {
		return fmt.Errorf("encode journal: %w", err)
	}
	dir := filepath.Dir(j.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return journalError("create the journal directory", dir, err)
	}
	tmp := j.path + ".tmp"
	if err := writeSynced(tmp, append(b, '\n')); err != nil {
		os.Remove(tmp)
		return journalError("write journal", tmp, err)
	}
	if j.created {
		err = os.Rename(tmp, j.path)
	} else {
		err = os.Link(tmp, j.path)
		os.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			if cerr := CheckJournalPath(j.path); cerr != nil {
				return cerr // say what is there
			}
			return journalError("install journal", j.path, err)
		}
	}
	if err != nil {
		return journalError("install journal", j.path, err)
	}
	j.created = true
	return syncDir(dir)
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return journalError("open journal directory", dir, err)
	}
	defer d.Close()
	return journalError("sync journal directory", dir, d.Sync())
}

func journalError(op, path string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%s %s: %w; run as root, or pass a writable --journal", op, path, err)
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}

// ErrNotJournal matches the error for a file that is not a napilab mode journal at all.
var ErrNotJournal = errors.New("not a napilab mode journal")

// CheckJournalPath makes sure an apply can write its journal at path, before anything changes: the path must
// not be a directory, and must not hold a file already (a journal there is a mode still applied; any other file
// is not napilab's to overwrite). Problems are kernel.FieldErrors on "journal".
func CheckJournalPath(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return nil // nothing there; writing it says what is in the way, if anything
	case fi.IsDir():
		return &kernel.FieldError{Field: "journal", Msg: fmt.Sprintf("%s is a directory: give a file path, such as "+
			"%s", path, filepath.Join(path, "mode.journal"))}
	}
	j, err := LoadJournal(path)
	switch {
	case errors.Is(err, ErrNotJournal):
		return &kernel.FieldError{Field: "journal", Kind: fs.ErrExist, Msg: fmt.Sprintf("%s exists and is not a "+
			"napilab mode journal: choose another path (napilab never overwrites a file it did not write)", path)}
	case err != nil:
		return &kernel.FieldError{Field: "journal", Kind: fs.ErrExist, Msg: fmt.Sprintf("%s holds a journal napilab "+
			"cannot read (%v): choose another path", path, err)}
	}
	return &kernel.FieldError{Field: "journal", Kind: fs.ErrExist, Msg: fmt.Sprintf("%s holds %s, applied on %s "+
		"and not restored yet: run napilab mode restore --journal %s first, or choose another path", path,
		j.Preset, j.Device, path)}
}

// journalHead is how every journal starts: a JSON object whose first member is the format line. A file that
// does not start so was never a journal (writes are atomic, so a journal is never cut short by napilab).
var journalHead = regexp.MustCompile(`^\s*\{\s*"format"\s*:\s*"napilab mode journal`)

// LoadJournal reads the journal at path. A missing journal matches os.ErrNotExist ("nothing to restore"); a
// file that is not a journal at all matches ErrNotJournal; a journal napilab cannot make sense of is refused with
// a sentence saying what to do. Nothing is restored from either.
func LoadJournal(path string) (*Journal, error) {
	fi, err := os.Stat(path)
	if err == nil && fi.IsDir() {
		return nil, &kernel.SentenceError{Kind: ErrNotJournal, Msg: fmt.Sprintf("%s is a directory, not a napilab "+
			"mode journal: give the journal's path as mode apply printed it", path)}
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, kernel.NotFound("nothing to restore: there is no journal at %s", path)
	}
	if err != nil {
		return nil, journalError("read journal", path, err)
	}
	if !journalHead.Match(b) {
		return nil, &kernel.SentenceError{Kind: ErrNotJournal, Msg: fmt.Sprintf("%s is not a napilab mode journal "+
			"(it does not start with the journal's format line): nothing was restored; give the journal's path "+
			"as mode apply printed it", path)}
	}
	j, err := ParseJournal(b)
	if err != nil {
		return nil, fmt.Errorf("journal %s is corrupt (%w): nothing was restored from it; put back by hand what "+
			"it lists, then delete it", path, err)
	}
	j.path, j.created = path, true
	return j, nil
}

// RemoveJournal deletes the journal once everything it recorded is restored.
func RemoveJournal(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return journalError("remove journal", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// ParseJournal decodes and checks a journal: every entry must be a change napilab knows with a prior state of
// the same kind, so a restore never acts on something it half understands.
func ParseJournal(b []byte) (*Journal, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j Journal
	if err := dec.Decode(&j); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the journal")
	}
	if j.Format != journalFormat {
		return nil, fmt.Errorf("format %q is not %q", j.Format, journalFormat)
	}
	if j.Device == "" || j.Ifindex == 0 {
		return nil, errors.New("no device")
	}
	for i, e := range j.Entries {
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
	}
	return &j, nil
}

func (e Entry) check() error {
	c, p := e.Change, e.Prior
	want := func(ok bool, what string) error {
		if !ok {
			return fmt.Errorf("%s change lacks %s", c.Kind, what)
		}
		return nil
	}
	var err error
	switch c.Kind {
	case KindNAPI:
		err = errors.Join(want(c.NAPI != 0 && c.Settings != nil, "a NAPI and settings"),
			want(p == nil || p.NAPI != nil, "its prior NAPI state"))
		if err == nil {
			_, err = c.Settings.Config()
		}
		if err == nil && p != nil {
			err = (&NAPISettings{Threaded: p.NAPI.Threaded}).check()
		}
	case KindKnob:
		err = errors.Join(want(c.Knob != nil && knobKnown(c.Knob.ID), "a known knob"),
			want(p == nil || p.Knob != nil && c.Knob != nil && p.Knob.Path == c.Knob.Path(),
				"its prior text, from the file it changes"))
	case KindChannels:
		err = errors.Join(want(c.Channels != nil, "channels"), want(p == nil || p.Channels != nil, "prior channels"))
	case KindRings:
		err = errors.Join(want(c.Rings != nil, "rings"), want(p == nil || p.Rings != nil, "prior rings"))
	case KindCoalesce:
		err = errors.Join(want(c.Coalesce != nil, "coalescing"), want(p == nil || p.Coalesce != nil, "prior coalescing"))
	case KindService:
		err = errors.Join(want(c.Service != "", "a unit"), want(p == nil || p.Service != nil, "the unit's prior state"))
	case KindKthread:
		err = errors.Join(want(c.NAPI != 0 && c.FIFO > 0, "a NAPI and a priority"),
			want(p == nil || p.Sched != nil && p.Sched.PID > 0, "the kthread's prior scheduling"))
	default:
		err = fmt.Errorf("unknown kind of change %q", c.Kind)
	}
	return err
}

func (s *NAPISettings) check() error {
	_, err := s.Config()
	return err
}

func knobKnown(id KnobID) bool {
	switch id {
	case KnobThreaded, KnobDeferHardIRQs, KnobGROFlushTimeout, KnobRPSCPUs, KnobBusyRead, KnobBusyPoll,
		KnobRPSSockFlowEntries, KnobTimerMigration, KnobSchedRTRuntime, KnobSMT, KnobIRQAffinity,
		KnobWorkqueueCPUMask:
		return true
	}
	return false
}
