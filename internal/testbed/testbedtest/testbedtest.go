// Package testbedtest gives tests a throwaway testbed: an Ephemeral veth pair between two namespaces that is
// removed when the test ends, whether it passes, fails or panics, and that the kernel removes anyway if the test
// binary is killed.
package testbedtest

import (
	"net"
	"net/netip"
	"testing"

	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testenv"
)

// Prefix starts the names of testbeds made by tests, so leftovers are recognisable.
const Prefix = "napilabtest"

// New builds topo (Ephemeral unless topo says otherwise) after testenv.RequirePriv and removes it with
// t.Cleanup, failing the test if removal fails.
func New(tb testing.TB, topo testbed.Topology) *testbed.Testbed {
	tb.Helper()
	testenv.RequirePriv(tb)
	if topo.Prefix == "" {
		topo.Prefix = Prefix
	}
	bed, err := testbed.Up(tb.Context(), topo)
	if err != nil {
		tb.Fatalf("testbed up: %v", err)
	}
	tb.Cleanup(func() {
		if err := bed.Down(); err != nil {
			tb.Errorf("testbed %s down: %v", bed.Name, err)
		}
	})
	return bed
}

// ListenUDP opens a UDP socket bound to addr inside host h and closes it with t.Cleanup.
func ListenUDP(tb testing.TB, h *testbed.Host, addr netip.AddrPort) *net.UDPConn {
	tb.Helper()
	var c *net.UDPConn
	err := h.Do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		tb.Fatalf("listen udp %s in %s: %v", addr, h.Namespace, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
