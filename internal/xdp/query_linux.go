package xdp

import (
	"strconv"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

// queryLinkXDP asks rtnetlink, in the calling thread's network namespace, for the IFLA_XDP attribute of ifindex.
func queryLinkXDP(ifindex int) (linkXDP, error) {
	subject := "ifindex " + strconv.Itoa(ifindex)
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return linkXDP{}, kernel.NewOpError("open rtnetlink to query XDP of", subject, err)
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: rtmGetLink, Flags: netlink.Request},
		Data:   getLinkRequest(ifindex),
	})
	if err != nil {
		return linkXDP{}, kernel.NewOpError("query XDP program of", subject, err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.RTM_NEWLINK {
			return parseLinkXDP(m.Data)
		}
	}
	return linkXDP{}, errNoLinkMessage
}
