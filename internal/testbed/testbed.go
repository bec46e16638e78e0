package testbed

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
)

// Testbed is a built Topology. Its methods are safe for concurrent use.
type Testbed struct {
	Name     string
	Topology Topology // resolved: every default filled in
	A, B     *Host

	mu     sync.Mutex
	closed bool
	record *Record // state file contents; nil for Ephemeral testbeds
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
	fmt.Fprintf(&b, "testbed %s (%s): %s per end, MTU %d, %s\n\n", tb.Name, t.Lifetime, queues, t.MTU, napi)

	box := func(h *Host) (title string, lines []string) {
		title = "netns " + h.Namespace
		mac := h.MAC.String()
		if mac == "" {
			mac = "-"
		}
		lines = []string{
			fmt.Sprintf("%s  ifindex %d", h.Link, h.Ifindex),
			mac,
			h.IPv4.String(),
			h.IPv6.String(),
		}
		return title, lines
	}
	ta, la := box(tb.A)
	tbb, lb := box(tb.B)
	width := max(len(ta), len(tbb)) + 3
	for i := range la {
		width = max(width, len(la[i]), len(lb[i]))
	}
	const wire = "------ veth ------"
	gap := strings.Repeat(" ", len(wire))
	top := func(title string) string { return "+- " + title + " " + strings.Repeat("-", width-len(title)-1) + "+" }
	row := func(s string) string { return "| " + s + strings.Repeat(" ", width-len(s)) + " |" }
	bottom := "+" + strings.Repeat("-", width+2) + "+"

	fmt.Fprintf(&b, "%s%s%s\n", top(ta), gap, top(tbb))
	for i := range la {
		mid := gap
		if i == 0 {
			mid = wire
		}
		fmt.Fprintf(&b, "%s%s%s\n", row(la[i]), mid, row(lb[i]))
	}
	fmt.Fprintf(&b, "%s%s%s\n", bottom, gap, bottom)
	return b.String()
}
