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

// Endpoint is one end of the UDP flow as it appears on the wire.
type Endpoint struct {
	MAC  net.HardwareAddr
	IP   netip.Addr
	Port uint16
}

// Params is the pure description of a run: it validates without root and is embedded in every result.
type Params struct {
	Role Role `json:"role"`

	Dev   string `json:"dev"`
	Queue int    `json:"queue"`
	Port  uint16 `json:"port"`
	// Local and Peer override what napilab discovers from the device and the neighbour table.
	// (The MACs as resolved are recorded in LinkInfo, as text.)
	LocalMAC net.HardwareAddr `json:"-"`
	PeerMAC  net.HardwareAddr `json:"-"`
	LocalIP  netip.Addr       `json:"local_ip,omitzero"`
	PeerIP   netip.Addr       `json:"peer_ip,omitzero"`

	Payload int        `json:"payload_bytes"`
	Format  Format     `json:"format"`
	Reply   ReplyStyle `json:"reply,omitempty"`
	Verify  bool       `json:"verify"`

	// Open loop when Period > 0: request k is due at t0 + k*Period. Closed loop otherwise, with Outstanding
	// requests in flight.
	Period      time.Duration   `json:"period_ns"`
	Outstanding int             `json:"outstanding,omitempty"`
	Sender      SenderPlacement `json:"sender,omitempty"`
	CatchUp     CatchUp         `json:"catch_up,omitempty"`

	// Delay is the client's simulated application processing after each reply (busy-wait), or the server's
	// delay between receiving a request and replying.
	Delay time.Duration `json:"delay_ns"`
	// DelaySleeps makes the server sleep for Delay instead of busy-waiting, as xsk_rr's usleep does.
	DelaySleeps bool `json:"delay_sleeps,omitempty"`

	Poll PollDriver `json:"poll"`

	// Colocated is the number of spinning threads of other processes on this machine (a server in the same
	// testbed): the client counts them when it places its own.
	Colocated int `json:"colocated_spinners,omitempty"`

	Count    uint64        `json:"count,omitempty"`    // stop after this many measured requests (0: no limit)
	Duration time.Duration `json:"duration_ns"`        // stop after this long (0: no limit)
	Warmup   time.Duration `json:"warmup_ns"`          // sent and answered but not measured
	Interval time.Duration `json:"interval_ns"`        // report every interval (0: only at the end)
	Timeout  time.Duration `json:"timeout_ns"`         // give up on replies this long after the last send
	CPUs     []int         `json:"cpus,omitempty"`     // CPUs for receiver, sender, poller threads, in that order
	FIFO     int           `json:"fifo_prio,omitzero"` // SCHED_FIFO priority for the spinning threads (0: normal)

	BusyPollUsec   int  `json:"busy_poll_usec,omitzero"` // SO_BUSY_POLL; 0 leaves the socket's default
	PreferBusyPoll bool `json:"prefer_busy_poll"`        // SO_PREFER_BUSY_POLL
	BusyPollBudget int  `json:"busy_poll_budget,omitzero"`

	// The AF_XDP socket and the steering program.
	Bind       string `json:"bind"`        // auto (zero-copy where the driver has it), copy or zero-copy
	XDPMode    string `json:"xdp_mode"`    // auto (native, else generic), native or generic
	NeedWakeup bool   `json:"need_wakeup"` // bind with XDP_USE_NEED_WAKEUP: kick only when the kernel asks
	Ring       int    `json:"ring"`        // fill and RX ring entries (a power of two); the UMEM holds Ring+TXRing frames
}

// Bind modes and XDP attach modes as Params names them.
const (
	BindAuto     = "auto"
	BindCopy     = "copy"
	BindZeroCopy = "zero-copy"
)

// DefaultParams returns the defaults of `napilab rr` for a role.
func DefaultParams(role Role) Params {
	p := Params{
		Role:     role,
		Port:     54321,
		Payload:  200,
		Format:   FormatNapilab,
		Poll:     PollInline,
		Sender:   SenderAuto,
		CatchUp:  CatchUpSend,
		Interval: time.Second,
		Timeout:  time.Second,

		Bind:       BindAuto,
		XDPMode:    "auto",
		NeedWakeup: true,
		Ring:       2048,
	}
	if role == RoleServer {
		p.Reply = ReplyEcho
	} else {
		p.Period = 80 * time.Microsecond // 12.5k requests/s, the seed's lightest row
		p.Duration = 10 * time.Second
		p.Warmup = 500 * time.Millisecond
	}
	return p
}

// OpenLoop reports whether the client sends on a fixed schedule.
func (p *Params) OpenLoop() bool { return p.Period > 0 }

// Validate returns every problem with p, one sentence each, joined.
func (p *Params) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch p.Role {
	case RoleServer, RoleClient:
	default:
		bad("role %q is unknown: use server or client", p.Role)
	}
	if p.Dev == "" {
		bad("no device: name the interface to bind, e.g. --dev eth0")
	}
	if p.Queue < 0 {
		bad("queue %d is negative", p.Queue)
	}
	if p.Port == 0 {
		bad("port 0 cannot be steered: choose a UDP port, e.g. --port 54321")
	}
	if p.Payload < 1 || p.Payload > MaxPayload {
		bad("payload of %d bytes is out of range: use 1 to %d bytes", p.Payload, MaxPayload)
	}
	switch p.Format {
	case FormatXskRR:
	case FormatNapilab:
		if p.Payload < MinPayload {
			bad("payload of %d bytes cannot hold the napilab header: use at least %d bytes or --format xsk_rr",
				p.Payload, MinPayload)
		}
	default:
		bad("payload format %q is unknown: use napilab or xsk_rr", p.Format)
	}
	switch p.Poll {
	case PollInline, PollSeparate, PollNone:
	default:
		bad("poll driver %q is unknown: use inline, separate or none", p.Poll)
	}
	if p.LocalIP.IsValid() && p.PeerIP.IsValid() && p.LocalIP.Is4() != p.PeerIP.Is4() {
		bad("local address %s and peer address %s are of different families: use two IPv4 or two IPv6 addresses",
			p.LocalIP, p.PeerIP)
	}
	for name, mac := range map[string]net.HardwareAddr{"local": p.LocalMAC, "peer": p.PeerMAC} {
		if mac != nil && len(mac) != 6 {
			bad("%s MAC %s is not an Ethernet address: use six bytes like 02:00:00:00:00:01", name, mac)
		}
	}
	if p.Delay < 0 || p.Period < 0 || p.Duration < 0 || p.Warmup < 0 || p.Interval < 0 || p.Timeout < 0 {
		bad("durations must not be negative")
	}
	if p.FIFO < 0 || p.FIFO > 99 {
		bad("SCHED_FIFO priority %d is out of range: use 1 to 99, or 0 for the normal scheduler", p.FIFO)
	}
	if p.BusyPollUsec < 0 || p.BusyPollBudget < 0 || p.BusyPollBudget > 65535 {
		bad("busy-poll settings out of range: SO_BUSY_POLL takes microseconds >= 0, the budget 0 to 65535")
	}
	switch p.Bind {
	case BindAuto, BindCopy:
	case BindZeroCopy:
		if !p.NeedWakeup {
			bad("zero-copy without need_wakeup can hang the kernel when threaded NAPI is switched off: keep need_wakeup on")
		}
	default:
		bad("bind mode %q is unknown: use auto, copy or zero-copy", p.Bind)
	}
	switch p.XDPMode {
	case "auto", "native", "generic", "drv", "skb":
	default:
		bad("XDP attach mode %q is unknown: use auto, native or generic", p.XDPMode)
	}
	if p.Ring < 64 || p.Ring > 1<<15 || p.Ring&(p.Ring-1) != 0 {
		bad("ring size %d is not a power of two from 64 to 32768", p.Ring)
	}
	for _, c := range p.CPUs {
		if c < 0 {
			bad("CPU %d is negative", c)
		}
	}

	if p.Role == RoleServer {
		switch p.Reply {
		case ReplyEcho:
		case ReplyTemplate:
			if !p.PeerIP.IsValid() {
				bad("template replies go to one client: give its address (--peer), or use echo replies")
			}
		default:
			bad("reply style %q is unknown: use echo or template", p.Reply)
		}
	}
	if p.Role == RoleClient {
		if !p.PeerIP.IsValid() {
			bad("no peer address: give the server's IP, e.g. --peer 10.0.0.2")
		}
		switch p.Sender {
		case SenderAuto, SenderThread, SenderInline:
		default:
			bad("sender placement %q is unknown: use auto, thread or inline", p.Sender)
		}
		switch p.CatchUp {
		case CatchUpSend, CatchUpSkip:
		default:
			bad("catch-up policy %q is unknown: use send or skip", p.CatchUp)
		}
		if !p.OpenLoop() && p.Outstanding < 1 {
			bad("closed loop needs at least one outstanding request: set --outstanding N, or an open-loop --period/--rate")
		}
		if p.OpenLoop() && p.Outstanding > 0 {
			bad("--outstanding applies to the closed loop only: drop it, or drop --period/--rate")
		}
		if p.Count == 0 && p.Duration == 0 {
			bad("the run has no end: set --count or --duration")
		}
		if p.Timeout == 0 {
			bad("a zero reply timeout would end the run before any reply: use e.g. --timeout 1s")
		}
	}
	return errors.Join(errs...)
}

// Rate is the open-loop request rate in requests per second, 0 for the closed loop.
func (p *Params) Rate() float64 {
	if p.Period <= 0 {
		return 0
	}
	return float64(time.Second) / float64(p.Period)
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
