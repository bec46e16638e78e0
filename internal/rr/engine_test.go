package rr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/hist"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/testenv"
	"github.com/napilab/napilab/internal/xsk"
	"github.com/napilab/napilab/internal/xsk/xsktest"
)

func endpoints(v6 bool) (client, server frame.Endpoint) {
	client = frame.Endpoint{MAC: frame.MAC{2, 0, 0, 0, 0, 1}, IP: netip.MustParseAddr("10.77.0.1"), Port: 54321}
	server = frame.Endpoint{MAC: frame.MAC{2, 0, 0, 0, 0, 2}, IP: netip.MustParseAddr("10.77.0.2"), Port: 54321}
	if v6 {
		client.IP, server.IP = netip.MustParseAddr("fd00:77::1"), netip.MustParseAddr("fd00:77::2")
	}
	return
}

// memConfig sizes the receive rings above the largest request count a test sends, so every request can wait in
// a ring however long the scheduler keeps the other side off the CPU: a zero-loss assertion then cannot depend
// on timing.
func memConfig() xsk.Config {
	c := xsk.DefaultConfig()
	c.FrameSize, c.FrameCount = 2048, 4096
	c.FillSize, c.RXSize, c.CompletionSize, c.TXSize = 2048, 2048, 256, 256
	return c
}

// clientSpec and serverSpec bundle one side's option sets, so a test sets any field by its name.
type clientSpec struct {
	LinkOptions
	Workload
	Threads
}

type serverSpec struct {
	LinkOptions
	Service
	Threads
}

func defaultClient() clientSpec {
	return clientSpec{DefaultLink(""), DefaultWorkload(), DefaultThreads()}
}

func defaultServer() serverSpec {
	return serverSpec{DefaultLink(""), DefaultService(), DefaultThreads()}
}

// replyTimeout is how long the tests' clients wait for replies after their last request: generous, because a
// test must never turn slowness into failure (the qemu lab under TCG on a busy host has delivered replies close
// to a second late). It costs nothing when every request is answered, since a run then ends at the last reply;
// runs that lose requests on purpose end through settle instead of waiting it out.
const replyTimeout = 30 * time.Second

// settle returns an OnInterval callback that cancels a run as soon as every reply it will ever get has come:
// total says, at any moment, how many replies the run gets in all, as far as is known then (it may fall as
// losses become known, never rise). The run's reply timeout is then only a bound on a hang.
func settle(cancel context.CancelFunc, total func() (uint64, bool)) func(Interval) {
	var replies uint64
	return func(iv Interval) {
		replies += iv.Replies
		if want, ok := total(); ok && replies >= want {
			cancel()
		}
	}
}

type memRun struct {
	client  clientSpec
	server  serverSpec
	srvOpts ServerOptions
	stamp   bool // the fake kernel stamps frames as napilab's XDP program does
	// stallClient, if set, holds the client's 100th RX kick that long, as a preemption would.
	stallClient time.Duration
}

func newMemRun(v6 bool) memRun {
	ce, se := endpoints(v6)
	c := defaultClient()
	c.Dev, c.PeerIP, c.LocalIP = "mem0", se.IP, ce.IP
	// 1000 requests stay below both the receive rings (2048) and the xsk_rr format's 1024-request window, so
	// neither a scheduling stall nor a slow emulated CPU can make the run drop or mispair anything.
	c.Period, c.Duration, c.Warmup, c.Count = 20*time.Microsecond, 0, 0, 1000
	c.Interval, c.Timeout = 0, replyTimeout
	c.Sender = SenderInline
	s := defaultServer()
	s.Dev = "mem1"
	return memRun{client: c, server: s, srvOpts: ServerOptions{Local: se, Peer: ce}}
}

// run starts the server on the pair's B side and runs the client on A.
func (m memRun) run(t *testing.T) (*ClientResult, ServerStats) {
	t.Helper()
	testenv.Exclusive(t) // two spinning loops
	pair, err := xsktest.NewPair(memConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	if m.stamp {
		pair.Stamp = nanotime
	}
	if m.stallClient > 0 {
		kicks := 0 // the client's receive loop is its only RX kicker
		pair.OnKickRX = func(s *xsk.Socket) {
			if s != pair.A {
				return
			}
			if kicks++; kicks == 100 {
				time.Sleep(m.stallClient)
			}
		}
	}
	m.server.Format = m.client.Format
	m.server.Payload = m.client.Payload
	srv, err := NewServer(pair.B, m.server.Service, m.server.Threads, m.srvOpts)
	if err != nil {
		t.Fatal(err)
	}
	ce, se := m.srvOpts.Peer, m.srvOpts.Local
	cli, err := NewClient(pair.A, m.client.Workload, m.client.Threads, ClientOptions{Local: ce, Peer: se, UsableCPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	res, st, err := Exchange(context.Background(), srv, cli)
	if err != nil {
		t.Fatal(err)
	}
	return res, st
}

func checkClean(t *testing.T, res *ClientResult, want uint64) {
	t.Helper()
	checkAnswered(t, res, want, false)
}

// checkAnswered is checkClean for a path that may reorder (the lab's emulated virtio zero copy does, rarely):
// every request answered once, nothing stray or malformed, reordering allowed when mayReorder.
func checkAnswered(t *testing.T, res *ClientResult, want uint64, mayReorder bool) {
	t.Helper()
	if res.Sent != want || res.Answered != want || res.Lost != 0 || res.Measured != want {
		t.Fatalf("sent %d answered %d lost %d measured %d; want %d each and no loss\nclient %+v %+v stray %d malformed %d duplicates %d no TX frame %d",
			res.Sent, res.Answered, res.Lost, res.Measured, want, res.XSK, res.Kicks, res.Stray, res.Malformed, res.Duplicates, res.NoTXFrame)
	}
	if res.Duplicates != 0 || res.Stray != 0 || res.Malformed != 0 || (res.Reordered != 0 && !mayReorder) {
		t.Fatalf("duplicates %d stray %d malformed %d reordered %d on a clean wire", res.Duplicates, res.Stray, res.Malformed, res.Reordered)
	}
	l := res.Latency
	if !(l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) || l.Min <= 0 {
		t.Fatalf("latency percentiles out of order: %+v", l)
	}
	if b, err := hist.Decode(res.LatencyHDR); err != nil || b.Count() != res.Measured ||
		(b.Percentile(50) != l.P50 && l.P50 != l.Max) {
		t.Fatalf("the result's histogram (%v) does not hold the %d measured replies with p50 %d", err, res.Measured, l.P50)
	}
	if res.GCCycles != 0 {
		t.Fatalf("%d GC cycles during the run", res.GCCycles)
	}
}

func TestMemEveryDriverAndFormat(t *testing.T) {
	for _, format := range []Format{FormatNapilab, FormatXskRR} {
		for _, poll := range []PollDriver{PollInline, PollNone, PollSeparate} {
			for _, v6 := range []bool{false, true} {
				name := string(format) + "/" + string(poll)
				if v6 {
					name += "/ipv6"
				}
				t.Run(name, func(t *testing.T) {
					m := newMemRun(v6)
					m.client.Format, m.client.Poll, m.server.Poll = format, poll, poll
					m.client.Count = 1000
					res, st := m.run(t)
					checkClean(t, res, 1000)
					if st.Replied != 1000 || st.Malformed != 0 || st.GCCycles != 0 {
						t.Fatalf("server %+v", st)
					}
				})
			}
		}
	}
}

func TestMemTemplateReplies(t *testing.T) {
	for _, format := range []Format{FormatNapilab, FormatXskRR} {
		t.Run(string(format), func(t *testing.T) {
			m := newMemRun(false)
			m.client.Format = format
			m.server.Reply = ReplyTemplate
			m.server.LocalMAC, m.server.PeerMAC = []byte{2, 0, 0, 0, 0, 2}, []byte{2, 0, 0, 0, 0, 1}
			m.server.LocalIP, m.server.PeerIP = m.srvOpts.Local.IP, m.srvOpts.Peer.IP
			res, st := m.run(t)
			checkClean(t, res, 1000)
			if st.Replied != 1000 || st.TXFull != 0 {
				t.Fatalf("server %+v", st)
			}
		})
	}
}

func TestMemClosedLoopAndThreadedSender(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		m := newMemRun(false)
		m.client.Period, m.client.Outstanding = 0, 4
		res, _ := m.run(t)
		checkClean(t, res, 1000)
	})
	// A paced window never has more requests in flight than its size: the server never finds more waiting, and
	// every request is answered once, sent as soon as a reply frees its slot.
	for _, tc := range []struct {
		window int
		format Format
	}{{1, FormatNapilab}, {1, FormatXskRR}, {3, FormatNapilab}} {
		t.Run(fmt.Sprintf("window of %d, %s", tc.window, tc.format), func(t *testing.T) {
			m := newMemRun(false)
			// A schedule far faster than the replies: without the window the requests would pile up.
			m.client.Outstanding, m.client.Format, m.client.Period = tc.window, tc.format, 100*time.Nanosecond
			if tc.format == FormatXskRR {
				m.client.Payload = 400
			}
			res, st := m.run(t)
			checkClean(t, res, 1000)
			if st.MaxBatch == 0 || st.MaxBatch > uint32(tc.window) {
				t.Errorf("the server found up to %d requests waiting under a window of %d", st.MaxBatch, tc.window)
			}
		})
	}
	t.Run("thread", func(t *testing.T) {
		m := newMemRun(false)
		m.client.Sender = SenderThread
		res, _ := m.run(t)
		if res.Placement.Sender != SenderThread {
			t.Fatalf("placement %+v", res.Placement)
		}
		checkClean(t, res, 1000)
	})
}

func TestMemDelayAndIntervals(t *testing.T) {
	m := newMemRun(false)
	m.client.Delay = 10 * time.Microsecond
	// Counted, not timed: 1200 requests 50 µs apart (below the 2048-frame receive rings) take at least 60 ms by
	// the schedule however slow the machine. A timed run measured nothing in the lab once: under TCG its threads
	// started after its 60 ms were over. How many intervals there are depends on the scheduler (an interval ends
	// only when the reporter has a spare sample ready; a stalled receiver makes one long one): every reply must be
	// in exactly one, in order. That intervals do end while a run goes on, the CLI's streaming tests show.
	m.client.Count, m.client.Period, m.client.Duration, m.client.Warmup = 1200, 50*time.Microsecond, 0, 0
	m.client.Interval = 20 * time.Millisecond
	res, _ := m.run(t)
	if res.Lost != 0 || res.Measured != 1200 || res.Answered != 1200 {
		t.Fatalf("sent %d answered %d measured %d lost %d; want all 1200 answered and measured", res.Sent,
			res.Answered, res.Measured, res.Lost)
	}
	if len(res.Intervals) == 0 {
		t.Fatal("no interval in a run of at least 60 ms")
	}
	for i := 1; i < len(res.Intervals); i++ {
		if prev, iv := res.Intervals[i-1], res.Intervals[i]; iv.Start < prev.Start+prev.Seconds*0.999 {
			t.Fatalf("interval %d starts at %.6f s, before interval %d ends (%.6f + %.6f s)", i, iv.Start, i-1,
				prev.Start, prev.Seconds)
		}
	}
	var sum uint64
	for _, iv := range res.Intervals {
		sum += iv.Replies
		if iv.XskRR == "" || iv.Latency.Count != iv.Replies {
			t.Fatalf("interval %+v", iv)
		}
	}
	if sum != res.Measured {
		t.Fatalf("intervals hold %d replies, the run measured %d", sum, res.Measured)
	}
}

// TestMemPeerNeverAnswers: a server that never replies ends the run after the timeout with every request lost.
func TestMemPeerNeverAnswers(t *testing.T) {
	pair, err := xsktest.NewPair(memConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	m := newMemRun(false)
	m.client.Count, m.client.Timeout = 100, 50*time.Millisecond
	cli, err := NewClient(pair.A, m.client.Workload, m.client.Threads, ClientOptions{Local: m.srvOpts.Peer, Peer: m.srvOpts.Local, UsableCPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	res, err := cli.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 100 || res.Answered != 0 || res.Lost != 100 || res.Measured != 0 {
		t.Fatalf("sent %d answered %d lost %d", res.Sent, res.Answered, res.Lost)
	}
	if err := res.Unanswered(); !errors.Is(err, ErrUnanswered) || !strings.Contains(err.Error(), "none of the 100 requests") {
		t.Fatalf("Unanswered() = %v; want it to say that nothing answered", err)
	}
}

// TestMemRunTwice: a client and a server run several rounds on one socket pair, as a sweep does, and each
// round accounts for exactly its own requests.
func TestMemRunTwice(t *testing.T) {
	testenv.Exclusive(t)
	pair, err := xsktest.NewPair(memConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()
	m := newMemRun(false)
	srv, err := NewServer(pair.B, m.server.Service, m.server.Threads, m.srvOpts)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewClient(pair.A, m.client.Workload, m.client.Threads, ClientOptions{Local: m.srvOpts.Peer, Peer: m.srvOpts.Local, UsableCPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	for round, count := range []uint64{500, 800, 300} {
		p := m.client
		p.Count = count
		if err := cli.Set(p.Workload, p.Threads); err != nil {
			t.Fatal(err)
		}
		res, st, err := Exchange(context.Background(), srv, cli)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		checkClean(t, res, count)
		if st.Replied != count {
			t.Fatalf("round %d: server replied %d of %d", round, st.Replied, count)
		}
	}
	bad := m.client
	bad.Payload = 300
	if err := cli.Set(bad.Workload, bad.Threads); err == nil {
		t.Fatal("SetParams accepted a new payload size")
	}
}

// TestMemSplitsRoundTrip: when frames arrive stamped, every measured napilab reply splits its round trip into
// the server's queueing and the rest, which add up to the round trip from the send; without stamps nothing is
// split, and both ends say why. The xsk_rr format has no field for it: only the server counts its queueing.
func TestMemSplitsRoundTrip(t *testing.T) {
	for _, c := range []struct {
		format Format
		stamp  bool
	}{{FormatNapilab, true}, {FormatNapilab, false}, {FormatXskRR, true}} {
		t.Run(fmt.Sprintf("%s/stamped=%v", c.format, c.stamp), func(t *testing.T) {
			m := newMemRun(false)
			m.client.Format, m.stamp = c.format, c.stamp
			res, st := m.run(t)
			checkClean(t, res, 1000)
			q, rest := res.ServerQueueing, res.RestOfTrip
			switch {
			case !c.stamp:
				if st.Stamped != 0 || q.Count != 0 || rest.Count != 0 || res.Unsplit != 1000 {
					t.Fatalf("unstamped: server stamped %d, split %d/%d, unsplit %d", st.Stamped, q.Count, rest.Count,
						res.Unsplit)
				}
				if !hasNote(res.Notes, note.Info, "queueing is not measured") || !hasNote(st.Notes, note.Info, "no arrival stamp") {
					t.Fatalf("no note says why nothing was split: client %v, server %v", res.Notes, st.Notes)
				}
			case c.format == FormatXskRR:
				if st.Stamped != 1000 || st.Queueing.Count != 1000 || q.Count != 0 || res.Unsplit != 0 {
					t.Fatalf("xsk_rr: server stamped %d (queueing %d), client split %d, unsplit %d", st.Stamped,
						st.Queueing.Count, q.Count, res.Unsplit)
				}
			default:
				if st.Stamped != 1000 || q.Count != 1000 || rest.Count != 1000 || res.Unsplit != 0 {
					t.Fatalf("stamped: server stamped %d, split %d/%d, unsplit %d", st.Stamped, q.Count, rest.Count,
						res.Unsplit)
				}
				// Each reply's parts add up to its round trip: so do their means.
				if d := q.Mean + rest.Mean - res.LatencyFromSend.Mean; d < -1 || d > 1 {
					t.Fatalf("queueing %.0f + rest %.0f ns != round trip %.0f ns on average", q.Mean, rest.Mean,
						res.LatencyFromSend.Mean)
				}
				if q.Max > res.LatencyFromSend.Max || st.Queueing.Count != 1000 {
					t.Fatalf("queueing up to %d ns in round trips up to %d ns; server recorded %d", q.Max,
						res.LatencyFromSend.Max, st.Queueing.Count)
				}
			}
		})
	}
}

// TestMemLoopGaps: a receive loop held off its ring, here inside one of its kicks, reports the gap; the run still
// answers every request. The sender has a thread of its own, so the stalled iteration is an idle one whatever the
// schedule (an iteration that sends is work, not a gap).
func TestMemLoopGaps(t *testing.T) {
	m := newMemRun(false)
	m.client.Poll, m.client.Sender = PollInline, SenderThread
	m.stallClient = 30 * time.Millisecond
	res, _ := m.run(t)
	checkClean(t, res, 1000)
	g := res.LoopGaps
	if g.Min != loopGapMin || g.Count == 0 || g.Longest < m.stallClient || g.Total < g.Longest {
		t.Fatalf("loop gaps %+v; want at least one of %v or more, the longest within the total", g, m.stallClient)
	}
}
