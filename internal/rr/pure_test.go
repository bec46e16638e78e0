package rr

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/hist"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/sysknob"
)

func validClient() clientSpec {
	p := defaultClient()
	p.Dev = "veth0"
	p.PeerIP = netip.MustParseAddr("10.0.0.2")
	return p
}

func (c *clientSpec) validate() error {
	return errors.Join(c.LinkOptions.Validate(), c.Workload.Validate(), c.Threads.Validate())
}

func TestDefaultsValidate(t *testing.T) {
	c := validClient()
	if err := c.validate(); err != nil {
		t.Fatalf("default client: %v", err)
	}
	s := defaultServer()
	s.Dev = "veth1"
	if err := errors.Join(s.LinkOptions.Validate(), s.Service.Validate(), s.Threads.Validate()); err != nil {
		t.Fatalf("default server: %v", err)
	}
}

// TestValidateRejects: every problem is a kernel.FieldError naming the field a command line maps to its flag.
func TestValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*clientSpec)
		field string
		want  string
	}{
		{"no dev", func(p *clientSpec) { p.Dev = "" }, "dev", "is missing"},
		{"port 0", func(p *clientSpec) { p.Port = 0 }, "port", "0 cannot be steered"},
		{"payload too big", func(p *clientSpec) { p.Payload = MaxPayload + 1 }, "payload", "out of range"},
		{"payload 0", func(p *clientSpec) { p.Payload = 0 }, "payload", "out of range"},
		{"payload below header", func(p *clientSpec) { p.Payload = HeaderLen - 1 }, "payload", "napilab header"},
		{"unknown format", func(p *clientSpec) { p.Format = "json" }, "format", "unknown"},
		{"unknown poll", func(p *clientSpec) { p.Poll = "sometimes" }, "poll", "driver"},
		{"closed loop without outstanding", func(p *clientSpec) { p.Period = 0 }, "outstanding", "at least one"},
		{"negative outstanding", func(p *clientSpec) { p.Period, p.Outstanding = 0, -1 }, "outstanding", "-1"},
		{"negative period", func(p *clientSpec) { p.Period = -80 * time.Microsecond }, "period", "negative"},
		{"negative window", func(p *clientSpec) { p.Outstanding = -4 }, "outstanding", "negative"},
		{"endless", func(p *clientSpec) { p.Duration, p.Count = 0, 0 }, "duration", "no end"},
		{"mixed families", func(p *clientSpec) { p.LocalIP = netip.MustParseAddr("fd00::1") }, "local-ip", "different families"},
		{"short mac", func(p *clientSpec) { p.PeerMAC = net.HardwareAddr{1, 2, 3} }, "peer-mac", "not an Ethernet address"},
		{"fifo 100", func(p *clientSpec) { p.FIFO = 100 }, "fifo", "out of range"},
		{"negative delay", func(p *clientSpec) { p.Workload.Delay = -1 }, "delay", "negative"},
		{"budget", func(p *clientSpec) { p.BusyPoll.Budget = 70000 }, "busy-poll-budget", "out of range"},
		{"zero timeout", func(p *clientSpec) { p.Timeout = 0 }, "timeout", "give up on replies before any"},
		{"negative timeout", func(p *clientSpec) { p.Timeout = -time.Second }, "timeout", "give up on replies before any"},
		{"negative warmup", func(p *clientSpec) { p.Warmup = -time.Second }, "warmup", "negative"},
		{"negative duration", func(p *clientSpec) { p.Duration = -5 * time.Second }, "duration", "negative"},
		{"nanosecond duration", func(p *clientSpec) { p.Duration, p.Period, p.Outstanding = time.Nanosecond, 0, 1 },
			"duration", "too short to measure"},
		{"period longer than the run", func(p *clientSpec) { p.Period, p.Duration = 1000*time.Second, time.Second },
			"period", "longer than the whole duration"},
		{"rate 0.5 for 1s", func(p *clientSpec) { p.Period, p.Duration = 2*time.Second, time.Second },
			"period", "longer than the whole duration"},
		{"period below 10ns", func(p *clientSpec) { p.Period = time.Nanosecond }, "period", "shorter than"},
		{"sender", func(p *clientSpec) { p.Sender = "elsewhere" }, "sender", "placement"},
		{"zero copy without wakeup", func(p *clientSpec) { p.Bind, p.NeedWakeup = BindZeroCopy, false }, "need-wakeup", "hang"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := validClient()
			tc.mod(&p)
			err := p.validate()
			var fe *kernel.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Msg, tc.want) {
				t.Fatalf("validate() = %v; want a FieldError on %q containing %q", err, tc.field, tc.want)
			}
		})
	}
	s := defaultServer()
	s.Dev, s.Reply = "veth1", ReplyTemplate
	_, err := NewServer(nil, s.Service, s.Threads, ServerOptions{})
	var fe *kernel.FieldError
	if !errors.As(err, &fe) || fe.Field != "reply" || !strings.Contains(err.Error(), "template replies go to one client") {
		t.Fatalf("template server without a peer: %v", err)
	}
	if err := (&Threads{Poll: PollNone, Sender: SenderThread}).Validate(); err != nil {
		t.Fatalf("threads alone: %v", err)
	}
	w := DefaultWorkload()
	w.Period, w.Outstanding = 0, 2
	if err := checkClient(w, Threads{Poll: PollInline, Sender: SenderThread}); err == nil ||
		!strings.Contains(err.Error(), "sender thread needs an open loop") {
		t.Fatalf("closed loop with a sender thread: %v", err)
	}
	w.Period = 80 * time.Microsecond // a paced window: its sends wait for replies, which the receive loop sees
	if err := checkClient(w, Threads{Poll: PollInline, Sender: SenderThread}); err == nil ||
		!strings.Contains(err.Error(), "without a window") {
		t.Fatalf("paced window with a sender thread: %v", err)
	}
	if pl := placeClient(&w, &Threads{Sender: SenderAuto}, 64); pl.Sender != SenderInline {
		t.Fatalf("a paced window placed its sender %s; want inline", pl.Sender)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"12.5k": 80 * time.Microsecond, "125000": 8 * time.Microsecond, "1M": time.Microsecond,
		"32K": 31250 * time.Nanosecond, "1": time.Second,
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "fast", "12kk", "-5k", "0", "1e9", "NaN", "Infk", "1 k"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	b := make([]byte, 64)
	h := Header{Run: 0xdeadbeef, Seq: 1<<40 + 7, Scheduled: -5, Sent: 1 << 62, Queueing: 12345}
	PutHeader(b, h)
	got, err := ParseHeader(b)
	if err != nil || got != h {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, h)
	}
	if _, err := ParseHeader(b[:HeaderLen-1]); err != ErrShortPayload {
		t.Fatalf("short payload: %v", err)
	}
	b[0] = 'X'
	if _, err := ParseHeader(b); err != ErrBadMagic {
		t.Fatalf("bad magic: %v", err)
	}
	FillPad(b)
	if CheckPad(b) != nil {
		t.Fatal("FillPad output fails CheckPad")
	}
	b[17] = 'b'
	if CheckPad(b) != ErrBadPadding {
		t.Fatal("CheckPad accepted a wrong byte")
	}
}

// TestCheckPadEveryPosition: a single wrong byte is found wherever it is, in short payloads of every length and
// in payloads around and beyond the block CheckPad compares with, and a payload of only 'a' passes.
func TestCheckPadEveryPosition(t *testing.T) {
	lengths := []int{len(padBlock) - 1, len(padBlock), len(padBlock) + 1, 2*len(padBlock) + 77}
	for n := 0; n <= 41; n++ {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		b := make([]byte, n)
		FillPad(b)
		if CheckPad(b) != nil {
			t.Fatalf("%d bytes of 'a' fail", n)
		}
		for i := range b {
			b[i] = 'a' ^ 0x80
			if CheckPad(b) != ErrBadPadding {
				t.Fatalf("a wrong byte at %d of %d passes", i, n)
			}
			b[i] = 'a'
		}
	}
}

func TestPayloadAllocs(t *testing.T) {
	b := make([]byte, 400)
	h := Header{Run: 1, Seq: 2, Scheduled: 3, Sent: 4}
	if n := testing.AllocsPerRun(1000, func() {
		PutHeader(b, h)
		if _, err := ParseHeader(b); err != nil {
			panic(err)
		}
		FillPad(b[HeaderLen:])
		_ = CheckPad(b[HeaderLen:])
		_, _ = ParseHeader(b[:3])
	}); n != 0 {
		t.Fatalf("payload codec allocates %v times per run", n)
	}
}

func FuzzParseHeader(f *testing.F) {
	b := make([]byte, HeaderLen+8)
	PutHeader(b, Header{Run: 9, Seq: 10, Scheduled: 11, Sent: 12, Queueing: NotQueued})
	f.Add(b)
	f.Add([]byte("NLR2"))
	f.Add([]byte("NLR1 an older napilab's header, 32 bytes"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ParseHeader(in)
		if err != nil {
			return
		}
		out := make([]byte, HeaderLen)
		PutHeader(out, h)
		if string(out) != string(in[:HeaderLen]) {
			t.Fatalf("re-encoding %x gave %x", in[:HeaderLen], out)
		}
	})
}

// TestSplit: a round trip splits into the server's queueing and the rest, which add up to it; a reply without a
// queueing time is counted, not split; a queueing time above the round trip (a server whose clock runs faster)
// records the rest at the histogram's floor rather than a negative time.
func TestSplit(t *testing.T) {
	r, err := newRunHists(hist.XskRRv2)
	if err != nil {
		t.Fatal(err)
	}
	r.split(10_000, 3_000)
	r.split(8_000, NotQueued)
	r.split(5_000, 6_000)
	if r.queueing.Count() != 2 || r.rest.Count() != 2 || r.unsplit != 1 {
		t.Fatalf("recorded %d queueing, %d rest, %d unsplit; want 2, 2, 1", r.queueing.Count(), r.rest.Count(),
			r.unsplit)
	}
	if r.queueing.Min() != 3_000 || r.queueing.Max() != 6_000 || r.rest.Max() != 7_000 || r.rest.Min() != 1 {
		t.Fatalf("queueing %d..%d, rest %d..%d", r.queueing.Min(), r.queueing.Max(), r.rest.Min(), r.rest.Max())
	}
}

// TestPacerNoDrift drives the schedule with a fake clock that lands at an arbitrary point inside each period,
// as a spinning sender would, and checks that after a million periods every due time is exactly t0 + k*P.
func TestPacerNoDrift(t *testing.T) {
	const t0, period, n = 1_000_000_007, 80_000, 1_000_000
	p := NewPacer(t0, period, CatchUpSend)
	rng := rand.New(rand.NewPCG(1, 2))
	now := int64(t0)
	for k := int64(0); k < n; k++ {
		if _, ok := p.Due(now - 1 - rng.Int64N(period)); ok {
			t.Fatalf("request %d due before its time", k)
		}
		now = t0 + k*period + rng.Int64N(period) // somewhere inside period k
		s, ok := p.Due(now)
		if !ok || s != t0+k*period {
			t.Fatalf("request %d: Due(%d) = %d, %v; want %d", k, now, s, ok, t0+k*period)
		}
	}
	if p.Issued() != n || p.Next() != t0+n*period {
		t.Fatalf("after %d periods: issued %d, next %d", n, p.Issued(), p.Next())
	}
}

func TestPacerCatchUp(t *testing.T) {
	send := NewPacer(0, 10, CatchUpSend)
	var got []int64
	for {
		s, ok := send.Due(35) // woke up late: 0, 10, 20, 30 are all due
		if !ok {
			break
		}
		got = append(got, s)
	}
	if len(got) != 4 || got[3] != 30 || send.Skipped != 0 {
		t.Fatalf("CatchUpSend gave %v (skipped %d); want [0 10 20 30]", got, send.Skipped)
	}

	skip := NewPacer(0, 10, CatchUpSkip)
	s, ok := skip.Due(35)
	if !ok || s != 30 || skip.Skipped != 3 {
		t.Fatalf("CatchUpSkip: Due(35) = %d, %v, skipped %d; want 30, true, 3", s, ok, skip.Skipped)
	}
	if _, ok := skip.Due(39); ok {
		t.Fatal("CatchUpSkip: next request due before 40")
	}
	if s, ok := skip.Due(40); !ok || s != 40 {
		t.Fatalf("CatchUpSkip: Due(40) = %d, %v", s, ok)
	}
}

func TestTrackerCases(t *testing.T) {
	tr := NewTracker(64)
	for _, tc := range []struct {
		seq  uint64
		want Outcome
	}{
		{0, OutcomeNew}, {2, OutcomeNew}, {1, OutcomeReordered}, {1, OutcomeDuplicate}, {3, OutcomeNew},
		{200, OutcomeNew}, // slides the window: 4..136 leave unanswered
		{5, OutcomeLate},
	} {
		if got := tr.Observe(tc.seq); got != tc.want {
			t.Fatalf("Observe(%d) = %v; want %v", tc.seq, got, tc.want)
		}
	}
	if tr.Answered != 5 || tr.Duplicates != 1 || tr.Reordered != 1 || tr.Late != 1 {
		t.Fatalf("counters %+v", *tr)
	}
	if tr.Dropped != 137-4 {
		t.Fatalf("dropped %d; want %d", tr.Dropped, 137-4)
	}
	if lost := tr.Lost(201); lost != 201-5 {
		t.Fatalf("Lost(201) = %d", lost)
	}
}

// TestTrackerOracle replays random loss, duplication and reordering against a map-based oracle.
func TestTrackerOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 50; round++ {
		const sent = 5000
		var arrivals []uint64
		for s := uint64(0); s < sent; s++ {
			switch r := rng.IntN(100); {
			case r < 5: // lost
			case r < 8:
				arrivals = append(arrivals, s, s) // duplicated
			default:
				arrivals = append(arrivals, s)
			}
		}
		for i := range arrivals { // bounded reordering: swap with a neighbour up to 30 places on
			if j := i + rng.IntN(30); j < len(arrivals) && rng.IntN(10) == 0 {
				arrivals[i], arrivals[j] = arrivals[j], arrivals[i]
			}
		}
		tr := NewTracker(1024)
		seen := map[uint64]bool{}
		var max uint64
		var dups, reord uint64
		for _, s := range arrivals {
			switch {
			case seen[s]:
				dups++
			case len(seen) > 0 && s < max:
				reord++
			}
			if !seen[s] && s+1 > max {
				max = s + 1
			}
			seen[s] = true
			tr.Observe(s)
		}
		if tr.Answered != uint64(len(seen)) || tr.Duplicates != dups || tr.Reordered != reord || tr.Late != 0 {
			t.Fatalf("round %d: tracker %+v; oracle answered %d dups %d reordered %d",
				round, *tr, len(seen), dups, reord)
		}
		if tr.Lost(sent) != sent-uint64(len(seen)) {
			t.Fatalf("round %d: lost %d; want %d", round, tr.Lost(sent), sent-uint64(len(seen)))
		}
	}
}

func TestTrackerAllocs(t *testing.T) {
	tr := NewTracker(1 << 16)
	var seq uint64
	if n := testing.AllocsPerRun(10000, func() { tr.Observe(seq); seq += 3 }); n != 0 {
		t.Fatalf("Observe allocates %v", n)
	}
}

func TestFIFO(t *testing.T) {
	f := newFIFO(4)
	if _, _, ok := f.pop(); ok {
		t.Fatal("pop from empty fifo")
	}
	for i := int64(0); i < 4; i++ {
		if f.full() {
			t.Fatalf("full after %d", i)
		}
		f.push(i*10, i*10+1)
	}
	if !f.full() || f.outstanding() != 4 {
		t.Fatalf("fifo of 4 not full after 4 pushes (outstanding %d)", f.outstanding())
	}
	s, a, ok := f.pop()
	if !ok || s != 0 || a != 1 {
		t.Fatalf("pop = %d %d %v", s, a, ok)
	}
	f.push(40, 41)
	for want := int64(10); want <= 40; want += 10 {
		if s, _, ok := f.pop(); !ok || s != want {
			t.Fatalf("pop = %d, %v; want %d", s, ok, want)
		}
	}
}

// TestCheckMTU: a payload is checked against the MTU with its family's headers (28 bytes for IPv4, 48 for IPv6).
func TestCheckMTU(t *testing.T) {
	for _, c := range []struct {
		payload, mtu int
		ipv6, ok     bool
	}{
		{1400, 1280, false, false}, {1252, 1280, false, true}, {1253, 1280, false, false},
		{1232, 1280, true, true}, {1233, 1280, true, false}, {1400, 1500, true, true}, {1400, 0, true, true},
	} {
		err := CheckMTU(c.payload, c.mtu, c.ipv6)
		var fe *kernel.FieldError
		if (err == nil) != c.ok || (err != nil && (!errors.As(err, &fe) || fe.Field != "payload")) {
			t.Errorf("CheckMTU(%d, %d, ipv6 %v) = %v; want ok %v", c.payload, c.mtu, c.ipv6, err, c.ok)
		}
	}
}

// TestCheckCPUs: a CPU outside the usable set is a FieldError naming the usable ones.
func TestCheckCPUs(t *testing.T) {
	usable := sysknob.CPURange(0, 1)
	if err := (&Threads{CPUs: []int{1, 0}}).CheckCPUs(usable); err != nil {
		t.Fatal(err)
	}
	err := (&Threads{CPUs: []int{0, 7}}).CheckCPUs(usable)
	var fe *kernel.FieldError
	if !errors.As(err, &fe) || fe.Field != "cpu" || !strings.Contains(fe.Msg, "7 is not a CPU") ||
		!strings.Contains(fe.Msg, "0-1") {
		t.Fatalf("CheckCPUs = %v; want CPU 7 refused, naming 0-1", err)
	}
}

// BenchmarkCheckPad is what a server with -v spends verifying one 400-byte xsk_rr payload.
func BenchmarkCheckPad(b *testing.B) {
	pl := make([]byte, 400)
	FillPad(pl)
	b.SetBytes(int64(len(pl)))
	for b.Loop() {
		if CheckPad(pl) != nil {
			b.Fatal("bad padding")
		}
	}
}
