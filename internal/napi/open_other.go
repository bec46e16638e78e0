//go:build !linux

package napi

import (
	"fmt"
	"runtime"

	"github.com/napilab/napilab/internal/kernel"
)

// Open fails: NAPI polling modes exist only on Linux.
func Open(string) (*System, error) { return OpenNetNS(NetNS{}) }

// OpenNetNS fails: NAPI polling modes exist only on Linux.
func OpenNetNS(NetNS) (*System, error) {
	return nil, fmt.Errorf("NAPI polling modes on %s: %w", runtime.GOOS, kernel.ErrNotSupported)
}
