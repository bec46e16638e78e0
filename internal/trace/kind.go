package trace

import "strings"

// Kind is who polled a NAPI.
type Kind string

// The kinds of poller.
const (
	// KindSoftirq is NET_RX softirq: after a device IRQ (or a napi_schedule by a sender on the same machine, as on
	// veth), on the way out of the interrupt or when the task that raised it re-enables bottom halves, or in
	// ksoftirqd when softirqs pile up. The task named is the one whose time the softirq ran on.
	KindSoftirq Kind = "softirq"
	// KindKthread is the NAPI's own kernel thread, napi/<dev>-<id>: threaded NAPI, and threaded busy poll.
	KindKthread Kind = "kthread"
	// KindBusyPoll is a thread polling the NAPI itself from a system call (napi_busy_loop): socket busy polling
	// by an application thread, as SO_BUSY_POLL makes every recvfrom kick do.
	KindBusyPoll Kind = "busy-poll"
)

// kinds lists the kinds in a fixed order, for output.
var kinds = []Kind{KindKthread, KindSoftirq, KindBusyPoll}

// expectation says what a mode of this kind expects, to complete "<mode> expects ...".
func (k Kind) expectation() string {
	switch k {
	case KindSoftirq:
		return "softirq to poll the NAPI"
	case KindKthread:
		return "the NAPI's kthread to poll it"
	case KindBusyPoll:
		return "an application thread to busy-poll the NAPI"
	}
	return string(k) + " polling"
}

// ExpectedKind returns the poller a polling mode (as napi names its presets) should put on the NAPI of the queue
// it is applied to, and false for a mode it does not know. interrupts leaves polling to softirq; the socket
// busy-poll modes, irq-suspend included, poll from the application's thread; threaded and threaded-busy-poll
// hand the NAPI to its kthread. The seed-* reproductions of the cover letter's setups expect what their mode does.
func ExpectedKind(mode string) (Kind, bool) {
	switch strings.TrimPrefix(mode, "seed-") {
	case "interrupts":
		return KindSoftirq, true
	case "busy-poll", "busy-poll-separate", "irq-suspend":
		return KindBusyPoll, true
	case "threaded", "threaded-busy-poll":
		return KindKthread, true
	}
	return "", false
}
