//go:build !linux

package testbed

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"

	"github.com/napilab/napilab/internal/kernel"
)

var errOS = fmt.Errorf("network namespace testbeds on %s: %w", runtime.GOOS, kernel.ErrNotSupported)

// Up needs Linux network namespaces.
func Up(context.Context, Topology) (*Testbed, error) { return nil, errOS }

// Down needs Linux.
func (tb *Testbed) Down() error { return errOS }

// Close needs Linux.
func (tb *Testbed) Close() error { return errOS }

// Do needs Linux.
func (h *Host) Do(func() error) error { return errOS }

// Start needs Linux.
func (h *Host) Start(*exec.Cmd) error { return errOS }

// Exec needs Linux.
func (h *Host) Exec(string, []string, []string) error { return errOS }

// Open needs Linux.
func (s Store) Open(string) (*Testbed, error) { return nil, errOS }

// Down needs Linux.
func (s Store) Down(string) error { return errOS }

// Reap needs Linux.
func (s Store) Reap() ([]string, error) { return nil, errOS }

// Alive needs Linux's /proc.
func (r Record) Alive() bool { return false }

// Impair needs Linux's netem.
func (tb *Testbed) Impair(*Host, Netem) error { return errOS }
