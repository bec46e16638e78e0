package rr

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/hist"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/usage"
	"github.com/napilab/napilab/internal/xsk"
)

// rxBatch is how many replies the receive loop takes off the RX ring at once when no processing delay applies.
const rxBatch = 64

// sendBurst bounds how many overdue requests the inline sender sends before it looks at the RX ring again.
const sendBurst = 32

// trackerWindow is how far (in requests) a napilab-format reply may arrive out of order and still be paired.
const trackerWindow = 1 << 16

// fifoWindow is the xsk_rr format's outstanding-request window: the original's 1024.
const fifoWindow = 1024

// ErrBadPacket is xsk_rr's "bad packet content": with Verify set, an xsk_rr-format reply failed the check.
var ErrBadPacket = errors.New("bad packet content: a reply failed verification (ethertype, UDP port, length or payload)")

// ErrOutstandingFull is xsk_rr's "outstanding array full": 1024 xsk_rr-format requests are unanswered, so the
// first-in-first-out pairing cannot go on.
var ErrOutstandingFull = errors.New("outstanding array full: 1024 requests unanswered (the load exceeds what the server answers)")

// ClientOptions are the parts of a client run that are not the benchmark's parameters.
type ClientOptions struct {
	Local, Peer frame.Endpoint // the flow as it appears on the wire (see Resolve)
	// UsableCPUs is the number of CPUs the process may run on; with Threads.Colocated it decides the sender
	// placement.
	UsableCPUs int
	// OnInterval, if set, receives each interval report on the reporter goroutine.
	OnInterval func(Interval)
	// Account lists tasks and IRQs whose CPU cost belongs to the run (a NAPI kthread, the queue's IRQ).
	Account usage.Spec
	// XskRRVersion selects the spelling of the xsk_rr report lines.
	XskRRVersion hist.XskRRVersion
	// MTU is the device's (LinkInfo.MTU); a request that does not fit is refused by NewClient. 0: unchecked.
	MTU int
	// StopSending, when closed, ends the run gracefully: nothing more is sent, the replies still due are awaited
	// up to the reply timeout, and the result counts as stopped early. Cancelling Run's context instead ends the
	// run at once, leaving requests in flight counted as lost. (xsk_rr runs until SIGINT; its final report
	// must not count the requests of the last round trip as lost.)
	StopSending <-chan struct{}
}

// LoopGaps are the receive loop's idle iterations over the measured window (nothing sent, received or
// reported) that took Min or longer. Such an iteration is a look at the RX ring and a kick: about a µs, or the
// socket's SO_BUSY_POLL time with busy polling on (Min includes it). One that takes tens of µs or more is the
// spinning thread away from its ring: preempted by another task, interrupted, its vCPU descheduled by the
// hypervisor (which the guest's own CPU accounting does not see), or a kick that met that much kernel work.
// Replies arriving and requests falling due meanwhile wait it out, so the longest gap bounds what the run's tail
// can say about the network. Iterations that worked are not counted, so a saturated loop shows few gaps.
type LoopGaps struct {
	Min     time.Duration `json:"min_ns"`
	Count   uint64        `json:"count"`
	Total   time.Duration `json:"total_ns"`
	Longest time.Duration `json:"longest_ns"`
}

// loopGapMin is LoopGaps.Min without busy polling: far above an idle iteration (a ring check and a kick, 0.5–1 µs
// on a 2-vCPU VM), below the Go runtime's hand-off of a spinner (33–54 µs measured there).
const loopGapMin = 20 * time.Microsecond

// add counts a gap of d ns. Without a preemption check (nosplit), so that the noise probe's loop, which calls it,
// cannot yield to the Go scheduler at a gap.
//
//go:nosplit
func (g *LoopGaps) add(d int64) {
	g.Count++
	g.Total += time.Duration(d)
	g.Longest = max(g.Longest, time.Duration(d))
}

// ClientResult is everything a client run measured.
type ClientResult struct {
	Placement Placement `json:"placement"`

	Sent       uint64 `json:"sent"`       // requests handed to the TX ring (warm-up included)
	Answered   uint64 `json:"answered"`   // requests answered (warm-up included)
	Lost       uint64 `json:"lost"`       // sent and never answered in time
	Measured   uint64 `json:"measured"`   // replies recorded in the latency histograms (after warm-up)
	Duplicates uint64 `json:"duplicates"` // extra replies to an answered request (napilab format)
	Reordered  uint64 `json:"reordered"`  // replies that overtook a later request's reply (napilab format)
	Late       uint64 `json:"late"`       // replies beyond the reorder window (napilab format; counted as lost)
	Stray      uint64 `json:"stray"`      // replies from another run, or with nothing outstanding
	Malformed  uint64 `json:"malformed"`  // frames that failed to parse or check
	Skipped    uint64 `json:"skipped"`    // due times dropped under --catch-up skip
	NoTXFrame  uint64 `json:"no_tx_frame"`
	// Behind counts open-loop requests due before the end of the duration that were never sent: the sender
	// could not keep up, and the duration ends the sending on time rather than after it caught up.
	Behind uint64 `json:"behind"`
	// LoadNotKept says that an open-loop run sent less than 99% of the requests its schedule had due in the
	// measured window (a note says by how much).
	LoadNotKept bool `json:"load_not_kept,omitempty"`

	TargetRate float64       `json:"target_rate"`  // requests/s; 0 for the closed loop
	SendRate   float64       `json:"send_rate"`    // requests/s achieved over the measured window
	ReplyRate  float64       `json:"reply_rate"`   // measured replies/s
	Window     time.Duration `json:"window_ns"`    // the measured window
	Elapsed    time.Duration `json:"elapsed_ns"`   // the whole run, warm-up and drain included
	LastSend   time.Duration `json:"last_send_ns"` // when the last request went out, since the first
	// Silent is how long before its last request the peer stopped answering, when that is longer than the
	// reply timeout (a server that died or stopped mid-run); 0 otherwise. See Unanswered.
	Silent       time.Duration `json:"silent_ns,omitempty"`
	StoppedEarly bool          `json:"stopped_early,omitempty"`

	Latency         hist.Summary `json:"latency"`           // from the scheduled send time
	LatencyFromSend hist.Summary `json:"latency_from_send"` // from the actual send time
	// The round trip from the actual send, split (napilab format) by the time each request waited on the
	// server's RX ring, as the server measured it from the XDP program's arrival stamp (see xdp.StampLen for
	// where that moment lies: on veth, in the sender's softirq), and the rest: sending, the way there and back,
	// the server's work and this end's receiving. Unsplit counts measured replies the server could not say it
	// for; both summaries are empty when none could.
	ServerQueueing hist.Summary            `json:"server_queueing,omitzero"`
	RestOfTrip     hist.Summary            `json:"rest_of_round_trip,omitzero"`
	Unsplit        uint64                  `json:"unsplit,omitempty"`
	SenderLateness hist.Summary            `json:"sender_lateness"` // actual minus scheduled send time
	LoopGaps       LoopGaps                `json:"loop_gaps"`
	XskRRPN        [4]hist.XskRRPercentile `json:"xsk_rr_pn"` // the original's "pN" over the run
	Intervals      []Interval              `json:"intervals,omitempty"`
	Usage          *usage.Usage            `json:"usage,omitempty"`
	CPUPerRequest  time.Duration           `json:"cpu_per_request_ns"`
	GCCycles       uint64                  `json:"gc_cycles"`
	XSK            xsk.Statistics          `json:"xsk_stats"`
	Kicks          xsk.KickStats           `json:"xsk_kicks"`
	Notes          []note.Note             `json:"notes,omitempty"`

	// LatencyHDR is Latency's whole histogram in HdrHistogram's V2 compressed base64 form (hist.Recorder.Encode),
	// for percentile plots and .hgrm files.
	LatencyHDR string `json:"latency_hdr,omitempty"`
}

// ErrUnanswered matches the error Unanswered returns.
var ErrUnanswered = errors.New("the peer did not answer")

// Unanswered says when a run's numbers describe a peer that did not answer rather than a round trip: none of
// its requests was answered, or the peer fell silent for longer than the reply timeout before the last request.
// It returns nil for a run answered throughout; the error matches ErrUnanswered.
func (r *ClientResult) Unanswered() error {
	switch {
	case r.Sent > 0 && r.Answered == 0:
		return &kernel.SentenceError{Kind: ErrUnanswered, Msg: fmt.Sprintf("none of the %d requests was "+
			"answered: no server answers at the peer on this flow, or the server stopped answering", r.Sent)}
	case r.Silent > 0:
		return &kernel.SentenceError{Kind: ErrUnanswered, Msg: fmt.Sprintf("the server stopped answering %s "+
			"before the last request (%d of %d requests unanswered), so the run measured a peer that went away",
			r.Silent.Round(time.Millisecond), r.Lost, r.Sent)}
	}
	return nil
}

// shared is the state the client's threads exchange. Everything else belongs to exactly one thread.
type shared struct {
	sent     atomic.Uint64 // requests submitted; the next napilab sequence number
	sendDone atomic.Bool   // the sender has sent its last request
	doneOnce sync.Once
	doneCh   chan struct{} // closed with sendDone, for the goroutine that samples CPU usage
	lastSend atomic.Int64  // nanotime of the latest send
	stop     atomic.Bool   // end the run now (signal or fatal error)
	cut      atomic.Bool   // ClientOptions.StopSending was closed: send nothing more, then drain
	fatal    atomic.Pointer[error]
}

// finishSending marks the last request sent.
func (sh *shared) finishSending() {
	sh.sendDone.Store(true)
	sh.doneOnce.Do(func() {
		if sh.doneCh != nil {
			close(sh.doneCh)
		}
	})
}

func (sh *shared) fail(err error) {
	if sh.fatal.CompareAndSwap(nil, &err) {
		sh.stop.Store(true)
	}
}

// Client measures round trips over one AF_XDP socket.
type Client struct {
	p    Workload
	th   Threads
	o    ClientOptions
	sock *xsk.Socket
	tx   *txFrames // prepared by NewClient; every run reuses the frames where they are
}

// NewClient checks w and th and prepares a client on sock, which must be bound and steered (an XDP program
// redirects replies to it). The client owns sock's rings until Run returns.
func NewClient(sock *xsk.Socket, w Workload, th Threads, o ClientOptions) (*Client, error) {
	if err := checkClient(w, th); err != nil {
		return nil, err
	}
	cfg := sock.Config()
	if cfg.FrameCount < cfg.FillSize+cfg.TXSize {
		return nil, fmt.Errorf("rr client: the UMEM's %d frames cannot cover the fill ring (%d) and the TX ring (%d)",
			cfg.FrameCount, cfg.FillSize, cfg.TXSize)
	}
	if o.Local.IP.Is4() != o.Peer.IP.Is4() || !o.Local.IP.IsValid() || !o.Peer.IP.IsValid() {
		return nil, errors.New("rr client: local and peer need IP addresses of one family")
	}
	if err := CheckMTU(w.Payload, o.MTU, o.Peer.IP.Is6()); err != nil {
		return nil, err
	}
	spec := frame.Spec{Src: o.Local, Dst: o.Peer, PayloadLen: w.Payload}
	if uint32(spec.FrameLen()) > cfg.MaxRXLen() {
		return nil, fmt.Errorf("rr client: a %d-byte frame does not fit the socket's %d-byte receive frames; use a smaller payload",
			spec.FrameLen(), cfg.MaxRXLen())
	}
	if o.UsableCPUs < 1 {
		o.UsableCPUs = 1
	}
	c := &Client{p: w, th: th, o: o, sock: sock}
	// The receive frames go to the fill ring now, not at the first Run: a zero-copy driver drops every frame,
	// ARP and neighbour discovery included, while its fill ring is empty.
	tx, err := c.prepareFrames()
	if err != nil {
		return nil, err
	}
	c.tx = &tx
	return c, nil
}

// Placement returns where Run will put the spinning threads, and a warning when they outnumber the CPUs.
func (c *Client) Placement() Placement { return placeClient(&c.p, &c.th, c.o.UsableCPUs) }

// timeline is the run's schedule on the nanotime clock.
type timeline struct {
	t0           int64 // first request due
	measureStart int64 // first measured request due (t0 + warm-up)
	sendEnd      int64 // no request is due at or after this (math.MaxInt64: count-limited)
}

// Set changes the workload and threads of the next Run (a sweep runs many loads over one socket). The payload
// size and format must stay as they were: the request frames are built for them.
func (c *Client) Set(w Workload, th Threads) error {
	if w.Payload != c.p.Payload || w.Format != c.p.Format {
		return errors.New("rr client: a client keeps its payload size and format across runs")
	}
	if err := checkClient(w, th); err != nil {
		return err
	}
	c.p, c.th = w, th
	return nil
}

func checkClient(w Workload, th Threads) error {
	if err := errors.Join(w.Validate(), th.Validate()); err != nil {
		return err
	}
	if th.Sender == SenderThread && (!w.OpenLoop() || w.Windowed()) {
		return kernel.Fieldf("sender", "thread needs an open loop without a window (a closed loop or a paced "+
			"window sends from the receive loop, which sees the replies): use inline, or set a period or rate alone")
	}
	return nil
}

// Run sends requests and measures replies until the count or duration is reached, ctx is cancelled, or the
// peer stops answering for the reply timeout. A client may run several times on its socket; each run has its own
// run id, so late replies to an earlier run are counted as stray, never paired. A peer that never answers ends the run after the timeout with
// every request lost; that is a result, not an error.
func (c *Client) Run(ctx context.Context) (*ClientResult, error) {
	pl := c.Placement()
	res := &ClientResult{Placement: pl, TargetRate: c.p.Rate()}
	res.Notes = note.Merge(res.Notes, pl.Notes...)

	tx := *c.tx

	defer reserveProcs(pl.Spinners)()
	// GC must not run while measuring; the per-packet path allocates nothing, so turning it off costs nothing.
	// Count the cycles only after: turning GC off waits for a cycle in progress to finish, which must not count
	// as one during the run.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	gcBefore := usage.GCCycles()

	sh := &shared{doneCh: make(chan struct{})}
	now := nanotime()
	tl := timeline{t0: now, measureStart: now + int64(c.p.Warmup), sendEnd: 1<<63 - 1}
	if c.p.Duration > 0 {
		tl.sendEnd = tl.measureStart + int64(c.p.Duration)
	}

	rep, err := newReporter(c.p, c.o, tl.measureStart)
	if err != nil {
		return nil, err
	}
	snd := &sender{sock: c.sock, pool: tx.pool, frameLen: tx.frameLen, p: &c.p, sh: sh, tl: tl,
		run: rand.Uint32(), lateness: rep.lateness}
	if c.p.Format == FormatXskRR {
		snd.fifo = newFIFO(fifoWindow)
	}
	rcv := &receiver{sock: c.sock, p: &c.p, poll: c.th.Poll, sh: sh, tl: tl, snd: snd, rep: rep, whole: rep.run, run: snd.run,
		port: c.o.Local.Port, payloadLen: c.p.Payload}
	if c.p.Format == FormatNapilab {
		rcv.tracker = NewTracker(trackerWindow)
	}
	// An idle iteration's RX kick busy-polls for up to SO_BUSY_POLL by design: that is not the thread away.
	busy, _ := c.sock.BusyPoll() // 0 where the socket cannot say (in memory)
	rcv.gaps.Min = loopGapMin + busy

	// Stop on cancellation without touching the spinning threads: they poll sh.stop.
	stopWatch := context.AfterFunc(ctx, func() { sh.stop.Store(true) })
	defer stopWatch()

	var wg sync.WaitGroup
	var tids threadIDs
	if pl.Sender == SenderThread {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tid, err := lockThread("rr-send", pinFor(c.th.CPUs, 1), c.th.FIFO)
			tids.set("sender", tid)
			defer spinningLoops.spin(tid, pinFor(c.th.CPUs, 1), c.th.Colocated)()
			if err != nil {
				sh.fail(fmt.Errorf("sender thread: %w", err))
				return
			}
			snd.loop()
		}()
	}
	if c.th.Poll == PollSeparate {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tid, err := lockThread("rr-kick", pinFor(c.th.CPUs, 2), c.th.FIFO)
			tids.set("poller", tid)
			defer spinningLoops.spin(tid, pinFor(c.th.CPUs, 2), c.th.Colocated)()
			if err != nil {
				sh.fail(fmt.Errorf("poller thread: %w", err))
				return
			}
			poll(c.sock, sh)
		}()
	}

	// The receive loop runs on its own locked thread; this goroutine takes the CPU snapshots around the
	// measured window, so the measuring threads never read /proc.
	rcvDone := make(chan struct{})
	go func() {
		defer close(rcvDone)
		tid, err := lockThread("rr-recv", pinFor(c.th.CPUs, 0), c.th.FIFO)
		tids.set("receiver", tid)
		defer spinningLoops.spin(tid, pinFor(c.th.CPUs, 0), c.th.Colocated)()
		if err != nil {
			sh.fail(fmt.Errorf("receive thread: %w", err))
			return
		}
		rcv.loop(pl.Sender == SenderInline)
	}()
	if c.o.StopSending != nil {
		go func() {
			select {
			case <-c.o.StopSending:
				sh.cut.Store(true)
			case <-rcvDone:
			}
		}()
	}

	before, after := c.accountWindow(sh, tl, &tids, rcvDone)
	<-rcvDone
	sh.stop.Store(true) // the receive loop is done: end the helper threads
	wg.Wait()
	if rcv.cur != nil {
		rcv.seal(rcv.cur, nanotime()) // the last, partial interval counts up to the end of the run
	}
	rep.finish(rcv.cur)

	if errp := sh.fatal.Load(); errp != nil && !errors.Is(*errp, context.Canceled) {
		return nil, *errp
	}

	end := nanotime()
	res.Elapsed = time.Duration(end - tl.t0)
	res.StoppedEarly = ctx.Err() != nil || sh.cut.Load()
	res.Sent = sh.sent.Load()
	res.Skipped = snd.pacer.Skipped
	res.NoTXFrame = snd.noFrame
	res.Behind = snd.behind
	if last := sh.lastSend.Load(); last > 0 {
		res.LastSend = time.Duration(last - tl.t0)
	}
	res.Stray, res.Malformed = rcv.stray, rcv.malformed
	if rcv.tracker != nil {
		t := rcv.tracker
		res.Answered, res.Duplicates, res.Reordered, res.Late = t.Answered, t.Duplicates, t.Reordered, t.Late
	} else {
		res.Answered = snd.fifo.done.Load()
	}
	res.Lost = res.Sent - min(res.Answered, res.Sent)
	if last := sh.lastSend.Load(); last > 0 && res.Lost > 0 && res.Answered > 0 {
		if silent := time.Duration(last - rcv.lastReply); silent > c.p.Timeout {
			res.Silent = silent
		}
	}
	run := rep.run
	res.Measured = run.fromScheduled.Count()
	res.Latency = run.fromScheduled.Summary()
	if res.LatencyHDR, err = run.fromScheduled.Encode(); err != nil {
		res.Notes = append(res.Notes, note.Warnf("the latency histogram is missing from the result: %v", err))
	}
	res.LatencyFromSend = run.fromSent.Summary()
	res.ServerQueueing, res.RestOfTrip, res.Unsplit = run.queueing.Summary(), run.rest.Summary(), run.unsplit
	switch {
	case c.p.Format != FormatNapilab || res.Unsplit == 0:
	case res.Unsplit == res.Measured:
		res.Notes = append(res.Notes, note.Infof("the server's queueing is not measured: its replies carried no "+
			"queueing time, because it had no arrival stamps (its XDP program could not add metadata on this driver, "+
			"or the kernel did not pass it on; see the server's notes)"))
	default:
		res.Notes = append(res.Notes, note.Infof("%d of %d measured replies carried no server queueing time (the "+
			"server had no arrival stamp for them); the split of the round trip covers the others",
			res.Unsplit, res.Measured))
	}
	res.SenderLateness = rep.lateness.Summary()
	res.LoopGaps = rcv.gaps
	res.XskRRPN = run.compat.Percentiles()
	res.Intervals = rep.intervals
	res.GCCycles = usage.GCCycles() - gcBefore

	window := tl.sendEnd
	if snd.lastMeasured > 0 && (window == 1<<63-1 || res.StoppedEarly) {
		window = snd.lastMeasured
	}
	if w := window - tl.measureStart; w > 0 {
		res.Window = time.Duration(w)
		res.SendRate = float64(snd.measuredSent) / res.Window.Seconds()
		res.ReplyRate = float64(res.Measured) / res.Window.Seconds()
	}
	if c.p.OpenLoop() && snd.started && tl.sendEnd != 1<<63-1 && !res.StoppedEarly {
		// The schedule's requests in the measured window against those sent: a sender that cannot keep up is
		// stopped by the duration, and the run says so rather than report the target as the rate.
		due := snd.pacer.DueBefore(tl.sendEnd) - snd.pacer.DueBefore(tl.measureStart)
		if float64(snd.measuredSent) < 0.99*float64(due) {
			res.LoadNotKept = true
			res.Notes = append(res.Notes, note.Warnf("the load was not kept: %d of the %d requests due in the "+
				"measured window were sent (%.0f of %.0f requests/s; %d never sent, %d skipped, %d without a TX "+
				"frame), so the latencies are those of a lighter load; the sender's lateness shows how far behind "+
				"it fell", snd.measuredSent, due, res.SendRate, res.TargetRate, res.Behind, res.Skipped, res.NoTXFrame))
		}
	}
	if before != nil && after != nil {
		u := usage.Sub(*before, *after)
		res.Usage = &u
		res.CPUPerRequest = u.CPUPerOp(res.Measured)
	}
	if st, err := c.sock.Stats(); err == nil {
		res.XSK = st
	}
	res.Kicks = c.sock.KickStats()
	if res.GCCycles > 0 {
		res.Notes = append(res.Notes, note.Warnf("%d GC cycles ran during the run: latencies may include GC pauses",
			res.GCCycles))
	}
	return res, nil
}

// accountWindow takes CPU snapshots when the measured window starts and when sending ends. It runs on the
// calling goroutine, which sleeps in between and so does not compete with the spinning threads.
func (c *Client) accountWindow(sh *shared, tl timeline, tids *threadIDs, rcvDone <-chan struct{}) (before, after *usage.Snapshot) {
	take := func() *usage.Snapshot {
		spec := c.o.Account
		spec.Threads = tids.snapshot()
		s, err := usage.Take(spec)
		if err != nil {
			return nil
		}
		return &s
	}
	if !waitUntil(tl.measureStart, sh, rcvDone) {
		return nil, nil
	}
	before = take()
	select {
	case <-sh.doneCh:
	case <-rcvDone:
	}
	return before, take()
}

// waitUntil sleeps until nanotime t, or returns false if the run ends first.
func waitUntil(t int64, sh *shared, done <-chan struct{}) bool {
	for {
		d := t - nanotime()
		if d <= 0 {
			return true
		}
		if sh.stop.Load() {
			return false
		}
		select {
		case <-done:
			return false
		case <-time.After(min(time.Duration(d), 10*time.Millisecond)):
		}
	}
}

type txFrames struct {
	pool     *xsk.FrameStack
	frameLen uint32
}

// prepareFrames gives the first FillSize frames to the fill ring and writes the request template into the
// next TXSize frames, which become the TX pool.
func (c *Client) prepareFrames() (txFrames, error) {
	cfg := c.sock.Config()
	spec := frame.Spec{Src: c.o.Local, Dst: c.o.Peer, PayloadLen: c.p.Payload}
	tpl := make([]byte, spec.FrameLen())
	FillPad(tpl[spec.PayloadOffset():])
	if c.p.Format == FormatNapilab {
		clear(tpl[spec.PayloadOffset() : spec.PayloadOffset()+HeaderLen]) // stamped per request
	}
	n, err := frame.Build(tpl, spec)
	if err != nil {
		return txFrames{}, fmt.Errorf("rr client: build request template: %w", err)
	}
	rx := c.sock.FramePool(0, cfg.FillSize)
	if got := c.sock.FillAll(rx); got != cfg.FillSize {
		return txFrames{}, fmt.Errorf("rr client: the fill ring took %d of %d frames", got, cfg.FillSize)
	}
	// A zero-copy driver takes fill frames only when woken: without this kick it receives nothing until Run.
	if err := c.sock.KickRX(); err != nil {
		return txFrames{}, err
	}
	pool := c.sock.FramePool(cfg.FillSize, cfg.TXSize)
	for i := uint32(0); i < cfg.TXSize; i++ {
		copy(c.sock.Frame(c.sock.FrameAddr(cfg.FillSize+i), uint32(n)), tpl[:n])
	}
	return txFrames{pool: pool, frameLen: uint32(n)}, nil
}

// threadIDs collects the kernel thread ids of the spinning loops, for CPU accounting per thread.
type threadIDs struct {
	mu  sync.Mutex
	ids map[string]int
}

func (t *threadIDs) set(role string, tid int) {
	if tid <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ids == nil {
		t.ids = map[string]int{}
	}
	t.ids[role] = tid
}

func (t *threadIDs) snapshot() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.ids))
	for k, v := range t.ids {
		out[k] = v
	}
	return out
}

// pinFor returns the CPU for the i-th spinning thread (receiver, sender, poller), or -1 for no pinning.
func pinFor(cpus []int, i int) int {
	if i < len(cpus) {
		return cpus[i]
	}
	return -1
}

// poll kicks the socket continuously from a dedicated thread (xsk_rr -t): with busy polling enabled on the
// socket each kick is one busy-poll pass over the device's NAPI.
func poll(s *xsk.Socket, sh *shared) {
	for !sh.stop.Load() {
		if err := s.KickRX(); err != nil {
			sh.fail(err)
			return
		}
	}
}
