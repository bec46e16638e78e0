package xdp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
	"github.com/napilab/napilab/internal/xdp"
	"github.com/napilab/napilab/internal/xsk"
)

const (
	port      = 54321
	otherPort = 54322
	holderEnv = "NAPILAB_XDP_HOLDER" // the test binary as a child that attaches and waits to be killed
)

// hangGuard bounds every wait for a packet, so a broken datapath fails the test instead of hanging it. Nothing
// is timed against it.
const hangGuard = 30 * time.Second

func TestMain(m *testing.M) {
	if ifindex := os.Getenv(holderEnv); ifindex != "" {
		holdAttached(ifindex)
	}
	os.Exit(m.Run())
}

// holdAttached runs in a child: it enters the network namespace passed as fd 3, attaches the program to
// ifindex, prints the program id and blocks until killed (or until stdin closes).
func holdAttached(ifindex string) {
	runtime.LockOSThread()
	idx, _ := strconv.Atoi(ifindex)
	if err := unix.Setns(3, unix.CLONE_NEWNET); err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	p, err := xdp.Load(xdp.Spec{Port: port})
	if err == nil {
		_, err = p.Attach(idx, xdp.ModeNative)
	}
	var id uint32
	if err == nil {
		id, err = p.ID()
	}
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	fmt.Println("attached", id)
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// load loads the steering program and attaches it to h's veth in mode.
func load(t *testing.T, h *testbed.Host, mode xdp.Mode) (*xdp.Program, xdp.Mode) {
	t.Helper()
	p, err := xdp.Load(xdp.Spec{Port: port, Queues: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	var active xdp.Mode
	if err := h.Do(func() (err error) { active, err = p.Attach(h.Ifindex, mode); return err }); err != nil {
		t.Fatal(err)
	}
	return p, active
}

func attached(t *testing.T, h *testbed.Host, ifindex int) (xdp.Attachment, bool) {
	t.Helper()
	var a xdp.Attachment
	var ok bool
	if err := h.Do(func() (err error) { a, ok, err = xdp.AttachedProgram(ifindex); return err }); err != nil {
		t.Fatal(err)
	}
	return a, ok
}

// TestSteering attaches the program to B's veth with an AF_XDP socket on queue 0 and sends from ordinary
// sockets in A: UDP to the port arrives on the socket over IPv4 and IPv6; UDP to another port, ICMP echo and
// ICMPv6 echo reach B's stack. The testbed has no static neighbours, so ARP and neighbour discovery must pass
// through the program too, or nothing would be sent at all.
func TestSteering(t *testing.T) {
	testenv.CheckLeaks(t)
	bed := testbedtest.New(t, testbed.Topology{})
	a, b := bed.A, bed.B
	p, active := load(t, b, xdp.ModeAuto)
	if active != xdp.ModeNative {
		t.Fatalf("veth attached in %s mode, want native", active)
	}
	sock := bindCopy(t, b, p)

	stack := testbedtest.ListenUDP(t, b, netip.AddrPortFrom(netip.IPv6Unspecified(), otherPort))
	client := testbedtest.ListenUDP(t, a, netip.AddrPortFrom(netip.IPv6Unspecified(), 0))
	stack.SetDeadline(time.Now().Add(hangGuard))
	for _, dst := range []netip.Addr{b.IPv4.Addr(), b.IPv6.Addr()} {
		payload := []byte("steered to " + dst.String())
		if _, err := client.WriteToUDPAddrPort(payload, netip.AddrPortFrom(dst, port)); err != nil {
			t.Fatal(err)
		}
		f := waitFrame(t, sock)
		etherType, l3 := binary.BigEndian.Uint16(f[12:]), f[14:]
		var udp []byte
		switch {
		case dst.Is4() && etherType == 0x0800:
			udp = l3[int(l3[0]&0xf)*4:]
		case dst.Is6() && etherType == 0x86dd:
			udp = l3[40:]
		default:
			t.Fatalf("socket got ethertype %#x for a datagram to %s", etherType, dst)
		}
		if binary.BigEndian.Uint16(udp[2:]) != port || !bytes.Equal(udp[8:], payload) {
			t.Fatalf("socket got UDP %x, want port %d and payload %q", udp, port, payload)
		}

		payload = []byte("passed to " + dst.String())
		if _, err := client.WriteToUDPAddrPort(payload, netip.AddrPortFrom(dst, otherPort)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		n, _, err := stack.ReadFromUDPAddrPort(buf)
		if err != nil || !bytes.Equal(buf[:n], payload) {
			t.Fatalf("socket on port %d got %q, %v; want %q", otherPort, buf[:n], err, payload)
		}
	}
	ping(t, a, b.IPv4.Addr())
	ping(t, a, b.IPv6.Addr())
}

// TestStampReachesCopyModeSocket checks what xdp.Stamp promises on veth, where AF_XDP runs in copy mode: the
// program's arrival stamp is copied into the UMEM in front of the frame, in native and in generic mode, and it
// was taken between the send and the moment the socket had the frame, on the clock the application reads.
func TestStampReachesCopyModeSocket(t *testing.T) {
	for _, mode := range []xdp.Mode{xdp.ModeNative, xdp.ModeGeneric} {
		t.Run(mode.String(), func(t *testing.T) {
			testenv.CheckLeaks(t)
			bed := testbedtest.New(t, testbed.Topology{})
			a, b := bed.A, bed.B
			p, _ := load(t, b, mode)
			sock := bindCopy(t, b, p)
			client := testbedtest.ListenUDP(t, a, netip.AddrPortFrom(netip.IPv6Unspecified(), 0))
			for i := range 3 {
				before := monotonic(t)
				if _, err := client.WriteToUDPAddrPort([]byte("stamp me"), netip.AddrPortFrom(b.IPv4.Addr(), port)); err != nil {
					t.Fatal(err)
				}
				d := waitDesc(t, sock)
				after := monotonic(t)
				ns, ok := xdp.TakeStamp(sock.Frame(d.Addr-xdp.StampLen, xdp.StampLen))
				release(sock, d)
				if !ok || ns < before || ns > after {
					t.Fatalf("frame %d: stamp %d, %v; want one between the send (%d) and the receipt (%d)", i, ns, ok,
						before, after)
				}
				t.Logf("frame %d waited %v between the program and the socket's reader", i, time.Duration(after-ns))
			}
			if n, err := p.StampFailures(); err != nil || n != 0 {
				t.Fatalf("StampFailures = %d, %v; veth gives XDP a metadata area", n, err)
			}
		})
	}
}

// bindCopy opens a copy-mode socket on queue 0 of h's link, gives the kernel all its receive frames and
// registers it with the program.
func bindCopy(t *testing.T, h *testbed.Host, p *xdp.Program) *xsk.Socket {
	t.Helper()
	cfg := xsk.DefaultConfig()
	cfg.Mode = xsk.ModeCopy
	var sock *xsk.Socket
	if err := h.Do(func() (err error) { sock, err = xsk.Open(h.Ifindex, 0, cfg); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	sock.FillAll(sock.FramePool(0, cfg.FillSize))
	if err := p.Register(0, sock.FD()); err != nil {
		t.Fatal(err)
	}
	return sock
}

func monotonic(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano()
}

// waitDesc waits for a frame on s's RX ring and returns its descriptor, leaving the frame to the caller.
func waitDesc(t *testing.T, s *xsk.Socket) xsk.Desc {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for time.Now().Before(deadline) {
		if _, err := s.WaitRX(time.Second); err != nil {
			t.Fatal(err)
		}
		if s.RX().Peek(1) == 1 {
			return s.RX().Get(0)
		}
	}
	t.Fatal("no frame reached the AF_XDP socket")
	return xsk.Desc{}
}

// release hands a frame taken with waitDesc back: off the RX ring, onto the fill ring.
func release(s *xsk.Socket, d xsk.Desc) {
	s.RX().Release(1)
	s.Fill().Reserve(1)
	s.Fill().Set(0, s.FrameAddr(s.FrameIndex(d.Addr)))
	s.Fill().Submit(1)
}

func waitFrame(t *testing.T, s *xsk.Socket) []byte {
	t.Helper()
	d := waitDesc(t, s)
	f := bytes.Clone(s.Frame(d.Addr, d.Len))
	release(s, d)
	return f
}

// ping sends one ICMP or ICMPv6 echo request from host from to dst over a raw socket and waits for the reply.
func ping(t *testing.T, from *testbed.Host, dst netip.Addr) {
	t.Helper()
	network, request, replyType := "ip4:icmp", []byte{8, 0, 0, 0, 0x4e, 0x4c, 0, 1, 'x'}, byte(0)
	if dst.Is6() {
		network, request[0], replyType = "ip6:ipv6-icmp", 128, 129 // the kernel fills in the ICMPv6 checksum
	} else {
		binary.BigEndian.PutUint16(request[2:], icmpChecksum(request))
	}
	var c net.PacketConn
	if err := from.Do(func() (err error) { c, err = net.ListenPacket(network, ""); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hangGuard))
	if _, err := c.WriteTo(request, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		t.Fatalf("send echo request to %s: %v", dst, err)
	}
	buf := make([]byte, 1500)
	for {
		n, src, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no echo reply from %s: %v", dst, err)
		}
		if ip, _ := netip.AddrFromSlice(src.(*net.IPAddr).IP); ip.Unmap() == dst && n >= 8 && buf[0] == replyType &&
			bytes.Equal(buf[4:6], request[4:6]) {
			return
		}
	}
}

func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// TestAttachmentIsReportedAndCloseRemovesIt checks AttachedProgram against the program, and that Close leaves no
// attachment and no program behind.
func TestAttachmentIsReportedAndCloseRemovesIt(t *testing.T) {
	testenv.CheckLeaks(t)
	bed := testbedtest.New(t, testbed.Topology{})
	b := bed.B
	p, _ := load(t, b, xdp.ModeNative)
	id, err := p.ID()
	if err != nil {
		t.Fatal(err)
	}
	a, ok := attached(t, b, b.Ifindex)
	if !ok || a.ProgramID != id || a.Name != "napilab_steer" || a.Mode != xdp.ModeNative || a.LinkID == 0 {
		t.Fatalf("AttachedProgram = %+v, %v; want program %d napilab_steer, native, held by a bpf_link", a, ok, id)
	}
	if ifindex, mode := p.Attached(); ifindex != b.Ifindex || mode != xdp.ModeNative {
		t.Fatalf("Attached() = %d, %s", ifindex, mode)
	}
	if _, ok := attached(t, bed.A, bed.A.Ifindex); ok {
		t.Fatal("the peer end reports a program too")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if a, ok := attached(t, b, b.Ifindex); ok {
		t.Fatalf("after Close the device still has %s", a)
	}
	if prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); !errors.Is(err, os.ErrNotExist) {
		prog.Close()
		t.Fatalf("program %d still exists after Close: %v", id, err)
	}
	if _, err := p.Attach(b.Ifindex, xdp.ModeNative); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Attach after Close = %v, want os.ErrClosed", err)
	}
}

// TestKilledHolderLeavesNothingAttached attaches from a child process and kills it: the bpf_link goes with the
// process, whether it is killed outright or asked to terminate.
func TestKilledHolderLeavesNothingAttached(t *testing.T) {
	testenv.CheckLeaks(t)
	bed := testbedtest.New(t, testbed.Topology{})
	b := bed.B
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dup, err := unix.Dup(b.NetNS()) // the child's fd 3; the testbed keeps its own
			if err != nil {
				t.Fatal(err)
			}
			ns := os.NewFile(uintptr(dup), "netns")
			defer ns.Close()
			h := testenv.StartHelper(t, []string{holderEnv + "=" + strconv.Itoa(b.Ifindex)}, ns)
			defer h.In.Close()
			cmd := h.Cmd
			h.Out.Scan()
			line := h.Out.Text()
			f := strings.Fields(line)
			if len(f) != 2 || f[0] != "attached" {
				t.Fatalf("holder said %q", line)
			}
			a, ok := attached(t, b, b.Ifindex)
			if !ok || strconv.FormatUint(uint64(a.ProgramID), 10) != f[1] || a.LinkID == 0 {
				t.Fatalf("while the holder runs: %+v, %v; want its program %s on a bpf_link", a, ok, f[1])
			}
			cmd.Process.Signal(sig)
			if err := cmd.Wait(); err == nil {
				t.Fatalf("holder exited cleanly after %s", sig)
			}
			if a, ok := attached(t, b, b.Ifindex); ok {
				t.Fatalf("after %s of the holder, %s is still attached", sig, a)
			}
		})
	}
}

// passProgram loads a minimal XDP program that passes everything, named name.
func passProgram(t *testing.T, name string) *ebpf.Program {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.XDP, License: "Dual MIT/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// TestAttachRefusesOccupiedDevice: a second attach, in the same or the other mode, and an attach over a legacy
// netlink attachment, fail with one sentence naming the program there and how to remove it.
func TestAttachRefusesOccupiedDevice(t *testing.T) {
	testenv.CheckLeaks(t)
	bed := testbedtest.New(t, testbed.Topology{})
	b := bed.B
	load(t, b, xdp.ModeNative)
	second, err := xdp.Load(xdp.Spec{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	for _, mode := range []xdp.Mode{xdp.ModeNative, xdp.ModeGeneric, xdp.ModeAuto} {
		err := b.Do(func() error { _, err := second.Attach(b.Ifindex, mode); return err })
		var ae *xdp.AttachedError
		t.Logf("second attach in %s mode: %v", mode, err)
		if !errors.As(err, &ae) || !errors.Is(err, os.ErrExist) || ae.Existing.Name != "napilab_steer" ||
			!strings.Contains(err.Error(), "bpftool link detach id") {
			t.Errorf("second attach in %s mode = %v; want an AttachedError naming napilab_steer and its link", mode, err)
		}
	}

	legacyBed := testbedtest.New(t, testbed.Topology{})
	lb := legacyBed.B
	legacy := passProgram(t, "legacy_pass")
	err = lb.Do(func() error {
		link, err := netlink.LinkByIndex(lb.Ifindex)
		if err != nil {
			return err
		}
		return netlink.LinkSetXdpFdWithFlags(link, legacy.FD(), nl.XDP_FLAGS_DRV_MODE)
	})
	if err != nil {
		t.Fatalf("legacy attach: %v", err)
	}
	// A legacy attachment outlives everything; remove it explicitly (gotcha 9).
	t.Cleanup(func() {
		lb.Do(func() error {
			link, err := netlink.LinkByIndex(lb.Ifindex)
			if err == nil {
				err = netlink.LinkSetXdpFdWithFlags(link, -1, nl.XDP_FLAGS_DRV_MODE)
			}
			return err
		})
	})
	if a, ok := attached(t, lb, lb.Ifindex); !ok || a.LinkID != 0 || a.Name != "legacy_pass" {
		t.Fatalf("legacy attachment reported as %+v, %v", a, ok)
	}
	p, err := xdp.Load(xdp.Spec{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = lb.Do(func() error { _, err := p.Attach(lb.Ifindex, xdp.ModeAuto); return err })
	t.Logf("attach over a legacy program: %v", err)
	want := "veth-b already has program legacy_pass"
	if !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), want) ||
		!strings.Contains(err.Error(), "ip link set dev veth-b xdp off") {
		t.Fatalf("attach over a legacy program = %v; want %q and how to remove it", err, want)
	}
}

// TestAttachModes: lo has no native XDP, so auto falls back to generic and native is refused naming the
// device; generic is used on veth when asked; an unknown ifindex is os.ErrNotExist.
func TestAttachModes(t *testing.T) {
	testenv.CheckLeaks(t)
	bed := testbedtest.New(t, testbed.Topology{})
	b := bed.B
	lo := 1
	p, err := xdp.Load(xdp.Spec{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = b.Do(func() error { _, err := p.Attach(lo, xdp.ModeNative); return err })
	t.Logf("native attach to lo: %v", err)
	if !errors.Is(err, kernel.ErrNotSupported) || !strings.Contains(err.Error(), "native XDP on lo") {
		t.Fatalf("native attach to lo = %v, want ErrNotSupported naming lo", err)
	}
	var active xdp.Mode
	if err := b.Do(func() (err error) { active, err = p.Attach(lo, xdp.ModeAuto); return err }); err != nil || active != xdp.ModeGeneric {
		t.Fatalf("auto attach to lo = %s, %v; want generic", active, err)
	}
	if a, ok := attached(t, b, lo); !ok || a.Mode != xdp.ModeGeneric {
		t.Fatalf("lo reports %+v, %v", a, ok)
	}

	_, active = load(t, b, xdp.ModeGeneric)
	if a, ok := attached(t, b, b.Ifindex); active != xdp.ModeGeneric || !ok || a.Mode != xdp.ModeGeneric {
		t.Fatalf("generic attach to veth: active %s, reported %+v", active, a)
	}

	q, err := xdp.Load(xdp.Spec{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	err = b.Do(func() error { _, err := q.Attach(999, xdp.ModeAuto); return err })
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("attach to ifindex 999 = %v, want os.ErrNotExist", err)
	}
	if err := b.Do(func() error { _, _, err := xdp.AttachedProgram(999); return err }); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("AttachedProgram(999) = %v, want os.ErrNotExist", err)
	}
}

func TestRegisterErrors(t *testing.T) {
	testenv.CheckLeaks(t)
	bed := testbedtest.New(t, testbed.Topology{})
	p, _ := load(t, bed.B, xdp.ModeNative)
	if err := p.Register(4, 0); err == nil || !strings.Contains(err.Error(), "queues 0 to 3") {
		t.Fatalf("Register(queue 4 of 4) = %v", err)
	}
	udp := testbedtest.ListenUDP(t, bed.B, netip.AddrPortFrom(bed.B.IPv4.Addr(), 0))
	raw, _ := udp.SyscallConn()
	var err error
	raw.Control(func(fd uintptr) { err = p.Register(0, int(fd)) })
	if err == nil || !strings.Contains(err.Error(), "not an AF_XDP socket") {
		t.Fatalf("Register(UDP socket) = %v", err)
	}
	if err := p.Unregister(0); err != nil {
		t.Fatalf("Unregister of an empty queue = %v, want nil", err)
	}
	if err := p.Unregister(-1); err == nil {
		t.Fatal("Unregister(-1) succeeded")
	}
}

func setLink(t *testing.T, h *testbed.Host, up bool) {
	t.Helper()
	err := h.Do(func() error {
		link, err := netlink.LinkByIndex(h.Ifindex)
		if err != nil {
			return err
		}
		if up {
			return netlink.LinkSetUp(link)
		}
		return netlink.LinkSetDown(link)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWaitRunning takes B's carrier away by setting its peer down: WaitRunning must wait for it to come back,
// give up when its context ends, and return at once for a running device.
func TestWaitRunning(t *testing.T) {
	testenv.CheckLeaks(t)
	bed := testbedtest.New(t, testbed.Topology{})
	b := bed.B
	wait := func(ctx context.Context) error {
		return b.Do(func() error { return xdp.WaitRunning(ctx, b.Ifindex) })
	}
	if err := wait(t.Context()); err != nil {
		t.Fatalf("WaitRunning on a running device = %v", err)
	}
	setLink(t, bed.A, false)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := wait(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitRunning without carrier and a cancelled context = %v, want context.Canceled", err)
	}
	done := make(chan error, 1)
	go func() { done <- wait(t.Context()) }()
	setLink(t, bed.A, true)
	if err := <-done; err != nil {
		t.Fatalf("WaitRunning while the peer comes up = %v", err)
	}
	var flags net.Flags
	if err := b.Do(func() error { i, err := net.InterfaceByIndex(b.Ifindex); flags = i.Flags; return err }); err != nil {
		t.Fatal(err)
	}
	if flags&net.FlagRunning == 0 {
		t.Fatalf("WaitRunning returned but %s is not running (flags %v)", b.Link, flags)
	}
	if err := b.Do(func() error { return xdp.WaitRunning(t.Context(), 999) }); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("WaitRunning(999) = %v, want os.ErrNotExist", err)
	}
}

// TestSteeringFollowsRxQueue gives each of four rx queues of B its own socket and sends datagrams of many flows,
// which veth spreads over the queues: every datagram must arrive, on the socket of the queue it came in on (a
// socket bound to another queue would make the kernel drop it).
func TestSteeringFollowsRxQueue(t *testing.T) {
	testenv.CheckLeaks(t)
	const queues, flows = 4, 64
	bed := testbedtest.New(t, testbed.Topology{Queues: queues, Neighbours: true})
	a, b := bed.A, bed.B
	p, _ := load(t, b, xdp.ModeNative)
	cfg := xsk.Config{FrameSize: 2048, FrameCount: 256, FillSize: 128, CompletionSize: 64, RXSize: 128, TXSize: 64,
		Mode: xsk.ModeCopy}
	socks := make([]*xsk.Socket, queues)
	fds := make([]unix.PollFd, queues)
	for q := range queues {
		err := b.Do(func() (err error) { socks[q], err = xsk.Open(b.Ifindex, q, cfg); return err })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { socks[q].Close() })
		socks[q].FillAll(socks[q].FramePool(0, cfg.FillSize))
		if err := p.Register(q, socks[q].FD()); err != nil {
			t.Fatal(err)
		}
		fds[q] = unix.PollFd{Fd: int32(socks[q].FD()), Events: unix.POLLIN}
	}
	for i := range flows {
		c := testbedtest.ListenUDP(t, a, netip.AddrPortFrom(a.IPv4.Addr(), 0))
		if _, err := c.WriteToUDPAddrPort([]byte{byte(i)}, netip.AddrPortFrom(b.IPv4.Addr(), port)); err != nil {
			t.Fatal(err)
		}
	}
	perQueue := make([]int, queues)
	got := 0
	for deadline := time.Now().Add(hangGuard); got < flows && time.Now().Before(deadline); {
		if _, err := unix.Poll(fds, 1000); err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatal(err)
		}
		for q, s := range socks {
			n := s.RX().Peek(flows)
			s.RX().Release(n)
			perQueue[q] += int(n)
			got += int(n)
		}
	}
	used := 0
	for _, n := range perQueue {
		if n > 0 {
			used++
		}
	}
	if got != flows || used < 2 {
		t.Fatalf("frames per queue %v: want all %d datagrams, spread over at least 2 queues", perQueue, flows)
	}
	t.Logf("datagrams per rx queue: %v", perQueue)
}
