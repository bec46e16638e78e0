//go:build !linux

package agent

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/rr"
)

// MachineOptions tune the real machine.
type MachineOptions struct {
	Watchdog func(journal string) (*os.Process, error)
	SHA256   string
}

var errNotLinux = fmt.Errorf("the napilab agent on %s: %w", runtime.GOOS, kernel.ErrNotSupported)

// NewMachine returns nil: the agent acts on Linux only.
func NewMachine(MachineOptions) Machine { return nil }

// Describe is not supported outside Linux.
func Describe(Role, string, string) (EndInfo, error) { return EndInfo{}, errNotLinux }

// OpenClient is not supported outside Linux.
func OpenClient(context.Context, ClientOpenArgs, string) (Client, rr.LinkInfo, error) {
	return nil, rr.LinkInfo{}, errNotLinux
}

// WatchdogArgs are the arguments of the watchdog command.
func WatchdogArgs(journal string) []string {
	return []string{"agent", "--watchdog", journal}
}

// StartWatchdog is not supported outside Linux.
func StartWatchdog(string, string) (*os.Process, error) { return nil, errNotLinux }

// Self is not supported outside Linux.
func Self() (string, string, error) { return "", "", errNotLinux }
