package xdp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

// WaitRunning returns once the device with ifindex (in the calling thread's network namespace) is up and has
// carrier (IFF_UP and IFF_RUNNING), or when ctx ends. Drivers that rebuild their rings to attach XDP (ixgbe, i40e,
// mlx5 and others) drop the link for a moment, and frames sent meanwhile are lost; the original xsk_rr polled
// the carrier every 100 ms after attaching for this reason. WaitRunning listens to rtnetlink link events instead.
func WaitRunning(ctx context.Context, ifindex int) error {
	subject := "ifindex " + strconv.Itoa(ifindex)
	// Subscribe before reading the current state, so a change between the two is not missed.
	events, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: 1 << (unix.RTNLGRP_LINK - 1)})
	if err != nil {
		return kernel.NewOpError("subscribe to link events of", subject, err)
	}
	defer events.Close()
	body, err := getLink(ifindex)
	if err != nil {
		return err
	}
	if _, flags, err := parseLinkHeader(body); err != nil || flags&(iffUp|iffRunning) == iffUp|iffRunning {
		return err
	}
	stop := context.AfterFunc(ctx, func() { events.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		msgs, err := events.Receive()
		if ctx.Err() != nil {
			return fmt.Errorf("xdp: %s did not come up: %w", subject, ctx.Err())
		}
		if err != nil {
			return kernel.NewOpError("receive link events of", subject, err)
		}
		for _, m := range msgs {
			index, flags, err := parseLinkHeader(m.Data)
			if err != nil || index != ifindex {
				continue
			}
			if m.Header.Type == unix.RTM_DELLINK {
				return fmt.Errorf("xdp: %s disappeared while waiting for it to come up: %w", subject, os.ErrNotExist)
			}
			if flags&(iffUp|iffRunning) == iffUp|iffRunning {
				return nil
			}
		}
	}
}

// queryLinkXDP asks rtnetlink, in the calling thread's network namespace, for the IFLA_XDP attribute of ifindex.
func queryLinkXDP(ifindex int) (linkXDP, error) {
	body, err := getLink(ifindex)
	if err != nil {
		return linkXDP{}, err
	}
	return parseLinkXDP(body)
}

// getLink returns the body of the RTM_NEWLINK message rtnetlink answers for ifindex.
func getLink(ifindex int) ([]byte, error) {
	subject := "ifindex " + strconv.Itoa(ifindex)
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, kernel.NewOpError("open rtnetlink to query", subject, err)
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: rtmGetLink, Flags: netlink.Request},
		Data:   getLinkRequest(ifindex),
	})
	if err != nil {
		return nil, kernel.NewOpError("query link", subject, err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.RTM_NEWLINK {
			return m.Data, nil
		}
	}
	return nil, errors.New("xdp: rtnetlink answered without a link message")
}
