package ethtool_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/testenv"
)

const vethA, vethB = "napiet-a", "napiet-b"

// vethNamespace creates an anonymous network namespace holding a veth pair with queues queues per end and
// returns a descriptor of it and vethA's ifindex. The kernel removes namespace and veth when the test closes the
// last descriptor, even if the test fails half-way.
func vethNamespace(t *testing.T, queues int) (nsfd, ifindex int) {
	t.Helper()
	type result struct {
		fd, ifindex int
		err         error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends inside the new namespace and dies with us
		ns, err := netns.New()
		if err != nil {
			done <- result{err: err}
			return
		}
		la := netlink.NewLinkAttrs()
		la.Name, la.NumTxQueues, la.NumRxQueues = vethA, queues, queues
		err = netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: vethB, PeerTxQLen: -1,
			PeerNumTxQueues: uint32(queues), PeerNumRxQueues: uint32(queues)})
		var link netlink.Link
		if err == nil {
			link, err = netlink.LinkByName(vethA)
		}
		if err != nil {
			ns.Close()
			done <- result{err: err}
			return
		}
		done <- result{fd: int(ns), ifindex: link.Attrs().Index}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("create namespace with a veth pair: %v", r.err)
	}
	t.Cleanup(func() { unix.Close(r.fd) })
	return r.fd, r.ifindex
}

func dialIn(t *testing.T, nsfd int) *ethtool.Client {
	t.Helper()
	c, err := ethtool.Dial(&ethtool.Config{NetNS: nsfd})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestPrivVethChannels runs the fake's veth scenarios against the kernel, on a veth with 4 queues per end inside
// a fresh namespace: read, set rx=2 tx=2 and read back, restore, and the kernel's refusal of combined=2.
func TestPrivVethChannels(t *testing.T) {
	testenv.RequirePriv(t)
	nsfd, ifindex := vethNamespace(t, 4)
	c := dialIn(t, nsfd)
	va := ethtool.Device{Name: vethA}

	orig, err := c.Channels(va)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ethtool.Channels{RX: 4, TX: 4, RXMax: 4, TXMax: 4}); orig != want {
		t.Fatalf("veth with 4 queues reports %+v, want %+v", orig, want)
	}
	if byIndex, err := c.Channels(ethtool.Device{Index: ifindex}); err != nil || byIndex != orig {
		t.Errorf("by ifindex %d: %+v, %v", ifindex, byIndex, err)
	}

	if err := c.SetChannels(va, ethtool.Channels{RX: 2, TX: 2}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Channels(va)
	if want := (ethtool.Channels{RX: 2, TX: 2, RXMax: 4, TXMax: 4}); err != nil || got != want {
		t.Errorf("after rx=2 tx=2: %+v, %v; want %+v", got, err, want)
	}
	if err := c.SetChannels(va, orig); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Channels(va); err != nil || got != orig {
		t.Errorf("after restore: %+v, %v; want %+v", got, err, orig)
	}

	err = c.SetChannels(va, ethtool.Channels{RX: 4, TX: 4, Combined: 2})
	want := "channels-set on " + vethA + ": requested channel count exceeds maximum (invalid argument); " +
		vethA + " allows at most rx 4, tx 4, other 0, combined 0"
	if !errors.Is(err, unix.EINVAL) || err == nil || err.Error() != want {
		t.Errorf("combined=2:\n got %v\nwant %s", err, want)
	}
}

// TestPrivVethUnsupported checks that veth's missing operations come back as kernel.ErrNotSupported naming the
// driver, which the client learns with an ioctl on its own socket, inside the namespace.
func TestPrivVethUnsupported(t *testing.T) {
	testenv.RequirePriv(t)
	nsfd, ifindex := vethNamespace(t, 1)
	c := dialIn(t, nsfd)
	va := ethtool.Device{Name: vethA}
	_, errRings := c.Rings(va)
	_, errCoalesce := c.Coalesce(ethtool.Device{Index: ifindex})
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errRings, "rings-get is not supported by driver veth on " + vethA},
		{c.SetRings(va, ethtool.Rings{RX: 512}), "rings-set is not supported by driver veth on " + vethA},
		{errCoalesce, "coalesce-get is not supported by driver veth on ifindex"},
		{c.SetCoalesce(va, ethtool.Coalesce{AdaptiveRX: true}), "coalesce-set is not supported by driver veth on " + vethA},
	} {
		if !errors.Is(tc.err, kernel.ErrNotSupported) || tc.err == nil || !strings.HasPrefix(tc.err.Error(), tc.want) {
			t.Errorf("error = %v, want kernel.ErrNotSupported saying %q", tc.err, tc.want)
		}
	}
	_, err := c.Channels(ethtool.Device{Name: "eth0-not-here"})
	if !errors.Is(err, unix.ENODEV) || !strings.Contains(err.Error(), "no device matches name") {
		t.Errorf("unknown device: %v", err)
	}
}

// TestPrivHostLoopback reads on the host: lo has no channels, and the error says so without a driver name
// (lo has no driver-info either).
func TestPrivHostLoopback(t *testing.T) {
	testenv.RequirePriv(t)
	c, err := ethtool.Dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Channels(ethtool.Device{Name: "lo"})
	if !errors.Is(err, kernel.ErrNotSupported) || !strings.HasPrefix(err.Error(), "channels-get is not supported by") {
		t.Errorf("lo channels: %v", err)
	}
}
