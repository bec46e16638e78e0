package xsk_test

import (
	"testing"

	"github.com/napilab/napilab/internal/lab/labtest"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testenv"
	"github.com/napilab/napilab/internal/xsk"
	"github.com/napilab/napilab/internal/xsk/xsktest"
)

// TestLabVirtioZeroCopyEcho is TestPrivEcho on the qemu lab's virtio NICs: auto mode binds zero copy there (the
// device offers VIRTIO_F_ACCESS_PLATFORM), the socket reports the queue's NAPI id (virtio_net links its queues to
// their NAPIs, veth does not), and 10 000 frames go through XDP → XSK → echo → XSK intact, with nothing lost.
// It skips outside the lab.
func TestLabVirtioZeroCopyEcho(t *testing.T) {
	for _, ipv6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4", true: "ipv6"}[ipv6], func(t *testing.T) {
			testenv.CheckLeaks(t)
			bed := labtest.Virtio(t, testbed.Topology{Neighbours: true})
			testenv.Exclusive(t)
			labtest.WaitQueueFree(t, bed.A, 0) // the previous subtest's sockets are released from deferred work
			labtest.WaitQueueFree(t, bed.B, 0)
			cfg := xsk.DefaultConfig()
			client, server := steered(t, bed.A, cfg), steered(t, bed.B, cfg)
			for name, s := range map[string]*xsk.Socket{"client": client, "server": server} {
				if !s.ZeroCopy() {
					t.Fatalf("%s: auto mode bound copy mode on virtio_net; want zero copy", name)
				}
				if id, err := s.NAPIID(); err != nil || id == 0 {
					t.Fatalf("%s: NAPI id %d, %v; virtio_net links its rx queues to a NAPI", name, id, err)
				}
			}
			w := wire{a: bed.A, b: bed.B, ipv6: ipv6}
			stop := xsktest.StartEcho(server, w.reply)
			res, err := xsktest.Exchange{Frames: 10000, Window: 64, Build: w.build, Check: w.check}.Run(client)
			echoed, echoErr := stop()
			if err != nil {
				t.Fatalf("client: %v (%d sent, %d received)", err, res.Sent, res.Received)
			}
			if echoErr != nil || echoed != 10000 {
				t.Fatalf("server echoed %d of 10000 frames: %v", echoed, echoErr)
			}
			for name, s := range map[string]*xsk.Socket{"client": client, "server": server} {
				st, err := s.Stats()
				if err != nil || st.RxDropped != 0 || st.RxInvalidDescs != 0 || st.TxInvalidDescs != 0 {
					t.Errorf("%s: XDP_STATISTICS %+v (%v) count losses", name, st, err)
				}
			}
			t.Logf("%d round trips in %v over zero-copy virtio_net", res.Received, res.Elapsed)
		})
	}
}
