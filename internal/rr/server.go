package rr

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/hist"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/usage"
	"github.com/napilab/napilab/internal/xdp"
	"github.com/napilab/napilab/internal/xsk"
)

// ServerStats counts what a server did. Every request it took off the RX ring was either replied to or refused
// for exactly one reason (the fields from Malformed to BadPayload; Refused sums them). None is dropped for want
// of TX room: requests wait on the RX ring meanwhile, and TXFull counts how often.
type ServerStats struct {
	Received uint64 `json:"received"` // frames taken off the RX ring
	Replied  uint64 `json:"replied"`  // replies handed to the TX ring

	Malformed uint64 `json:"malformed"`  // not Ethernet/IPv4-or-IPv6/UDP, or lengths that contradict each other
	OtherPort uint64 `json:"other_port"` // UDP to another port than the server's
	// BadAddress counts echo requests not sent to this device's MAC, or whose reply would carry a zero,
	// multicast or broadcast address or go back to where it came from.
	BadAddress  uint64 `json:"bad_address"`
	Short       uint64 `json:"short"`        // napilab format: a payload shorter than the napilab header
	BadSize     uint64 `json:"bad_size"`     // template replies or Verify: another payload size than the service's
	BadChecksum uint64 `json:"bad_checksum"` // an IPv4 header or UDP checksum that does not verify
	// PartialChecksum counts requests whose UDP checksum holds only the pseudo-header sum (a veth peer's kernel
	// stack sends them so) while the server keeps checksums: it cannot answer them with a valid checksum.
	PartialChecksum uint64 `json:"partial_checksum"`
	BadPayload      uint64 `json:"bad_payload"` // with Verify: payloads that failed the check

	ChecksumFixed uint64 `json:"checksum_fixed"` // partial checksums completed (RecomputeChecksums)
	TXFull        uint64 `json:"tx_full"`        // times the TX ring had no room and requests waited on the RX ring
	EmptyPolls    uint64 `json:"empty_polls"`    // RX ring peeks that found nothing
	MaxBatch      uint32 `json:"max_batch"`      // largest number of requests waiting at once (xsk_rr's max_desc)
	// Batches counts the loop iterations that took requests off the RX ring: Received/Batches is how many each
	// found (RequestsPerBatch).
	Batches uint64 `json:"batches"`

	// Stamped counts requests that carried the XDP program's arrival stamp (xdp.StampLen); Queueing is how long
	// they waited between the program and the server thread taking them off the RX ring. NoMetadata counts frames
	// the program steered without a stamp because the driver gave it no metadata area (when the server knows).
	Stamped    uint64       `json:"stamped"`
	Queueing   hist.Summary `json:"queueing"`
	NoMetadata uint64       `json:"no_metadata,omitempty"`
	// Busy is the server thread's busy time per request: from taking a batch off the RX ring to handing its
	// replies to the TX ring (the TX kick excluded), divided by the batch's requests, measured on every
	// busySampleEvery-th batch.
	Busy hist.Summary `json:"busy_per_request"`
	// GCCycles counts garbage collections while the server ran: none, since it turns GC off for the run (and
	// its loop allocates nothing); a figure above zero means something in the process forced one.
	GCCycles uint64 `json:"gc_cycles"`

	XSK   xsk.Statistics `json:"xsk_stats"`
	Kicks xsk.KickStats  `json:"xsk_kicks"`
	Notes []note.Note    `json:"notes,omitempty"`
}

// RequestsPerBatch is how many requests the loop found, on average, when it found any.
func (st *ServerStats) RequestsPerBatch() float64 {
	if st.Batches == 0 {
		return 0
	}
	return float64(st.Received) / float64(st.Batches)
}

// Refused is the number of requests refused, whatever the reason.
func (st *ServerStats) Refused() uint64 {
	return st.Malformed + st.OtherPort + st.BadAddress + st.Short + st.BadSize + st.BadChecksum +
		st.PartialChecksum + st.BadPayload
}

// notes says what the counts mean for the person running the server.
func (st *ServerStats) notes() []note.Note {
	var out []note.Note
	if st.PartialChecksum > 0 {
		out = append(out, note.Warnf("%d requests carried partial UDP checksums, as a veth peer's kernel stack "+
			"sends them, and were refused: a server that recomputes checksums answers them", st.PartialChecksum))
	}
	if st.BadChecksum > 0 {
		out = append(out, note.Warnf("%d requests failed their IPv4 or UDP checksum and were refused: frames are "+
			"corrupted on the way, or a sender writes wrong checksums", st.BadChecksum))
	}
	switch unstamped := st.Received - min(st.Stamped, st.Received); {
	case unstamped == 0:
	case st.NoMetadata > 0:
		out = append(out, note.Infof("%d of %d requests carried no arrival stamp: the driver gives XDP no "+
			"metadata area (bpf_xdp_adjust_meta failed %d times), so their queueing on the RX ring is not measured",
			unstamped, st.Received, st.NoMetadata))
	default:
		out = append(out, note.Infof("%d of %d requests carried no arrival stamp: the steering program is not "+
			"napilab's, or the kernel did not pass XDP metadata to the socket, so their queueing on the RX ring "+
			"is not measured", unstamped, st.Received))
	}
	return out
}

// busySampleEvery is how often (in batches, a power of two) the server measures its busy time: each clock
// reading costs about 25 ns on the way of a reply (two without arrival stamps, one more with), so one batch in
// 16 pays it, which still gives thousands of samples a second under load.
const busySampleEvery = 16

// ServerOptions are the parts of a server run that are not the benchmark's parameters.
type ServerOptions struct {
	// Local is this end of the flow as the link resolved it: requests to another port are refused, and template
	// replies come from it. Peer is the client template replies go to.
	Local, Peer frame.Endpoint
	// OnMaxBatch, if set, is called from the server thread whenever the RX backlog reaches a new maximum, as
	// xsk_rr prints "max_desc: N". It must not block.
	OnMaxBatch func(n uint32)
	// Checksums says whether replies get their checksums recomputed; Keep is right when every client is an
	// AF_XDP sender that writes full checksums (napilab, xsk_rr), Recompute when kernel stacks send requests.
	Checksums frame.ChecksumPolicy
	// MTU is the device's (LinkInfo.MTU): a server that expects one payload size (template replies, Verify)
	// refuses one that does not fit it. 0: unchecked.
	MTU int
	// StampFailures, if set, reads how many frames the steering program could not stamp (the link's
	// Program.StampFailures): the server's notes then say why requests came without a stamp.
	StampFailures func() (uint64, error)
	// IgnoreStamps leaves the arrival stamps unread, for a link whose program does not stamp
	// (LinkOptions.NoStamp): no clock reading per request, no cache line in front of each frame. Queueing is not
	// measured then.
	IgnoreStamps bool
}

// Server answers requests on one AF_XDP socket, inline on its RX ring: no queue or goroutine between receiving
// a request and handing its reply to the TX ring.
type Server struct {
	p     Service
	th    Threads
	o     ServerOptions
	sock  *xsk.Socket
	st    ServerStats
	stop  atomic.Bool
	ready chan struct{}
	once  sync.Once

	pool     *xsk.FrameStack // template replies: frames carrying the pre-built reply
	spill    *xsk.FrameStack // receive frames the fill ring had no room for yet
	tplLen   uint32
	tplPayld int
	noFrame  bool // answer found no free template frame: the request stays on the RX ring

	queue, busy *hist.Recorder // Queueing and Busy of the current run
	hdr         [HeaderLen]byte
	queued      [8]byte
}

// NewServer checks svc and th and prepares a server on sock, which must be bound and steered. o.Local is the
// server's end of the flow (its port is the one it answers); template replies also need o.Peer.
func NewServer(sock *xsk.Socket, svc Service, th Threads, o ServerOptions) (*Server, error) {
	if err := errors.Join(svc.Validate(), th.Validate()); err != nil {
		return nil, err
	}
	if svc.Reply == ReplyTemplate && !o.Peer.IP.IsValid() {
		return nil, kernel.Fieldf("reply", "template replies go to one client: give its address (the peer), or "+
			"use echo replies")
	}
	if svc.Reply == ReplyTemplate || svc.Verify {
		// An echo server without a peer does not know its clients' family: a payload that fits IPv4 may serve.
		if err := CheckMTU(svc.Payload, o.MTU, o.Peer.IP.Is6()); err != nil {
			return nil, err
		}
	}
	if svc.Reply == ReplyEcho && o.Local.MAC == (frame.MAC{}) {
		return nil, errors.New("rr server: this end's MAC is unknown, so no request can be checked as sent to it: " +
			"give ServerOptions.Local as the link resolved it")
	}
	cfg := sock.Config()
	if cfg.FrameCount < cfg.FillSize+cfg.TXSize {
		return nil, fmt.Errorf("rr server: the UMEM's %d frames cannot cover the fill ring (%d) and the TX ring (%d)",
			cfg.FrameCount, cfg.FillSize, cfg.TXSize)
	}
	s := &Server{p: svc, th: th, o: o, sock: sock, ready: make(chan struct{})}
	s.queue, _ = hist.New(hist.DefaultConfig())
	s.busy, _ = hist.New(hist.DefaultConfig())
	// Receive frames go to the fill ring now, not at the first Run: a zero-copy driver drops every frame, ARP
	// and neighbour discovery included, while its fill ring is empty, so a client could not even find this end.
	if err := s.prepare(); err != nil {
		return nil, err
	}
	return s, nil
}

// SetThreads changes where the next Run's loops go and what drives polling (a sweep switches polling modes over
// one socket).
func (s *Server) SetThreads(th Threads) error {
	if err := th.Validate(); err != nil {
		return err
	}
	s.th = th
	return nil
}

// Ready is closed once the server is polling (its receive frames went to the fill ring in NewServer; requests sent before
// then find no frame to land in and are dropped by the kernel), or once Run has returned.
func (s *Server) Ready() <-chan struct{} { return s.ready }

func (s *Server) markReady() { s.once.Do(func() { close(s.ready) }) }

// Run answers requests until ctx is cancelled, then returns what it did in this run. It may be called again
// (not concurrently) to serve another round on the same socket. The calling goroutine becomes the
// server thread: it is locked to its OS thread, pinned and made real-time as Params ask.
func (s *Server) Run(ctx context.Context) (ServerStats, error) {
	defer s.markReady()
	s.stop.Store(false)
	s.st = ServerStats{}
	s.queue.Reset()
	s.busy.Reset()
	var failed0 uint64
	if s.o.StampFailures != nil {
		failed0, _ = s.o.StampFailures()
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	gcBefore := usage.GCCycles() // after turning GC off, which waits for a cycle in progress
	spinners := 1
	if s.th.Poll == PollSeparate {
		spinners++
	}
	defer reserveProcs(spinners)()
	stopWatch := context.AfterFunc(ctx, func() { s.stop.Store(true) })
	defer stopWatch()

	errc := make(chan error, 1)
	go func() { // a fresh goroutine, so the thread it locks and pins dies with it
		tid, err := lockThread("rr-server", pinFor(s.th.CPUs, 0), s.th.FIFO)
		if err != nil {
			errc <- fmt.Errorf("server thread: %w", err)
			return
		}
		defer spinningLoops.spin(tid, pinFor(s.th.CPUs, 0), s.th.Colocated)()
		if s.th.Poll == PollSeparate {
			go s.poller()
		}
		s.markReady()
		errc <- s.loop()
	}()
	err := <-errc
	s.stop.Store(true)
	if st, serr := s.sock.Stats(); serr == nil {
		s.st.XSK = st
	}
	s.st.Kicks = s.sock.KickStats()
	s.st.Queueing, s.st.Busy = s.queue.Summary(), s.busy.Summary()
	s.st.GCCycles = usage.GCCycles() - gcBefore
	if s.o.StampFailures != nil {
		if n, err := s.o.StampFailures(); err == nil {
			s.st.NoMetadata = n - min(failed0, n)
		}
	}
	s.st.Notes = s.st.notes()
	return s.st, err
}

func (s *Server) poller() {
	tid, err := lockThread("rr-kick", pinFor(s.th.CPUs, 1), s.th.FIFO)
	if err != nil {
		s.stop.Store(true)
		return
	}
	defer spinningLoops.spin(tid, pinFor(s.th.CPUs, 1), s.th.Colocated)()
	for !s.stop.Load() {
		if err := s.sock.KickRX(); err != nil {
			s.stop.Store(true)
			return
		}
	}
}

// prepare gives receive frames to the fill ring and, for template replies, builds the reply into a TX pool.
func (s *Server) prepare() error {
	cfg := s.sock.Config()
	if got := s.sock.FillAll(s.sock.FramePool(0, cfg.FillSize)); got != cfg.FillSize {
		return fmt.Errorf("rr server: the fill ring took %d of %d frames", got, cfg.FillSize)
	}
	// A zero-copy driver takes fill frames only when woken: without this kick it receives nothing until Run.
	if err := s.sock.KickRX(); err != nil {
		return err
	}
	s.spill = xsk.NewFrameStack(int(cfg.FillSize))
	if s.p.Reply != ReplyTemplate {
		return nil
	}
	spec := frame.Spec{Src: s.o.Local, Dst: s.o.Peer, PayloadLen: s.p.Payload}
	tpl := make([]byte, spec.FrameLen())
	FillPad(tpl[spec.PayloadOffset():])
	n, err := frame.Build(tpl, spec)
	if err != nil {
		return fmt.Errorf("rr server: build reply template: %w", err)
	}
	if p, err := frame.Parse(tpl[:n]); err != nil || p.CheckReplyAddrs() != nil {
		return kernel.Fieldf("peer", "%s (%s) cannot receive template replies from %s (%s): both ends need unicast "+
			"addresses, and they must differ", s.o.Peer.IP, s.o.Peer.MAC, s.o.Local.IP, s.o.Local.MAC)
	}
	s.pool = s.sock.FramePool(cfg.FillSize, cfg.TXSize)
	for i := uint32(0); i < cfg.TXSize; i++ {
		copy(s.sock.Frame(s.sock.FrameAddr(cfg.FillSize+i), uint32(n)), tpl[:n])
	}
	s.tplLen, s.tplPayld = uint32(n), spec.PayloadOffset()
	return nil
}

// loop is the server thread.
func (s *Server) loop() error {
	batch := uint32(rxBatch)
	if s.p.Delay > 0 {
		batch = 1 // one request, one delay, one reply: as xsk_rr
	}
	for !s.stop.Load() {
		if err := s.serve(batch); err != nil {
			return err
		}
	}
	return nil
}

// serve is one iteration of the server loop: it answers up to batch requests waiting on the RX ring, or idles
// when there are none.
func (s *Server) serve(batch uint32) error {
	rx, tx := s.sock.RX(), s.sock.TX()
	n := rx.Peek(batch)
	if n == 0 {
		s.st.EmptyPolls++
		return s.idle()
	}
	sample := (s.st.Batches+1)%busySampleEvery == 0
	var taken int64 // the moment these requests left the RX ring, when stamps or the busy time need it
	if sample || !s.o.IgnoreStamps {
		taken = nanotime()
	}
	if n > s.st.MaxBatch {
		s.st.MaxBatch = n
		if s.o.OnMaxBatch != nil {
			s.o.OnMaxBatch(n)
		}
	}
	got := tx.Reserve(n)
	if got < n {
		// Make room and reserve the batch again as a whole: Set indexes from the latest reservation's start.
		tx.Cancel(got)
		s.reclaim()
		if err := s.sock.KickTX(); err != nil {
			return err
		}
		if got = tx.Reserve(n); got < n {
			// Answer what fits and leave the rest on the RX ring for the next round: a slow transmit (copy
			// mode on a busy or emulated CPU) delays replies, it must not drop requests.
			s.st.TXFull++
			rx.Cancel(n - got)
			if n = got; n == 0 {
				return nil
			}
		}
	}
	replies := uint32(0)
	for i := uint32(0); i < n; i++ {
		d := rx.Get(i)
		ok := s.answer(d, replies, taken)
		if s.noFrame {
			// Template replies only: no reply frame is free even after a kick. This request and the rest
			// wait on the RX ring for the next round, as when the TX ring is full.
			s.noFrame = false
			s.st.TXFull++
			rx.Cancel(n - i)
			n = i
			break
		}
		s.st.Received++
		if !ok {
			s.recycle(d.Addr)
			continue
		}
		replies++
	}
	rx.Release(n)
	tx.Cancel(got - replies)
	tx.Submit(replies)
	s.st.Replied += uint64(replies)
	if n > 0 {
		s.st.Batches++
	}
	var handed int64
	if sample = sample && n > 0; sample {
		handed = nanotime()
	}
	if replies > 0 {
		if err := s.kickTX(); err != nil {
			return err
		}
	}
	if sample {
		s.busy.Record((handed - taken) / int64(n))
	}
	s.reclaim()
	return nil
}

// idle runs when the RX ring is empty: replies the kernel left on the TX ring (a copy-mode kick sends at most 32
// and answers EAGAIN for the rest), completions back into circulation, and the poll driver's kick. With nothing
// left to send, the inline driver then spins on the RX ring (xsk.SpinRX) for up to idleSpin kicks: the empty
// iteration the next request waits out is then one ring check and one system call, as in the C xsk_rr.
func (s *Server) idle() error {
	if s.sock.TX().Pending() > 0 {
		if err := s.kickTX(); err != nil {
			return err
		}
	}
	s.reclaim()
	if s.th.Poll != PollInline || s.sock.TX().Pending() > 0 || s.spill.Len() > 0 {
		return kickRX(s.sock, s.th.Poll)
	}
	kicks, err := s.sock.SpinRX(&s.stop, idleSpin)
	s.st.EmptyPolls += uint64(kicks)
	return err
}

// idleSpin bounds the kicks of one idle spin, so that completions a zero-copy driver returns while the server
// idles go back to the fill ring within about idleSpin × 0.6 µs.
const idleSpin = 64

// answer turns the request in d into the i-th slot of the current TX reservation, or reports false when the
// request is refused (counted by reason; the caller then recycles its frame). The checks go cheapest first, and
// a request is answered only when its reply is a valid frame: checksums that verify, unicast addresses.
func (s *Server) answer(d xsk.Desc, i uint32, taken int64) bool {
	queued := int64(NotQueued)
	if !s.o.IgnoreStamps {
		if ts, ok := xdp.TakeStamp(s.sock.Frame(d.Addr-xdp.StampLen, xdp.StampLen)); ok {
			queued = max(taken-ts, 0)
			s.st.Stamped++
			s.queue.Record(queued)
		}
	}
	pkt, err := frame.Parse(s.sock.Frame(d.Addr, d.Len))
	if err != nil {
		s.st.Malformed++
		return false
	}
	if pkt.UDP().DstPort() != s.o.Local.Port {
		s.st.OtherPort++
		return false
	}
	pl := pkt.Payload()
	switch {
	case s.p.Format == FormatNapilab && len(pl) < HeaderLen:
		s.st.Short++
		return false
	case (s.p.Reply == ReplyTemplate || s.p.Verify) && len(pl) != s.p.Payload:
		// An echo answers whatever size it is asked; a template reply and a verified payload have a fixed one.
		s.st.BadSize++
		return false
	}
	if s.p.Reply == ReplyTemplate {
		return s.answerTemplate(pkt, d, i, queued)
	}
	if pkt.Ethernet().Dst() != s.o.Local.MAC || pkt.CheckReplyAddrs() != nil {
		s.st.BadAddress++
		return false
	}
	fixed, err := pkt.Answer(s.o.Checksums)
	if err != nil {
		s.refuseChecksum(err)
		return false
	}
	if s.p.Verify && !s.payloadOK(pl) { // after the checksums: a payload damaged on the way is a checksum error
		s.st.BadPayload++
		return false
	}
	if fixed {
		s.st.ChecksumFixed++
	}
	if queued != NotQueued && s.p.Format == FormatNapilab {
		PutQueueing(&s.queued, queued)
		_ = pkt.WritePayload(QueueingOffset, s.queued[:]) // fits: the payload holds a header
	}
	s.delay()
	s.sock.TX().Set(i, xsk.Desc{Addr: d.Addr, Len: uint32(pkt.Len())})
	return true
}

// answerTemplate answers with a frame of the pre-built reply, which goes to the configured peer whoever asked;
// the request's checksums are checked all the same, so a corrupted request is not counted as answered.
func (s *Server) answerTemplate(pkt frame.Packet, d xsk.Desc, i uint32, queued int64) bool {
	if err := pkt.CheckRequest(s.o.Checksums); err != nil {
		s.refuseChecksum(err)
		return false
	}
	if s.p.Verify && !s.payloadOK(pkt.Payload()) {
		s.st.BadPayload++
		return false
	}
	addr, ok := s.pool.Pop()
	if !ok {
		// Every template frame is on the TX or completion ring: push the TX ring and take back what was sent.
		if s.sock.KickTX() == nil {
			s.reclaim()
			addr, ok = s.pool.Pop()
		}
		if !ok {
			s.noFrame = true // the loop leaves the request on the RX ring
			return false
		}
	}
	s.delay()
	if s.p.Format == FormatNapilab {
		// The napilab header carries the request's identity back, with the queueing filled in; the padding is
		// the template's own, as an xsk_rr payload is (which the template carries whole).
		reply, err := frame.Parse(s.sock.Frame(addr, s.tplLen))
		if err == nil {
			copy(s.hdr[:], pkt.Payload())
			if queued != NotQueued {
				PutQueueing((*[8]byte)(s.hdr[QueueingOffset:]), queued)
			}
			err = reply.WritePayload(0, s.hdr[:])
		}
		if err != nil { // the template parsed when built; cannot happen
			s.pool.Push(addr)
			s.st.Malformed++
			return false
		}
	}
	s.recycle(d.Addr)
	s.sock.TX().Set(i, xsk.Desc{Addr: addr, Len: s.tplLen})
	return true
}

func (s *Server) refuseChecksum(err error) {
	if err == frame.ErrUDPPartial {
		s.st.PartialChecksum++
		return
	}
	s.st.BadChecksum++
}

func (s *Server) payloadOK(pl []byte) bool {
	if s.p.Format == FormatNapilab {
		_, err := ParseHeader(pl)
		return err == nil && CheckPad(pl[HeaderLen:]) == nil
	}
	return CheckPad(pl) == nil
}

// delay is the server's simulated processing time before each reply: a busy-wait, or with DelaySleeps a sleep
// as xsk_rr's usleep.
func (s *Server) delay() {
	if s.p.Delay <= 0 {
		return
	}
	if s.p.DelaySleeps {
		time.Sleep(s.p.Delay)
		return
	}
	for end := nanotime() + int64(s.p.Delay); nanotime() < end; {
	}
}

// recycle puts a receive frame back on the fill ring, or aside until the ring has room: the kernel publishes a
// frame on the RX ring before it releases the fill slot the frame came from.
func (s *Server) recycle(addr uint64) {
	addr = s.sock.FrameAddr(s.sock.FrameIndex(addr))
	f := s.sock.Fill()
	if f.Reserve(1) == 1 {
		f.Set(0, addr)
		f.Submit(1)
		return
	}
	s.spill.Push(addr) // cannot overflow: it holds at most the frames of the fill ring
}

// reclaim returns sent frames: echoed request frames to the fill ring, template frames to their pool; and frames
// set aside for the fill ring.
func (s *Server) reclaim() {
	if s.spill.Len() > 0 {
		s.sock.FillAll(s.spill)
	}
	if s.pool != nil {
		s.sock.ReclaimCompletions(s.pool)
		return
	}
	s.sock.RefillFromCompletion()
}

func (s *Server) kickTX() error {
	if s.sock.Config().NeedWakeup {
		return s.sock.KickTXIfNeeded()
	}
	return s.sock.KickTX()
}
