package netdev

import (
	"fmt"
	"math/bits"
	"strings"
	"time"
)

// Device is one network device as dev-get reports it: what XDP and AF_XDP can do on it.
type Device struct {
	Ifindex       uint32
	XDPFeatures   XDPFeatures
	XDPZCMaxSegs  uint32 // fragments per zero-copy AF_XDP frame; 0 (absent) when the driver has no zero-copy
	XDPRXMetadata XDPRXMetadata
	XSKFeatures   XSKFeatures
}

// QueueType is the kind of a queue; rx and tx queues are numbered separately.
type QueueType uint32

// Queue types (enum queue-type).
const (
	QueueRX QueueType = 0
	QueueTX QueueType = 1
)

func (t QueueType) String() string {
	switch t {
	case QueueRX:
		return "rx"
	case QueueTX:
		return "tx"
	}
	return fmt.Sprintf("queue-type(%d)", uint32(t))
}

// Queue is one rx or tx queue of a device as queue-get reports it.
type Queue struct {
	ID      uint32
	Ifindex uint32
	Type    QueueType
	// NAPIID is the NAPI instance that services the queue, 0 when the driver does not say (the kernel hands out
	// NAPI ids above NR_CPUS, so 0 is never a real one). veth does not tie queues to its NAPIs (6.18).
	NAPIID  uint32
	DMABuf  uint32 // id of a bound dmabuf (devmem TCP); 0 when none (dmabuf ids start at 1)
	IOUring bool   // an io_uring zero-copy receive memory provider is bound
	XSK     bool   // an AF_XDP socket is bound to this queue (reported since 6.15)
}

// Threaded is how a NAPI instance is polled (enum napi-threaded).
type Threaded uint32

// Threaded states. ThreadedBusyPoll needs Linux 6.19; per-NAPI control of the other two needs 6.17.
const (
	ThreadedDisabled Threaded = 0 // polled from softirq context
	ThreadedEnabled  Threaded = 1 // polled by a kthread napi/<dev>-<id> that sleeps until the NAPI is scheduled
	ThreadedBusyPoll Threaded = 2 // the kthread polls continuously and keeps the device IRQ masked: 100 % of a CPU
)

var threadedNames = [...]string{"disabled", "enabled", "busy-poll"}

func (t Threaded) String() string {
	if int(t) < len(threadedNames) {
		return threadedNames[t]
	}
	return fmt.Sprintf("threaded(%d)", uint32(t))
}

// MarshalText writes the kernel's name, so that a plan or a journal reads "busy-poll", not 2, and decodes again.
func (t Threaded) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText accepts the kernel's names (as printed by String and by ynl) and the numbers 0, 1, 2.
func (t *Threaded) UnmarshalText(b []byte) error {
	s := string(b)
	for i, name := range threadedNames {
		if s == name || s == fmt.Sprint(i) {
			*t = Threaded(i)
			return nil
		}
	}
	return fmt.Errorf("unknown threaded NAPI state %q: use disabled, enabled or busy-poll", s)
}

func (t Threaded) valid() bool { return int(t) < len(threadedNames) }

// NAPI is one NAPI instance as napi-get reports it. Optional attributes come with a Has flag so that "absent"
// never reads as zero.
type NAPI struct {
	ID      uint32
	Ifindex uint32
	IRQ     uint32 // valid when HasIRQ; virtio_net and veth do not report an IRQ
	HasIRQ  bool
	PID     uint32 // the NAPI kthread; valid when HasPID, which is true only while the NAPI is threaded
	HasPID  bool

	// Per-NAPI configuration (6.13+). Older kernels do not report these and they read as zero.
	DeferHardIRQs     uint32        // empty polls before device IRQs are re-enabled
	GROFlushTimeout   time.Duration // repoll timer armed instead of re-enabling IRQs
	IRQSuspendTimeout time.Duration // how long an epoll busy-poller may keep IRQs suspended
	// Threaded is reported since 6.17. On older kernels it is derived: ThreadedEnabled while a kthread exists.
	Threaded Threaded
}

// NAPIConfig is a napi-set request: nil fields are left as they are.
type NAPIConfig struct {
	DeferHardIRQs     *uint32        // at most math.MaxInt32
	GROFlushTimeout   *time.Duration // nanosecond resolution; must not be negative
	IRQSuspendTimeout *time.Duration // 6.13+
	Threaded          *Threaded      // 6.17+; ThreadedBusyPoll 6.19+
}

func (c NAPIConfig) String() string {
	var parts []string
	if c.DeferHardIRQs != nil {
		parts = append(parts, fmt.Sprintf("defer-hard-irqs=%d", *c.DeferHardIRQs))
	}
	if c.GROFlushTimeout != nil {
		parts = append(parts, fmt.Sprintf("gro-flush-timeout=%v", *c.GROFlushTimeout))
	}
	if c.IRQSuspendTimeout != nil {
		parts = append(parts, fmt.Sprintf("irq-suspend-timeout=%v", *c.IRQSuspendTimeout))
	}
	if c.Threaded != nil {
		parts = append(parts, fmt.Sprintf("threaded=%v", *c.Threaded))
	}
	return strings.Join(parts, " ")
}

// Features says what napi-set accepts on this kernel. It is probed from the policy the kernel publishes for
// napi-set (CTRL_CMD_GETPOLICY), so probing never changes a NAPI.
type Features struct {
	NAPISet           bool `json:"napi_set"`            // per-NAPI configuration, 6.13
	IRQSuspendTimeout bool `json:"irq_suspend_timeout"` // 6.13
	PerNAPIThreaded   bool `json:"per_napi_threaded"`   // threaded enabled/disabled per NAPI, 6.17
	ThreadedBusyPoll  bool `json:"threaded_busy_poll"`  // threaded = busy-poll, 6.19
}

// Scope selects how qstats-get aggregates counters.
type Scope uint32

// Scopes. ScopeQueue is the qstats-scope flag "queue"; the device scope is the absence of the attribute.
const (
	ScopeDevice Scope = 0
	ScopeQueue  Scope = 1
)

func (s Scope) String() string {
	switch s {
	case ScopeDevice:
		return "device"
	case ScopeQueue:
		return "queue"
	}
	return fmt.Sprintf("scope(%d)", uint32(s))
}

// Counter names one qstats counter; its value is the attribute number.
type Counter uint16

// Counters, in attribute order.
const (
	RxPackets Counter = iota + attrQStatsFirst
	RxBytes
	TxPackets
	TxBytes
	RxAllocFail
	RxHWDrops
	RxHWDropOverruns
	RxCsumComplete
	RxCsumUnnecessary
	RxCsumNone
	RxCsumBad
	RxHWGROPackets
	RxHWGROBytes
	RxHWGROWirePackets
	RxHWGROWireBytes
	RxHWDropRatelimits
	TxHWDrops
	TxHWDropErrors
	TxCsumNone
	TxNeedsCsum
	TxHWGSOPackets
	TxHWGSOBytes
	TxHWGSOWirePackets
	TxHWGSOWireBytes
	TxHWDropRatelimits
	TxStop
	TxWake
)

var counterNames = [...]string{
	"rx-packets", "rx-bytes", "tx-packets", "tx-bytes", "rx-alloc-fail", "rx-hw-drops", "rx-hw-drop-overruns",
	"rx-csum-complete", "rx-csum-unnecessary", "rx-csum-none", "rx-csum-bad", "rx-hw-gro-packets",
	"rx-hw-gro-bytes", "rx-hw-gro-wire-packets", "rx-hw-gro-wire-bytes", "rx-hw-drop-ratelimits", "tx-hw-drops",
	"tx-hw-drop-errors", "tx-csum-none", "tx-needs-csum", "tx-hw-gso-packets", "tx-hw-gso-bytes",
	"tx-hw-gso-wire-packets", "tx-hw-gso-wire-bytes", "tx-hw-drop-ratelimits", "tx-stop", "tx-wake",
}

func (c Counter) String() string {
	if c >= attrQStatsFirst && c <= attrQStatsLast {
		return counterNames[c-attrQStatsFirst]
	}
	return fmt.Sprintf("counter(%d)", uint16(c))
}

// CounterSet is a set of Counters, bit c-8 for counter c.
type CounterSet uint32

// Has reports whether c is in the set.
func (s CounterSet) Has(c Counter) bool {
	return c >= attrQStatsFirst && c <= attrQStatsLast && s&(1<<(c-attrQStatsFirst)) != 0
}

func (s *CounterSet) add(c Counter) { *s |= 1 << (c - attrQStatsFirst) }

func (s CounterSet) String() string {
	var names []string
	for c := Counter(attrQStatsFirst); c <= attrQStatsLast; c++ {
		if s.Has(c) {
			names = append(names, c.String())
		}
	}
	return strings.Join(names, ",")
}

// QStats is one qstats-get record: the counters of a device (ScopeDevice) or of one of its queues (ScopeQueue).
// A driver reports only the counters it keeps; Reported tells them apart from counters that are zero.
type QStats struct {
	Ifindex   uint32
	Scope     Scope
	QueueType QueueType // ScopeQueue only
	QueueID   uint32    // ScopeQueue only
	Reported  CounterSet

	RxPackets, RxBytes, TxPackets, TxBytes        uint64
	RxAllocFail, RxHWDrops, RxHWDropOverruns      uint64
	RxCsumComplete, RxCsumUnnecessary             uint64
	RxCsumNone, RxCsumBad                         uint64
	RxHWGROPackets, RxHWGROBytes                  uint64
	RxHWGROWirePackets, RxHWGROWireBytes          uint64
	RxHWDropRatelimits, TxHWDrops, TxHWDropErrors uint64
	TxCsumNone, TxNeedsCsum                       uint64
	TxHWGSOPackets, TxHWGSOBytes                  uint64
	TxHWGSOWirePackets, TxHWGSOWireBytes          uint64
	TxHWDropRatelimits, TxStop, TxWake            uint64
}

// Value returns counter c and whether the driver reported it.
func (q *QStats) Value(c Counter) (uint64, bool) {
	p := q.counter(c)
	if p == nil || !q.Reported.Has(c) {
		return 0, false
	}
	return *p, true
}

// counter maps a Counter onto its field, nil for an unknown counter.
func (q *QStats) counter(c Counter) *uint64 {
	if c < attrQStatsFirst || c > attrQStatsLast {
		return nil
	}
	fields := [...]*uint64{ // attribute order
		&q.RxPackets, &q.RxBytes, &q.TxPackets, &q.TxBytes, &q.RxAllocFail, &q.RxHWDrops, &q.RxHWDropOverruns,
		&q.RxCsumComplete, &q.RxCsumUnnecessary, &q.RxCsumNone, &q.RxCsumBad, &q.RxHWGROPackets,
		&q.RxHWGROBytes, &q.RxHWGROWirePackets, &q.RxHWGROWireBytes, &q.RxHWDropRatelimits, &q.TxHWDrops,
		&q.TxHWDropErrors, &q.TxCsumNone, &q.TxNeedsCsum, &q.TxHWGSOPackets, &q.TxHWGSOBytes,
		&q.TxHWGSOWirePackets, &q.TxHWGSOWireBytes, &q.TxHWDropRatelimits, &q.TxStop, &q.TxWake,
	}
	return fields[c-attrQStatsFirst]
}

// SetValue sets counter c and marks it reported; it is for building expected values and fakes.
func (q *QStats) SetValue(c Counter, v uint64) {
	if p := q.counter(c); p != nil {
		*p = v
		q.Reported.add(c)
	}
}

// XDPFeatures is the xdp-act flag set of a device.
type XDPFeatures uint64

// XDP features (xdp-act flags).
const (
	XDPBasic       XDPFeatures = 1 << iota // XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX
	XDPRedirect                            // XDP_REDIRECT, which AF_XDP needs
	XDPNDOXmit                             // the device is a valid XDP_REDIRECT target
	XDPXSKZeroCopy                         // AF_XDP zero-copy; without it AF_XDP runs in copy mode
	XDPHWOffload
	XDPRXSG      // multi-buffer XDP in the driver's NAPI poll
	XDPNDOXmitSG // multi-buffer frames as a redirect target
)

var xdpFeatureNames = []string{"basic", "redirect", "ndo-xmit", "xsk-zerocopy", "hw-offload", "rx-sg", "ndo-xmit-sg"}

// Has reports whether every flag of f is set.
func (x XDPFeatures) Has(f XDPFeatures) bool { return x&f == f }

func (x XDPFeatures) String() string { return flagString(uint64(x), xdpFeatureNames) }

// XDPRXMetadata is the xdp-rx-metadata flag set: receive metadata an XDP program can read via kfuncs.
type XDPRXMetadata uint64

// XDP receive metadata.
const (
	XDPRXTimestamp XDPRXMetadata = 1 << iota
	XDPRXHash
	XDPRXVLANTag
)

var xdpRXMetadataNames = []string{"timestamp", "hash", "vlan-tag"}

// Has reports whether every flag of f is set.
func (x XDPRXMetadata) Has(f XDPRXMetadata) bool { return x&f == f }

func (x XDPRXMetadata) String() string { return flagString(uint64(x), xdpRXMetadataNames) }

// XSKFeatures is the xsk-flags set: AF_XDP transmit offloads of the driver.
type XSKFeatures uint64

// AF_XDP features.
const (
	XSKTxTimestamp XSKFeatures = 1 << iota
	XSKTxChecksum
	XSKTxLaunchTimeFIFO
)

var xskFeatureNames = []string{"tx-timestamp", "tx-checksum", "tx-launch-time-fifo"}

// Has reports whether every flag of f is set.
func (x XSKFeatures) Has(f XSKFeatures) bool { return x&f == f }

func (x XSKFeatures) String() string { return flagString(uint64(x), xskFeatureNames) }

// flagString names the set bits joined by "|", unknown bits in hex, and "none" for an empty set.
func flagString(v uint64, names []string) string {
	if v == 0 {
		return "none"
	}
	var b strings.Builder
	for v != 0 {
		i := bits.TrailingZeros64(v)
		v &^= 1 << i
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		if i < len(names) {
			b.WriteString(names[i])
		} else {
			fmt.Fprintf(&b, "%#x", uint64(1)<<i)
		}
	}
	return b.String()
}
