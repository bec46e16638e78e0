package rr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
)

// bedRun is one client/server exchange across a testbed: server on side B, client on side A.
type bedRun struct {
	bed    *testbed.Testbed
	client clientSpec
	server serverSpec
	// total, when set, says how many replies the run will get in all, as far as is known at the moment (see
	// settle): a run that loses requests on purpose then ends when its outcome is settled.
	total func() (uint64, bool)
}

// newBedRun is an exchange on a new veth testbed. The test fails if it leaves a goroutine or a descriptor behind.
func newBedRun(t *testing.T, v6 bool) bedRun {
	t.Helper()
	testenv.CheckLeaks(t)
	return newBedRunOn(testbedtest.New(t, testbed.Topology{}), v6)
}

// newBedRunOn is the exchange of newBedRun on an existing testbed (e.g. the lab's virtio NICs).
func newBedRunOn(bed *testbed.Testbed, v6 bool) bedRun {
	peer := bed.B.IPv4.Addr()
	if v6 {
		peer = bed.B.IPv6.Addr()
	}
	c := defaultClient()
	c.Dev, c.PeerIP = bed.A.Link, peer
	// Receive rings larger than the request count, and fewer requests than the xsk_rr format's 1024-request
	// window: no scheduling delay (or slow emulated CPU in the lab) can then make the kernel drop a request or
	// the client mispair one, so "every request answered" cannot depend on timing.
	c.Period, c.Duration, c.Warmup, c.Count, c.Ring = 50*time.Microsecond, 0, 0, 1000, 4096
	c.Interval, c.Timeout = 0, replyTimeout
	c.Colocated = 1 // the server spins on this machine too
	c.NoStamp = true
	s := defaultServer()
	s.Dev, s.Ring = bed.B.Link, 4096
	return bedRun{bed: bed, client: c, server: s}
}

// run opens both links in their namespaces and runs the exchange.
func (b bedRun) run(t *testing.T) (*ClientResult, ServerStats, LinkInfo) {
	t.Helper()
	testenv.Exclusive(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opts := ClientOptions{UsableCPUs: runtime.NumCPU()}
	if b.total != nil {
		b.client.Interval = 10 * time.Millisecond
		opts.OnInterval = settle(cancel, b.total)
	}
	b.server.Format, b.server.Payload = b.client.Format, b.client.Payload
	var sl, cl *Link
	if err := b.bed.B.Do(func() (err error) { sl, err = OpenLink(ctx, b.server.LinkOptions); return }); err != nil {
		t.Fatalf("server link: %v", err)
	}
	defer sl.Close()
	// The server's frames go on its fill ring before the client resolves it: zero copy drops even ARP without.
	srv, err := NewServer(sl.Sock, b.server.Service, b.server.Threads, ServerOptions{Local: sl.Info.Local,
		Peer: sl.Info.Peer, StampFailures: sl.Prog.StampFailures})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.bed.A.Do(func() (err error) { cl, err = OpenLink(ctx, b.client.LinkOptions); return }); err != nil {
		t.Fatalf("client link: %v", err)
	}
	defer cl.Close()
	opts.Local, opts.Peer = cl.Info.Local, cl.Info.Peer
	cli, err := NewClient(cl.Sock, b.client.Workload, b.client.Threads, opts)
	if err != nil {
		t.Fatal(err)
	}
	res, st, err := Exchange(ctx, srv, cli)
	if err != nil {
		t.Fatal(err)
	}
	return res, st, cl.Info
}

// TestPrivEveryDriverAndFormat: on the veth testbed every poll driver, both payload formats and both address
// families answer every request, with ordered percentiles and nothing dropped by the kernel on either side.
func TestPrivEveryDriverAndFormat(t *testing.T) {
	for _, format := range []Format{FormatNapilab, FormatXskRR} {
		for _, poll := range []PollDriver{PollInline, PollNone, PollSeparate} {
			for _, v6 := range []bool{false, true} {
				name := string(format) + "/" + string(poll) + map[bool]string{false: "/ipv4", true: "/ipv6"}[v6]
				t.Run(name, func(t *testing.T) {
					b := newBedRun(t, v6)
					b.client.Format, b.client.Poll, b.server.Poll = format, poll, poll
					res, st, info := b.run(t)
					checkClean(t, res, 1000)
					if st.Replied != 1000 || st.Malformed != 0 {
						t.Fatalf("server %+v", st)
					}
					if res.XSK.RxDropped != 0 || res.XSK.RxRingFull != 0 || st.XSK.RxDropped != 0 {
						t.Fatalf("kernel dropped frames: client %+v server %+v", res.XSK, st.XSK)
					}
					if info.XDPMode != "native" || info.ZeroCopy {
						t.Fatalf("veth link %+v: want native XDP and copy mode", info)
					}
					checkStamped(t, res, st, format)
					t.Logf("p50 %v p99 %v (from send: p50 %v), sender lateness p99 %v, %.0f replies/s", time.Duration(res.Latency.P50), time.Duration(res.Latency.P99), time.Duration(res.LatencyFromSend.P50), time.Duration(res.SenderLateness.P99), res.ReplyRate)
				})
			}
		}
	}
}

// checkStamped: every request reached the server with its arrival stamp (veth and virtio_net give XDP a
// metadata area, and copy mode copies it), and with the napilab payload every measured round trip was split.
func checkStamped(t *testing.T, res *ClientResult, st ServerStats, format Format) {
	t.Helper()
	if st.Stamped != st.Received || st.NoMetadata != 0 || st.Queueing.Count != st.Received {
		t.Fatalf("server: %d of %d requests stamped, %d queueing times, %d refused metadata", st.Stamped,
			st.Received, st.Queueing.Count, st.NoMetadata)
	}
	want := res.Measured
	if format != FormatNapilab {
		want = 0
	}
	if res.ServerQueueing.Count != want || res.RestOfTrip.Count != want || res.Unsplit != 0 {
		t.Fatalf("client: %d round trips split (%d rest), %d unsplit; want %d", res.ServerQueueing.Count,
			res.RestOfTrip.Count, res.Unsplit, want)
	}
	if want > 0 {
		t.Logf("server queueing p50 %v p99 %v, rest p50 %v; server busy per request p50 %v p99 %v",
			time.Duration(res.ServerQueueing.P50), time.Duration(res.ServerQueueing.P99),
			time.Duration(res.RestOfTrip.P50), time.Duration(st.Busy.P50), time.Duration(st.Busy.P99))
	}
}

// TestPrivTemplateServer: the xsk_rr reply style, a server that sends its own pre-built frame to a configured
// peer, answers every request too.
func TestPrivTemplateServer(t *testing.T) {
	b := newBedRun(t, false)
	b.client.Format = FormatXskRR
	b.server.Reply = ReplyTemplate
	b.server.LocalMAC, b.server.PeerMAC = b.bed.B.MAC, b.bed.A.MAC
	b.server.LocalIP, b.server.PeerIP = b.bed.B.IPv4.Addr(), b.bed.A.IPv4.Addr()
	res, st, _ := b.run(t)
	checkClean(t, res, 1000)
	if st.Replied != 1000 {
		t.Fatalf("server %+v", st)
	}
}

// TestPrivRoutedPeer: a peer behind a router is reached through the route to it: the frames carry the
// router's MAC (here host B routes for a prefix it answers), and the link says so. A route that leaves through
// another device is refused, naming it.
func TestPrivRoutedPeer(t *testing.T) {
	testenv.CheckLeaks(t)
	b := newBedRun(t, false)
	routed := netip.MustParsePrefix("10.77.0.0/24")
	err := b.bed.A.Do(func() error {
		l, err := netlink.LinkByName(b.bed.A.Link)
		if err != nil {
			return err
		}
		_, dst, _ := net.ParseCIDR(routed.String())
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst,
			Gw: b.bed.B.IPv4.Addr().AsSlice()})
	})
	if err != nil {
		t.Fatal(err)
	}
	b.client.PeerIP = netip.MustParseAddr("10.77.0.2")
	res, st, info := b.run(t)
	checkClean(t, res, 1000)
	if st.Replied != 1000 || info.PeerMAC != b.bed.B.MAC.String() || !contains(fmt.Sprint(info.Notes), "through the router 198.18.0.2") {
		t.Fatalf("server %+v, peer MAC %s (B is %s), notes %v", st, info.PeerMAC, b.bed.B.MAC, info.Notes)
	}

	// A peer the kernel routes through another device (here the loopback) cannot be reached from this one.
	b.client.PeerIP = netip.MustParseAddr("127.0.0.1")
	err = b.bed.A.Do(func() error {
		l, err := OpenLink(t.Context(), b.client.LinkOptions)
		if err == nil {
			l.Close()
		}
		return err
	})
	var fe *kernel.FieldError
	if !errors.As(err, &fe) || fe.Field != "dev" || !contains(err.Error(), "routes it through lo") {
		t.Fatalf("OpenLink to a peer behind another device: %v", err)
	}
}

// TestPrivUnreachablePeer: a client whose peer does not exist fails with a sentence that names the fix.
func TestPrivUnreachablePeer(t *testing.T) {
	b := newBedRun(t, false)
	b.client.PeerIP = netip.MustParseAddr("198.18.0.77")
	err := b.bed.A.Do(func() error {
		l, err := OpenLink(t.Context(), b.client.LinkOptions)
		if err == nil {
			l.Close()
		}
		return err
	})
	if err == nil || !contains(err.Error(), "does not answer ARP") || !contains(err.Error(), "--peer-mac") {
		t.Fatalf("OpenLink to a missing peer: %v", err)
	}
}

// TestPrivUnknownDevice: a device that does not exist is one clear sentence.
func TestPrivUnknownDevice(t *testing.T) {
	testenv.RequirePriv(t)
	p := defaultServer()
	p.Dev = "napilab-no-such-dev"
	_, err := OpenLink(t.Context(), p.LinkOptions)
	if err == nil || !contains(err.Error(), `dev "napilab-no-such-dev" does not exist in this process's network namespace`) ||
		!errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenLink on a missing device: %v", err)
	}
}

func contains(s, sub string) bool { return len(sub) == 0 || indexOf(s, sub) >= 0 }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
