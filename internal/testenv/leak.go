package testenv

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// LeakWait bounds how long a leak check waits for goroutines and descriptors that are still on their way out
// (a server goroutine returning after its context was cancelled, a close running on another goroutine). The
// check polls and returns as soon as everything is gone; only a real leak waits this long, so it can be generous
// enough for the qemu lab under TCG on a busy host.
const LeakWait = 20 * time.Second

var leakWait = LeakWait // shortened by the tests of the check itself

// CheckLeaks records the process's goroutines and file descriptors now and, when tb ends, fails tb if a goroutine
// or descriptor that was not there now is still there after up to LeakWait. Call it first in a test: cleanups run
// last-in first-out, so the check then runs after every cleanup the test registers later (a testbed's Down, a
// socket's Close). It must not be used in tests that run in parallel with others (t.Parallel): their goroutines
// and descriptors would count as this test's.
//
// Goroutines are compared by identity with goleak, which also ignores the testing package's and the runtime's
// own; descriptors are compared by number and by what they refer to (see FDs).
func CheckLeaks(tb testing.TB) {
	tb.Helper()
	c := leakCheck{goroutines: goleak.IgnoreCurrent(), fds: OpenFDs(tb), wait: leakWait}
	tb.Cleanup(func() { c.run(tb) })
}

// FDs is a snapshot of the process's open file descriptors: number → what the descriptor refers to, as
// /proc/self/fd shows it ("socket:[4711]", "anon_inode:bpf-map", "/dev/null"). A descriptor counts as new when
// its number or its target differs, so a number closed and reused for something else is new too.
type FDs map[int]string

// OpenFDs returns the process's open file descriptors. It is empty where /proc/self/fd does not exist.
func OpenFDs(tb testing.TB) FDs {
	tb.Helper()
	fds, err := openFDs()
	if err != nil {
		tb.Fatalf("list open file descriptors: %v", err)
	}
	return fds
}

// CheckClosed fails tb unless every descriptor opened since before is closed again within LeakWait. what names
// the operation whose descriptors must be gone, for the failure message.
func (before FDs) CheckClosed(tb testing.TB, what string) {
	tb.Helper()
	leakCheck{fds: before, wait: leakWait}.run(tb, what)
}

// opened returns, described, the descriptors open now that were not in s.
func (s FDs) opened() ([]string, error) {
	now, err := openFDs()
	if err != nil {
		return nil, err
	}
	var leaked []string
	for _, fd := range slices.Sorted(maps.Keys(now)) {
		if target, ok := s[fd]; !ok || target != now[fd] {
			leaked = append(leaked, fmt.Sprintf("fd %d → %s", fd, describeFD(fd, now[fd])))
		}
	}
	return leaked, nil
}

// leakCheck compares the process with a snapshot, polling until nothing new is left or wait has passed.
type leakCheck struct {
	goroutines goleak.Option // nil: descriptors only
	fds        FDs
	wait       time.Duration
	onPoll     func() // test hook: called before every look but the first
}

func (c leakCheck) run(tb testing.TB, what ...string) {
	tb.Helper()
	deadline := time.Now().Add(c.wait)
	backoff := time.Millisecond
	for first := true; ; first = false {
		if !first && c.onPoll != nil {
			c.onPoll()
		}
		fds, err := c.fds.opened()
		if err != nil {
			tb.Errorf("leak check: list open file descriptors: %v", err)
			return
		}
		var gerr error
		if c.goroutines != nil {
			gerr = goleak.Find(c.goroutines) // itself retries for a moment before it reports
		}
		if len(fds) == 0 && gerr == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("%s", leakReport(strings.Join(what, " "), c.wait, fds, gerr))
			return
		}
		time.Sleep(backoff) // polling for goroutines and descriptors to go, not waiting for a fixed time
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

func leakReport(what string, wait time.Duration, fds []string, goroutines error) string {
	var b strings.Builder
	if what == "" {
		what = "the test"
	}
	fmt.Fprintf(&b, "leak check: left behind by %s, still there after waiting %v:", what, wait)
	if len(fds) > 0 {
		fmt.Fprintf(&b, "\n%d file descriptor(s):\n\t%s", len(fds), strings.Join(fds, "\n\t"))
	}
	if goroutines != nil {
		fmt.Fprintf(&b, "\n%v", goroutines)
	}
	return b.String()
}
