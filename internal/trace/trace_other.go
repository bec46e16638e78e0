//go:build !linux

package trace

import (
	"fmt"
	"runtime"

	"github.com/napilab/napilab/internal/kernel"
)

var errOS = fmt.Errorf("eBPF tracing on %s: %w", runtime.GOOS, kernel.ErrNotSupported)

type observerKernel struct{}

func (*observerKernel) load(Options) error      { return errOS }
func (*observerKernel) loaded() bool            { return false }
func (*observerKernel) start(Target) error      { return errOS }
func (*observerKernel) stop(*Observation) error { return errOS }
func (*observerKernel) close() error            { return nil }

type syscallKernel struct{}

func (*syscallKernel) load(int, bool) error     { return errOS }
func (*syscallKernel) loaded() bool             { return false }
func (*syscallKernel) read(*SyscallTrace) error { return errOS }
func (*syscallKernel) close() error             { return nil }

type xskKernel struct{}

func (*xskKernel) load(int, bool) error     { return errOS }
func (*xskKernel) loaded() bool             { return false }
func (*xskKernel) read(*XSKRecvTrace) error { return errOS }
func (*xskKernel) close() error             { return nil }

// ResolveDevice needs Linux.
func ResolveDevice(string, string) (Device, error) { return Device{}, errOS }

type turnaroundKernel struct{ mapID uint32 }

func (*turnaroundKernel) load(TurnaroundTarget, bool) error { return errOS }
func (*turnaroundKernel) loaded() bool                      { return false }
func (*turnaroundKernel) read(*TurnaroundTrace) error       { return errOS }
func (*turnaroundKernel) close() error                      { return nil }
