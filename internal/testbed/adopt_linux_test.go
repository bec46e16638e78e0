package testbed_test

import (
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testenv"
)

// The adoption tests stand in for the qemu lab's two virtio NICs with a veth pair made in a scratch namespace
// ("home"), so that nothing of the machine's own namespaces is moved: Up runs on a thread inside home and must
// move the pair out of it, and Down must bring both ends back there as they were.

// scratchHome makes a network namespace holding a veth pair home0/home1 with MTU 1400, and returns a
// descriptor of it (closed when the test ends) and an rtnetlink handle inside it.
func scratchHome(t *testing.T) (int, *netlink.Handle) {
	t.Helper()
	testenv.RequirePriv(t)
	type made struct {
		fd  int
		err error
	}
	c := make(chan made, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread leaves with this goroutine, still in home
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			c <- made{-1, err}
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		c <- made{fd, err}
	}()
	m := <-c
	if m.err != nil {
		t.Fatalf("make scratch namespace: %v", m.err)
	}
	t.Cleanup(func() { unix.Close(m.fd) })
	nl, err := netlink.NewHandleAt(netns.NsHandle(m.fd), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nl.Close)
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = "home0", 1400
	if err := nl.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "home1"}); err != nil {
		t.Fatal(err)
	}
	peer, err := nl.LinkByName("home1")
	if err == nil {
		err = nl.LinkSetMTU(peer, 1400)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m.fd, nl
}

// upIn runs testbed.Up on a thread inside the namespace home, as a caller living there would.
func upIn(t *testing.T, home int, topo testbed.Topology) (*testbed.Testbed, error) {
	t.Helper()
	type result struct {
		bed *testbed.Testbed
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread leaves with this goroutine
		if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
			c <- result{nil, err}
			return
		}
		bed, err := testbed.Up(t.Context(), topo)
		c <- result{bed, err}
	}()
	r := <-c
	if r.bed != nil {
		t.Cleanup(func() { r.bed.Down() })
	}
	return r.bed, r.err
}

// TestAdoptCarriesTrafficAndGivesBack: two devices of the caller's namespace become the testbed's ends, carry
// traffic both ways over both families, and Down returns them to that namespace with their old MTU, down and
// without the testbed's addresses.
func TestAdoptCarriesTrafficAndGivesBack(t *testing.T) {
	testenv.CheckLeaks(t)
	home, nl := scratchHome(t)
	bed, err := upIn(t, home, testbed.Topology{Prefix: "napilabtest", Devices: [2]string{"home0", "home1"}, Neighbours: true})
	if err != nil {
		t.Fatal(err)
	}
	if bed.A.Link != "home0" || bed.B.Link != "home1" {
		t.Fatalf("hosts hold %s and %s, want home0 and home1", bed.A.Link, bed.B.Link)
	}
	checkLocal(t, bed.A)
	checkLocal(t, bed.B)
	if _, err := nl.LinkByName("home0"); err == nil {
		t.Fatal("home0 is still in the caller's namespace after Up")
	}
	for _, v6 := range []bool{false, true} {
		exchange(t, bed.A, bed.B, v6)
		exchange(t, bed.B, bed.A, v6)
	}
	if err := bed.A.Do(func() error {
		l, err := netlink.LinkByName("home0")
		if err == nil && l.Attrs().MTU != 1500 {
			t.Errorf("home0 has MTU %d in the testbed, want the topology's 1500", l.Attrs().MTU)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := bed.Down(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"home0", "home1"} {
		l, err := nl.LinkByName(name)
		if err != nil {
			t.Fatalf("%s did not come back after Down: %v", name, err)
		}
		if a := l.Attrs(); a.MTU != 1400 || a.Flags&net.FlagUp != 0 {
			t.Errorf("%s came back with MTU %d and flags %v, want MTU 1400 and down", name, a.MTU, a.Flags)
		}
		addrs, err := nl.AddrList(l, netlink.FAMILY_V4)
		if err != nil || len(addrs) != 0 {
			t.Errorf("%s came back with IPv4 addresses %v (%v)", name, addrs, err)
		}
	}
}

// TestAdoptMissingDeviceGivesBackTheOther: a device that is not there fails Up with os.ErrNotExist and a hint,
// and the device already moved is back home.
func TestAdoptMissingDeviceGivesBackTheOther(t *testing.T) {
	testenv.CheckLeaks(t)
	home, nl := scratchHome(t)
	_, err := upIn(t, home, testbed.Topology{Prefix: "napilabtest", Devices: [2]string{"home0", "nosuch0"}})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "adopt device nosuch0") ||
		!strings.Contains(err.Error(), "wired to each other") {
		t.Fatalf("Up with a missing device: %v; want a not-exist error that names it and says what to name", err)
	}
	if _, err := nl.LinkByName("home0"); err != nil {
		t.Fatalf("home0 was not given back after the failed Up: %v", err)
	}
}
