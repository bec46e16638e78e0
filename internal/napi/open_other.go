//go:build !linux

package napi

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/napilab/napilab/internal/kernel"
)

// Open fails: NAPI polling modes exist only on Linux.
func Open(string) (*System, error) { return OpenNetNS(NetNS{}) }

// OpenNetNS fails: NAPI polling modes exist only on Linux.
func OpenNetNS(NetNS) (*System, error) { return nil, errNotLinux }

var errNotLinux = fmt.Errorf("NAPI polling modes on %s: %w", runtime.GOOS, kernel.ErrNotSupported)

func pidfdOpen(int) (int, error)         { return -1, errNotLinux }
func pidfdKill(int) error                { return errNotLinux }
func pidfdWait(int, time.Duration) error { return errNotLinux }
func closeFD(int)                        {}

// TakeLock fails: device locks guard NAPI settings, which exist only on Linux.
func TakeLock(string, Holder) (*Lock, error) { return nil, errNotLinux }

func lockWait(*os.File, time.Duration) error { return errNotLinux }

// SystemdServices has no systemd outside Linux.
type SystemdServices struct{}

// Active is not supported outside Linux.
func (SystemdServices) Active(string) (bool, error) { return false, errNotLinux }

// Stop is not supported outside Linux.
func (SystemdServices) Stop(string) error { return errNotLinux }

// Start is not supported outside Linux.
func (SystemdServices) Start(string) error { return errNotLinux }
