package trace

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/sysknob"
)

// ResolveDevice finds device dev in the network namespace at nsPath ("" for napilab's own): its ifindex
// (rtnetlink), its NAPIs and the rx queues they service (netdev napi-get and queue-get), and their IRQs (from
// napi-get where the driver reports them, else by name in /proc/interrupts). NAPI ids are unique machine-wide,
// so a trace filters the napi_poll tracepoint, which fires in every namespace, by them.
func ResolveDevice(nsPath, dev string) (Device, error) {
	d := Device{Name: dev, NetNS: nsPath}
	nsfd, closeNS, err := openNetNS(nsPath)
	if err != nil {
		return d, err
	}
	defer closeNS()
	ifindex, err := ifindexIn(nsfd, dev, netns.Describe(nsPath))
	if err != nil {
		return d, err
	}
	d.Ifindex = ifindex
	nd, err := netdev.Dial(&netdev.Options{NetNS: nsfd})
	if err != nil {
		return d, err
	}
	defer nd.Close()
	napis, err := nd.NAPIs(uint32(ifindex))
	if err != nil {
		return d, err
	}
	if len(napis) == 0 {
		return d, fmt.Errorf("trace: %s has no NAPI instance to trace (a veth has one only while an XDP program "+
			"is attached or GRO is on; a device that is down has none): attach XDP, e.g. run napilab rr server on it, "+
			"or bring it up", dev)
	}
	queues, err := nd.Queues(uint32(ifindex))
	if err != nil {
		return d, err
	}
	view, err := deviceView(nsfd)
	if err != nil {
		return d, err
	}
	defer view.Close()
	for _, n := range napis {
		dn := DeviceNAPI{ID: n.ID}
		if n.HasPID {
			dn.Kthread = int(n.PID)
		}
		for _, q := range queues {
			if q.Type == netdev.QueueRX && q.NAPIID == n.ID {
				dn.RXQueues = append(dn.RXQueues, int(q.ID))
			}
		}
		if dn.IRQs, err = napiIRQs(view, dev, n, dn.RXQueues); err != nil {
			return d, err
		}
		d.IRQs = append(d.IRQs, dn.IRQs...)
		d.NAPIs = append(d.NAPIs, dn)
	}
	slices.Sort(d.IRQs)
	d.IRQs = slices.Compact(d.IRQs)
	return d, nil
}

// napiIRQs returns the IRQs of NAPI n: the one napi-get reports, or those named after its rx queues in
// /proc/interrupts; none for a device without interrupts.
func napiIRQs(view *sysknob.Root, dev string, n netdev.NAPI, rxQueues []int) ([]int, error) {
	if n.HasIRQ {
		return []int{int(n.IRQ)}, nil
	}
	var irqs []int
	for _, q := range rxQueues {
		found, err := view.QueueIRQs(dev, q, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		irqs = append(irqs, found...)
	}
	return irqs, nil
}

func deviceView(nsfd int) (*sysknob.Root, error) {
	if nsfd == 0 {
		return sysknob.Host()
	}
	return sysknob.NetNS(nsfd)
}

func ifindexIn(nsfd int, dev, where string) (int, error) {
	var ifindex int
	look := func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return &kernel.FieldError{Field: "dev", Kind: os.ErrNotExist, Msg: fmt.Sprintf("%q does not exist in "+
				"%s: check the device's name and the network namespace it lives in", dev, where)}
		}
		ifindex = ifc.Index
		return nil
	}
	return ifindex, doIn(nsfd, where, look)
}

// doIn runs fn in the network namespace nsfd (named where, for errors), or where it is when nsfd is 0.
func doIn(nsfd int, where string, fn func() error) error {
	if nsfd == 0 {
		return fn()
	}
	return netns.DoFD(nsfd, where, fn)
}

// openNetNS opens the network namespace at nsPath for the functions taking an nsfd: 0 and a no-op close for
// "", napilab's own.
func openNetNS(nsPath string) (nsfd int, close func(), err error) {
	if nsPath == "" {
		return 0, func() {}, nil
	}
	h, err := netns.Open(nsPath)
	if err != nil {
		return 0, nil, err
	}
	return h, func() { unix.Close(h) }, nil
}
