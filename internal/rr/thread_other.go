//go:build !linux

package rr

import (
	"fmt"
	"runtime"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/sysknob"
)

func lockThread(_ string, cpu, prio int) (int, error) {
	runtime.LockOSThread()
	if cpu >= 0 || prio > 0 {
		return 0, fmt.Errorf("pinning threads on %s: %w", runtime.GOOS, kernel.ErrNotSupported)
	}
	return 0, nil
}

// UsableCPUs is not supported outside Linux.
func UsableCPUs() (sysknob.CPUSet, error) {
	return sysknob.CPUSet{}, fmt.Errorf("online CPUs on %s: %w", runtime.GOOS, kernel.ErrNotSupported)
}

// procThreads has no threads to move outside Linux.
type procThreads struct{}

func (procThreads) usable() (sysknob.CPUSet, error)       { return UsableCPUs() }
func (procThreads) threads() []int                        { return nil }
func (procThreads) affinity(int) (sysknob.CPUSet, error)  { return sysknob.CPUSet{}, nil }
func (procThreads) setAffinity(int, sysknob.CPUSet) error { return nil }
