package ethtool

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/mdlayher/genetlink"

	"github.com/napilab/napilab/internal/kernel"
)

// Device names the network device a request is about: by ifindex, by name, or both (the kernel then checks that
// they agree).
type Device struct {
	Index int
	Name  string
}

func (d Device) String() string {
	if d.Name != "" {
		return d.Name
	}
	return "ifindex " + strconv.Itoa(d.Index)
}

// Channels are a device's queue counts, as `ethtool -l` shows them: dedicated RX, dedicated TX, other (e.g. link
// interrupts) and combined RX/TX channels. A maximum of 0 means the device has no channel of that kind.
type Channels struct {
	RX, TX, Other, Combined             uint32
	RXMax, TXMax, OtherMax, CombinedMax uint32
}

// Rings are a device's descriptor ring sizes, as `ethtool -g` shows them.
type Rings struct {
	RX, RXMini, RXJumbo, TX             uint32
	RXMax, RXMiniMax, RXJumboMax, TXMax uint32
}

// Coalesce is a device's interrupt coalescing, as `ethtool -c` shows it (the parameters NAPI tuning touches).
// The kernel reports a parameter the driver does not support as 0 or false.
type Coalesce struct {
	RXUsecs, RXMaxFrames   uint32 // delay an RX interrupt by up to RXUsecs µs or until RXMaxFrames arrived
	TXUsecs, TXMaxFrames   uint32
	AdaptiveRX, AdaptiveTX bool // let the driver tune the above by load (DIM)
}

// Client speaks the ethtool generic netlink family. It is safe for concurrent use.
type Client struct{ c *client }

// Config configures Dial.
type Config struct {
	// NetNS, when non-zero, is a network namespace file descriptor: the socket is opened inside that namespace,
	// so requests address its devices, without moving any thread afterwards.
	NetNS int
}

// DriverFunc names the driver behind a device. Errors use it to say which driver lacks an operation; Dial
// provides one that asks the kernel (the SIOCETHTOOL driver-info ioctl, which has no netlink equivalent).
type DriverFunc func(Device) (string, error)

// Dial opens a client on a new generic netlink socket, with extended acknowledgements on so that errors carry the
// kernel's own sentence.
func Dial(cfg *Config) (*Client, error) {
	c, err := dial(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{c: c}, nil
}

// NewClient makes a client on an existing connection, such as the fake family of ethtooltest; driver may be nil.
func NewClient(conn *genetlink.Conn, driver DriverFunc) (*Client, error) {
	c, err := newClient(conn, driver)
	if err != nil {
		return nil, err
	}
	return &Client{c: c}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.c.close() }

// Channels reads dev's channel counts (ethtool -l).
func (c *Client) Channels(dev Device) (Channels, error) { return c.c.channels(dev) }

// SetChannels changes dev's channel counts to want's (ethtool -L); maxima in want are ignored. Only the counts
// that differ from the current ones are sent, so the driver is not reconfigured when nothing changes and a
// count the device lacks is never mentioned.
func (c *Client) SetChannels(dev Device, want Channels) error { return c.c.setChannels(dev, want) }

// Rings reads dev's ring sizes (ethtool -g).
func (c *Client) Rings(dev Device) (Rings, error) { return c.c.rings(dev) }

// SetRings changes dev's ring sizes to want's (ethtool -G); like SetChannels it sends only what differs.
func (c *Client) SetRings(dev Device, want Rings) error { return c.c.setRings(dev, want) }

// Coalesce reads dev's interrupt coalescing (ethtool -c).
func (c *Client) Coalesce(dev Device) (Coalesce, error) { return c.c.coalesce(dev) }

// SetCoalesce changes dev's coalescing to want's (ethtool -C). Only parameters that differ from the current ones
// are sent: the kernel refuses any parameter the driver does not support (EINVAL, "cannot modify an unsupported
// parameter"), even to its current value, and leaves every parameter not sent untouched.
func (c *Client) SetCoalesce(dev Device, want Coalesce) error { return c.c.setCoalesce(dev, want) }

// Error is a failed ethtool request. errors.Is maps it like kernel.OpError: EOPNOTSUPP (the driver lacks the
// operation) to kernel.ErrNotSupported, ENODEV to os.ErrNotExist, EPERM to os.ErrPermission.
type Error struct {
	Op      string // the ethtool-netlink message, e.g. "channels-set"
	Device  Device
	Driver  string // the driver, when the operation is not supported
	Message string // the kernel's extended-ack sentence, if it gave one
	Err     error  // the errno
}

func (e *Error) Error() string {
	if errors.Is(e.Err, kernel.ErrNotSupported) && e.Message == "" {
		drv := "by the driver"
		if e.Driver != "" {
			drv = "by driver " + e.Driver
		}
		return fmt.Sprintf("%s is not supported %s on %s", e.Op, drv, e.Device)
	}
	if e.Message != "" {
		return fmt.Sprintf("%s on %s: %s (%v)", e.Op, e.Device, e.Message, e.Err)
	}
	return fmt.Sprintf("%s on %s: %v", e.Op, e.Device, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Is applies kernel.OpError's errno mapping.
func (e *Error) Is(target error) bool {
	return (&kernel.OpError{Err: e.Err}).Is(target)
}
