package lab

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Result is what a lab run produced. ExitCode is the guest's verdict: the first non-zero step exit code, 0 when
// every step passed, 124 when the guest watchdog stopped a step.
type Result struct {
	Kernel        *Kernel
	KernelRelease string // uname -r inside the guest
	ExitCode      int
	Steps         []StepResult
	Console       []byte // the whole serial console
	Results       []byte // what steps wrote to $NAPILAB_LAB_RESULTS
	Attempts      int    // 2 when the first boot hit the early "Oops: int3" and was retried
	Durations     Durations
}

// StepResult is one step's outcome; Output is its slice of the console (kernel messages may be mixed in).
type StepResult struct {
	Name     string
	ExitCode int
	Output   []byte
}

// Durations of a run's phases, measured on the host.
type Durations struct {
	Fetch time.Duration // resolve and (if needed) download the kernel
	Build time.Duration // build the initramfs
	Boot  time.Duration // qemu start to the guest's start marker
	Run   time.Duration // start marker to verdict
	Total time.Duration
}

// Errors a run can end with; GuestError wraps one of them.
var (
	ErrTimeout   = errors.New("the guest did not finish before the timeout")
	ErrNoVerdict = errors.New("the guest ended without reporting an exit status")
	ErrInit      = errors.New("the guest's init could not prepare the guest")
)

// GuestError is a run that produced no trustworthy verdict: a kernel panic, a crash, a hang killed at the host
// timeout, or an init failure. Tail holds the last console lines, which usually show why.
type GuestError struct {
	Err    error  // ErrTimeout, ErrNoVerdict or ErrInit
	Reason string // e.g. "kernel panic"
	Tail   string
}

func (e *GuestError) Error() string {
	msg := "lab: " + e.Err.Error()
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return fmt.Sprintf("%s; console tail:\n%s", msg, e.Tail)
}

func (e *GuestError) Unwrap() error { return e.Err }

// unpackFailure says why a guest whose kernel could not unpack its initramfs found nothing to run, or "": the
// kernel holds the initramfs image and its unpacked files in memory at once, so test binaries that grew past
// what the guest's memory holds end the boot with "Initramfs unpacking failed" and an init without its plan.
func unpackFailure(console []byte, memoryMiB int) string {
	if !bytes.Contains(console, []byte("Initramfs unpacking failed")) {
		return ""
	}
	return fmt.Sprintf("the kernel could not unpack the initramfs into the guest's %d MiB: give the guest more "+
		"memory (--memory) or fewer files", memoryMiB)
}
