//go:build !linux

package lab

import (
	"context"
	"fmt"
	"io"

	"github.com/napilab/napilab/internal/kernel"
)

// Run needs Linux: qemu's direct kernel boot and the private apt configuration are set up with Linux tools.
func Run(ctx context.Context, spec Spec) (*Result, error) {
	return nil, fmt.Errorf("lab: %w on this OS", kernel.ErrNotSupported)
}

// FetchKernel needs a Debian host with apt.
func FetchKernel(ctx context.Context, ks KernelSpec, cache string, progress io.Writer) (*Kernel, error) {
	return nil, fmt.Errorf("lab: fetching kernels %w on this OS", kernel.ErrNotSupported)
}

// CheckHostTools needs Linux.
func CheckHostTools() error { return fmt.Errorf("lab: %w on this OS", kernel.ErrNotSupported) }

// ResolveKernel needs a Debian host with apt.
func ResolveKernel(ctx context.Context, ks KernelSpec, cache string, progress io.Writer) (string, string, error) {
	return "", "", fmt.Errorf("lab: resolving kernels %w on this OS", kernel.ErrNotSupported)
}
