package rr

import (
	"testing"

	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/hist"
	"github.com/napilab/napilab/internal/xsk"
	"github.com/napilab/napilab/internal/xsk/xsktest"
)

// hotPath builds the client's sender and receiver and a server on an in-memory pair, without running loops, so
// single per-packet steps can be measured.
type hotPath struct {
	pair *xsktest.Pair
	snd  *sender
	rcv  *receiver
	srv  *Server
	req  []byte // a request frame as the server receives it
	rep  []byte // a reply frame as the client receives it
}

func newHotPath(tb testing.TB, format Format) *hotPath {
	tb.Helper()
	pair, err := xsktest.NewPair(memConfig())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pair.Close() })
	m := newMemRun(false)
	m.client.Format, m.server.Format = format, format
	cli, err := NewClient(pair.A, m.client.Workload, m.client.Threads, ClientOptions{Local: m.srvOpts.Peer, Peer: m.srvOpts.Local})
	if err != nil {
		tb.Fatal(err)
	}
	tx := *cli.tx
	sh := &shared{}
	lateness, _ := hist.New(hist.DefaultConfig())
	h := &hotPath{pair: pair}
	h.snd = &sender{sock: pair.A, pool: tx.pool, frameLen: tx.frameLen, p: &cli.p, sh: sh, run: 7, lateness: lateness}
	h.snd.start()
	if format == FormatXskRR {
		h.snd.fifo = newFIFO(fifoWindow)
	}
	cur, err := newSample(hist.XskRRv2)
	if err != nil {
		tb.Fatal(err)
	}
	whole, err := newRunHists(hist.XskRRv2)
	if err != nil {
		tb.Fatal(err)
	}
	h.rcv = &receiver{sock: pair.A, p: &cli.p, sh: sh, snd: h.snd, cur: cur, whole: whole, run: 7,
		port: m.srvOpts.Peer.Port, payloadLen: cli.p.Payload}
	if format == FormatNapilab {
		h.rcv.tracker = NewTracker(trackerWindow)
	}
	if h.srv, err = NewServer(pair.B, m.server.Service, m.server.Threads, m.srvOpts); err != nil {
		tb.Fatal(err)
	}
	// One request, captured as the server sees it, and its reply as the client sees it.
	h.snd.send(1, 2)
	pair.Pump()
	if pair.B.RX().Peek(1) != 1 {
		tb.Fatal("no request arrived")
	}
	d := pair.B.RX().Get(0)
	h.req = append([]byte(nil), pair.B.Frame(d.Addr, d.Len)...)
	pair.B.RX().Release(1)
	h.rep = append([]byte(nil), h.req...)
	pkt, err := frame.Parse(h.rep)
	if err != nil {
		tb.Fatal(err)
	}
	pkt.Reply(frame.KeepChecksums)
	return h
}

// serverStep is the server's work for one request: the request lands in its frame (as the kernel copies it
// there), then parse, checks, turn around in place, and the TX descriptor. It reports whether it answered.
func (h *hotPath) serverStep(addr uint64) bool {
	copy(h.srv.sock.Frame(addr, uint32(len(h.req))), h.req)
	tx := h.srv.sock.TX()
	tx.Reserve(1)
	ok := h.srv.answer(xsk.Desc{Addr: addr, Len: uint32(len(h.req))}, 0, nanotime())
	tx.Cancel(1)
	return ok
}

func TestHotPathsDoNotAllocate(t *testing.T) {
	for _, format := range []Format{FormatNapilab, FormatXskRR} {
		t.Run(string(format), func(t *testing.T) {
			h := newHotPath(t, format)
			now := int64(100)
			if n := testing.AllocsPerRun(500, func() {
				now += 1000
				h.snd.send(now, now+5)
				if format == FormatXskRR {
					h.snd.fifo.pop()
				}
			}); n != 0 {
				t.Errorf("client send allocates %v times", n)
			}
			if format == FormatNapilab {
				h.snd.sh.sent.Store(1 << 40)
			} else {
				for range 500 {
					h.snd.fifo.push(1, 2)
				}
			}
			if n := testing.AllocsPerRun(400, func() { _ = h.rcv.handle(h.rep, 1<<30) }); n != 0 {
				t.Errorf("client receive allocates %v times", n)
			}
			addr := h.srv.sock.FrameAddr(0) + xsk.XDPPacketHeadroom
			if n := testing.AllocsPerRun(1000, func() { h.serverStep(addr) }); n != 0 {
				t.Errorf("server step allocates %v times", n)
			}
			if !h.serverStep(addr) || h.srv.st.Refused() != 0 {
				t.Errorf("the server step refused the request: %+v", h.srv.st)
			}
			// An iteration on an empty RX ring (the client's sends above dropped): the inline driver's idle spin.
			rx := h.srv.sock.RX()
			rx.Release(rx.Peek(rx.Size()))
			polls := h.srv.st.EmptyPolls
			if n := testing.AllocsPerRun(100, func() { _ = h.srv.serve(rxBatch) }); n != 0 {
				t.Errorf("server idle iteration allocates %v times", n)
			}
			if got := h.srv.st.EmptyPolls - polls; got != 101*(1+idleSpin) {
				t.Errorf("101 idle iterations made %d empty polls, want %d each (the loop's peek, then a kick "+
					"after each of the spin's)", got, 1+idleSpin)
			}
		})
	}
}

func BenchmarkClientSend(b *testing.B) {
	h := newHotPath(b, FormatNapilab)
	b.ReportAllocs()
	now := int64(100)
	for b.Loop() {
		now += 1000
		h.snd.send(now, now+5)
	}
}

func BenchmarkClientReceive(b *testing.B) {
	h := newHotPath(b, FormatNapilab)
	h.snd.sh.sent.Store(1 << 40)
	b.ReportAllocs()
	for b.Loop() {
		_ = h.rcv.handle(h.rep, 1<<30)
	}
}

func BenchmarkServerStep(b *testing.B) {
	h := newHotPath(b, FormatNapilab)
	addr := h.srv.sock.FrameAddr(0) + xsk.XDPPacketHeadroom
	b.ReportAllocs()
	for b.Loop() {
		h.serverStep(addr)
	}
	if h.srv.st.Refused() != 0 {
		b.Fatalf("the server refused the benchmark's requests: %+v", h.srv.st)
	}
}
