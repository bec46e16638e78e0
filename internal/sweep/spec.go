// Package sweep runs the comparison the threaded-NAPI-busy-poll cover letter tabulates: every polling mode under
// every load, where a load is an open-loop request rate plus the client's simulated processing time per reply
// ("32 Kpkt/s + 30us delay"). For each mode the sweep attaches the AF_XDP datapath, puts the mode in place on the
// server's device through package napi (journaled, restored afterwards), runs the rr benchmark once per load,
// and restores. Repetitions interleave the modes (A B C A B C), so slow drift of the machine shows up as spread
// within a cell instead of as a difference between modes.
//
// A Spec is a plain value; Run does the work against an Env, the two ends' devices and namespaces.
package sweep

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/rr"
)

// Row is one load: requests per second, open loop, and the client's busy-wait after each reply.
type Row struct {
	Rate  float64       `json:"rate"`
	Delay time.Duration `json:"delay_ns"`
}

// ParseRow parses "RATE[+DELAY]", e.g. "12.5k", "32k+30us", "125000+6us".
func ParseRow(s string) (Row, error) {
	rate, delay, _ := strings.Cut(strings.TrimSpace(s), "+")
	period, err := rr.ParseRate(rate)
	if err != nil {
		return Row{}, fmt.Errorf("load %q: %w", s, err)
	}
	r := Row{Rate: float64(time.Second) / float64(period)}
	if delay != "" {
		if r.Delay, err = time.ParseDuration(strings.ReplaceAll(delay, "µ", "u")); err != nil || r.Delay < 0 {
			return Row{}, fmt.Errorf("load %q: delay %q is not a duration like 30us", s, delay)
		}
	}
	return r, nil
}

// Period is the open-loop period of the row.
func (r Row) Period() time.Duration { return time.Duration(float64(time.Second)/r.Rate + 0.5) }

// String is the row in ParseRow's syntax.
func (r Row) String() string {
	s := formatRate(r.Rate)
	if r.Delay > 0 {
		s += "+" + fmtDelay(r.Delay)
	}
	return s
}

// Label is the row as the cover letter writes it: "32 Kpkt/s + 30us delay".
func (r Row) Label() string {
	return fmt.Sprintf("%s pkt/s + %s delay", strings.ToUpper(formatRate(r.Rate)), fmtDelay(r.Delay))
}

func fmtDelay(d time.Duration) string {
	if d == 0 {
		return "0us"
	}
	return strings.ReplaceAll(d.String(), "µ", "u")
}

func formatRate(r float64) string {
	switch {
	case r >= 1e6 && r == float64(int64(r/1e5))*1e5:
		return strconv.FormatFloat(r/1e6, 'f', -1, 64) + "M"
	case r >= 1e3 && r == float64(int64(r/10))*10:
		return strconv.FormatFloat(r/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// SeedRows are the cover letter's five loads ("12 Kpkt/s" is xsk_rr's 80 µs period, 12.5k/s).
var SeedRows = []string{"12.5k", "32k+30us", "125k+6us", "12.5k+78us", "25k+38us"}

// SeedModes are the cover letter's four columns plus threaded NAPI without busy polling, for reference.
var SeedModes = []string{"interrupts", "busy-poll", "busy-poll-separate", "threaded", "threaded-busy-poll"}

// Spec is a sweep before it runs.
type Spec struct {
	Modes    []string      `json:"modes"`
	Rows     []Row         `json:"rows"`
	Reps     int           `json:"reps"`
	Duration time.Duration `json:"duration_ns"` // measured per cell
	Warmup   time.Duration `json:"warmup_ns"`
	Payload  int           `json:"payload_bytes"`
	// ServerCPU and ClientCPU pin the two benchmark loops; a mode's NAPI kthread goes to ServerCPU's side
	// unless PollCPU says otherwise (-1: the server's CPU).
	ServerCPU int `json:"server_cpu"`
	ClientCPU int `json:"client_cpu"`
	PollCPU   int `json:"poll_cpu"`
	// Ring is the receive ring size of both ends.
	Ring int `json:"ring"`
	// ReplyTimeout is how long the client waits for replies after a cell's last request before it counts them
	// lost; 0 keeps rr's default.
	ReplyTimeout time.Duration `json:"reply_timeout_ns,omitzero"`
}

// DefaultSpec is the seed's table: its modes and loads, 400-byte payloads, 2 s per cell.
func DefaultSpec() Spec {
	s := Spec{Modes: SeedModes, Reps: 1, Duration: 2 * time.Second, Warmup: 300 * time.Millisecond, Payload: 400,
		ServerCPU: 0, ClientCPU: 1, PollCPU: -1, Ring: 4096}
	for _, r := range SeedRows {
		row, _ := ParseRow(r)
		s.Rows = append(s.Rows, row)
	}
	return s
}

// Validate reports every problem with s, one sentence each.
func (s Spec) Validate() error {
	var errs []error
	if len(s.Modes) == 0 || len(s.Rows) == 0 {
		errs = append(errs, errors.New("a sweep needs at least one mode and one load"))
	}
	seen := map[string]bool{}
	for _, m := range s.Modes {
		if seen[m] {
			errs = append(errs, fmt.Errorf("mode %s is listed twice", m))
		}
		seen[m] = true
	}
	if s.Reps < 1 {
		errs = append(errs, fmt.Errorf("%d repetitions: use at least 1", s.Reps))
	}
	if s.Duration <= 0 {
		errs = append(errs, errors.New("the measured duration per cell must be positive, e.g. 2s"))
	}
	if s.Warmup < 0 {
		errs = append(errs, errors.New("the warm-up must not be negative"))
	}
	if s.Payload < rr.MinPayload || s.Payload > rr.MaxPayload {
		errs = append(errs, fmt.Errorf("payload of %d bytes: use %d to %d", s.Payload, rr.MinPayload, rr.MaxPayload))
	}
	if s.ServerCPU < 0 || s.ClientCPU < 0 || s.ServerCPU == s.ClientCPU {
		errs = append(errs, errors.New("the server and the client need two different CPUs"))
	}
	for _, r := range s.Rows {
		if r.Rate <= 0 {
			errs = append(errs, fmt.Errorf("load %s has no rate", r))
		}
	}
	return errors.Join(errs...)
}
