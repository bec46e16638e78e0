package xsk_test

// A minimal local testbed: two fresh network namespaces joined by a veth pair, and an XDP program that steers
// UDP frames for one port into an XSKMAP. It stands in until internal/testbed and internal/xdp land.

import (
	"errors"
	"net"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// end is one side of the veth pair.
type end struct {
	ns      netns.NsHandle
	ifindex int
	mac     net.HardwareAddr
}

// newVethPair makes namespaces A and B with veth "xa" in A and its peer "xb" in B, both up. The namespaces are
// unnamed, so they disappear with their last reference after the test.
func newVethPair(t testing.TB) (a, b *end) {
	t.Helper()
	a, b = &end{ns: newNetns(t)}, &end{ns: newNetns(t)}
	ha, err := netlink.NewHandleAt(a.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	hb, err := netlink.NewHandleAt(b.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "xa"}, PeerName: "xb", PeerNamespace: netlink.NsFd(b.ns)}
	if err := ha.LinkAdd(veth); err != nil {
		t.Fatalf("create veth pair: %v", err)
	}
	for _, side := range []struct {
		h    *netlink.Handle
		name string
		e    *end
	}{{ha, "xa", a}, {hb, "xb", b}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := side.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		side.e.ifindex, side.e.mac = l.Attrs().Index, l.Attrs().HardwareAddr
	}
	return a, b
}

func newNetns(t testing.TB) netns.NsHandle {
	t.Helper()
	var ns netns.NsHandle
	err := onThread(func() (err error) {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		if ns, err = netns.New(); err != nil {
			return err
		}
		return netns.Set(orig)
	})
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// onThread runs fn on a locked OS thread of its own. If fn fails, the thread is left locked so that it dies
// with its goroutine instead of going back to the runtime in a foreign namespace or with dropped privileges.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := fn()
		if err == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// in runs fn inside ns on a thread of its own.
func in(ns netns.NsHandle, fn func() error) error {
	return onThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			return err
		}
		fnErr := fn()
		if err := netns.Set(orig); err != nil {
			return errors.Join(fnErr, err, errors.New("thread stuck in the test namespace"))
		}
		return fnErr
	})
}

// attachSteering attaches an XDP program to e's device that redirects UDP frames (IPv4 or IPv6) for port to the
// socket stored at their RX queue's index in the returned XSKMAP, and passes everything else.
func attachSteering(t testing.TB, e *end, port uint16) *ebpf.Map {
	t.Helper()
	xsks, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { xsks.Close() })
	portLE := int32(port>>8 | port<<8&0xff00) // the port's network-order bytes read as a little-endian u16
	const xdpPass = 2
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL", Instructions: asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14+20+8),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half), // ethertype
		asm.JEq.Imm(asm.R5, 0x0008, "ipv4"),
		asm.JNE.Imm(asm.R5, int32(0xdd86), "pass"),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14+40+8),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14+6, asm.Byte), // next header
		asm.JNE.Imm(asm.R5, 17, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14+40+2, asm.Half), // UDP destination port
		asm.JNE.Imm(asm.R5, portLE, "pass"),
		asm.Ja.Label("redirect"),
		asm.LoadMem(asm.R5, asm.R2, 14, asm.Byte).WithSymbol("ipv4"), // version and header length
		asm.JNE.Imm(asm.R5, 0x45, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14+9, asm.Byte), // protocol
		asm.JNE.Imm(asm.R5, 17, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14+20+2, asm.Half),
		asm.JNE.Imm(asm.R5, portLE, "pass"),
		asm.LoadMem(asm.R2, asm.R6, 16, asm.Word).WithSymbol("redirect"), // rx_queue_index
		asm.LoadMapPtr(asm.R1, xsks.FD()),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	var l link.Link
	if err := in(e.ns, func() (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: e.ifindex})
		return err
	}); err != nil {
		t.Fatalf("attach XDP: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return xsks
}

// register puts the socket's fd into the XSKMAP at its queue.
func register(t testing.TB, xsks *ebpf.Map, queue, fd int) {
	t.Helper()
	if err := xsks.Put(uint32(queue), uint32(fd)); err != nil {
		t.Fatalf("XSKMAP update: %v", err)
	}
}
