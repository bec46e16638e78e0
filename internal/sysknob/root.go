package sysknob

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netns"
)

// Root is a view of the system's sysfs and procfs through which knobs are read and written: the host's (Host),
// one network namespace's (NetNS), or a directory tree holding sys/ and proc/ (Dir; sysknobtest builds one).
// A Root is safe for concurrent use; Close releases it.
type Root struct {
	sys, proc *os.Root
	netns     int    // network namespace whose /proc/sys/net this view opens; -1: the calling thread's
	desc      string // how messages name a view other than the host's: "network namespace net:[4026532305]"
	closers   []func() error
}

// Dir returns a view of the tree at dir, whose sys/ and proc/ subdirectories stand for /sys and /proc.
// It is how tests and sysknobtest run every knob against a fake tree.
func Dir(dir string) (*Root, error) {
	sys, err := os.OpenRoot(filepath.Join(dir, "sys"))
	if err != nil {
		return nil, fmt.Errorf("open fake sysfs: %w", err)
	}
	proc, err := os.OpenRoot(filepath.Join(dir, "proc"))
	if err != nil {
		sys.Close()
		return nil, fmt.Errorf("open fake procfs: %w", err)
	}
	return &Root{sys: sys, proc: proc, netns: -1, desc: "the tree at " + dir}, nil
}

// Close releases the view; for a NetNS view it also drops the private sysfs mount that pins the namespace.
func (r *Root) Close() error {
	errs := []error{r.sys.Close(), r.proc.Close()}
	for _, c := range r.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// String names the view, e.g. "the host" or "network namespace net:[4026532305]".
func (r *Root) String() string {
	if r.desc == "" {
		return "the host"
	}
	return r.desc
}

// where names f for messages: its real path, and the view unless that is the host's.
func (r *Root) where(f file) string {
	if r.desc == "" {
		return f.String()
	}
	return f.String() + " in " + r.desc
}

// file is one knob file: a path below /sys or /proc of the view.
type file struct {
	proc bool   // below /proc rather than /sys
	rel  string // slash-separated, relative to the file system's root
}

func sysFile(parts ...string) file  { return file{rel: strings.Join(parts, "/")} }
func procFile(parts ...string) file { return file{proc: true, rel: strings.Join(parts, "/")} }

// String returns the path as it appears on a real system, e.g. "/sys/class/net/eth0/threaded".
func (f file) String() string {
	if f.proc {
		return "/proc/" + f.rel
	}
	return "/sys/" + f.rel
}

// parseFile is the inverse of file.String.
func parseFile(path string) (file, bool) {
	if rel, ok := strings.CutPrefix(path, "/proc/"); ok && fs.ValidPath(rel) {
		return file{proc: true, rel: rel}, true
	}
	if rel, ok := strings.CutPrefix(path, "/sys/"); ok && fs.ValidPath(rel) {
		return file{rel: rel}, true
	}
	return file{}, false
}

// netSysctl reports whether f is a network sysctl, which procfs resolves in the network namespace of the thread
// that opens it.
func (f file) netSysctl() bool { return f.proc && strings.HasPrefix(f.rel, "sys/net/") }

func (r *Root) open(f file, flag int) (*os.File, error) {
	base := r.sys
	if f.proc {
		base = r.proc
	}
	if f.netSysctl() && r.netns >= 0 {
		var file *os.File
		err := netns.DoFD(r.netns, r.desc, func() (err error) {
			file, err = base.OpenFile(f.rel, flag, 0)
			return err
		})
		return file, err
	}
	return base.OpenFile(f.rel, flag, 0)
}

// read returns the exact text of f.
func (r *Root) read(f file) (string, error) {
	h, err := r.open(f, os.O_RDONLY)
	if err != nil {
		return "", err
	}
	defer h.Close()
	b, err := io.ReadAll(h)
	return string(b), err
}

// write stores text in f with a single write(2), as sysfs and procfs want; O_TRUNC matters only for fake trees,
// and the absence of O_CREATE keeps a fake tree from growing knobs the kernel does not have.
func (r *Root) write(f file, text string) error {
	h, err := r.open(f, os.O_WRONLY|os.O_TRUNC)
	if err != nil {
		return err
	}
	_, err = h.WriteString(text)
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	return err
}

// exists reports whether f is present in the view (used to tell a missing device from a missing attribute).
func (r *Root) exists(f file) bool {
	base := r.sys
	if f.proc {
		base = r.proc
	}
	_, err := base.Stat(f.rel)
	return err == nil
}

// Snapshot is the exact text a knob held before napilab changed it. It is a plain value, so a journal can store
// it and a later process restore it. It does not name the view it came from: restore it through the same kind of
// Root (a namespace's device knobs through that namespace's NetNS view).
type Snapshot struct {
	Knob string `json:"knob"` // e.g. "gro_flush_timeout of eth0"
	Path string `json:"path"` // e.g. "/sys/class/net/eth0/gro_flush_timeout"
	Text string `json:"text"` // byte for byte what the file read, trailing newline included
}

// Restore writes a snapshot back. It reads the file first and writes only when the text differs, so restoring an
// unchanged knob has no side effect (writing `threaded` or an IRQ affinity is not free), and restoring a
// read-only state such as SMT "notsupported" succeeds when nothing changed.
func (r *Root) Restore(s Snapshot) error {
	f, ok := parseFile(s.Path)
	if !ok {
		return fmt.Errorf("restore %s: path %q is not below /sys or /proc", s.Knob, s.Path)
	}
	cur, err := r.read(f)
	if err == nil && cur == s.Text {
		return nil
	}
	if err != nil {
		return r.fail("restore: read", s.Knob, f, err, nil)
	}
	if err := r.write(f, s.Text); err != nil {
		return r.fail(fmt.Sprintf("restore: write %q to", strings.TrimSuffix(s.Text, "\n")), s.Knob, f, err, nil)
	}
	return nil
}

// fail turns a file system error into the sentence a user needs: a missing file names what is missing and where
// (missing says it in the knob's own terms), a refused write keeps the value (op says `write "15000" to`), a
// permission error says to run as root. The errno stays reachable for errors.Is.
func (r *Root) fail(op, knob string, f file, err error, missing func() string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the view-relative path would only confuse; the message names the real one
	}
	oe := kernel.NewOpError(op, fmt.Sprintf("%s (%s)", knob, r.where(f)), err)
	switch {
	case errors.Is(oe, os.ErrNotExist) && missing != nil:
		return kernel.Explained(oe, missing())
	case errors.Is(oe, os.ErrPermission):
		return kernel.WithHint(oe, "run as root")
	}
	return oe
}
