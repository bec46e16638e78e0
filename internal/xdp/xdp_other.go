//go:build !linux

package xdp

import (
	"context"
	"fmt"
	"runtime"

	"github.com/napilab/napilab/internal/kernel"
)

var errOS = fmt.Errorf("XDP on %s: %w", runtime.GOOS, kernel.ErrNotSupported)

// Program is the loaded steering program; XDP needs Linux.
type Program struct{}

// Load needs Linux.
func Load(Spec) (*Program, error) { return nil, errOS }

// Attach needs Linux.
func (p *Program) Attach(int, Mode) (Mode, error) { return 0, errOS }

// Attached needs Linux.
func (p *Program) Attached() (int, Mode) { return 0, 0 }

// ID needs Linux.
func (p *Program) ID() (uint32, error) { return 0, errOS }

// Register needs Linux.
func (p *Program) Register(int, int) error { return errOS }

// Unregister needs Linux.
func (p *Program) Unregister(int) error { return errOS }

// StampFailures needs Linux.
func (p *Program) StampFailures() (uint64, error) { return 0, errOS }

// Close needs Linux.
func (p *Program) Close() error { return nil }

// AttachedProgram needs Linux.
func AttachedProgram(int) (Attachment, bool, error) { return Attachment{}, false, errOS }

// WaitRunning needs Linux.
func WaitRunning(context.Context, int) error { return errOS }
