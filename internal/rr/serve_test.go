package rr

import (
	"testing"
	"time"

	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/xdp"
	"github.com/napilab/napilab/internal/xsk"
)

// serveBench is a server on an in-memory socket whose kernel side the benchmark plays by hand: it puts requests
// on the RX ring (copied into fill frames, stamped as the XDP program stamps them), lets the server loop run
// iterations, then takes the replies off the TX ring and completes them. Only the server's iterations are timed,
// so the figures are the server's own work per request, with the frames in this CPU's cache (on a real link the
// kernel writes them from another CPU's cache: ServerStats.Busy measures that).
type serveBench struct {
	srv *Server
	k   *xsk.KernelRings
	req []byte
}

// nopKernel answers kicks at once and does nothing: the benchmark moves the frames itself, outside the timing.
type nopKernel struct{}

func (nopKernel) KickTX() error                      { return nil }
func (nopKernel) KickRX() error                      { return nil }
func (nopKernel) WaitRX(time.Duration) (bool, error) { return false, nil }
func (nopKernel) Stats() (xsk.Statistics, error)     { return xsk.Statistics{}, nil }
func (nopKernel) String() string                     { return "the benchmark's kernel" }
func newServeBench(tb testing.TB, reply ReplyStyle, format Format, payload int, dropIn bool) *serveBench {
	tb.Helper()
	cfg := memConfig()
	cfg.TXSize, cfg.CompletionSize = 512, 512
	sock, k, err := xsk.NewInMemory(cfg, nopKernel{})
	if err != nil {
		tb.Fatal(err)
	}
	ce, se := endpoints(false)
	svc := DefaultService()
	svc.Reply, svc.Format, svc.Payload = reply, format, payload
	o := ServerOptions{Local: se, Peer: ce}
	if dropIn { // as cmd/xsk_rr serves: no checksums, no stamps
		o.Checksums, o.IgnoreStamps = TrustChecksums, true
	}
	srv, err := NewServer(sock, svc, DefaultThreads(), o)
	if err != nil {
		tb.Fatal(err)
	}
	spec := frame.Spec{Src: ce, Dst: se, PayloadLen: payload}
	req := make([]byte, spec.FrameLen())
	FillPad(req[spec.PayloadOffset():])
	if format == FormatNapilab {
		PutHeader(req[spec.PayloadOffset():], Header{Run: 1, Seq: 2, Scheduled: 3, Sent: 4, Queueing: NotQueued})
	}
	if _, err := frame.Build(req, spec); err != nil {
		tb.Fatal(err)
	}
	return &serveBench{srv: srv, k: k, req: req}
}

// deliver puts n requests on the server's RX ring, each in a frame from its fill ring, stamped.
func (b *serveBench) deliver(tb testing.TB, n uint32) {
	s := b.srv.sock
	now := nanotime()
	for range n {
		if b.k.Fill.Peek(1) != 1 || b.k.RX.Reserve(1) != 1 {
			tb.Fatal("the server's fill ring is empty or its RX ring full")
		}
		addr := s.FrameAddr(s.FrameIndex(b.k.Fill.Get(0))) + xsk.XDPPacketHeadroom
		copy(s.Frame(addr, uint32(len(b.req))), b.req)
		xdp.PutStamp(s.Frame(addr-xdp.StampLen, xdp.StampLen), now)
		b.k.RX.Set(0, xsk.Desc{Addr: addr, Len: uint32(len(b.req))})
		b.k.RX.Submit(1)
		b.k.Fill.Release(1)
	}
}

// collect takes every reply off the TX ring and completes it, and reports how many there were.
func (b *serveBench) collect() uint32 {
	n := b.k.TX.Peek(1 << 16)
	got := b.k.Completion.Reserve(n)
	for i := range got {
		b.k.Completion.Set(i, b.k.TX.Get(i).Addr)
	}
	b.k.Completion.Submit(got)
	b.k.TX.Release(got)
	b.k.TX.Cancel(n - got)
	return got
}

// run lets the server loop take rounds×batch requests, batch at a time, and returns the time that took.
func (b *serveBench) run(tb testing.TB, rounds int, batch uint32) time.Duration {
	b.deliver(tb, uint32(rounds)*batch)
	start := nanotime()
	for range rounds {
		if err := b.srv.serve(batch); err != nil {
			tb.Fatal(err)
		}
	}
	d := time.Duration(nanotime() - start)
	if got := b.collect(); got != uint32(rounds)*batch {
		tb.Fatalf("%d replies to %d requests: %+v", got, uint32(rounds)*batch, b.srv.st)
	}
	return d
}

// BenchmarkServe measures one iteration of the server loop per request, echo (the request turned around in its
// own frame) and template (a pre-built reply frame, as xsk_rr), one request per iteration as at the seed's
// loads and 16 at once as under a burst; "dropin" serves as cmd/xsk_rr does (no checksums, no stamps). It
// reports ns per request; the 64 iterations between two clock readings keep the clock's own cost out of it.
func BenchmarkServe(b *testing.B) {
	const rounds = 64
	for _, c := range []struct {
		name   string
		reply  ReplyStyle
		format Format
		batch  uint32
		dropIn bool
	}{
		{"echo/napilab/batch1", ReplyEcho, FormatNapilab, 1, false},
		{"echo/napilab/batch16", ReplyEcho, FormatNapilab, 16, false},
		{"echo/xsk_rr/batch1", ReplyEcho, FormatXskRR, 1, false},
		{"template/napilab/batch1", ReplyTemplate, FormatNapilab, 1, false},
		{"template/xsk_rr/batch1", ReplyTemplate, FormatXskRR, 1, false},
		{"template/xsk_rr/batch16", ReplyTemplate, FormatXskRR, 16, false},
		{"dropin/batch1", ReplyTemplate, FormatXskRR, 1, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			sb := newServeBench(b, c.reply, c.format, 400, c.dropIn)
			r := rounds / int(c.batch)
			var busy time.Duration
			for b.Loop() {
				busy += sb.run(b, r, c.batch)
			}
			b.ReportMetric(float64(busy.Nanoseconds())/float64(b.N*r*int(c.batch)), "ns/req")
			if st := sb.srv.st; st.Refused() != 0 || st.Replied != st.Received {
				b.Fatalf("the server refused requests: %+v", st)
			}
		})
	}
}

// TestServeDoesNotAllocate: an iteration of the server loop allocates nothing, whatever it finds: requests to
// echo or answer from the template, or an empty ring.
func TestServeDoesNotAllocate(t *testing.T) {
	for _, reply := range []ReplyStyle{ReplyEcho, ReplyTemplate} {
		sb := newServeBench(t, reply, FormatNapilab, 400, false)
		if n := testing.AllocsPerRun(200, func() { sb.run(t, 4, 1) }); n != 0 {
			t.Errorf("%s: serving allocates %v times per round", reply, n)
		}
		if n := testing.AllocsPerRun(200, func() { _ = sb.srv.serve(rxBatch) }); n != 0 {
			t.Errorf("%s: an empty poll allocates %v times", reply, n)
		}
	}
}
