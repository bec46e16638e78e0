package napi

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/sysknob"
)

// Resolve reads what plan m depends on from the machine, changing nothing: the kernel's napi-set features, the
// device's ifindex, the NAPI and IRQs of each queue, the online CPUs, and the current channels, rings and
// coalescing when the mode sets them. Bad input (an unknown device, a queue without NAPI) fails here with the
// sentence that says how to fix it.
func (s *System) Resolve(m Mode) (Target, error) {
	if err := m.Validate(); err != nil {
		return Target{}, err
	}
	link, err := s.linkByName(m.Device)
	if err != nil {
		return Target{}, err
	}
	f, err := s.Netdev.Features()
	if err != nil {
		return Target{}, err
	}
	t := Target{Kernel: s.Kernel, Features: f, NetNS: s.NetNS, Device: link.Name, Ifindex: link.Ifindex,
		NetSysctls: s.NetSysctls}
	if t.OnlineCPUs, err = s.Knobs.OnlineCPUs(); err != nil {
		return Target{}, err
	}
	if err := s.resolveQueues(m, &t); err != nil {
		return Target{}, err
	}
	dev := ethtool.Device{Index: int(t.Ifindex), Name: t.Device}
	if m.Channels > 0 {
		if t.Channels, err = optional(s.Ethtool.Channels(dev)); err != nil {
			return Target{}, err
		}
	}
	if m.RingRX > 0 {
		if t.Rings, err = optional(s.Ethtool.Rings(dev)); err != nil {
			return Target{}, err
		}
	}
	if m.Coalesce != nil {
		if t.Coalesce, err = optional(s.Ethtool.Coalesce(dev)); err != nil {
			return Target{}, err
		}
	}
	if m.Host.SMTOff {
		smt, err := s.Knobs.Get(Knob{ID: KnobSMT})
		switch {
		case errors.Is(err, os.ErrNotExist):
			t.SMT = sysknob.SMTNotImplemented
		case err != nil:
			return Target{}, err
		default:
			t.SMT = sysknob.SMT(smt)
		}
	}
	if m.Host.WorkqueueCPUs != "" {
		if t.Workqueues, err = s.Knobs.Workqueues(); err != nil {
			return Target{}, err
		}
	}
	return t, nil
}

func (s *System) resolveQueues(m Mode, t *Target) error {
	rxq, err := s.rxNAPIs(t.Ifindex)
	if err != nil {
		return err
	}
	t.DeviceNAPIs = rxq.all
	for _, id := range m.Queues {
		napiID, err := rxq.napiOf(t.Device, id)
		if err != nil {
			return err
		}
		n, err := s.Netdev.NAPI(napiID)
		if err != nil {
			return err
		}
		q := QueueTarget{ID: id, NAPI: n, Unlinked: rxq.linked[id] == 0}
		irq := 0
		if n.HasIRQ {
			irq = int(n.IRQ)
		}
		q.IRQs, err = s.Knobs.QueueIRQs(t.Device, id, irq)
		if err != nil && !errors.Is(err, os.ErrNotExist) { // a device without IRQs of its own has none
			return err
		}
		t.Queues = append(t.Queues, q)
	}
	return nil
}

// rxNAPIs is which NAPI serves each rx queue of a device, as queue-get links them.
type rxNAPIs struct {
	rx     []int          // rx queue ids, ascending
	linked map[int]uint32 // rx queue → NAPI id, 0 when queue-get names none
	all    []uint32       // every NAPI of the device, ascending
}

func (s *System) rxNAPIs(ifindex uint32) (rxNAPIs, error) {
	r := rxNAPIs{linked: map[int]uint32{}}
	queues, err := s.Netdev.Queues(ifindex)
	if err != nil {
		return r, err
	}
	for _, q := range queues {
		if q.Type == netdev.QueueRX {
			r.rx = append(r.rx, int(q.ID))
			r.linked[int(q.ID)] = q.NAPIID
		}
	}
	slices.Sort(r.rx)
	napis, err := s.Netdev.NAPIs(ifindex)
	if err != nil {
		return r, err
	}
	for _, n := range napis {
		r.all = append(r.all, n.ID)
	}
	slices.Sort(r.all)
	return r, nil
}

// napiOf returns the NAPI of rx queue id. veth (6.18) never links its queue to its NAPI in queue-get; with one
// queue and one NAPI there is no doubt which serves which.
func (r rxNAPIs) napiOf(dev string, id int) (uint32, error) {
	napiID, ok := r.linked[id]
	switch {
	case !ok:
		return 0, fmt.Errorf("%s has no rx queue %d (its rx queues: %s): choose one with --queue", dev, id,
			joinInts(r.rx))
	case napiID != 0:
		return napiID, nil
	case len(r.all) == 1 && len(r.rx) == 1:
		return r.all[0], nil
	case len(r.all) > 0:
		return 0, fmt.Errorf("%s has %d NAPIs but does not report which one serves rx queue %d (veth does not): "+
			"give the device a single rx queue", dev, len(r.all), id)
	}
	return 0, &kernel.HintError{Err: kernel.NotFound("%s rx queue %d has no NAPI instance, so there is "+
		"nothing to poll", dev, id), Hint: "a veth gets one only while XDP is attached or GRO is on " +
		"(napilab testbed up --napi, or attach the XDP program first); for a NIC, check that its driver " +
		"reports NAPIs over netlink (Linux 6.8+)"}
}

// optional turns a driver's "not supported" into nil.
func optional[T any](v T, err error) (*T, error) {
	if errors.Is(err, kernel.ErrNotSupported) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}
