//go:build !linux

package xsk

import (
	"fmt"
	"runtime"
	"syscall"
	"time"

	"github.com/napilab/napilab/internal/kernel"
)

var errNotLinux = fmt.Errorf("%w: AF_XDP sockets exist only on Linux, not on %s", kernel.ErrNotSupported, runtime.GOOS)

// Open fails everywhere but on Linux; in-memory sockets (NewInMemory) work on every platform.
func Open(ifindex, queue int, cfg Config) (*Socket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open AF_XDP socket: %w", err)
	}
	return nil, errNotLinux
}

func (s *Socket) kickTX() error                      { return errNotLinux }
func (s *Socket) kickRX() error                      { return errNotLinux }
func recvfromKick(int) syscall.Errno                 { return syscall.ENOSYS }
func (s *Socket) waitRX(time.Duration) (bool, error) { return false, errNotLinux }
func (s *Socket) stats() (Statistics, error)         { return Statistics{}, errNotLinux }
func (s *Socket) closeKernel() error                 { return nil }
func setsockoptInt(fd int, o sockopt, v int) error   { return errNotLinux }
func getsockoptInt(fd int, o sockopt) (int, error)   { return 0, errNotLinux }
