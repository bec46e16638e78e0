// Package labtest gives tests the qemu lab's hardware. Inside the lab (napilab lab test) the guest has two
// virtio-net NICs on one qemu hub, so a frame sent by one arrives at the other: a wire between two real NIC
// drivers, with IRQs, channels, rings, a NAPI per rx queue and AF_XDP zero copy, none of which a veth pair has.
// The guest's init names them in NAPILAB_LAB_NICS in the order the host created them.
//
// Virtio builds the testbed the privileged suites already run on, over those NICs instead of a veth pair (one
// NIC per namespace), so the same test code exercises virtio_net. Outside the lab such tests skip: the host's
// own NICs carry its traffic and are never adopted.
package labtest

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/lab/guest"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
)

// NIC is one of the lab's virtio NICs as the guest's init found it.
type NIC struct {
	Name string
	MAC  net.HardwareAddr
}

// ParseNICs parses NAPILAB_LAB_NICS: name=MAC pairs separated by spaces.
func ParseNICs(s string) ([]NIC, error) {
	var nics []NIC
	for _, f := range strings.Fields(s) {
		name, mac, ok := strings.Cut(f, "=")
		if !ok || name == "" || len(name) > 15 || strings.ContainsAny(name, "/:") {
			return nil, fmt.Errorf("%s entry %q is not NAME=MAC", guest.EnvNICs, f)
		}
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 {
			return nil, fmt.Errorf("%s entry %q has no Ethernet MAC", guest.EnvNICs, f)
		}
		for _, n := range nics {
			if n.Name == name {
				return nil, fmt.Errorf("%s names %s twice", guest.EnvNICs, name)
			}
		}
		nics = append(nics, NIC{Name: name, MAC: hw})
	}
	return nics, nil
}

// NICs returns the lab's virtio NICs, skipping tb outside the lab and failing it when the lab has fewer than two.
func NICs(tb testing.TB) []NIC {
	tb.Helper()
	if !testenv.InLab() {
		// Not testenv.Skip: on the host this is no missing privilege but a missing machine, so even
		// NAPILAB_REQUIRE_PRIV=1 lets it skip; the lab part of CI runs it.
		tb.Skip("needs the qemu lab's virtio NICs: napilab lab test runs it")
	}
	nics, err := ParseNICs(os.Getenv(guest.EnvNICs))
	if err != nil {
		tb.Fatal(err)
	}
	if len(nics) < 2 {
		tb.Fatalf("the lab has %d virtio NICs (%s=%q); boot it with two (napilab lab test --nics 2)",
			len(nics), guest.EnvNICs, os.Getenv(guest.EnvNICs))
	}
	return nics
}

// Virtio builds topo on the lab's first two virtio NICs, the first in host A and the second in host B, and
// gives them back when tb ends.
func Virtio(tb testing.TB, topo testbed.Topology) *testbed.Testbed {
	tb.Helper()
	nics := NICs(tb)
	topo.Devices = [2]string{nics[0].Name, nics[1].Name}
	return testbedtest.New(tb, topo)
}

// WaitQueueFree returns once no AF_XDP socket holds queue of h's device (queue-get reports no xsk on its rx and
// tx queue). Closing a socket releases the queue from deferred kernel work, so a socket bound right after an
// earlier one closed, in this test or the one before, can find the queue still taken (EBUSY).
func WaitQueueFree(tb testing.TB, h *testbed.Host, queue int) {
	tb.Helper()
	nd, err := netdev.Dial(&netdev.Options{NetNS: h.NetNS()})
	if err != nil {
		tb.Fatal(err)
	}
	defer nd.Close()
	deadline := time.Now().Add(30 * time.Second) // a bound for a broken kernel, not a timing
	for {
		busy := false
		for _, typ := range []netdev.QueueType{netdev.QueueRX, netdev.QueueTX} {
			q, err := nd.Queue(uint32(h.Ifindex), typ, uint32(queue))
			if err != nil {
				tb.Fatal(err)
			}
			busy = busy || q.XSK
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s queue %d still has an AF_XDP socket 30 s after the last one closed", h.Link, queue)
		}
		time.Sleep(10 * time.Millisecond) // polling queue-get: the kernel sends no event for the release
	}
}
