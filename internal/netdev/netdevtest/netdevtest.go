// Package netdevtest is a fake of the kernel's netdev generic netlink family for unprivileged tests of code that
// uses package netdev. It holds devices, queues, NAPI instances and queue statistics in memory and answers the
// way a given kernel generation does where callers can tell the difference:
//
//   - requests are validated against the generation's attribute policy, with the kernel's errnos and
//     extended-ACK messages and offsets ("Unsupported attribute" for a dump filter on the wrong attribute,
//     ERANGE "integer out of range" for threaded=busy-poll before 6.19);
//   - unknown objects give ENODEV (ifindex) or ENOENT (NAPI id); napi-set needs NLM_F_ACK, or the fake reports
//     that the caller would block forever, as it would on a real kernel;
//   - napi-set changes the stored NAPI: threaded enabled or busy-poll starts a "kthread" (a pid), disabled
//     stops it;
//   - CTRL_CMD_GETPOLICY returns the generation's policy, so feature probes see what they would see there.
//
// Every request except the family lookup is recorded, so tests compare the exact bytes a client sent.
package netdevtest

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mdlayher/netlink"

	"github.com/napilab/napilab/internal/netdev"
)

// FamilyID is the generic netlink family id the fake assigns to netdev (what 6.18 happened to assign here).
const FamilyID = 20

// Kernel is a kernel generation: which parts of the netdev family it has.
type Kernel struct {
	Release          string // for messages only, e.g. "6.18"
	Family           bool   // the netdev family and dev-get (6.3)
	QueueNAPI        bool   // queue-get and napi-get (6.8)
	QStats           bool   // qstats-get (6.9)
	NAPISet          bool   // napi-set with defer-hard-irqs, gro-flush-timeout and irq-suspend-timeout (6.13)
	PerNAPIThreaded  bool   // napi-set/napi-get threaded (6.17)
	ThreadedBusyPoll bool   // threaded = busy-poll (6.19)
}

// Kernel generations that differ in what napilab uses.
var (
	Linux6_2  = Kernel{Release: "6.2"}
	Linux6_12 = Kernel{Release: "6.12", Family: true, QueueNAPI: true, QStats: true}
	Linux6_13 = Kernel{Release: "6.13", Family: true, QueueNAPI: true, QStats: true, NAPISet: true}
	Linux6_18 = Kernel{Release: "6.18", Family: true, QueueNAPI: true, QStats: true, NAPISet: true,
		PerNAPIThreaded: true}
	Linux6_19 = Kernel{Release: "6.19", Family: true, QueueNAPI: true, QStats: true, NAPISet: true,
		PerNAPIThreaded: true, ThreadedBusyPoll: true}
)

// Request is one request the fake received.
type Request struct {
	Family  uint16 // FamilyID, or 0x10 for the generic netlink controller
	Command uint8
	Flags   netlink.HeaderFlags
	Attrs   []byte // the attribute payload after the generic netlink header
}

// String renders the request for test failure messages, e.g. "napi-set ack 2=257 8=2": the command, "dump"
// and "ack" when those flags are set, and each top-level attribute as type=value (4- and 8-byte values as
// numbers, others as hex).
func (r Request) String() string {
	var b strings.Builder
	name, ok := commandNames[r.Command]
	switch {
	case r.Family == ctrlFamily && r.Command == ctrlGetPolicy:
		name = "ctrl getpolicy"
	case r.Family == ctrlFamily || !ok:
		name = fmt.Sprintf("family %d command %d", r.Family, r.Command)
	}
	b.WriteString(name)
	if r.Flags&netlink.Dump == netlink.Dump {
		b.WriteString(" dump")
	}
	if r.Flags&netlink.Acknowledge != 0 {
		b.WriteString(" ack")
	}
	for data := r.Attrs; len(data) >= 4; {
		n := int(binary.NativeEndian.Uint16(data))
		if n < 4 || n > len(data) {
			fmt.Fprintf(&b, " malformed:%x", data)
			break
		}
		typ, v := binary.NativeEndian.Uint16(data[2:])&^(netlink.Nested|netlink.NetByteOrder), data[4:n]
		switch len(v) {
		case 4:
			fmt.Fprintf(&b, " %d=%d", typ, binary.NativeEndian.Uint32(v))
		case 8:
			fmt.Fprintf(&b, " %d=%d", typ, binary.NativeEndian.Uint64(v))
		default:
			fmt.Fprintf(&b, " %d=%x", typ, v)
		}
		data = data[min((n+3)&^3, len(data)):]
	}
	return b.String()
}

const (
	ctrlFamily    = 0x10
	ctrlGetPolicy = 10
)

var commandNames = map[uint8]string{1: "dev-get", 10: "queue-get", 11: "napi-get", 12: "qstats-get", 14: "napi-set"}

// Family is the fake. Its methods are safe for concurrent use.
type Family struct {
	tb     testing.TB
	kernel Kernel

	mu       sync.Mutex
	devices  map[uint32]netdev.Device
	queues   []netdev.Queue
	napis    []netdev.NAPI
	qstats   []netdev.QStats
	requests []Request
	denyAdmn bool
	nextPID  uint32
}

// New returns an empty fake of kernel generation k.
func New(tb testing.TB, k Kernel) *Family {
	return &Family{tb: tb, kernel: k, devices: map[uint32]netdev.Device{}, nextPID: 4000}
}

// AddDevice adds a network device.
func (f *Family) AddDevice(d netdev.Device) *Family {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d.Ifindex == 0 {
		f.tb.Fatalf("netdevtest: a device needs an ifindex")
	}
	f.devices[d.Ifindex] = d
	return f
}

// AddQueue adds a queue of a device added before.
func (f *Family) AddQueue(q netdev.Queue) *Family {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mustHaveDevice(q.Ifindex)
	f.queues = append(f.queues, q)
	return f
}

// AddNAPI adds a NAPI instance of a device added before. A NAPI that is not ThreadedDisabled gets a kthread pid
// unless it has one.
func (f *Family) AddNAPI(n netdev.NAPI) *Family {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mustHaveDevice(n.Ifindex)
	if n.ID == 0 {
		f.tb.Fatalf("netdevtest: a NAPI needs an id")
	}
	f.setThreaded(&n, n.Threaded)
	f.napis = append(f.napis, n)
	return f
}

// AddQStats adds a qstats record (device or queue scope) of a device added before.
func (f *Family) AddQStats(q netdev.QStats) *Family {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mustHaveDevice(q.Ifindex)
	f.qstats = append(f.qstats, q)
	return f
}

// DenyAdmin makes napi-set fail with EPERM, as for a caller without CAP_NET_ADMIN.
func (f *Family) DenyAdmin() *Family {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denyAdmn = true
	return f
}

// NAPI returns the current state of a NAPI instance, as napi-set left it.
func (f *Family) NAPI(id uint32) (netdev.NAPI, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.napi(id); n != nil {
		return *n, true
	}
	return netdev.NAPI{}, false
}

// Requests returns the requests received so far, oldest first, without the family lookups.
func (f *Family) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// ResetRequests forgets the requests received so far.
func (f *Family) ResetRequests() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = nil
}

// Client returns a netdev.Client connected to the fake, closed when the test ends.
func (f *Family) Client() *netdev.Client {
	f.tb.Helper()
	c, err := netdev.NewClient(f.Dial())
	if err != nil {
		f.tb.Fatalf("netdevtest: connect to the fake: %v", err)
	}
	f.tb.Cleanup(func() { c.Close() })
	return c
}

func (f *Family) mustHaveDevice(ifindex uint32) {
	if _, ok := f.devices[ifindex]; !ok {
		f.tb.Fatalf("netdevtest: no device with ifindex %d: add it first", ifindex)
	}
}

func (f *Family) napi(id uint32) *netdev.NAPI {
	for i := range f.napis {
		if f.napis[i].ID == id {
			return &f.napis[i]
		}
	}
	return nil
}

// setThreaded mimics napi_set_threaded: a kthread exists exactly while the NAPI is threaded.
func (f *Family) setThreaded(n *netdev.NAPI, t netdev.Threaded) {
	n.Threaded = t
	switch {
	case t == netdev.ThreadedDisabled:
		n.PID, n.HasPID = 0, false
	case !n.HasPID:
		f.nextPID++
		n.PID, n.HasPID = f.nextPID, true
	}
}

func (f *Family) sortedDevices() []netdev.Device {
	devs := make([]netdev.Device, 0, len(f.devices))
	for _, d := range f.devices {
		devs = append(devs, d)
	}
	slices.SortFunc(devs, func(a, b netdev.Device) int { return cmp.Compare(a.Ifindex, b.Ifindex) })
	return devs
}
