package labsuite

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/lab/labtest"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/xsk"
)

// rxNAPI dials the netdev family in h's namespace and returns the client and the NAPI of the device's rx queue 0
// (virtio_net reports it in queue-get).
func rxNAPI(t *testing.T, h *testbed.Host) (*netdev.Client, netdev.NAPI) {
	t.Helper()
	nd, err := netdev.Dial(&netdev.Options{NetNS: h.NetNS()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Close() })
	q, err := nd.Queue(uint32(h.Ifindex), netdev.QueueRX, 0)
	if err != nil {
		t.Fatal(err)
	}
	if q.NAPIID == 0 {
		t.Fatalf("%s rx queue 0 reports no NAPI id; virtio_net links its queues to their NAPIs", h.Link)
	}
	n, err := nd.NAPI(q.NAPIID)
	if err != nil {
		t.Fatal(err)
	}
	return nd, n
}

// sendUDP sends count datagrams of size bytes from host a to port on host b.
func sendUDP(t *testing.T, a, b *testbed.Host, port uint16, count, size int) {
	t.Helper()
	c := testbedtest.ListenUDP(t, a, netip.AddrPortFrom(a.IPv4.Addr(), 0))
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(b.IPv4.Addr(), port))
	buf := make([]byte, size)
	for i := range count {
		buf[0] = byte(i)
		if _, err := c.WriteToUDP(buf, to); err != nil {
			t.Fatalf("send datagram %d to %v: %v", i, to, err)
		}
	}
}

// waitFor polls cond until it holds, failing t after limit. The limit only keeps a broken kernel from hanging the
// test; nothing is timed by it.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %v", what, limit)
		}
		<-tick.C
	}
}

// openXSK opens an AF_XDP socket on queue 0 of h's device, once an earlier socket has let go of the queue.
func openXSK(t *testing.T, h *testbed.Host, cfg xsk.Config) (*xsk.Socket, error) {
	t.Helper()
	labtest.WaitQueueFree(t, h, 0)
	var s *xsk.Socket
	err := h.Do(func() (err error) { s, err = xsk.Open(h.Ifindex, 0, cfg); return err })
	return s, err
}
