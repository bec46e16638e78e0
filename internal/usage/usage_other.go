//go:build !linux

package usage

import (
	"fmt"
	"runtime"

	"github.com/napilab/napilab/internal/kernel"
)

// Take is only implemented on Linux.
func Take(Spec) (Snapshot, error) {
	return Snapshot{}, fmt.Errorf("CPU accounting on %s: %w", runtime.GOOS, kernel.ErrNotSupported)
}

// GCCycles is only implemented on Linux.
func GCCycles() uint64 { return 0 }

// CPUModel is only implemented on Linux.
func CPUModel() string { return "" }
