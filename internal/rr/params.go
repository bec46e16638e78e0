package rr

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/sysknob"
)

// Role says which end of the exchange a process plays.
type Role string

const (
	RoleServer Role = "server" // answers every request
	RoleClient Role = "client" // sends requests and measures round trips
)

// PollDriver says what drives NAPI polling from the application side when the RX ring is empty.
type PollDriver string

const (
	// PollInline kicks the socket (recvfrom MSG_DONTWAIT) from the receive loop whenever the RX ring is empty:
	// with busy_read or SO_BUSY_POLL set, each kick is one busy-poll pass (xsk_rr's default).
	PollInline PollDriver = "inline"
	// PollSeparate runs a dedicated, pinnable thread that kicks continuously (xsk_rr -t).
	PollSeparate PollDriver = "separate"
	// PollNone never kicks: something else polls the NAPI, e.g. a threaded-busy-poll kthread (xsk_rr -n).
	PollNone PollDriver = "none"
)

// SenderPlacement says where an open-loop client sends from.
type SenderPlacement string

const (
	SenderAuto   SenderPlacement = "auto"   // thread when the spinning threads fit the usable CPUs, else inline
	SenderThread SenderPlacement = "thread" // a dedicated OS thread sends at the scheduled times (xsk_rr -T)
	SenderInline SenderPlacement = "inline" // the receive loop sends at the scheduled times (xsk_rr without -T)
)

// Format is the request payload format.
type Format string

const (
	// FormatXskRR is B bytes of 'a', replies matched first-in-first-out: interoperates with the original xsk_rr.
	FormatXskRR Format = "xsk_rr"
	// FormatNapilab carries a magic, a sequence number and the send timestamps: loss, reordering and duplicates
	// are detected and a reply is never paired with the wrong request.
	FormatNapilab Format = "napilab"
)

// ReplyStyle says how the server builds a reply.
type ReplyStyle string

const (
	ReplyEcho     ReplyStyle = "echo"     // swap addresses and ports of the request in place; answers anyone
	ReplyTemplate ReplyStyle = "template" // send a pre-built frame to a configured peer, as xsk_rr does
)

// CatchUp says what an open-loop sender does when it wakes up after one or more scheduled send times.
type CatchUp string

const (
	// CatchUpSend sends every missed request at once; their latency still counts from the scheduled time, so a
	// sender stall shows up in the results instead of vanishing (no coordinated omission).
	CatchUpSend CatchUp = "send"
	// CatchUpSkip drops missed send times and counts them; the schedule stays on its grid.
	CatchUpSkip CatchUp = "skip"
)

// Limits of the payload. The minimum fits the napilab header; the maximum keeps a frame inside a 2048-byte
// AF_XDP frame with headroom (xsk_rr silently caps at 1024; napilab refuses instead).
const (
	MinPayload = HeaderLen
	MaxPayload = 1400
)

// The three option sets below describe a run by concern, each for the operation that takes it: LinkOptions for
// OpenLink (where the datapath is), Workload for NewClient and Service for NewServer (what is sent and how it is
// answered), Threads for both (where the loops run). They are pure values: they validate without root, name
// their problems by field (kernel.FieldError, field names as napilab's flags spell them, so the napilab command
// line passes them through and xsk_rr maps them to its letters), and are recorded in every result.

// LinkOptions are one end's datapath: the device queue, the flow's addresses, the AF_XDP socket and the steering
// program.
type LinkOptions struct {
	Dev   string `json:"dev"`
	Queue int    `json:"queue"`
	Port  uint16 `json:"port"`
	// LocalIP and PeerIP, LocalMAC and PeerMAC override what OpenLink discovers from the device and the
	// neighbour table. Without PeerIP the link resolves only its own end: an echo server answers anyone.
	LocalMAC net.HardwareAddr `json:"-"` // (the MACs as resolved are recorded in LinkInfo, as text)
	PeerMAC  net.HardwareAddr `json:"-"`
	LocalIP  netip.Addr       `json:"local_ip,omitzero"`
	PeerIP   netip.Addr       `json:"peer_ip,omitzero"`

	Bind       string `json:"bind"`        // auto (zero-copy where the driver has it), copy or zero-copy
	XDPMode    string `json:"xdp_mode"`    // auto (native, else generic), native or generic
	NeedWakeup bool   `json:"need_wakeup"` // bind with XDP_USE_NEED_WAKEUP: kick only when the kernel asks
	Ring       int    `json:"ring"`        // fill and RX ring entries (a power of two); the UMEM holds Ring+TX frames
	// NoStamp leaves the arrival stamp out of the steering program (xdp.Spec.NoStamp): for a client, which does
	// not read it. A server needs it to measure how long requests wait on its RX ring.
	NoStamp bool `json:"no_stamp,omitempty"`

	BusyPoll BusyPoll `json:"busy_poll"`
}

// BusyPoll are the socket's busy-poll options. Zero values leave the socket's defaults (SO_BUSY_POLL starts
// at net.core.busy_read).
type BusyPoll struct {
	Usec   int  `json:"usec,omitzero"`   // SO_BUSY_POLL: each kick busy-polls the queue's NAPI up to this long
	Prefer bool `json:"prefer"`          // SO_PREFER_BUSY_POLL: keep the IRQ masked while the application polls
	Budget int  `json:"budget,omitzero"` // SO_BUSY_POLL_BUDGET: packets per busy-poll pass
}

// Active reports whether the options ask for busy polling at all.
func (b BusyPoll) Active() bool { return b.Usec > 0 || b.Prefer || b.Budget > 0 }

// Workload is what a client sends: the requests, their schedule, and how long the run lasts.
type Workload struct {
	Payload int    `json:"payload_bytes"`
	Format  Format `json:"format"`
	Verify  bool   `json:"verify"` // check every reply's payload

	// Open loop when Period > 0: request k is due at t0 + k*Period. With Outstanding as well, a paced window
	// (sockperf's ping-pong at a rate): at most Outstanding requests in flight, a due request waiting for a
	// reply to free a slot. Closed loop otherwise, with Outstanding requests in flight.
	Period      time.Duration `json:"period_ns"`
	Outstanding int           `json:"outstanding,omitempty"`
	CatchUp     CatchUp       `json:"catch_up,omitempty"`

	// Delay is the simulated application processing after each reply (busy-wait).
	Delay time.Duration `json:"delay_ns"`

	Count    uint64        `json:"count,omitempty"` // stop after this many measured requests (0: no limit)
	Duration time.Duration `json:"duration_ns"`     // stop sending after this long (0: no limit)
	Warmup   time.Duration `json:"warmup_ns"`       // sent and answered but not measured
	Interval time.Duration `json:"interval_ns"`     // report every interval (0: only at the end)
	Timeout  time.Duration `json:"timeout_ns"`      // give up on replies this long after the last send
}

// Service is how a server answers: the requests it expects and the replies it sends.
type Service struct {
	Payload int        `json:"payload_bytes"`
	Format  Format     `json:"format"`
	Verify  bool       `json:"verify"` // check every request's payload; refuse (and count) those that fail
	Reply   ReplyStyle `json:"reply"`
	// Delay is the time between receiving a request and replying, busy-waited, or slept with DelaySleeps as
	// xsk_rr's usleep does.
	Delay       time.Duration `json:"delay_ns"`
	DelaySleeps bool          `json:"delay_sleeps,omitempty"`
}

// Threads says where the spinning loops run and what drives NAPI polling from the application side.
type Threads struct {
	CPUs []int      `json:"cpus,omitempty"`     // receiver (or server), sender, poller, in that order
	FIFO int        `json:"fifo_prio,omitzero"` // SCHED_FIFO priority of the spinning threads (0: normal)
	Poll PollDriver `json:"poll"`
	// Sender places an open-loop client's sending (clients only).
	Sender SenderPlacement `json:"sender,omitempty"`
	// Colocated counts spinning threads of other processes on this machine (a server in the same testbed): the
	// client counts them when it places its own.
	Colocated int `json:"colocated_spinners,omitempty"`
}

// Bind modes and XDP attach modes as LinkOptions names them.
const (
	BindAuto     = "auto"
	BindCopy     = "copy"
	BindZeroCopy = "zero-copy"
)

// DefaultLink returns the defaults of `napilab rr` for a device.
func DefaultLink(dev string) LinkOptions {
	return LinkOptions{Dev: dev, Port: 54321, Bind: BindAuto, XDPMode: "auto", NeedWakeup: true, Ring: 2048}
}

// DefaultWorkload is 200-byte napilab requests at 12.5k/s (the seed's lightest row) for 10 s after 0.5 s of
// warm-up, reported every second, with a reply timeout of a second.
func DefaultWorkload() Workload {
	return Workload{Payload: 200, Format: FormatNapilab, Period: 80 * time.Microsecond, CatchUp: CatchUpSend,
		Duration: 10 * time.Second, Warmup: 500 * time.Millisecond, Interval: time.Second, Timeout: time.Second}
}

// DefaultService echoes 200-byte napilab requests.
func DefaultService() Service {
	return Service{Payload: 200, Format: FormatNapilab, Reply: ReplyEcho}
}

// DefaultThreads polls inline and places the sender automatically.
func DefaultThreads() Threads { return Threads{Poll: PollInline, Sender: SenderAuto} }

// OpenLoop reports whether the client sends on a fixed schedule.
func (w *Workload) OpenLoop() bool { return w.Period > 0 }

// Windowed reports whether a schedule is also bounded by requests in flight (a paced window).
func (w *Workload) Windowed() bool { return w.Period > 0 && w.Outstanding > 0 }

// Rate is the open-loop request rate in requests per second, 0 for the closed loop.
func (w *Workload) Rate() float64 {
	if w.Period <= 0 {
		return 0
	}
	return float64(time.Second) / float64(w.Period)
}

// Validate returns every problem with l, one kernel.FieldError each, joined.
func (l *LinkOptions) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) { errs = append(errs, kernel.Fieldf(field, format, args...)) }
	if l.Dev == "" {
		bad("dev", "is missing: name the interface to bind, e.g. eth0")
	}
	if l.Queue < 0 {
		bad("queue", "%d is negative", l.Queue)
	}
	if l.Port == 0 {
		bad("port", "0 cannot be steered: choose a UDP port, e.g. 54321")
	}
	if l.LocalIP.IsValid() && l.PeerIP.IsValid() && l.LocalIP.Is4() != l.PeerIP.Is4() {
		bad("local-ip", "%s and the peer's %s are of different families: use two IPv4 or two IPv6 addresses",
			l.LocalIP, l.PeerIP)
	}
	if l.LocalMAC != nil && len(l.LocalMAC) != 6 {
		bad("local-mac", "%s is not an Ethernet address: use six bytes like 02:00:00:00:00:01", l.LocalMAC)
	}
	if l.PeerMAC != nil && len(l.PeerMAC) != 6 {
		bad("peer-mac", "%s is not an Ethernet address: use six bytes like 02:00:00:00:00:01", l.PeerMAC)
	}
	switch l.Bind {
	case BindAuto, BindCopy:
	case BindZeroCopy:
		if !l.NeedWakeup {
			bad("need-wakeup", "is off, and zero copy without it can hang the kernel when threaded NAPI is "+
				"switched off: keep need_wakeup on")
		}
	default:
		bad("bind", "mode %q is unknown: use auto, copy or zero-copy", l.Bind)
	}
	switch l.XDPMode {
	case "auto", "native", "generic", "drv", "skb":
	default:
		bad("xdp-mode", "%q is unknown: use auto, native or generic", l.XDPMode)
	}
	if err := CheckRing(l.Ring); err != nil {
		errs = append(errs, err)
	}
	if l.BusyPoll.Usec < 0 {
		bad("busy-poll", "of %d µs is negative", l.BusyPoll.Usec)
	}
	if l.BusyPoll.Budget < 0 || l.BusyPoll.Budget > 65535 {
		bad("busy-poll-budget", "%d is out of range: use 0 to 65535", l.BusyPoll.Budget)
	}
	return errors.Join(errs...)
}

// MinDuration is the shortest measured time a run accepts: below it a run measures its own start, and rates
// over such a window (one request in a nanosecond is "a billion requests per second") mean nothing.
const MinDuration = time.Millisecond

// MinPeriod is the shortest open-loop period: 100M requests per second, far above what one core sends.
const MinPeriod = 10 * time.Nanosecond

// The range checks below are shared by every command that takes these values (napilab rr, sweep, demo,
// xsk_rr), so a flag means the same and is refused the same way wherever it appears.

// CheckDuration checks a measured duration: positive and at least MinDuration.
func CheckDuration(d time.Duration) error {
	switch {
	case d < 0:
		return kernel.Fieldf("duration", "%v is negative: give how long to measure, e.g. 10s", d)
	case d < MinDuration:
		return kernel.Fieldf("duration", "%v is too short to measure anything: use at least %v, e.g. 10s", d,
			MinDuration)
	}
	return nil
}

// CheckWarmup checks a warm-up time: zero or positive.
func CheckWarmup(d time.Duration) error {
	if d < 0 {
		return kernel.Fieldf("warmup", "%v is negative: use 0 for no warm-up", d)
	}
	return nil
}

// CheckTimeout checks a reply timeout: positive.
func CheckTimeout(d time.Duration) error {
	if d <= 0 {
		return kernel.Fieldf("timeout", "%v would give up on replies before any could come: use e.g. 1s", d)
	}
	return nil
}

// CheckRing checks a receive ring size: a power of two from 64 to 32768.
func CheckRing(n int) error {
	if n < 64 || n > 1<<15 || n&(n-1) != 0 {
		return kernel.Fieldf("ring", "size %d is not a power of two from 64 to 32768", n)
	}
	return nil
}

// CheckPayload checks a payload size for a format.
func CheckPayload(n int, f Format) error { return errors.Join(checkPayload(n, f)...) }

// Validate returns every problem with w, one kernel.FieldError each, joined. The open loop's period must fit
// the duration at least once: a period longer than the whole run would measure at most one request (a run at
// 0.001 requests/s for 1 s is refused here rather than waiting 1000 s for its next request or sending nothing).
func (w *Workload) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) { errs = append(errs, kernel.Fieldf(field, format, args...)) }
	errs = append(errs, checkPayload(w.Payload, w.Format)...)
	switch {
	case w.Period < 0:
		bad("period", "%s is negative: use a positive period, or a closed loop with outstanding requests", w.Period)
	case w.OpenLoop() && w.Period < MinPeriod:
		bad("period", "%s is shorter than %s (100M requests/s): use a longer one", w.Period, MinPeriod)
	case w.Outstanding < 0:
		bad("outstanding", "%d is negative: keep at least one request in flight, or drop it for an open loop",
			w.Outstanding)
	case !w.OpenLoop() && w.Outstanding < 1:
		bad("outstanding", "%d: a closed loop needs at least one request in flight (or set a period or rate for "+
			"an open loop)", w.Outstanding)
	case w.OpenLoop() && w.Duration > 0 && w.Period > w.Duration:
		bad("period", "sends one request every %s, longer than the whole duration (%s): the run would measure at "+
			"most one request; send faster or measure longer", w.Period, w.Duration)
	}
	switch w.CatchUp {
	case CatchUpSend, CatchUpSkip:
	default:
		bad("catch-up", "policy %q is unknown: use send or skip", w.CatchUp)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"delay", w.Delay}, {"interval", w.Interval}} {
		if d.v < 0 {
			bad(d.field, "%s is negative", d.v)
		}
	}
	if w.Duration != 0 {
		errs = append(errs, CheckDuration(w.Duration))
	}
	errs = append(errs, CheckWarmup(w.Warmup), CheckTimeout(w.Timeout))
	if w.Count == 0 && w.Duration == 0 {
		bad("duration", "and count are both unset, so the run has no end: set a duration or a count")
	}
	return errors.Join(errs...)
}

// Validate returns every problem with s, one kernel.FieldError each, joined.
func (s *Service) Validate() error {
	errs := checkPayload(s.Payload, s.Format)
	switch s.Reply {
	case ReplyEcho, ReplyTemplate:
	default:
		errs = append(errs, kernel.Fieldf("reply", "style %q is unknown: use echo or template", s.Reply))
	}
	if s.Delay < 0 {
		errs = append(errs, kernel.Fieldf("delay", "%s is negative", s.Delay))
	}
	return errors.Join(errs...)
}

// CheckCPUs refuses a pinned CPU this process cannot run on, before anything starts: one that is not online or
// lies outside the process's affinity (taskset, a cgroup's cpuset). usable is what UsableCPUs returns.
func (t *Threads) CheckCPUs(usable sysknob.CPUSet) error {
	var errs []error
	for _, c := range t.CPUs {
		if c >= 0 && !usable.Has(c) {
			errs = append(errs, kernel.Fieldf("cpu", "%d is not a CPU this process can run on: choose among %s "+
				"(online and allowed)", c, usable))
		}
	}
	return errors.Join(errs...)
}

// Validate returns every problem with t, one kernel.FieldError each, joined. Whether a CPU exists on this
// machine is CheckCPUs' question.
func (t *Threads) Validate() error {
	var errs []error
	for _, c := range t.CPUs {
		if c < 0 {
			errs = append(errs, kernel.Fieldf("cpu", "%d is negative", c))
		}
	}
	if t.FIFO < 0 || t.FIFO > 99 {
		errs = append(errs, kernel.Fieldf("fifo", "priority %d is out of range: use 1 to 99, or 0 for the "+
			"normal scheduler", t.FIFO))
	}
	switch t.Poll {
	case PollInline, PollSeparate, PollNone:
	default:
		errs = append(errs, kernel.Fieldf("poll", "driver %q is unknown: use inline, separate or none", t.Poll))
	}
	switch t.Sender {
	case "", SenderAuto, SenderThread, SenderInline:
	default:
		errs = append(errs, kernel.Fieldf("sender", "placement %q is unknown: use auto, thread or inline", t.Sender))
	}
	if t.Colocated < 0 {
		errs = append(errs, kernel.Fieldf("colocated", "%d is negative", t.Colocated))
	}
	return errors.Join(errs...)
}

func checkPayload(n int, f Format) []error {
	var errs []error
	if n < 1 || n > MaxPayload {
		errs = append(errs, kernel.Fieldf("payload", "of %d bytes is out of range: use 1 to %d bytes", n, MaxPayload))
	}
	switch f {
	case FormatXskRR:
	case FormatNapilab:
		if n >= 1 && n < MinPayload {
			errs = append(errs, kernel.Fieldf("payload", "of %d bytes cannot hold the napilab header: use at least "+
				"%d bytes (only the xsk_rr format, which has no header, takes fewer)", n, MinPayload))
		}
	default:
		errs = append(errs, kernel.Fieldf("format", "%q is unknown: use napilab or xsk_rr", f))
	}
	return errs
}

// ParseRate parses a rate such as "12k", "12.5k", "125000" or "1M" (requests per second) into a period.
func ParseRate(s string) (time.Duration, error) {
	num, mult := s, 1.0
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		num, mult = s[:len(s)-1], 1e3
	case strings.HasSuffix(s, "M"):
		num, mult = s[:len(s)-1], 1e6
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("rate %q is not a number of requests per second like 12k or 125000", s)
	}
	r := v * mult
	if r <= 0 || r > 100e6 {
		return 0, fmt.Errorf("rate %q is out of range: use more than 0 and at most 100M requests per second", s)
	}
	return time.Duration(float64(time.Second)/r + 0.5), nil
}
