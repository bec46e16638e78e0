package sweep

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/kernel"
)

func TestParseRow(t *testing.T) {
	for in, want := range map[string]Row{
		"12.5k":      {Rate: 12500},
		"32k+30us":   {Rate: 32000, Delay: 30 * time.Microsecond},
		"125000+6µs": {Rate: 125000, Delay: 6 * time.Microsecond},
		" 1M+1ms ":   {Rate: 1e6, Delay: time.Millisecond},
	} {
		got, err := ParseRow(in)
		if err != nil || got != want {
			t.Errorf("ParseRow(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "+30us", "fast", "12k+soon", "12k+-5us", "0+1us"} {
		if _, err := ParseRow(in); err == nil {
			t.Errorf("ParseRow(%q) accepted", in)
		}
	}
	r, _ := ParseRow("32k+30us")
	if r.String() != "32k+30us" || r.Label() != "32K pkt/s + 30us delay" || r.Period() != 31250*time.Nanosecond {
		t.Fatalf("row %q label %q period %v", r.String(), r.Label(), r.Period())
	}
	for _, s := range SeedRows {
		r, err := ParseRow(s)
		if err != nil || r.String() != s {
			t.Errorf("seed row %q round-trips as %q (%v)", s, r.String(), err)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultSpec().Validate(); err != nil {
		t.Fatal(err)
	}
	s := DefaultSpec()
	s.Modes, s.Reps, s.Duration, s.Payload, s.Timeout = append(s.Modes, "busy-poll", "turbo"), 0, 0, 10, 0
	s.ClientCPU, s.PollCPU, s.Ring = -1, -2, 100
	err := s.Validate()
	fields := map[string]bool{}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *kernel.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a FieldError", e)
		}
		fields[fe.Field] = true
	}
	for _, want := range []string{"modes", "reps", "duration", "payload", "timeout", "client-cpu", "poll-cpu", "ring"} {
		if !fields[want] {
			t.Errorf("Validate() = %v; want a problem with %q", err, want)
		}
	}
}

// TestValidateRanges: the flags sweep shares with napilab rr are refused the same way, and a load slower than
// one request per cell is refused before anything runs.
func TestValidateRanges(t *testing.T) {
	for _, c := range []struct {
		name  string
		mod   func(*Spec)
		field string
		want  string
	}{
		{"negative duration", func(s *Spec) { s.Duration = -5 * time.Second }, "duration", "negative"},
		{"nanosecond duration", func(s *Spec) { s.Duration = time.Nanosecond }, "duration", "too short to measure"},
		{"negative warmup", func(s *Spec) { s.Warmup = -time.Second }, "warmup", "negative"},
		{"zero timeout", func(s *Spec) { s.Timeout = 0 }, "timeout", "before any could come"},
		{"slow load", func(s *Spec) { s.Rows = []Row{{Rate: 0.5}}; s.Duration = time.Second }, "load",
			"longer than the whole duration"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := DefaultSpec()
			c.mod(&s)
			var fe *kernel.FieldError
			err := s.Validate()
			if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Msg, c.want) {
				t.Fatalf("Validate() = %v; want a problem with %q saying %q", err, c.field, c.want)
			}
		})
	}
}
