package testbed

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Netem is an impairment of one direction of a bridged testbed, as the kernel's netem queueing discipline
// applies it to the frames a bridge port transmits. The zero value impairs nothing.
//
// Reordering is netem's: with probability Reorder a frame skips the Delay every other frame waits, so it
// overtakes the frames still held back (a reordered frame shows up only when Delay exceeds the gap between
// frames).
type Netem struct {
	Delay     time.Duration `json:"delay_ns,omitempty"`      // every frame waits this long (microsecond resolution)
	Jitter    time.Duration `json:"jitter_ns,omitempty"`     // random variation of Delay
	Loss      float64       `json:"loss_pct,omitempty"`      // percent of frames dropped
	Reorder   float64       `json:"reorder_pct,omitempty"`   // percent of frames sent at once instead of after Delay
	Duplicate float64       `json:"duplicate_pct,omitempty"` // percent of frames sent twice
	Limit     uint32        `json:"limit,omitempty"`         // frames the discipline may hold (0: netem's 1000)
}

// IsZero reports whether n impairs nothing.
func (n Netem) IsZero() bool { return n == Netem{} }

// maxNetemDelay bounds Delay and Jitter: netem takes them in 32-bit scheduler ticks (64 per microsecond here),
// which hold about a minute; no impairment of a latency benchmark needs more.
const maxNetemDelay = time.Minute

// Validate returns every problem with n, one sentence each.
func (n Netem) Validate() error {
	var errs []error
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", n.Loss}, {"reorder", n.Reorder}, {"duplicate", n.Duplicate}} {
		if !(p.v >= 0 && p.v <= 100) { // also refuses NaN
			errs = append(errs, fmt.Errorf("netem %s of %v%% is not a percentage: use 0 to 100", p.name, p.v))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"delay", n.Delay}, {"jitter", n.Jitter}} {
		if d.v < 0 || d.v > maxNetemDelay {
			errs = append(errs, fmt.Errorf("netem %s of %v is out of range: use 0 to %v", d.name, d.v, maxNetemDelay))
		}
	}
	if n.Jitter > 0 && n.Delay == 0 {
		errs = append(errs, errors.New("netem jitter varies the delay: set a delay too"))
	}
	if n.Reorder > 0 && n.Delay == 0 {
		errs = append(errs, errors.New("netem reorders by letting frames skip the delay: set a delay longer than the gap between frames"))
	}
	return errors.Join(errs...)
}

// String renders n in tc's words: "delay 200µs reorder 25% loss 5%"; "none" for the zero value.
func (n Netem) String() string {
	if n.IsZero() {
		return "none"
	}
	var parts []string
	if n.Delay > 0 {
		parts = append(parts, "delay "+n.Delay.String())
		if n.Jitter > 0 {
			parts = append(parts, n.Jitter.String())
		}
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"reorder", n.Reorder}, {"loss", n.Loss}, {"duplicate", n.Duplicate}} {
		if p.v > 0 {
			parts = append(parts, p.name+" "+strconv.FormatFloat(p.v, 'g', -1, 64)+"%")
		}
	}
	if n.Limit > 0 {
		parts = append(parts, "limit "+strconv.FormatUint(uint64(n.Limit), 10))
	}
	return strings.Join(parts, " ")
}

// Impairment returns what Impair set for frames toward host h.
func (tb *Testbed) Impairment(toward *Host) Netem {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if toward == tb.B {
		return tb.toB
	}
	return tb.toA
}
