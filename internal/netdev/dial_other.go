//go:build !linux

package netdev

import (
	"fmt"
	"runtime"

	"github.com/napilab/napilab/internal/kernel"
)

// Dial fails: the netdev family exists only on Linux.
func Dial(*Options) (*Client, error) {
	return nil, fmt.Errorf("netdev generic netlink on %s: %w", runtime.GOOS, kernel.ErrNotSupported)
}
