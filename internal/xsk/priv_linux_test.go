package xsk_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
	"github.com/napilab/napilab/internal/xdp"
	"github.com/napilab/napilab/internal/xsk"
	"github.com/napilab/napilab/internal/xsk/xsktest"
)

const udpPort = 4791

// newVethPair builds a throwaway testbed and returns its two hosts: A (client) and B (server). The test fails
// if it leaves a goroutine or a descriptor behind (the check runs after every cleanup registered later).
func newVethPair(t testing.TB) (a, b *testbed.Host) {
	t.Helper()
	testenv.CheckLeaks(t)
	bed := testbedtest.New(t, testbed.Topology{})
	return bed.A, bed.B
}

// openIn opens a socket on queue of device ifindex inside h's namespace and closes it after the test.
func openIn(t testing.TB, h *testbed.Host, ifindex, queue int, cfg xsk.Config) (*xsk.Socket, error) {
	t.Helper()
	var s *xsk.Socket
	err := h.Do(func() (err error) {
		s, err = xsk.Open(ifindex, queue, cfg)
		return err
	})
	if s != nil {
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	return s, err
}

// steered returns a socket on queue 0 of h's veth end, fed by napilab's steering program, which is attached
// before the bind (a veth has a NAPI only while XDP is on) and detached after the test.
func steered(t testing.TB, h *testbed.Host, cfg xsk.Config) *xsk.Socket {
	t.Helper()
	prog, err := xdp.Load(xdp.Spec{Port: udpPort, Queues: h.RxQueues})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	if err := h.Do(func() error { _, err := prog.Attach(h.Ifindex, xdp.ModeAuto); return err }); err != nil {
		t.Fatal(err)
	}
	s, err := openIn(t, h, h.Ifindex, 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Register(0, s.FD()); err != nil {
		t.Fatal(err)
	}
	return s
}

// wire is the UDP flow of a test, client a → server b, built and checked with internal/frame.
type wire struct {
	a, b *testbed.Host
	ipv6 bool
}

const (
	payloadLen = 32
	fromClient = 'c'
	fromServer = 's'
	markAt     = 8 // payload: 8-byte sequence number, the mark, then a pattern
)

var serverMark = []byte{fromServer}

func (w wire) spec() frame.Spec {
	src, dst := w.a.IPv4.Addr(), w.b.IPv4.Addr()
	if w.ipv6 {
		src, dst = w.a.IPv6.Addr(), w.b.IPv6.Addr()
	}
	return frame.Spec{
		Src:        frame.Endpoint{MAC: frame.MAC(w.a.MAC), IP: src, Port: udpPort},
		Dst:        frame.Endpoint{MAC: frame.MAC(w.b.MAC), IP: dst, Port: udpPort},
		PayloadLen: payloadLen,
	}
}

// build writes request seq into b: the payload first, then the headers, which Build checksums over it.
func (w wire) build(b []byte, seq int) int {
	spec := w.spec()
	p := b[spec.PayloadOffset():spec.FrameLen()]
	binary.BigEndian.PutUint64(p, uint64(seq))
	p[markAt] = fromClient
	for i := markAt + 1; i < payloadLen; i++ {
		p[i] = byte(seq*7 + i)
	}
	n, err := frame.Build(b, spec)
	if err != nil {
		return 0 // a zero-length descriptor: the kernel counts it invalid and the exchange fails
	}
	return n
}

// reply turns a request around in place as an echo server does (swapping keeps the checksums valid) and marks
// it answered, updating the UDP checksum for the mark.
func (w wire) reply(b []byte) {
	if p, err := frame.Parse(b); err == nil {
		p.Reply(frame.KeepChecksums)
		p.WritePayload(markAt, serverMark)
	}
}

// check validates a reply at the client and returns its sequence number.
func (w wire) check(b []byte) (int, error) {
	p, err := frame.Parse(b)
	if err != nil {
		return 0, err
	}
	if err := p.VerifyChecksums(); err != nil {
		return 0, err
	}
	spec := w.spec()
	var src, dst netip.Addr
	if ip := p.IPv4(); ip != nil {
		src, dst = ip.Src(), ip.Dst()
	} else {
		src, dst = p.IPv6().Src(), p.IPv6().Dst()
	}
	eth, udp := p.Ethernet(), p.UDP()
	if eth.Src() != spec.Dst.MAC || eth.Dst() != spec.Src.MAC || src != spec.Dst.IP || dst != spec.Src.IP ||
		udp.SrcPort() != udpPort || udp.DstPort() != udpPort {
		return 0, fmt.Errorf("reply %s %s → %s %s is not the request turned around", eth.Src(), src, eth.Dst(), dst)
	}
	pl := p.Payload()
	if len(pl) != payloadLen {
		return 0, fmt.Errorf("reply payload of %d bytes, want %d", len(pl), payloadLen)
	}
	seq := int(binary.BigEndian.Uint64(pl))
	if pl[markAt] != fromServer {
		return seq, fmt.Errorf("frame %d was not echoed by the server (mark %q)", seq, pl[markAt])
	}
	for i := markAt + 1; i < payloadLen; i++ {
		if pl[i] != byte(seq*7+i) {
			return seq, fmt.Errorf("frame %d: payload byte %d changed", seq, i)
		}
	}
	return seq, nil
}

// TestPrivCopyModeOnVeth binds both ends in copy mode, checks that the kernel reports copy mode, sends one
// frame over the wire and compares it byte for byte; kicks on the real socket must not allocate.
func TestPrivCopyModeOnVeth(t *testing.T) {
	testenv.RequirePriv(t)
	a, b := newVethPair(t)
	cfg := xsk.DefaultConfig()
	cfg.Mode = xsk.ModeCopy
	client, server := steered(t, a, cfg), steered(t, b, cfg)
	if client.ZeroCopy() || server.ZeroCopy() {
		t.Fatal("copy-mode sockets report zero-copy")
	}
	server.FillAll(server.FramePool(0, cfg.FillSize))

	w := wire{a: a, b: b}
	addr := client.FrameAddr(cfg.FrameCount - 1)
	n := w.build(client.Frame(addr, cfg.FrameSize), 42)
	sent := bytes.Clone(client.Frame(addr, uint32(n)))
	client.TX().Reserve(1)
	client.TX().Set(0, xsk.Desc{Addr: addr, Len: uint32(n)})
	client.TX().Submit(1)
	if err := client.KickTX(); err != nil {
		t.Fatal(err)
	}
	if client.TX().Pending() != 0 {
		t.Fatal("the kernel did not take the frame from the TX ring during the kick")
	}
	got := waitFrame(t, server)
	if !bytes.Equal(server.Frame(got.Addr, got.Len), sent) {
		t.Fatalf("received %x\nsent     %x", server.Frame(got.Addr, got.Len), sent)
	}
	if want := server.FrameAddr(server.FrameIndex(got.Addr)) + xsk.XDPPacketHeadroom; got.Addr != want {
		t.Fatalf("received frame at %d, want its frame start + %d = %d", got.Addr, xsk.XDPPacketHeadroom, want)
	}
	if c := client.Completion().Peek(1); c != 1 || client.Completion().Get(0) != addr {
		t.Fatalf("completion ring: %d entries, want the sent frame %d", c, addr)
	}

	allocs := testing.AllocsPerRun(100, func() {
		client.KickTX()
		client.KickRX()
		client.KickTXIfNeeded()
		server.WaitRX(0)
	})
	if allocs != 0 {
		t.Fatalf("kicks on a kernel socket: %v allocations, want 0", allocs)
	}
}

func waitFrame(t testing.TB, s *xsk.Socket) xsk.Desc {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.WaitRX(time.Second); err != nil {
			t.Fatal(err)
		}
		if s.RX().Peek(1) == 1 {
			d := s.RX().Get(0)
			s.RX().Release(1)
			return d
		}
	}
	t.Fatal("no frame arrived in 10 s")
	return xsk.Desc{}
}

// TestPrivEcho sends 10 000 frames through XDP → XSK → in-place echo → XSK on the other side of a veth pair,
// for IPv4 and IPv6 with need_wakeup on and off. Every frame must come back once and intact, every TX frame
// must come back from the completion ring, and XDP_STATISTICS must count no loss on either socket.
func TestPrivEcho(t *testing.T) {
	testenv.RequirePriv(t)
	testenv.Exclusive(t)
	for _, ipv6 := range []bool{false, true} {
		for _, wakeup := range []bool{true, false} {
			t.Run(fmt.Sprintf("ipv6=%v/need_wakeup=%v", ipv6, wakeup), func(t *testing.T) {
				res := echo(t, ipv6, wakeup, 10000, 64)
				t.Logf("%d round trips in %v: %.0f frames/s each way", res.Received, res.Elapsed, res.Rate())
			})
		}
	}
}

func echo(t testing.TB, ipv6, wakeup bool, frames, window int) xsktest.Result {
	a, b := newVethPair(t)
	cfg := xsk.DefaultConfig()
	cfg.NeedWakeup = wakeup
	client, server := steered(t, a, cfg), steered(t, b, cfg)
	w := wire{a: a, b: b, ipv6: ipv6}
	if err := w.spec().Validate(); err != nil {
		t.Fatal(err)
	}
	stop := xsktest.StartEcho(server, w.reply)
	res, err := xsktest.Exchange{Frames: frames, Window: window, Build: w.build, Check: w.check}.Run(client)
	echoed, echoErr := stop()
	if err != nil {
		t.Fatalf("client: %v (%d sent, %d received)", err, res.Sent, res.Received)
	}
	if echoErr != nil || echoed != frames {
		t.Fatalf("server echoed %d of %d frames: %v", echoed, frames, echoErr)
	}
	for name, s := range map[string]*xsk.Socket{"client": client, "server": server} {
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.RxDropped != 0 || st.RxRingFull != 0 || st.RxInvalidDescs != 0 || st.TxInvalidDescs != 0 || st.RxFillRingEmptyDescs != 0 {
			t.Errorf("%s: XDP_STATISTICS count losses although every frame arrived: %+v", name, st)
		}
		t.Logf("%s: %+v, kicks %+v", name, st, s.KickStats())
		if s.ZeroCopy() {
			t.Errorf("%s: auto mode on veth bound zero-copy; veth has only copy mode", name)
		}
		if k := s.KickStats(); k.Busy != 0 {
			t.Errorf("%s: the device dropped %d frames on transmit", name, k.Busy)
		}
	}
	return res
}

// BenchmarkPrivEcho measures round trips through the copy-mode echo path on veth (IPv4, need_wakeup); each
// iteration is one frame there and back. window=1 is one frame in flight (a latency), window=64 a pipeline (a
// rate). Both ends wait in poll(2), so the numbers include two wake-ups per round trip.
func BenchmarkPrivEcho(b *testing.B) {
	testenv.RequirePriv(b)
	testenv.Exclusive(b)
	for _, window := range []int{1, 64} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			res := echo(b, false, true, max(b.N, 64), window)
			b.ReportMetric(res.Rate(), "frames/s")
			b.ReportMetric(float64(res.Elapsed.Nanoseconds())/float64(res.Received), "ns/roundtrip")
		})
	}
}

// openFails opens a socket in e's namespace that must fail, and checks that the failure leaves no descriptor
// behind and that the error matches target and contains each of the phrases. Descriptors are compared by what
// they refer to, not counted: the Go runtime and the testing package open and close their own meanwhile.
func openFails(t *testing.T, h *testbed.Host, ifindex, queue int, cfg xsk.Config, target error, phrases ...string) error {
	t.Helper()
	before := testenv.OpenFDs(t)
	s, err := openIn(t, h, ifindex, queue, cfg)
	if err == nil {
		t.Fatalf("Open succeeded on %v", s)
	}
	t.Log(err)
	before.CheckClosed(t, "a failed Open")
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %q does not match %v", err, target)
	}
	for _, p := range phrases {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
	return err
}

// TestPrivOpenErrors checks that each way Open fails says what to do and unwinds everything.
func TestPrivOpenErrors(t *testing.T) {
	testenv.RequirePriv(t)
	a, _ := newVethPair(t)
	cfg := xsk.DefaultConfig()

	t.Run("zero-copy on veth", func(t *testing.T) {
		zc := cfg
		zc.Mode = xsk.ModeZeroCopy
		openFails(t, a, a.Ifindex, 0, zc, kernel.ErrNotSupported, "zero-copy", "use copy or auto mode")
	})
	t.Run("unknown interface", func(t *testing.T) {
		openFails(t, a, 9999, 0, cfg, os.ErrNotExist, "ifindex 9999", "no interface has index 9999")
	})
	t.Run("ifindex 0", func(t *testing.T) {
		openFails(t, a, 0, 0, cfg, os.ErrNotExist, "interface indexes start at 1")
	})
	t.Run("queue out of range", func(t *testing.T) {
		openFails(t, a, a.Ifindex, 5, cfg, nil, testbed.LinkA+" queue 5", "queue 5 is probably out of range", "channels")
	})
	t.Run("queue taken", func(t *testing.T) {
		if _, err := openIn(t, a, a.Ifindex, 0, cfg); err != nil {
			t.Fatal(err)
		}
		openFails(t, a, a.Ifindex, 0, cfg, nil, "already has an AF_XDP socket")
	})
	t.Run("UMEM too small", func(t *testing.T) {
		small := cfg
		small.FrameCount = 64
		err := openFails(t, a, a.Ifindex, 0, small, nil)
		if want := "open AF_XDP socket: UMEM too small: 64 frames cannot cover the fill ring (512) plus the TX ring (512); use at least 1024 frames"; err.Error() != want {
			t.Errorf("got %q, want %q", err, want)
		}
	})
}

// withoutCaps runs fn inside ns on a thread whose effective capabilities lack drop. Capabilities belong to the
// thread, and the thread is never unlocked, so it dies with its goroutine: nothing else ever runs with the
// reduced set, and new runtime threads are cloned from a clean template thread, not from this one.
func withoutCaps(t *testing.T, h *testbed.Host, drop []int, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		if err := unix.Setns(h.NetNS(), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		for _, c := range drop {
			data[c/32].Effective &^= 1 << (c % 32)
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("drop capabilities: %v", err)
	}
}

// TestPrivMissingPrivileges opens sockets on threads without the needed capabilities: the errors must say which
// privilege is missing and how to get it, match os.ErrPermission, and leave no descriptor open.
func TestPrivMissingPrivileges(t *testing.T) {
	testenv.RequirePriv(t)
	a, _ := newVethPair(t)

	t.Run("no CAP_NET_RAW", func(t *testing.T) {
		before := testenv.OpenFDs(t)
		var err error
		withoutCaps(t, a, []int{unix.CAP_NET_RAW}, func() {
			var s *xsk.Socket
			if s, err = xsk.Open(a.Ifindex, 0, xsk.DefaultConfig()); s != nil {
				s.Close()
			}
		})
		t.Log(err)
		if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_RAW") {
			t.Errorf("got %v, want a permission error naming CAP_NET_RAW", err)
		}
		before.CheckClosed(t, "a refused Open")
	})

	t.Run("UMEM over RLIMIT_MEMLOCK without CAP_IPC_LOCK", func(t *testing.T) {
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
			t.Fatal(err)
		}
		if lim.Cur > 64<<20 { // lower the soft limit for this test only; the hard limit stays, so it can go back
			orig := lim
			lim.Cur = 8 << 20
			if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
				t.Fatal(err)
			}
			defer unix.Setrlimit(unix.RLIMIT_MEMLOCK, &orig)
		}
		cfg := xsk.DefaultConfig()
		for cfg.UMEMSize() <= lim.Cur {
			cfg.FrameCount *= 2
		}
		before := testenv.OpenFDs(t)
		var err error
		withoutCaps(t, a, []int{unix.CAP_IPC_LOCK}, func() {
			var s *xsk.Socket
			if s, err = xsk.Open(a.Ifindex, 0, cfg); s != nil {
				s.Close()
			}
		})
		t.Log(err)
		if !errors.Is(err, os.ErrPermission) || !errors.Is(err, unix.ENOBUFS) {
			t.Errorf("got %v, want a permission error wrapping ENOBUFS", err)
		}
		for _, p := range []string{"RLIMIT_MEMLOCK", "CAP_IPC_LOCK", "ulimit -l"} {
			if err != nil && !strings.Contains(err.Error(), p) {
				t.Errorf("error does not mention %s", p)
			}
		}
		before.CheckClosed(t, "a refused Open")
	})
}

// TestPrivNAPIAndBusyPoll checks SO_INCOMING_NAPI_ID and RequireNAPI on veth, and that the busy-poll options
// set and read back.
//
// Measured on Linux 6.18: an XSK on veth has NAPI id 0 even when bound after XDP was attached, because
// xsk_bind takes the id from the RX queue's NAPI link (netif_queue_set_napi), which veth never sets, although
// it runs a NAPI while XDP is on. Busy polling an XSK on veth therefore polls nothing; drivers that link their
// queues (virtio_net in the qemu lab) give a non-zero id.
func TestPrivNAPIAndBusyPoll(t *testing.T) {
	testenv.RequirePriv(t)
	a, b := newVethPair(t)

	bare, err := openIn(t, b, b.Ifindex, 0, xsk.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if id, err := bare.NAPIID(); err != nil || id != 0 {
		t.Fatalf("socket on a veth without XDP: NAPI id %d, %v; want 0 (veth has no NAPI then)", id, err)
	}
	_, err = bare.RequireNAPI()
	t.Log(err)
	if !errors.Is(err, xsk.ErrNoNAPI) || !strings.Contains(err.Error(), "attach the XDP program first") {
		t.Fatalf("RequireNAPI without a NAPI: %v, want ErrNoNAPI saying to attach XDP first", err)
	}

	s := steered(t, a, xsk.DefaultConfig()) // XDP attached before bind
	id, err := s.NAPIID()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NAPI id of an XSK bound to veth after XDP was attached: %d", id)
	if got, err := s.RequireNAPI(); got != id || (id == 0) != errors.Is(err, xsk.ErrNoNAPI) || (id != 0 && err != nil) {
		t.Fatalf("RequireNAPI = %d, %v; NAPIID = %d", got, err, id)
	}

	if err := s.SetBusyPoll(50 * time.Microsecond); err != nil {
		t.Fatal(err)
	}
	if d, err := s.BusyPoll(); err != nil || d != 50*time.Microsecond {
		t.Fatalf("SO_BUSY_POLL read back %v, %v; want 50µs", d, err)
	}
	if err := s.SetPreferBusyPoll(true); err != nil {
		t.Fatal(err)
	}
	if on, err := s.PreferBusyPoll(); err != nil || !on {
		t.Fatalf("SO_PREFER_BUSY_POLL read back %v, %v; want true", on, err)
	}
	if err := s.SetBusyPollBudget(64); err != nil {
		t.Fatal(err)
	}
	// With busy polling on, a kick polls the NAPI; it must still be a plain, allocation-free system call.
	if allocs := testing.AllocsPerRun(100, func() { s.KickRX() }); allocs != 0 {
		t.Fatalf("busy-polling KickRX: %v allocations", allocs)
	}
}
