package rr

import "strings"

// Asynchronous preemption and the spinning loops.
//
// The Go runtime forces a goroutine that has run 10 ms without rescheduling to yield (runtime/proc.go: retake,
// preemptone), and a spinning loop never reschedules, so each spinner is handed off through another thread and
// back up to a hundred times a second (about fifty measured) whatever napilab does. With asynchronous preemption
// on, the Go default, each of those requests also signals the spinner's thread (SIGURG); its kicks are raw system
// calls, so the signal mostly lands where it cannot preempt, and the thread pays for its delivery and handler all
// the same. With it off (GODEBUG=asyncpreemptoff=1) the loop yields at its next function call: the same hand-off,
// no signal. Measured on the xsk_rr drop-in's server (2-vCPU VM, veth, 12.5k requests/s, its turnaround timed by
// `napilab trace turnaround`, 12 interleaved pairs of 5 s runs): turnarounds beyond 100 µs 11–145 per 60k
// requests (median 54) with it off against 38–222 (median 105) with it on, fewer in 9 pairs of 12; p99.9 under
// 100 µs in 9 runs of 12 against 3. Six more pairs, with the restart below built in: 33–205 (median 68) against
// 120–225 (median 145), fewer in 6 of 6. The median turnaround does not move.
//
// The runtime reads the setting once, at start, so the commands restart themselves with it (RestartForSpinning)
// unless GODEBUG already says either way. What it costs: a loop without function calls cannot be preempted, and
// napilab's loops call functions (the idle spin returns every idleSpin kicks); GC is off while they run anyway.

// asyncPreemptOff is the GODEBUG setting.
const asyncPreemptOff = "asyncpreemptoff"

// spinningEnv returns env with asyncpreemptoff=1 added to GODEBUG, and whether it added it: not when GODEBUG
// already sets asyncpreemptoff, to whatever value (the user's choice stands).
func spinningEnv(env []string) ([]string, bool) {
	out := make([]string, 0, len(env)+1)
	found := false
	for _, kv := range env {
		v, ok := strings.CutPrefix(kv, "GODEBUG=")
		if !ok {
			out = append(out, kv)
			continue
		}
		if found {
			continue // a duplicate: getenv reads the first, and so does the runtime
		}
		found = true
		for _, setting := range strings.Split(v, ",") {
			if key, _, _ := strings.Cut(setting, "="); strings.TrimSpace(key) == asyncPreemptOff {
				return env, false
			}
		}
		if v != "" {
			v += ","
		}
		out = append(out, "GODEBUG="+v+asyncPreemptOff+"=1")
	}
	if !found {
		out = append(out, "GODEBUG="+asyncPreemptOff+"=1")
	}
	return out, true
}
