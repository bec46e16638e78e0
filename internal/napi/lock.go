package napi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/napilab/napilab/internal/kernel"
)

// Holder says who holds a device: the process, the controller that drives it (a host name, or the address
// of the ssh client it came through), and since when.
type Holder struct {
	Process    kernel.Process `json:"process"`
	Controller string         `json:"controller,omitempty"`
	Since      time.Time      `json:"since"`
	Command    string         `json:"command,omitempty"`
}

func (h Holder) String() string {
	s := fmt.Sprintf("napilab pid %d", h.Process.PID)
	if h.Controller != "" {
		s += " driven from " + h.Controller
	}
	if h.Command != "" {
		s += " (" + h.Command + ")"
	}
	if !h.Since.IsZero() {
		s += " since " + h.Since.Format(time.RFC3339)
	}
	return s
}

// Lock is a held device directory: one controller per device at a time.
type Lock struct {
	f    *os.File
	path string
}

// ErrHeld matches the error TakeLock returns when another process holds the lock.
var ErrHeld = errors.New("the device is held by another napilab")

func lockPath(dir string) string { return filepath.Join(dir, "lock") }

func mkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return journalError("create", dir, err)
	}
	return nil
}

func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, journalError("open lock", path, err)
	}
	return f, nil
}

func heldError(path string) error {
	h, err := ReadHolder(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("%w (lock %s; its holder could not be read: %v): wait for it to finish", ErrHeld, path, err)
	}
	return &kernel.SentenceError{Kind: ErrHeld, Msg: fmt.Sprintf("the device is held by %s: wait for it to "+
		"finish, or stop it (it restores what it changed when it exits)", h)}
}

func (l *Lock) write(h Holder) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("write lock %s: %w", l.path, err)
	}
	if _, err := l.f.WriteAt(append(b, '\n'), 0); err != nil {
		return fmt.Errorf("write lock %s: %w", l.path, err)
	}
	return nil
}

// Release drops the lock. When no journal is left in the device directory it removes the lock file and the
// directory first, while still holding the lock (a waiting taker then finds its file replaced and takes the
// new one). It is idempotent.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	dir := filepath.Dir(l.path)
	if js, err := Journals(dir); err == nil && len(js) == 0 {
		_ = os.Remove(l.path)
		_ = os.Remove(dir) // fails while anything else is in it: then it stays
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// ReadHolder reads who holds (or last held) the lock of a device directory.
func ReadHolder(dir string) (Holder, error) {
	f, err := os.Open(lockPath(dir))
	if err != nil {
		return Holder{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return Holder{}, err
	}
	var h Holder
	if err := json.Unmarshal(b, &h); err != nil {
		return Holder{}, fmt.Errorf("lock %s: %w", lockPath(dir), err)
	}
	return h, nil
}
