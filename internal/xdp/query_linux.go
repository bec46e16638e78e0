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

// WaitRunning returns once the device with ifindex (in the calling thread's network namespace) can carry
// traffic: up, with carrier (IFF_RUNNING) and with its queueing discipline attached, or when ctx ends.
// Drivers that rebuild their rings to attach XDP (ixgbe, i40e, mlx5 and others) drop the link for a moment,
// and a freshly created device gets its discipline from the kernel's link watcher only after carrier comes up;
// frames sent meanwhile are lost without an error. The original xsk_rr polled the carrier every 100 ms after
// attaching; WaitRunning listens to rtnetlink link events instead.
func WaitRunning(ctx context.Context, ifindex int) error {
	subject := "ifindex " + strconv.Itoa(ifindex)
	// Subscribe before reading the current state, so a change between the two is not missed: the link watcher
	// announces the link after it attached the discipline.
	events, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: 1 << (unix.RTNLGRP_LINK - 1)})
	if err != nil {
		return kernel.NewOpError("subscribe to link events of", subject, err)
	}
	defer events.Close()
	l, err := getLink(ifindex)
	if err != nil || l.ready() {
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
			l, err := parseLink(m.Data)
			if err != nil || l.Ifindex != ifindex {
				continue
			}
			if m.Header.Type == unix.RTM_DELLINK {
				return fmt.Errorf("xdp: %s disappeared while waiting for it to come up: %w", subject, os.ErrNotExist)
			}
			if l.ready() {
				return nil
			}
		}
	}
}

// getLink asks rtnetlink, in the calling thread's network namespace, for the state of ifindex.
func getLink(ifindex int) (linkState, error) {
	subject := "ifindex " + strconv.Itoa(ifindex)
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return linkState{}, kernel.NewOpError("open rtnetlink to query", subject, err)
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: rtmGetLink, Flags: netlink.Request},
		Data:   getLinkRequest(ifindex),
	})
	if err != nil {
		return linkState{}, kernel.NewOpError("query link", subject, err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.RTM_NEWLINK {
			return parseLink(m.Data)
		}
	}
	return linkState{}, errors.New("xdp: rtnetlink answered without a link message")
}
