// Package sweep runs the comparison the threaded-NAPI-busy-poll cover letter tabulates: every polling mode under
// every load, where a load is an open-loop request rate plus the client's simulated processing time per reply
// ("32 Kpkt/s + 30us delay"), between two ends — two hosts, or two namespaces of a testbed.
//
// The server's end is always an agent session (package agent): on another host over ssh, or on this one, the
// same code path. For each mode the agent puts the mode in place on the server's device under a lease
// (journaled, restored by the agent on a lost connection and by its watchdog after a crash), the rr server
// answers there, and the client measures every load on its own clock; then the mode is restored. Before any
// setting changes, a preflight checks that requests come back. Repetitions interleave the modes (A B C A B C),
// so slow drift of the machine shows up as spread within a cell instead of as a difference between modes.
//
// A Spec is a plain value; Run does the work against two Ends. The Result is one versioned document (Schema)
// with a reproducibility header for both ends.
package sweep

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/napi"
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
	// Timeout is how long the client waits for replies after its last request; a reply later than that counts
	// as lost.
	Timeout time.Duration `json:"timeout_ns"`
	// ServerCPU and ClientCPU pin the two benchmark loops, each on its own host; a mode's NAPI kthread goes to
	// ServerCPU unless PollCPU says otherwise (-1: the server's CPU).
	ServerCPU int `json:"server_cpu"`
	ClientCPU int `json:"client_cpu"`
	PollCPU   int `json:"poll_cpu"`
	// Channels and RingRX, when set, make every mode also set the server device's queue count (ethtool -L) and
	// its rx descriptor ring (ethtool -G): both reset the link.
	Channels uint32 `json:"channels,omitzero"`
	RingRX   uint32 `json:"ring_rx,omitzero"`
	// Ring is the receive ring size of both ends.
	Ring int `json:"ring"`
}

// DefaultSpec is the seed's table: its modes and loads, 400-byte payloads, 2 s per cell.
func DefaultSpec() Spec {
	s := Spec{Modes: SeedModes, Reps: 1, Duration: 2 * time.Second, Warmup: 300 * time.Millisecond, Payload: 400,
		Timeout: time.Second, ServerCPU: 0, ClientCPU: 1, PollCPU: -1, Ring: 4096}
	for _, r := range SeedRows {
		row, _ := ParseRow(r)
		s.Rows = append(s.Rows, row)
	}
	return s
}

// Validate reports every problem with s, one kernel.FieldError each (field names as napilab's flags).
func (s Spec) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) { errs = append(errs, kernel.Fieldf(field, format, args...)) }
	if len(s.Modes) == 0 {
		bad("modes", "is empty: name at least one polling mode (napilab mode list shows them)")
	}
	if len(s.Rows) == 0 {
		bad("load", "is empty: give at least one load, e.g. 12.5k")
	}
	seen := map[string]bool{}
	for _, m := range s.Modes {
		if seen[m] {
			bad("modes", "list %s twice", m)
		}
		seen[m] = true
		if _, err := napi.Preset(m, ""); err != nil {
			bad("modes", "name an %v", err)
		}
	}
	if s.Reps < 1 {
		bad("reps", "%d: use at least 1", s.Reps)
	}
	// The same ranges as napilab rr's flags of the same names.
	errs = append(errs, rr.CheckDuration(s.Duration), rr.CheckWarmup(s.Warmup), rr.CheckTimeout(s.Timeout),
		rr.CheckPayload(s.Payload, rr.FormatNapilab), rr.CheckRing(s.Ring))
	if s.ServerCPU < 0 {
		bad("server-cpu", "%d is negative", s.ServerCPU)
	}
	if s.ClientCPU < 0 {
		bad("client-cpu", "%d is negative", s.ClientCPU)
	}
	if s.PollCPU < -1 {
		bad("poll-cpu", "%d is negative (-1 means the server's CPU)", s.PollCPU)
	}
	for _, r := range s.Rows {
		switch {
		case r.Rate <= 0:
			bad("load", "%s has no rate", r)
		case s.Duration > 0 && r.Period() > s.Duration:
			bad("load", "%s sends one request every %s, longer than the whole duration (%s): a cell would measure "+
				"at most one request; send faster or measure longer", r, r.Period(), s.Duration)
		}
	}
	return errors.Join(errs...)
}
