package xsk

import (
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/napilab/napilab/internal/kernel"
)

// Socket is an AF_XDP socket bound to one queue of one device, with its UMEM and four rings mapped. The ring
// accessors, Frame and the kick methods are the per-packet API: they neither allocate nor lock. A Socket belongs
// to one goroutine (the rings are single-producer, single-consumer); only Close may be called from another once
// that goroutine has stopped using it.
type Socket struct {
	fd      int
	ifindex int
	queue   int
	subject string // "veth0 queue 0", for errors
	cfg     Config

	umem       []byte
	frameShift uint

	fill *FillRing
	comp *CompletionRing
	rx   *RXRing
	tx   *TXRing

	zeroCopy bool
	backend  Backend // nil for a kernel socket
	maps     [][]byte
	closed   bool
	kicks    kickCounters
}

// kickCounters are KickStats as atomics: a separate polling thread kicks RX while the sending thread kicks TX.
// The kick counts sit on cache lines of their own, so the two threads never share one on the normal path; the
// backpressure counters are touched only when the kernel pushes back. An increment costs nanoseconds beside the
// system call it counts, and it lets a trace of the kick syscalls be checked against what the socket did.
type kickCounters struct {
	rx atomic.Uint64
	_  [56]byte
	tx atomic.Uint64
	_  [56]byte

	again, busy, noBufs atomic.Uint64
}

// Statistics are the kernel's per-socket counters (XDP_STATISTICS).
type Statistics struct {
	RxDropped            uint64 `json:"rx_dropped"`               // received frames dropped: no frame on the fill ring, or longer than MaxRXLen
	RxInvalidDescs       uint64 `json:"rx_invalid_descs"`         // invalid descriptors on the RX ring
	TxInvalidDescs       uint64 `json:"tx_invalid_descs"`         // TX descriptors skipped as invalid (bad address, length or options)
	RxRingFull           uint64 `json:"rx_ring_full"`             // received frames dropped because the RX ring was full
	RxFillRingEmptyDescs uint64 `json:"rx_fill_ring_empty_descs"` // times the kernel wanted a frame and found the fill ring empty
	TxRingEmptyDescs     uint64 `json:"tx_ring_empty_descs"`      // times the kernel looked for frames to send and found the TX ring empty
}

// KickStats counts the kicks made (system calls, whatever their outcome) and those the kernel answered with
// backpressure rather than an error. Backpressure is normal under load and makes the kick return nil; see KickTX.
type KickStats struct {
	RX     uint64 `json:"rx"`      // recvfrom kicks: KickRX and KickRXIfNeeded calls that made the system call
	TX     uint64 `json:"tx"`      // sendto kicks: KickTX and KickTXIfNeeded calls that made the system call
	Again  uint64 `json:"eagain"`  // EAGAIN: TX budget spent, completion ring or socket send buffer full, or device queue busy
	Busy   uint64 `json:"ebusy"`   // EBUSY: the device dropped a frame; its address still appears on the completion ring
	NoBufs uint64 `json:"enobufs"` // ENOBUFS: the kernel could not allocate a buffer for a frame; it stays on the TX ring
}

// Fill is the ring of free frames the application hands to the kernel for receiving.
func (s *Socket) Fill() *FillRing { return s.fill }

// Completion is the ring on which the kernel returns frames it has finished sending.
func (s *Socket) Completion() *CompletionRing { return s.comp }

// RX is the ring of received frames.
func (s *Socket) RX() *RXRing { return s.rx }

// TX is the ring of frames to send.
func (s *Socket) TX() *TXRing { return s.tx }

// FD is the socket's file descriptor, for the XSKMAP of the XDP program that steers frames to it; -1 for an
// in-memory socket.
func (s *Socket) FD() int { return s.fd }

// Ifindex is the index of the device the socket is bound to (0 for an in-memory socket).
func (s *Socket) Ifindex() int { return s.ifindex }

// Queue is the device queue the socket is bound to.
func (s *Socket) Queue() int { return s.queue }

// Config is the configuration the socket was opened with.
func (s *Socket) Config() Config { return s.cfg }

// ZeroCopy reports whether the kernel bound the socket in zero-copy mode (XDP_OPTIONS), which ModeAuto gets only
// where the driver supports it.
func (s *Socket) ZeroCopy() bool { return s.zeroCopy }

// KickStats returns the kicks and backpressure answers counted so far.
func (s *Socket) KickStats() KickStats {
	return KickStats{RX: s.kicks.rx.Load(), TX: s.kicks.tx.Load(), Again: s.kicks.again.Load(),
		Busy: s.kicks.busy.Load(), NoBufs: s.kicks.noBufs.Load()}
}

func (s *Socket) String() string {
	if s.backend != nil {
		return "in-memory AF_XDP socket"
	}
	return "AF_XDP socket on " + s.subject
}

// Frame returns n bytes of UMEM starting at addr, a descriptor address as the kernel writes it in aligned mode
// (frame start + XDPPacketHeadroom + Config.Headroom for received frames) or any address inside a frame. The
// slice's capacity ends at the frame's end, so a frame can grow in place up to it. Frame returns nil when the
// range leaves the frame or the UMEM.
func (s *Socket) Frame(addr uint64, n uint32) []byte {
	if addr >= uint64(len(s.umem)) {
		return nil
	}
	end, limit := addr+uint64(n), s.frameBase(addr)+uint64(s.cfg.FrameSize)
	if end > limit {
		return nil
	}
	return s.umem[addr:end:limit]
}

// FrameAddr is the UMEM address of the start of frame i.
func (s *Socket) FrameAddr(i uint32) uint64 { return uint64(i) << s.frameShift }

// FrameIndex is the number of the frame that holds addr.
func (s *Socket) FrameIndex(addr uint64) uint32 { return uint32(addr >> s.frameShift) }

func (s *Socket) frameBase(addr uint64) uint64 { return addr &^ uint64(s.cfg.FrameSize-1) }

// FramePool returns a FrameStack holding frames first .. first+n-1, popped lowest first. Open gives every frame
// to the application; a pool per purpose (one for the fill ring, one for TX templates) splits them.
func (s *Socket) FramePool(first, n uint32) *FrameStack {
	st := NewFrameStack(int(n))
	for i := n; i > 0; i-- {
		st.Push(s.FrameAddr(first + i - 1))
	}
	return st
}

// FillAll moves as many frames from free onto the fill ring as it has room for and returns how many it moved.
func (s *Socket) FillAll(free *FrameStack) uint32 {
	n := s.fill.Reserve(uint32(free.Len()))
	for i := range n {
		addr, _ := free.Pop()
		s.fill.Set(i, addr)
	}
	s.fill.Submit(n)
	return n
}

// RefillFromCompletion moves sent frames from the completion ring straight back onto the fill ring, as an
// in-place echo needs (RX frame → TX ring → completion → fill), and returns how many it moved. Frames that do
// not fit on the fill ring stay on the completion ring.
func (s *Socket) RefillFromCompletion() uint32 {
	n := s.comp.Peek(s.comp.size())
	got := s.fill.Reserve(n)
	s.comp.Cancel(n - got)
	for i := range got {
		s.fill.Set(i, s.frameBase(s.comp.Get(i)))
	}
	s.fill.Submit(got)
	s.comp.Release(got)
	return got
}

// ReclaimCompletions moves sent frames from the completion ring onto pool (a TX pool whose frames are sent
// and reused while received frames go straight back to the fill ring) and returns how many it moved.
func (s *Socket) ReclaimCompletions(pool *FrameStack) uint32 {
	n := s.comp.Peek(uint32(min(pool.Cap()-pool.Len(), int(s.comp.size()))))
	for i := range n {
		pool.Push(s.frameBase(s.comp.Get(i)))
	}
	s.comp.Release(n)
	return n
}

// KickTX asks the kernel to send what the TX ring holds: sendto(fd, NULL, 0, MSG_DONTWAIT). In copy mode the
// kernel transmits inside this call, at most 32 frames per call (TX_BATCH_SIZE in net/xdp/xsk.c); in zero-copy
// mode it wakes the driver.
//
// Backpressure is not an error: EAGAIN (budget spent with frames left, completion ring or socket send buffer
// full, device queue busy: kick again), EBUSY (the device dropped a frame; it is still completed) and ENOBUFS (no
// memory for a frame: kick again) make KickTX return nil and are counted in KickStats. Errors it does return:
// ENETDOWN (device down), ENXIO (socket unbound, e.g. the device went away).
func (s *Socket) KickTX() error {
	s.kicks.tx.Add(1)
	var err error
	if s.backend != nil {
		err = s.backend.KickTX()
	} else {
		err = s.kickTX()
	}
	return s.kickResult("kick TX with sendto", err)
}

// KickRX asks the kernel to look at the fill ring and receive: recvfrom(fd, NULL, 0, MSG_DONTWAIT). With
// SO_BUSY_POLL set this is where the application busy-polls the device's NAPI; in zero-copy mode it wakes the
// driver. Backpressure is handled as in KickTX.
func (s *Socket) KickRX() error {
	s.kicks.rx.Add(1)
	var err error
	if s.backend != nil {
		err = s.backend.KickRX()
	} else {
		err = s.kickRX()
	}
	return s.kickResult("kick RX with recvfrom", err)
}

// KickTXIfNeeded kicks only when the TX ring's NEED_WAKEUP flag is set. The kernel sets it when it creates the
// TX ring and, in copy mode, never clears it, so copy-mode sockets always kick; zero-copy drivers clear it
// while they are polling the ring themselves.
func (s *Socket) KickTXIfNeeded() error {
	if !s.tx.NeedsWakeup() {
		return nil
	}
	return s.KickTX()
}

// KickRXIfNeeded kicks only when the fill ring's NEED_WAKEUP flag is set (zero-copy drivers with
// Config.NeedWakeup set it when they ran out of fill frames). In copy mode received frames arrive from the
// device's NAPI without any kick, and the flag stays clear.
func (s *Socket) KickRXIfNeeded() error {
	if !s.fill.NeedsWakeup() {
		return nil
	}
	return s.KickRX()
}

// SpinRX is the idle loop of a thread that busy-polls its socket: while the RX ring is empty and stop is unset
// it kicks RX (as KickRX), at most limit times, and returns how many kicks it made. The caller peeks the ring
// after it returns. It exists because a busy-polling server spends most of its time here: one function between
// the ring and the system call, with the kicks counted once on return rather than by an atomic add each, keeps
// an empty iteration close to the system call itself. Measured on a 2-vCPU VM, an idle xsk_rr server on veth:
// 1.40–1.65 M kicks/s through KickRX and the server's general loop, 1.70–2.16 M/s through SpinRX, 1.80–2.16 M/s
// for the C xsk_rr's loop.
func (s *Socket) SpinRX(stop *atomic.Bool, limit uint32) (uint32, error) {
	var n uint32
	var err error
	for n < limit && !s.rx.ready() && !stop.Load() {
		n++
		if s.backend != nil {
			err = s.backend.KickRX()
		} else if e := recvfromKick(s.fd); e != 0 {
			err = e
		}
		if err != nil {
			if err = s.kickResult("kick RX with recvfrom", err); err != nil {
				break
			}
		}
	}
	s.kicks.rx.Add(uint64(n))
	return n, err
}

func (s *Socket) kickResult(op string, err error) error {
	switch err {
	case nil:
		return nil
	case syscall.EAGAIN:
		s.kicks.again.Add(1)
		return nil
	case syscall.EBUSY:
		s.kicks.busy.Add(1)
		return nil
	case syscall.ENOBUFS:
		s.kicks.noBufs.Add(1)
		return nil
	}
	return kernel.NewOpError(op, s.subject, err)
}

// WaitRX blocks until the RX ring has a frame or timeout passes (negative: no limit) and reports whether a frame
// is there. It returns at once, without a system call, when one already is; otherwise it sleeps in poll(2),
// which in copy mode also pushes pending TX frames. It may return false early (a signal) and true spuriously
// (in-memory sockets); callers loop and Peek.
func (s *Socket) WaitRX(timeout time.Duration) (bool, error) {
	if s.rx.ready() {
		return true, nil
	}
	if s.backend != nil {
		return s.backend.WaitRX(timeout)
	}
	ok, err := s.waitRX(timeout)
	if err != nil {
		return false, kernel.NewOpError("wait for RX with poll", s.subject, err)
	}
	return ok, nil
}

// Stats reads the kernel's counters for the socket (XDP_STATISTICS).
func (s *Socket) Stats() (Statistics, error) {
	if s.closed {
		return Statistics{}, s.errClosed("read statistics")
	}
	if s.backend != nil {
		return s.backend.Stats()
	}
	st, err := s.stats()
	return st, kernel.NewOpError("read XDP_STATISTICS of", s.subject, err)
}

// Close unmaps the rings and the UMEM and closes the socket. It is idempotent. After Close the rings are
// empty and Frame returns nil.
func (s *Socket) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	*s.fill = *newProducer(detachedRing[uint64]())
	*s.comp = *newConsumer(detachedRing[uint64]())
	*s.rx = *newConsumer(detachedRing[Desc]())
	*s.tx = *newProducer(detachedRing[Desc]())
	s.umem = nil
	if s.backend != nil {
		return nil
	}
	return kernel.NewOpError("close", s.String(), s.closeKernel())
}

func (s *Socket) errClosed(op string) error {
	return kernel.NewOpError(op, s.subject, errors.New("socket is closed"))
}

// ErrNoNAPI says that a socket has no NAPI id, so busy polling on it cannot reach the device.
var ErrNoNAPI = errors.New("socket has no NAPI id (SO_INCOMING_NAPI_ID is 0)")

// Backend stands in for the kernel behind an in-memory socket (NewInMemory): it is told about kicks and waits
// and answers Stats. Kick methods return nil or a syscall.Errno, which the socket classifies as the kernel's.
type Backend interface {
	KickTX() error
	KickRX() error
	WaitRX(timeout time.Duration) (bool, error)
	Stats() (Statistics, error)
}

// KernelRings are the kernel's ends of an in-memory socket's rings, for a fake kernel to drive.
type KernelRings struct {
	Fill       *Consumer[uint64]
	Completion *Producer[uint64]
	RX         *Producer[Desc]
	TX         *Consumer[Desc]
}

// inMemoryStart is where an in-memory socket's ring indexes start: close enough to 2^32 that every test run on
// in-memory sockets crosses the wrap, which a kernel socket reaches only after four billion frames.
const inMemoryStart = 1<<32 - 1024

// NewInMemory returns a socket whose UMEM and rings live in ordinary Go memory and whose kicks, waits and
// statistics go to b instead of the kernel, together with the kernel's ends of its rings. It exists for
// xsktest, which joins two such sockets into a wire so that code on top of xsk is tested without privileges.
// (An internal hook package would keep it out of this API but could only hand back the socket's unexported
// parts through interface conversions; one documented constructor is the smaller price.)
//
// Like the kernel, it sets NEED_WAKEUP on the TX ring. Socket options (busy polling, NAPI id) report
// kernel.ErrNotSupported.
func NewInMemory(cfg Config, b Backend) (*Socket, *KernelRings, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if b == nil {
		return nil, nil, errors.New("in-memory socket needs a backend: pass the fake kernel that serves it")
	}
	s := &Socket{fd: -1, subject: "in-memory socket", cfg: cfg, backend: b,
		umem: make([]byte, cfg.UMEMSize()), frameShift: uint(bits.TrailingZeros32(cfg.FrameSize))}
	var k KernelRings
	var errs [4]error
	s.fill, k.Fill, errs[0] = NewRing[uint64](cfg.FillSize, inMemoryStart)
	k.Completion, s.comp, errs[1] = NewRing[uint64](cfg.CompletionSize, inMemoryStart)
	k.RX, s.rx, errs[2] = NewRing[Desc](cfg.RXSize, inMemoryStart)
	s.tx, k.TX, errs[3] = NewRing[Desc](cfg.TXSize, inMemoryStart)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, nil, fmt.Errorf("in-memory socket: %w", err) // unreachable after Validate
	}
	s.tx.setFlags(ringNeedWakeup)
	return s, &k, nil
}

func (s *Socket) errInMemory(op string) error {
	return kernel.NewOpError(op, s.subject, fmt.Errorf("%w: an in-memory socket has no kernel socket options", kernel.ErrNotSupported))
}
