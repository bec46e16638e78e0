package rr

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/usage"
)

// schedReader reads the calling thread's /proc schedstat (time waiting to run, timeslices) right before and right
// after the noise loop, with a raw pread and no call that can yield: the Go runtime preempts a thread that ran
// its loop for more than 10 ms at its next function call, and a reading taken after that hand-off would count the
// hand-off as a preemption by another task. A nil reader reads nothing.
type schedReader struct {
	f               *os.File
	fd              uintptr
	before, after   [96]byte
	nBefore, nAfter uintptr
}

// openSchedReader opens the calling thread's schedstat; call it on the locked thread that spins.
func openSchedReader() (*schedReader, error) {
	f, err := os.Open("/proc/thread-self/schedstat")
	if err != nil {
		return nil, fmt.Errorf("open the thread's scheduler statistics: %w", err)
	}
	return &schedReader{f: f, fd: f.Fd()}, nil
}

//go:nosplit
func (r *schedReader) readBefore() {
	if r != nil {
		r.nBefore = rawPread(r.fd, &r.before)
	}
}

//go:nosplit
func (r *schedReader) readAfter() {
	if r != nil {
		r.nAfter = rawPread(r.fd, &r.after)
	}
}

// delta returns the time the thread waited to run and the timeslices it was given between the two readings:
// within the loop, every timeslice after the first is a preemption.
func (r *schedReader) delta() (time.Duration, uint64, error) {
	_, w0, s0, err0 := usage.ParseSchedstat(r.before[:r.nBefore])
	_, w1, s1, err1 := usage.ParseSchedstat(r.after[:r.nAfter])
	if err0 != nil || err1 != nil || w1 < w0 || s1 < s0 {
		return 0, 0, fmt.Errorf("read the thread's scheduler statistics around the loop: %q, then %q",
			r.before[:r.nBefore], r.after[:r.nAfter])
	}
	return w1 - w0, s1 - s0, nil
}

func (r *schedReader) close() { r.f.Close() }

// stillOn checks that the calling thread is still pinned to cpu alone: taking a CPU offline moves the threads
// pinned to it elsewhere, and what the loop measured is then not that CPU's.
func stillOn(cpu int) error {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return fmt.Errorf("CPU %d: read the thread's affinity after the run: %w", cpu, err)
	}
	if set.Count() != 1 || !set.IsSet(cpu) {
		return fmt.Errorf("CPU %d went offline, or the thread was moved off it, during the measurement: measure "+
			"again with the CPU online", cpu)
	}
	return nil
}
