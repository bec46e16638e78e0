// Package testenv holds the helpers napilab's tests share: whether privileged tests may run, whether they run
// inside the qemu lab (where a newer kernel must make features work that the host refuses), a machine-wide
// lock that keeps spinning datapath tests from starving each other on a 2-vCPU machine, and leak checks.
//
// CheckLeaks fails a test that leaves goroutines or file descriptors behind. Goroutines are goleak's job (it
// knows which ones the runtime and the testing package own); descriptors are read from /proc/self/fd here, since
// no library compares them by what they refer to and names a socket's family, which is what a failure needs to
// say ("socket:[4711] (AF_XDP, SOCK_RAW)").
//
// Privileged tests call RequirePriv. Without privileges they skip, unless NAPILAB_REQUIRE_PRIV=1 (set by CI),
// in which case a would-be skip is a failure: CI never passes because a privileged test quietly did not run.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

// Environment variables that steer the tests.
const (
	EnvRequirePriv = "NAPILAB_REQUIRE_PRIV" // "1": a privileged test that would skip fails instead
	EnvLab         = "NAPILAB_LAB"          // "1": running inside the qemu lab on a current kernel
)

// RequirePriv skips t unless the process may create network namespaces, attach XDP programs and lock memory.
// It probes by asking for the capabilities rather than by looking at the uid.
func RequirePriv(tb testing.TB) {
	tb.Helper()
	if err := privileged(); err != nil {
		Skip(tb, "needs root: %v", err)
	}
}

// Skip skips tb with a reason, or fails it when NAPILAB_REQUIRE_PRIV=1 demands that nothing skips.
func Skip(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(EnvRequirePriv) == "1" {
		tb.Fatalf("%s (%s=1 forbids skipping)", msg, EnvRequirePriv)
	}
	tb.Skip(msg)
}

// InLab reports whether the tests run inside the qemu lab, where the kernel is current and features the host
// lacks (threaded NAPI busy poll, fentry) are expected to work rather than to fail cleanly.
func InLab() bool { return os.Getenv(EnvLab) == "1" }

// RequireKernel skips (or, in the lab, fails) unless the running kernel is at least major.minor.
func RequireKernel(tb testing.TB, major, minor int, feature string) {
	tb.Helper()
	v, err := kernel.Running()
	if err != nil {
		tb.Fatal(err)
	}
	if v.AtLeast(major, minor) {
		return
	}
	if InLab() {
		tb.Fatalf("%s needs Linux %d.%d but the lab kernel is %s", feature, major, minor, kernel.Release())
	}
	tb.Skipf("%s needs Linux %d.%d; this kernel is %s (the qemu lab runs this test on a current kernel)",
		feature, major, minor, kernel.Release())
}

// ExpectUnsupported is for a test that exercises a feature this kernel may lack: it returns true when err says
// "not supported" and the kernel is older than the feature, so the test can assert the clean failure and stop.
// On a kernel new enough for the feature an unsupported error fails the test.
func ExpectUnsupported(tb testing.TB, err error, major, minor int) bool {
	tb.Helper()
	v, verr := kernel.Running()
	if verr != nil {
		tb.Fatal(verr)
	}
	if !errors.Is(err, kernel.ErrNotSupported) {
		return false
	}
	if v.AtLeast(major, minor) {
		tb.Fatalf("kernel %s should support this (>= %d.%d) but said: %v", kernel.Release(), major, minor, err)
	}
	return true
}

// Exclusive holds a machine-wide lock until tb ends. Tests that spin on a CPU (busy-polling datapaths,
// threaded NAPI busy poll) take it so that `go test ./...`, which runs packages in parallel, never runs two of
// them at once on a 2-vCPU machine. Tests that change machine-wide state (net.core.busy_read,
// kernel.timer_migration) take it too, and so do tests that compare it before and after: otherwise one package's
// apply shows up as another package's unexpected change.
func Exclusive(tb testing.TB) {
	tb.Helper()
	path := filepath.Join(os.TempDir(), "napilab-test.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		tb.Fatalf("open test lock: %v", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		tb.Fatalf("take test lock: %v", err)
	}
	tb.Cleanup(func() { f.Close() }) // closing the file drops the lock
}
