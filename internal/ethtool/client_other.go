//go:build !linux

package ethtool

import (
	"fmt"
	"runtime"

	"github.com/mdlayher/genetlink"

	"github.com/napilab/napilab/internal/kernel"
)

var errNotLinux = fmt.Errorf("ethtool netlink: %w on %s", kernel.ErrNotSupported, runtime.GOOS)

type client struct{}

func dial(*Config) (*client, error)                          { return nil, errNotLinux }
func newClient(*genetlink.Conn, DriverFunc) (*client, error) { return nil, errNotLinux }
func (*client) close() error                                 { return errNotLinux }
func (*client) channels(Device) (Channels, error)            { return Channels{}, errNotLinux }
func (*client) rings(Device) (Rings, error)                  { return Rings{}, errNotLinux }
func (*client) coalesce(Device) (Coalesce, error)            { return Coalesce{}, errNotLinux }
func (*client) setChannels(Device, Channels) error           { return errNotLinux }
func (*client) setRings(Device, Rings) error                 { return errNotLinux }
func (*client) setCoalesce(Device, Coalesce) error           { return errNotLinux }
