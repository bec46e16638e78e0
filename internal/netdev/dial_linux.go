package netdev

import (
	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"

	"github.com/napilab/napilab/internal/kernel"
)

// Dial opens a generic netlink socket, in opts.NetNS when set, and resolves the netdev family. The socket asks
// for extended ACKs, so the kernel's reason for refusing a request reaches the error text.
func Dial(opts *Options) (*Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout == 0 {
		o.Timeout = defaultTimeout
	}
	conn, err := genetlink.Dial(&netlink.Config{NetNS: o.NetNS, Strict: true})
	if err != nil {
		return nil, kernel.NewOpError("open generic netlink socket", "", err)
	}
	c, err := newClient(conn, o.Timeout)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}
