package ethtool

import (
	"errors"
	"fmt"
	"os"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

type client struct {
	conn   *genetlink.Conn
	family uint16
	driver DriverFunc
}

func dial(cfg *Config) (*client, error) {
	var nc netlink.Config
	if cfg != nil {
		nc.NetNS = cfg.NetNS
	}
	conn, err := genetlink.Dial(&nc)
	if err != nil {
		return nil, kernel.NewOpError("open", "generic netlink socket", err)
	}
	if err := conn.SetOption(netlink.ExtendedAcknowledge, true); err != nil {
		conn.Close()
		return nil, kernel.NewOpError("enable", "netlink extended acknowledgements", err)
	}
	c, err := newClient(conn, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.driver = c.ioctlDriver
	return c, nil
}

func newClient(conn *genetlink.Conn, driver DriverFunc) (*client, error) {
	f, err := conn.GetFamily(unix.ETHTOOL_GENL_NAME)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &kernel.UnsupportedError{Feature: "the ethtool netlink family (CONFIG_ETHTOOL_NETLINK)",
			MinKernel: "5.6", Err: err}
	}
	if err != nil {
		return nil, kernel.NewOpError("look up", "generic netlink family ethtool", err)
	}
	return &client{conn: conn, family: f.ID, driver: driver}, nil
}

func (c *client) close() error { return c.conn.Close() }

func (c *client) channels(dev Device) (ch Channels, err error) {
	return ch, c.get(opChannels, "channels-get", dev, &ch)
}

func (c *client) rings(dev Device) (r Rings, err error) {
	return r, c.get(opRings, "rings-get", dev, &r)
}

func (c *client) coalesce(dev Device) (co Coalesce, err error) {
	return co, c.get(opCoalesce, "coalesce-get", dev, &co)
}

func (c *client) setChannels(dev Device, want Channels) error {
	var cur Channels
	return c.set(opChannels, dev, &cur, &want, func() string {
		return fmt.Sprintf("%s allows at most rx %d, tx %d, other %d, combined %d",
			dev, cur.RXMax, cur.TXMax, cur.OtherMax, cur.CombinedMax)
	})
}

func (c *client) setRings(dev Device, want Rings) error {
	var cur Rings
	return c.set(opRings, dev, &cur, &want, func() string {
		return fmt.Sprintf("%s allows at most rx %d, rx-mini %d, rx-jumbo %d, tx %d",
			dev, cur.RXMax, cur.RXMiniMax, cur.RXJumboMax, cur.TXMax)
	})
}

func (c *client) setCoalesce(dev Device, want Coalesce) error {
	var cur Coalesce
	return c.set(opCoalesce, dev, &cur, &want, nil)
}

// get sends a get request and decodes the reply into obj; name is the operation errors report.
func (c *client) get(o op, name string, dev Device, obj object) error {
	req, err := encodeGet(o, dev)
	if err != nil {
		return fmt.Errorf("%s on %s: encode: %w", name, dev, err)
	}
	msgs, err := c.conn.Execute(req, c.family, netlink.Request)
	if err != nil {
		return c.fail(name, dev, err)
	}
	return decodeReply(o, msgs, obj)
}

// set reads the current state into cur, then sends what want changes. A set needs an acknowledgement: without
// NLM_F_ACK the kernel sends nothing back and the read would wait forever. When the kernel refuses the values
// (EINVAL), limits, if given, describes the device's maxima from the state just read.
func (c *client) set(o op, dev Device, cur, want object, limits func() string) error {
	name := o.name + "-set"
	if err := c.get(o, name, dev, cur); err != nil {
		return err
	}
	req, changed, err := encodeSet(o, dev, cur, want)
	if err != nil {
		return fmt.Errorf("%s on %s: encode: %w", name, dev, err)
	}
	if !changed {
		return nil
	}
	if _, err := c.conn.Execute(req, c.family, netlink.Request|netlink.Acknowledge); err != nil {
		err = c.fail(name, dev, err)
		if limits != nil && errors.Is(err, unix.EINVAL) {
			err = kernel.WithHint(err, limits())
		}
		return err
	}
	return nil
}

// fail turns a netlink error into an *Error with the kernel's sentence, naming the driver when the operation is
// missing, and adds the usual fix for missing privileges or a wrong device.
func (c *client) fail(name string, dev Device, err error) error {
	e := &Error{Op: name, Device: dev, Err: err}
	var oe *netlink.OpError
	if errors.As(err, &oe) {
		e.Message = oe.Message
		e.Err = oe.Err
	}
	switch {
	case errors.Is(e, kernel.ErrNotSupported) && c.driver != nil:
		if drv, derr := c.driver(dev); derr == nil {
			e.Driver = drv
		}
	case errors.Is(e, os.ErrPermission):
		return kernel.WithHint(e, "run as root (ethtool set requests need CAP_NET_ADMIN)")
	case errors.Is(e, os.ErrNotExist):
		return kernel.WithHint(e, "check the device name and that the client was opened in the device's network namespace")
	}
	return e
}

// ioctlDriver asks the kernel for the driver name with the SIOCETHTOOL driver-info ioctl. It runs on the netlink
// socket itself: the kernel hands device ioctls it does not know on any socket to the socket's network
// namespace, so the answer comes from the namespace the client was opened in.
func (c *client) ioctlDriver(dev Device) (string, error) {
	rc, err := c.conn.SyscallConn()
	if err != nil {
		return "", err
	}
	var drv string
	var ierr error
	err = rc.Control(func(fd uintptr) {
		name := dev.Name
		if name == "" {
			ifr, err := unix.NewIfreq("")
			if err != nil {
				ierr = err
				return
			}
			ifr.SetUint32(uint32(dev.Index))
			if ierr = unix.IoctlIfreq(int(fd), unix.SIOCGIFNAME, ifr); ierr != nil {
				return
			}
			name = ifr.Name()
		}
		info, err := unix.IoctlGetEthtoolDrvinfo(int(fd), name)
		if err != nil {
			ierr = err
			return
		}
		drv = unix.ByteSliceToString(info.Driver[:])
	})
	if err == nil {
		err = ierr
	}
	return drv, err
}
