package sysknob

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/kernel"
)

// Knob is one typed sysfs or procfs setting seen through a Root. Get parses the file, Set validates the value
// before it writes (units are converted here, never by the caller), Snapshot records the exact text for Restore.
type Knob[T any] struct {
	root    *Root
	file    file
	name    string
	codec   codec[T]
	missing func() string // the sentence for a file that does not exist
	refusal string        // the hint for a write the kernel refuses as not supported
	err     error         // the knob could not be named (e.g. a bad device name); every method returns it
}

// codec converts between a knob's file text and its Go value.
type codec[T any] struct {
	parse  func(text string) (T, error)       // text without the trailing newline
	format func(v T) (string, error)          // validates v; nil for a read-only knob
	check  func(r *Root, k string, v T) error // optional: refuse a write the kernel would answer confusingly
}

// Name returns the knob's name as messages use it, e.g. "net.core.busy_read" or "gro_flush_timeout of eth0".
func (k Knob[T]) Name() string { return k.name }

// Path returns the knob's path on a real system, e.g. "/sys/class/net/eth0/gro_flush_timeout".
func (k Knob[T]) Path() string { return k.file.String() }

// Get reads and parses the current value.
func (k Knob[T]) Get() (T, error) {
	var zero T
	text, err := k.text()
	if err != nil {
		return zero, err
	}
	v, err := k.codec.parse(strings.TrimSuffix(text, "\n"))
	if err != nil {
		return zero, fmt.Errorf("read %s (%s): %w", k.name, k.root.where(k.file), err)
	}
	return v, nil
}

func (k Knob[T]) text() (string, error) {
	if k.err != nil {
		return "", k.err
	}
	text, err := k.root.read(k.file)
	if err != nil {
		return "", k.root.fail("read", k.name, k.file, err, k.missing)
	}
	return text, nil
}

// Set validates v and writes it, newline-terminated as `echo` would.
func (k Knob[T]) Set(v T) error {
	if k.err != nil {
		return k.err
	}
	if k.codec.format == nil {
		return fmt.Errorf("%s is read-only", k.name)
	}
	text, err := k.codec.format(v)
	if err != nil {
		return fmt.Errorf("set %s: %w", k.name, err)
	}
	if k.codec.check != nil {
		if err := k.codec.check(k.root, k.name, v); err != nil {
			return err
		}
	}
	if err := k.root.write(k.file, text+"\n"); err != nil {
		err = k.root.fail(fmt.Sprintf("write %q to", text), k.name, k.file, err, k.missing)
		if k.refusal != "" && errors.Is(err, kernel.ErrNotSupported) {
			err = kernel.WithHint(err, k.refusal)
		}
		return err
	}
	return nil
}

// Snapshot records the knob's exact current text.
func (k Knob[T]) Snapshot() (Snapshot, error) {
	text, err := k.text()
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Knob: k.name, Path: k.file.String(), Text: text}, nil
}

// Apply records a snapshot and then sets v: the order napilab always follows, so that whatever it changes it can
// put back. When the write fails the snapshot is still returned, and restoring it is harmless.
func (k Knob[T]) Apply(v T) (Snapshot, error) {
	s, err := k.Snapshot()
	if err != nil {
		return Snapshot{}, err
	}
	return s, k.Set(v)
}

// Restore writes s back through this knob's view (see Root.Restore).
func (k Knob[T]) Restore(s Snapshot) error { return k.root.Restore(s) }

// Codecs. Each parses exactly what the kernel prints and refuses, before writing, what it would refuse.

func uintCodec(max uint64) codec[uint64] {
	return codec[uint64]{
		parse: func(s string) (uint64, error) { return parseUint(s) },
		format: func(v uint64) (string, error) {
			if v > max {
				return "", fmt.Errorf("%d is above the maximum %d", v, max)
			}
			return strconv.FormatUint(v, 10), nil
		},
	}
}

func parseUint(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("unexpected text %q: want an unsigned integer", shorten(s))
	}
	return v, nil
}

var boolCodec = codec[bool]{
	parse: func(s string) (bool, error) {
		switch s {
		case "0":
			return false, nil
		case "1":
			return true, nil
		}
		return false, fmt.Errorf("unexpected text %q: want 0 or 1", shorten(s))
	},
	format: func(v bool) (string, error) {
		if v {
			return "1", nil
		}
		return "0", nil
	},
}

// durationCodec stores a duration as an integer count of unit (time.Nanosecond, time.Microsecond) in
// [0, max units]. With unlimited, -1 in the file reads as Unlimited and Unlimited writes -1.
func durationCodec(unit time.Duration, max int64, unlimited bool) codec[time.Duration] {
	return codec[time.Duration]{
		parse: func(s string) (time.Duration, error) {
			n, err := strconv.ParseInt(s, 10, 64)
			switch {
			case err != nil:
				return 0, fmt.Errorf("unexpected text %q: want an integer count of %v", shorten(s), unit)
			case n == -1 && unlimited:
				return Unlimited, nil
			case n < 0 || n > math.MaxInt64/int64(unit):
				return 0, fmt.Errorf("unexpected value %d", n)
			}
			return time.Duration(n) * unit, nil
		},
		format: func(d time.Duration) (string, error) {
			switch {
			case d == Unlimited && unlimited:
				return "-1", nil
			case d < 0:
				return "", fmt.Errorf("%v is negative", d)
			case d%unit != 0:
				return "", fmt.Errorf("%v is not a whole number of %v", d, unit)
			case int64(d/unit) > max:
				return "", fmt.Errorf("%v is above the maximum %v", d, time.Duration(max)*unit)
			}
			return strconv.FormatInt(int64(d/unit), 10), nil
		},
	}
}

// Unlimited is the value of a duration knob that the kernel spells -1, such as sched_rt_runtime_us with RT
// throttling off.
const Unlimited time.Duration = -1

// cpuCodec reads and writes a CPU set in list format ("0-3,5") or, with mask, hex mask format ("f"). Before
// writing it checks that every CPU exists (is "possible"): the kernel would answer ERANGE or EOVERFLOW.
func cpuCodec(mask bool) codec[CPUSet] {
	c := codec[CPUSet]{parse: ParseCPUList, format: func(s CPUSet) (string, error) { return s.String(), nil }}
	if mask {
		c.parse, c.format = ParseCPUMask, func(s CPUSet) (string, error) { return s.Mask(), nil }
	}
	c.check = func(r *Root, knob string, s CPUSet) error {
		possible, err := r.PossibleCPUs()
		if err != nil {
			return err
		}
		if extra := s.Minus(possible); !extra.IsEmpty() {
			return fmt.Errorf("set %s to %s: %s on this machine (CPUs: %s)",
				knob, s, cpusAre(extra, "does not exist", "do not exist"), possible)
		}
		return nil
	}
	return c
}

// cpusAre says that s is (or are) something, e.g. "CPU 7 is not online", "CPUs 4-5 are not online".
func cpusAre(s CPUSet, one, many string) string {
	if s.Len() == 1 {
		return "CPU " + s.String() + " " + one
	}
	return "CPUs " + s.String() + " " + many
}
