package trace

import (
	"fmt"
	"time"
)

// Attestation is the small record of an observation a sweep cell keeps: who polled the cell's NAPIs, how much each
// poll found, how often the device interrupted, and how often the poller lost its CPU. Check compares it with the
// poller a polling mode should have.
type Attestation struct {
	NAPIs    []uint32      `json:"napi_ids"`
	Duration time.Duration `json:"duration_ns"`
	Polls    uint64        `json:"polls"`
	Packets  uint64        `json:"packets"`
	// Kind is who took most of the packets (when none arrived: made most of the polls), and KindShare its share
	// of them; empty when nothing polled.
	Kind      Kind    `json:"kind,omitempty"`
	KindShare float64 `json:"kind_share"`
	// Poller is the thread of that kind that took most (for softirq: the task whose time the softirq ran on),
	// PollerShare its share of the polls.
	Poller      string  `json:"poller,omitempty"`
	PollerTID   int     `json:"poller_tid,omitempty"`
	PollerShare float64 `json:"poller_share"`

	PacketsPerPoll float64 `json:"packets_per_poll"` // mean over all polls
	EmptyShare     float64 `json:"empty_share"`      // share of polls that found nothing

	IRQs      uint64 `json:"irqs"`                 // runs of the target IRQs' handlers
	IRQSource string `json:"irq_source,omitempty"` // how they were counted; empty when the target had no IRQ

	// Preemptions are the involuntary context switches of the poller thread (kthread or busy poller; a softirq
	// has no thread of its own), and PollerOffCPU the time it spent off its CPU.
	Preemptions  uint64        `json:"poller_preemptions"`
	PollerOffCPU time.Duration `json:"poller_off_cpu_ns"`

	Dropped uint64 `json:"dropped,omitempty"` // events the tracers could not count (a map was full)
	Verdict string `json:"verdict"`
}

// Attest condenses the observation into an Attestation over all its target NAPIs.
func (o *Observation) Attest() Attestation {
	s := summarize(o.Target.NAPIs, o.Polls, o.Duration)
	a := Attestation{NAPIs: o.Target.NAPIs, Duration: o.Duration, Polls: s.polls, Packets: s.packets,
		IRQs: o.IRQTotal(), IRQSource: o.IRQSource, Dropped: o.Dropped, Verdict: s.verdict()}
	if s.polls == 0 {
		return a
	}
	kind, kindShare, top := s.dominant()
	a.Kind, a.KindShare = kind, kindShare
	a.Poller, a.PollerTID, a.PollerShare = top.Comm, top.TID, top.PollShare
	a.PacketsPerPoll = float64(s.packets) / float64(s.polls)
	a.EmptyShare = share(s.empty, s.polls)
	if kind != KindSoftirq {
		if t, ok := o.Thread(top.TID); ok {
			a.Preemptions, a.PollerOffCPU = t.Involuntary, t.OffCPU
		}
	}
	return a
}

// IRQsPer returns the target IRQs per request (or per any count the caller made during the observation), 0
// when there were no requests.
func (a Attestation) IRQsPer(requests uint64) float64 {
	if requests == 0 {
		return 0
	}
	return float64(a.IRQs) / float64(requests)
}

// Check compares an attestation with the poller mode (a napi preset name) should have, and returns a sentence
// saying how they disagree, or "" when they agree or the mode is one it does not know. A mode whose NAPIs were
// not polled at all disagrees too: nothing can be attested, and traffic that never reaches the NAPI is news.
func Check(mode string, a Attestation) string {
	want, ok := ExpectedKind(mode)
	if !ok {
		return ""
	}
	if a.Polls > 0 && a.Kind == want {
		return ""
	}
	return fmt.Sprintf("%s expects %s, but %s", mode, want.expectation(), a.Verdict)
}
