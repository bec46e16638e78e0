//go:build !linux

package netns

import (
	"fmt"
	"runtime"

	"github.com/napilab/napilab/internal/kernel"
)

var errNotLinux = fmt.Errorf("network namespaces: %w on %s", kernel.ErrNotSupported, runtime.GOOS)

// OnThread runs fn; other systems have no per-thread namespaces.
func OnThread(_ bool, fn func() error) error { return fn() }

// Do runs fn when path is empty; other systems have no network namespaces.
func Do(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	return errNotLinux
}

// DoFD is not supported outside Linux.
func DoFD(int, string, func() error) error { return errNotLinux }

// Enter is not supported outside Linux.
func Enter(int, string) error { return errNotLinux }

// Open is not supported outside Linux.
func Open(string) (int, error) { return -1, errNotLinux }

// Inode is not supported outside Linux.
func Inode(string) (uint64, error) { return 0, errNotLinux }

// InodeFD is not supported outside Linux.
func InodeFD(int) (uint64, error) { return 0, errNotLinux }

// Initial is true outside Linux: there is only one namespace.
func Initial() (bool, error) { return true, nil }

// Holding finds nothing outside Linux.
func Holding(string) ([]string, bool) { return nil, false }

// NameOf is "" outside Linux.
func NameOf() string { return "" }
