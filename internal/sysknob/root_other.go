//go:build !linux

package sysknob

import (
	"fmt"
	"runtime"

	"github.com/napilab/napilab/internal/kernel"
)

var errNotLinux = fmt.Errorf("sysfs and procfs knobs: %w on %s", kernel.ErrNotSupported, runtime.GOOS)

// Host returns kernel.ErrNotSupported: the knobs are Linux's.
func Host() (*Root, error) { return nil, errNotLinux }

// NetNS returns kernel.ErrNotSupported: network namespaces are Linux's.
func NetNS(int) (*Root, error) { return nil, errNotLinux }
