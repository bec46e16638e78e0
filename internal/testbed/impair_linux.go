package testbed

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

// Impair makes the bridge impair every frame toward host h (tb.A or tb.B) as n says, replacing what was
// impaired before; the zero Netem removes the impairment. It works on bridged testbeds only: a netem
// discipline on a host's own veth would not touch AF_XDP frames, because copy-mode AF_XDP transmit hands them
// to the driver directly (__dev_direct_xmit), past the device's queueing discipline; the bridge, in contrast,
// transmits every frame it forwards through its port's discipline.
func (tb *Testbed) Impair(toward *Host, n Netem) error {
	if err := n.Validate(); err != nil {
		return err
	}
	if tb.M == nil {
		return kernel.WithHint(fmt.Errorf("testbed %s has no bridge to impair frames on", tb.Name),
			"build it with Topology.Bridge: netem on a host's own veth does not touch AF_XDP frames, whose transmit bypasses the device's queueing discipline")
	}
	port, cur := PortA, &tb.toA
	switch toward {
	case tb.A:
	case tb.B:
		port, cur = PortB, &tb.toB
	default:
		return errors.New("impair: name the direction by one of the testbed's hosts, A or B")
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return fmt.Errorf("testbed %s: %w", tb.Name, os.ErrClosed)
	}
	if n == *cur {
		return nil
	}
	nl, err := handleAt(tb.M)
	if err != nil {
		return err
	}
	defer nl.Close()
	link, err := nl.LinkByName(port)
	if err != nil {
		return kernel.NewOpError("find", tb.M.Namespace+"/"+port, err)
	}
	qd := netem(link.Attrs().Index, n)
	subject := tb.M.Namespace + "/" + port
	if n.IsZero() {
		err = kernel.NewOpError("remove the netem discipline of", subject, nl.QdiscDel(qd))
	} else if err = kernel.NewOpError("set the netem discipline of", subject, nl.QdiscReplace(qd)); errors.Is(err, unix.ENOENT) {
		// The kernel names no qdisc kind it does not know: "Specified qdisc kind is unknown".
		err = kernel.WithHint(&kernel.UnsupportedError{Feature: "the netem queueing discipline (CONFIG_NET_SCH_NETEM)", Err: err},
			"load the sch_netem module, or run in the qemu lab: napilab lab test --module sch_netem --module bridge")
	}
	if err != nil {
		return err
	}
	*cur = n
	return nil
}

// netem is n as the root discipline of the device ifindex.
func netem(ifindex int, n Netem) *netlink.Netem {
	us := func(d time.Duration) uint32 { return uint32(d / time.Microsecond) }
	attrs := netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}
	return netlink.NewNetem(attrs, netlink.NetemQdiscAttrs{Latency: us(n.Delay), Jitter: us(n.Jitter),
		Loss: float32(n.Loss), ReorderProb: float32(n.Reorder), Duplicate: float32(n.Duplicate), Limit: n.Limit})
}
