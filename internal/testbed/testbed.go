package testbed

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"unicode/utf8"
)

// Testbed is a built Topology. Its methods are safe for concurrent use.
type Testbed struct {
	Name     string
	Topology Topology // resolved: every default filled in
	A, B     *Host
	// M is the namespace of the bridge between A and B (Topology.Bridge); nil when they share one veth pair.
	// Its Link is the bridge; it has no addresses.
	M *Host

	mu      sync.Mutex
	closed  bool
	record  *Record   // state file contents; nil for Ephemeral testbeds
	adopted *adoption // how to give adopted devices (Topology.Devices) back; nil for veth testbeds
	toA     Netem     // impairments in force on the bridge ports (see Impair)
	toB     Netem
}

// Host is one end of the testbed: a network namespace holding one veth end.
type Host struct {
	Side      string           // "a" or "b"
	Namespace string           // namespace name: a file under /run/netns when named, a label when Ephemeral
	Link      string           // veth end in this namespace
	Ifindex   int              // of Link, inside this namespace
	MAC       net.HardwareAddr // of Link
	IPv4      netip.Prefix     // address of Link with the subnet length
	IPv6      netip.Prefix
	RxQueues  int // as the kernel reports them
	TxQueues  int

	nsfd   int    // holds the namespace; -1 once closed
	nsPath string // see NetNSPath
	inode  uint64 // nsfs inode: identifies the namespace even after its name was reused
}

// NetNS returns a file descriptor of the host's network namespace, valid until Down. Pass it to APIs that take
// one (setns(2), mdlayher/netlink Config.NetNS) instead of moving threads around.
func (h *Host) NetNS() int { return h.nsfd }

// NetNSPath is a path to the namespace that other processes can open while the testbed is up: /run/netns/<name>
// for named testbeds, /proc/<pid>/fd/<fd> of this process for Ephemeral ones (e.g. for nsenter --net=PATH).
func (h *Host) NetNSPath() string { return h.nsPath }

// Diagram draws the testbed with its real names, addresses and MACs.
func (tb *Testbed) Diagram() string {
	var b strings.Builder
	t := tb.Topology
	queues := "1 rx and 1 tx queue"
	if t.Queues > 1 {
		queues = fmt.Sprintf("%d rx and %d tx queues", t.Queues, t.Queues)
	}
	napi := "veth NAPI only while XDP is attached"
	if t.NAPI {
		napi = "GRO on, TSO off: socket traffic passes the veth NAPI"
	}
	if t.Adopted() {
		fmt.Fprintf(&b, "testbed %s (%s): adopted devices %s and %s with their own queues and NAPIs, MTU %d\n\n",
			tb.Name, t.Lifetime, t.Devices[0], t.Devices[1], t.MTU)
	} else {
		fmt.Fprintf(&b, "testbed %s (%s): %s per end, MTU %d, %s\n\n", tb.Name, t.Lifetime, queues, t.MTU, napi)
	}

	type box struct {
		title string
		lines []string
		width int // of the widest line, in columns
	}
	host := func(h *Host) box {
		mac := h.MAC.String()
		if mac == "" {
			mac = "-"
		}
		return box{title: "netns " + h.Namespace, lines: []string{fmt.Sprintf("%s  ifindex %d", h.Link, h.Ifindex), mac,
			h.IPv4.String(), h.IPv6.String()}}
	}
	boxes := []box{host(tb.A)}
	if tb.M != nil {
		tb.mu.Lock()
		toA, toB := tb.toA, tb.toB
		tb.mu.Unlock()
		boxes = append(boxes, box{title: "netns " + tb.M.Namespace, lines: []string{PortA + " = " + BridgeName + " = " + PortB,
			fmt.Sprintf("%s  ifindex %d", BridgeName, tb.M.Ifindex), "netem to a: " + toA.String(),
			"netem to b: " + toB.String()}})
	}
	boxes = append(boxes, host(tb.B))

	cols := utf8.RuneCountInString // "µs" is one column but two bytes
	for i := range boxes {
		bx := &boxes[i]
		bx.width = cols(bx.title) + 3
		for _, l := range bx.lines {
			bx.width = max(bx.width, cols(l))
		}
	}
	wire := "------ veth ------"
	if t.Adopted() {
		wire = "------ wire ------"
	}
	gap := strings.Repeat(" ", len(wire))
	join := func(row func(box) string, mid string) {
		for i, bx := range boxes {
			if i > 0 {
				b.WriteString(mid)
			}
			b.WriteString(row(bx))
		}
		b.WriteByte('\n')
	}
	join(func(bx box) string {
		return "+- " + bx.title + " " + strings.Repeat("-", bx.width-cols(bx.title)-1) + "+"
	}, gap)
	for i := range boxes[0].lines {
		mid := gap
		if i == 0 {
			mid = wire
		}
		join(func(bx box) string {
			return "| " + bx.lines[i] + strings.Repeat(" ", bx.width-cols(bx.lines[i])) + " |"
		}, mid)
	}
	join(func(bx box) string { return "+" + strings.Repeat("-", bx.width+2) + "+" }, gap)
	return b.String()
}
