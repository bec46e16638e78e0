// Package kernel knows which Linux napilab runs on and how napilab reports what that kernel cannot do.
//
// Most of napilab's features arrived in recent kernels (per-NAPI config in 6.13, per-NAPI threaded NAPI in 6.17,
// threaded NAPI busy poll in 6.19). napilab probes a feature by trying it and, when the kernel refuses, returns an
// *UnsupportedError naming the feature and the first kernel that has it, so a user reads "needs Linux 6.19" instead
// of "numerical result out of range". Errors from system calls are wrapped in *OpError, which maps errnos onto the
// sentinels callers branch on: os.ErrNotExist, os.ErrPermission and ErrNotSupported.
package kernel

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrNotSupported is returned (wrapped) when the kernel, a driver or the machine lacks a capability.
// It is the standard library's errors.ErrUnsupported, so an EOPNOTSUPP errno already matches it.
var ErrNotSupported = errors.ErrUnsupported

// Version is a kernel release as major.minor.patch.
type Version struct{ Major, Minor, Patch int }

// ParseRelease parses the leading numbers of a kernel release string such as "6.18.44-fc-v657" or
// "7.3.4+deb13-cloud-amd64".
func ParseRelease(release string) (Version, error) {
	var v Version
	fields := strings.FieldsFunc(release, func(r rune) bool { return r == '.' || r == '-' || r == '+' || r == '_' })
	nums := []*int{&v.Major, &v.Minor, &v.Patch}
	for i, dst := range nums {
		if i >= len(fields) {
			break
		}
		n, err := strconv.Atoi(fields[i])
		if err != nil {
			if i < 2 {
				return Version{}, fmt.Errorf("parse kernel release %q: want major.minor[.patch]", release)
			}
			break
		}
		*dst = n
	}
	if len(fields) < 2 {
		return Version{}, fmt.Errorf("parse kernel release %q: want major.minor[.patch]", release)
	}
	return v, nil
}

// AtLeast reports whether v is major.minor or newer.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

var running struct {
	once    sync.Once
	release string
	version Version
	err     error
}

// Release returns the running kernel's release string (uname -r).
func Release() string {
	loadRunning()
	return running.release
}

// Running returns the running kernel's version.
func Running() (Version, error) {
	loadRunning()
	return running.version, running.err
}

func loadRunning() {
	running.once.Do(func() {
		var uts unix.Utsname
		if err := unix.Uname(&uts); err != nil {
			running.err = fmt.Errorf("uname: %w", err)
			return
		}
		running.release = unix.ByteSliceToString(uts.Release[:])
		running.version, running.err = ParseRelease(running.release)
	})
}

// UnsupportedError says that a feature needs a newer kernel (or a capable driver) than the one napilab runs on.
type UnsupportedError struct {
	Feature   string // what the user asked for, e.g. "threaded NAPI busy poll"
	MinKernel string // first kernel release with the feature, e.g. "6.19"; empty when it is not a version gate
	Err       error  // what the kernel answered, if anything
}

func (e *UnsupportedError) Error() string {
	var b strings.Builder
	b.WriteString(e.Feature)
	if e.MinKernel != "" {
		fmt.Fprintf(&b, " needs Linux %s or newer", e.MinKernel)
		if r := Release(); r != "" {
			fmt.Fprintf(&b, " (this kernel is %s)", r)
		}
	} else {
		b.WriteString(" is not supported here")
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotSupported) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrNotSupported }

func (e *UnsupportedError) Unwrap() error { return e.Err }

// OpError is a failed kernel operation: a system call, a netlink request or a sysfs write.
type OpError struct {
	Op      string // e.g. "bind AF_XDP socket", "napi-set"
	Subject string // what it was applied to, e.g. "veth0 queue 3"; may be empty
	Err     error
}

// NewOpError wraps err, returning nil when err is nil.
func NewOpError(op, subject string, err error) error {
	if err == nil {
		return nil
	}
	return &OpError{Op: op, Subject: subject, Err: err}
}

func (e *OpError) Error() string {
	if e.Subject == "" {
		return e.Op + ": " + e.Err.Error()
	}
	return e.Op + " " + e.Subject + ": " + e.Err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }

// Is maps errnos that the standard library leaves unmapped: a missing device or netlink family counts as
// os.ErrNotExist, an unknown socket option as ErrNotSupported.
func (e *OpError) Is(target error) bool {
	var errno unix.Errno
	if !errors.As(e.Err, &errno) {
		return false
	}
	switch target {
	case os.ErrNotExist:
		return errno == unix.ENODEV || errno == unix.ENXIO || errno == unix.ENOENT
	case os.ErrPermission:
		return errno == unix.EPERM || errno == unix.EACCES
	case ErrNotSupported:
		return errno == unix.EOPNOTSUPP || errno == unix.ENOPROTOOPT || errno == unix.EAFNOSUPPORT ||
			errno == unix.EPROTONOSUPPORT || errno == unix.ENOSYS
	}
	return false
}

// HintError attaches the fix a user should apply to an error, e.g. "run as root or grant CAP_NET_ADMIN".
type HintError struct {
	Err  error
	Hint string
}

// WithHint wraps err with a fix, returning nil when err is nil.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &HintError{Err: err, Hint: hint}
}

func (e *HintError) Error() string { return e.Err.Error() + "; " + e.Hint }
func (e *HintError) Unwrap() error { return e.Err }

// Explain renders err as the one sentence a user reads: its text, plus the usual fix when it is a permission
// problem that carries no hint of its own. tool names the command to run as root.
func Explain(tool string, err error) string {
	msg := err.Error()
	var hint *HintError
	if errors.Is(err, os.ErrPermission) && !errors.As(err, &hint) {
		msg += "; run " + tool + " as root (or with CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN and CAP_IPC_LOCK)"
	}
	return msg
}

// SentenceError is an error that reads as the one sentence a user needs (what is wrong and how to fix it) and
// still matches what callers branch on: errors.Is finds Kind (os.ErrNotExist, fs.ErrExist, ...) and anything
// Cause wraps. It is napilab's one sentence type; packages do not define their own.
type SentenceError struct {
	Msg   string // the sentence; empty to read as Cause
	Kind  error  // a sentinel the error matches, or nil
	Cause error  // the error the sentence explains, shown after it in parentheses; may be nil
}

func (e *SentenceError) Error() string {
	switch {
	case e.Msg == "" && e.Cause != nil:
		return e.Cause.Error()
	case e.Cause != nil:
		return e.Msg + " (" + e.Cause.Error() + ")"
	}
	return e.Msg
}

// Is matches Kind; errors.Is goes on into Cause through Unwrap.
func (e *SentenceError) Is(target error) bool { return e.Kind != nil && target == e.Kind }

func (e *SentenceError) Unwrap() error { return e.Cause }

// NotFound returns a sentence that matches os.ErrNotExist.
func NotFound(format string, args ...any) error {
	return &SentenceError{Msg: fmt.Sprintf(format, args...), Kind: os.ErrNotExist}
}

// Explained returns msg as the error's text, with err shown after it and reachable through errors.Is/As.
func Explained(err error, msg string) error {
	if err == nil {
		return nil
	}
	return &SentenceError{Msg: msg, Cause: err}
}

// Mark makes err also match kind, keeping its text.
func Mark(err, kind error) error {
	if err == nil {
		return nil
	}
	return &SentenceError{Kind: kind, Cause: err}
}

// FieldError is a problem with one field of a pure spec (rr.Workload, sweep.Spec, ...). Field is the spec's
// own name for it, in lower case words ("period", "payload"); each command line maps it to its flag ("--period"
// in napilab, "-P" in xsk_rr), so a library never tells a user about flags it does not know.
type FieldError struct {
	Field string
	Msg   string // reads after the field: "-80µs is negative: use a positive period"
	Kind  error  // a sentinel the error also matches (os.ErrNotExist for a device that is not there), or nil
}

func (e *FieldError) Error() string { return e.Field + " " + e.Msg }

// Is matches Kind.
func (e *FieldError) Is(target error) bool { return e.Kind != nil && target == e.Kind }

// Fieldf returns a *FieldError.
func Fieldf(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// RenameFields rewrites every *FieldError in err (a single one or an errors.Join of them) with the name its
// command line uses, keeping the rest. Fields without a name in names are left as they are; a FieldError
// wrapped in another error's text is left too, so specs return them unwrapped.
func RenameFields(err error, names map[string]string) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = RenameFields(e, names)
		}
		return errors.Join(out...)
	}
	if fe, ok := err.(*FieldError); ok {
		if name, ok := names[fe.Field]; ok {
			return &FieldError{Field: name, Msg: fe.Msg, Kind: fe.Kind}
		}
	}
	return err
}
