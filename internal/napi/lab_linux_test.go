package napi

import (
	"testing"

	"github.com/napilab/napilab/internal/lab/labtest"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testenv"
)

// TestLabVirtioModes is TestPrivModes and TestPrivThreadedBusyPoll on the qemu lab's virtio NIC instead of a veth:
// a driver with IRQs, channels, rings and coalescing, whose rx queue names its NAPI. Every preset, threaded busy
// poll included (the lab's kernel has it), is applied to the server NIC, read back independently and restored,
// after which `show` must read exactly as before. It skips outside the lab.
func TestLabVirtioModes(t *testing.T) {
	for _, preset := range PresetNames() {
		t.Run(preset, func(t *testing.T) {
			bed := labtest.Virtio(t, testbed.Topology{})
			testenv.Exclusive(t) // machine-wide knobs change, and the busy-poll kthread spins a CPU
			hostGuard(t)
			s, err := OpenNetNS(NetNS{Path: bed.B.NetNSPath()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			roundTrip(t, s, preset, bed.B.Link, func(p *Plan) {
				if q := p.Target.Queues[0]; q.Unlinked || q.NAPI.ID == 0 || len(q.IRQs) == 0 {
					t.Fatalf("virtio rx queue 0: %+v; want its own NAPI (queue-get napi-id) and IRQs", q)
				}
			})
		})
	}
}
