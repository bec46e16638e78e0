package rr

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
)

// qdiscPackets returns how many packets the root queueing discipline of link in host h has passed.
func qdiscPackets(t *testing.T, h *testbed.Host, link string) uint64 {
	t.Helper()
	return uint64(testbedtest.RootQdisc(t, h, link).Attrs().Statistics.Basic.Packets)
}

// TestPrivSenderQdiscIsBypassed checks the claim the bridged testbed rests on: copy-mode AF_XDP transmit hands
// frames to the driver directly (__dev_direct_xmit), past the sending device's queueing discipline, so netem on
// the client's own veth could never impair napilab's requests. A pfifo on veth-a counts every packet it passes;
// the AF_XDP requests go out and are answered, the counter barely moves (kernel chatter such as IPv6 router
// solicitations may pass it), and one datagram from the kernel's UDP stack does move it.
func TestPrivSenderQdiscIsBypassed(t *testing.T) {
	b := newBedRun(t, false)
	b.client.PeerMAC = b.bed.B.MAC // no ARP through the qdisc
	nl, err := netlink.NewHandleAt(netns.NsHandle(b.bed.A.NetNS()), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	veth, err := nl.LinkByName(testbed.LinkA)
	if err != nil {
		t.Fatal(err)
	}
	fifo := &netlink.GenericQdisc{QdiscType: "pfifo",
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: veth.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}}
	if err := nl.QdiscReplace(fifo); err != nil {
		t.Fatalf("add pfifo to veth-a: %v", err)
	}
	before := qdiscPackets(t, b.bed.A, testbed.LinkA)
	res, _, _ := b.run(t)
	checkClean(t, res, b.client.Count)
	during := qdiscPackets(t, b.bed.A, testbed.LinkA) - before
	if during >= res.Sent/10 {
		t.Fatalf("the qdisc on veth-a passed %d packets while %d AF_XDP requests left through it", during, res.Sent)
	}

	conn := testbedtest.ListenUDP(t, b.bed.A, netip.AddrPortFrom(b.bed.A.IPv4.Addr(), 0))
	if _, err := conn.WriteToUDPAddrPort([]byte("through the qdisc"), netip.AddrPortFrom(b.bed.B.IPv4.Addr(), 9)); err != nil {
		t.Fatal(err)
	}
	if after := qdiscPackets(t, b.bed.A, testbed.LinkA); after <= before+during {
		t.Fatalf("a UDP datagram from the kernel stack did not pass the qdisc on veth-a (%d packets before, %d after)", before+during, after)
	}
	t.Logf("qdisc on veth-a: %d packets during %d AF_XDP requests", during, res.Sent)
}

// impairment is what the netem tests put on requests (A→B): most requests wait longer than the gap between two
// requests, a quarter skip the wait and overtake them, and 5% are dropped. Replies (B→A) are not impaired.
var impairment = testbed.Netem{Delay: 400 * time.Microsecond, Reorder: 25, Loss: 5}

// newImpairedRun builds a bridged testbed with the impairment on requests, or reports false on a kernel without
// netem (where Impair must fail cleanly; the qemu lab's kernel has netem and must run the test).
func newImpairedRun(t *testing.T, count uint64) (bedRun, bool) {
	t.Helper()
	testenv.CheckLeaks(t)
	bed := testbedtest.New(t, testbed.Topology{Bridge: true, Neighbours: true})
	err := bed.Impair(bed.B, impairment)
	if errors.Is(err, kernel.ErrNotSupported) && !testenv.InLab() {
		if !strings.Contains(err.Error(), "sch_netem") {
			t.Fatalf("unsupported netem should name the module to load: %v", err)
		}
		t.Logf("netem is not built into this kernel (%v); the qemu lab runs this test", err)
		return bedRun{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	c := defaultClient()
	c.Dev, c.PeerIP = testbed.LinkA, bed.B.IPv4.Addr()
	// 200 µs between requests: the 400 µs delay holds two back, so a request that skips it overtakes them.
	// Receive rings larger than the request count: nothing but netem can lose a request or a reply.
	c.Period, c.Duration, c.Warmup, c.Count, c.Ring = 200*time.Microsecond, 0, 0, count, 4096
	c.Interval, c.Colocated, c.Poll, c.Timeout = 0, 1, PollNone, replyTimeout
	s := defaultServer()
	s.Dev, s.Ring, s.Poll = testbed.LinkB, 4096, PollNone
	// Every request netem does not drop is answered, and replies are not impaired: the run gets Count minus
	// netem's drops so far, and once that many replies are in, every drop has happened too.
	total := func() (uint64, bool) {
		q, err := testbedtest.LookupRootQdisc(bed.M, testbed.PortB)
		if err != nil {
			return 0, false // the reply timeout ends the run
		}
		return c.Count - uint64(q.Attrs().Statistics.Queue.Drops), true
	}
	return bedRun{bed: bed, client: c, server: s, total: total}, true
}

// TestPrivNetemLossAndReorder: through netem loss and reordering, the napilab format counts as lost exactly the
// requests the server never received (replies are not impaired), flags the reordering, sees no duplicates, and
// pairs every reply with its own request: no clamped or negative latency, and the median request, which netem
// delayed, took at least the delay.
func TestPrivNetemLossAndReorder(t *testing.T) {
	b, ok := newImpairedRun(t, 3000)
	if !ok {
		return
	}
	res, st, _ := b.run(t)
	t.Logf("sent %d answered %d lost %d reordered %d; server received %d; latency p50 %v min %v max %v",
		res.Sent, res.Answered, res.Lost, res.Reordered, st.Received, time.Duration(res.Latency.P50),
		time.Duration(res.Latency.Min), time.Duration(res.Latency.Max))
	if res.Sent != b.client.Count || res.Lost != res.Sent-st.Replied || st.Replied != st.Received || res.Lost == 0 {
		t.Fatalf("sent %d answered %d lost %d; the server received %d and replied %d: want lost = sent - replied > 0",
			res.Sent, res.Answered, res.Lost, st.Received, st.Replied)
	}
	if res.Reordered == 0 || res.Duplicates != 0 || res.Late != 0 || res.Stray != 0 || res.Malformed != 0 {
		t.Fatalf("reordered %d duplicates %d late %d stray %d malformed %d: want reordering flagged and nothing else",
			res.Reordered, res.Duplicates, res.Late, res.Stray, res.Malformed)
	}
	for name, l := range map[string]struct {
		min, p50          int64
		below, above, cnt uint64
	}{
		"from schedule": {res.Latency.Min, res.Latency.P50, res.Latency.ClampedBelow, res.Latency.ClampedAbove, res.Latency.Count},
		"from send":     {res.LatencyFromSend.Min, res.LatencyFromSend.P50, res.LatencyFromSend.ClampedBelow, res.LatencyFromSend.ClampedAbove, res.LatencyFromSend.Count},
	} {
		if l.min <= 0 || l.below != 0 || l.above != 0 || l.cnt != res.Answered || l.p50 < int64(impairment.Delay) {
			t.Fatalf("latency %s: min %d p50 %d clamped %d/%d over %d replies; want positive, unclamped, one per answer, p50 >= %v",
				name, l.min, l.p50, l.below, l.above, l.cnt, impairment.Delay)
		}
	}
	if res.XSK.RxDropped != 0 || st.XSK.RxDropped != 0 {
		t.Fatalf("the kernel dropped frames outside netem: client %+v server %+v", res.XSK, st.XSK)
	}
}

// TestPrivNetemMispairsFIFO is the contrast: the xsk_rr format counts the same loss (its totals are right) but
// cannot see reordering, and pairs replies first-in-first-out, so after each lost request every later reply is
// paired with an earlier request and its "latency" grows by one period. The last replies carry the periods of
// nearly all the losses before them: the largest recorded latency is at least half the losses times the period
// (only losses after the last answered request do not count, and half of ~50 of them all falling there has a
// probability of 0.05^25). 1000 requests: the format's window holds 1024 unanswered ones, so no stall of the
// server can fill it (under TCG one of 200 ms did, with 3000).
func TestPrivNetemMispairsFIFO(t *testing.T) {
	b, ok := newImpairedRun(t, 1000)
	if !ok {
		return
	}
	b.client.Format = FormatXskRR
	res, st, _ := b.run(t)
	t.Logf("sent %d answered %d lost %d; server replied %d; latency from send p50 %v max %v",
		res.Sent, res.Answered, res.Lost, st.Replied, time.Duration(res.LatencyFromSend.P50), time.Duration(res.LatencyFromSend.Max))
	if res.Lost != res.Sent-st.Replied || res.Lost == 0 {
		t.Fatalf("sent %d answered %d lost %d; server replied %d", res.Sent, res.Answered, res.Lost, st.Replied)
	}
	if res.Reordered != 0 {
		t.Fatalf("the xsk_rr format reported %d reorderings: it has nothing to detect them with", res.Reordered)
	}
	if drift := time.Duration(res.Lost/2) * b.client.Period; time.Duration(res.LatencyFromSend.Max) < drift {
		t.Fatalf("largest first-in-first-out latency %v, want at least %v (%d losses × %v / 2): the pairing should drift",
			time.Duration(res.LatencyFromSend.Max), drift, res.Lost, b.client.Period)
	}
}
