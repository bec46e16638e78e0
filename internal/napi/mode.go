package napi

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/sysknob"
)

// ModeName names a polling mode; the names are the same everywhere (CLI, JSON, tables).
type ModeName string

// The polling modes (design.md, "Polling modes").
const (
	Interrupts       ModeName = "interrupts"         // IRQ → softirq NAPI poll; the application only waits
	BusyPoll         ModeName = "busy-poll"          // the application's receive call busy-polls the NAPI once
	BusyPollSeparate ModeName = "busy-poll-separate" // a dedicated application thread busy-polls continuously
	Threaded         ModeName = "threaded"           // a NAPI kthread polls after each IRQ, then sleeps
	ThreadedBusyPoll ModeName = "threaded-busy-poll" // a NAPI kthread polls continuously (6.19)
	IRQSuspend       ModeName = "irq-suspend"        // epoll busy poll keeps IRQs suspended while busy (6.13)
)

// ModeNames lists the modes in the order tables show them.
var ModeNames = []ModeName{Interrupts, BusyPoll, BusyPollSeparate, Threaded, ThreadedBusyPoll, IRQSuspend}

// threaded returns the NAPI threaded state the mode runs with.
func (n ModeName) threaded() netdev.Threaded {
	switch n {
	case Threaded:
		return netdev.ThreadedEnabled
	case ThreadedBusyPoll:
		return netdev.ThreadedBusyPoll
	}
	return netdev.ThreadedDisabled
}

// kthread reports whether a NAPI kthread polls in this mode, so that it is pinned and given a FIFO priority.
func (n ModeName) kthread() bool { return n.threaded() != netdev.ThreadedDisabled }

// AppSide is the application's half of a mode: what the benchmark (package rr) or a user's program must do for
// the kernel settings to have their effect. It is plain data so that rr can read it without importing napi's
// machinery.
type AppSide struct {
	// Poll says what drives NAPI polling from the application when its RX ring is empty, in rr's terms:
	// "inline" (a recvfrom kick on the receive thread: one busy-poll pass when busy polling is on, a plain
	// syscall otherwise), "separate" (a dedicated thread kicks continuously) or "none" (never kick: the kernel
	// polls by itself).
	Poll string `json:"poll"`
	// PreferBusyPoll sets SO_PREFER_BUSY_POLL on the socket: the application promises to busy-poll, so the
	// kernel keeps device IRQs masked (gro_flush_timeout acts as a watchdog) instead of competing with softirq.
	PreferBusyPoll bool `json:"prefer_busy_poll"`
	// BusyPollBudget is SO_BUSY_POLL_BUDGET, packets per busy-poll pass; 0 keeps the kernel's default (8).
	BusyPollBudget int `json:"busy_poll_budget,omitzero"`
	// Epoll drives busy polling through epoll_wait with EPIOCSPARAMS (prefer_busy_poll set): IRQ suspension
	// exists only on that path.
	Epoll bool `json:"epoll,omitzero"`
	// Requirements are what the application must respect, one sentence each.
	Requirements []string `json:"requirements,omitempty"`
}

// HostTuning is the machine-wide preparation of the seed's setup script. The default modes leave all of it
// alone; the seed-* presets switch everything on.
type HostTuning struct {
	TimerMigrationOff bool   `json:"timer_migration_off,omitzero"` // kernel.timer_migration = 0
	SMTOff            bool   `json:"smt_off,omitzero"`             // smt/control = off (drastic: needs AllowSMT)
	RPSOff            bool   `json:"rps_off,omitzero"`             // rps_sock_flow_entries = 0, rps_cpus = 0
	PinIRQs           bool   `json:"pin_irqs,omitzero"`            // the queues' IRQs → the poll CPU
	RTThrottlingOff   bool   `json:"rt_throttling_off,omitzero"`   // sched_rt_runtime_us = -1
	WorkqueueCPUs     string `json:"workqueue_cpus,omitempty"`     // CPU list for every workqueue cpumask
}

// Mode is a polling mode with every parameter resolved: a pure value that validates and plans without root.
// Pointer fields are nil when the mode leaves that setting alone.
type Mode struct {
	Name   ModeName `json:"mode"`
	Preset string   `json:"preset"`          // the preset the mode came from, e.g. "busy-poll" or "seed-busy-poll"
	Device string   `json:"device"`          // interface name
	NetNS  string   `json:"netns,omitempty"` // network namespace name or path; empty: napilab's own
	Queues []int    `json:"queues"`          // rx queue ids whose NAPIs the mode configures
	// PollCPU is the CPU that polls: the NAPI kthread's CPU in threaded modes and the IRQ's CPU with PinIRQs.
	// AutoCPU picks the last online CPU.
	PollCPU int `json:"poll_cpu"`
	FIFO    int `json:"fifo_priority,omitzero"` // SCHED_FIFO priority of the NAPI kthread (threaded modes)

	DeferHardIRQs     *uint32        `json:"defer_hard_irqs,omitempty"`
	GROFlushTimeout   *time.Duration `json:"gro_flush_timeout_ns,omitempty"`
	IRQSuspendTimeout *time.Duration `json:"irq_suspend_timeout_ns,omitempty"`
	BusyRead          *time.Duration `json:"busy_read_ns,omitempty"` // net.core.busy_read (µs resolution)
	BusyPoll          *time.Duration `json:"busy_poll_ns,omitempty"` // net.core.busy_poll (µs resolution)

	Channels uint32            `json:"channels,omitzero"` // queue count (rx/tx pairs, or combined); 0: leave
	RingRX   uint32            `json:"ring_rx,omitzero"`  // rx descriptor ring size; 0: leave
	Coalesce *ethtool.Coalesce `json:"coalesce,omitempty"`

	// DeviceWide writes the device's sysfs files (threaded, napi_defer_hard_irqs, gro_flush_timeout) as the seed
	// script does, instead of configuring each NAPI over netlink; they apply to every NAPI of the device.
	DeviceWide bool       `json:"device_wide,omitzero"`
	Host       HostTuning `json:"host"`
	App        AppSide    `json:"app"`
}

// AutoCPU asks for the default poll CPU: the last online one (applications are usually started on the first).
const AutoCPU = -1

// Defaults shared by the presets: one gro_flush_timeout for every mode, so a comparison varies only the polling
// mechanism; defer 100 and busy_read 400 µs as in the seed; the kthread at FIFO 50 as in the seed; a 20 ms IRQ
// suspension as in the IRQ-suspension series' suspend20 configuration.
const (
	DefaultGROFlushTimeout   = 15 * time.Microsecond
	DefaultDeferHardIRQs     = 100
	DefaultBusyRead          = 400 * time.Microsecond
	DefaultIRQSuspendTimeout = 20 * time.Millisecond
	DefaultFIFO              = 50
	DefaultBusyPollBudget    = 64
)

// Preset returns the named preset for device dev on rx queue 0. The six mode names give the mode alone; the
// seed-* names reproduce the seed cover letter's setup script (host tuning, one queue, 1024-entry ring,
// coalescing off, device-wide sysfs writes, IRQ and kthread on CPU 2).
func Preset(name, dev string) (Mode, error) {
	p, ok := presets[name]
	if !ok {
		return Mode{}, fmt.Errorf("unknown mode %q: use one of %s", name, strings.Join(PresetNames(), ", "))
	}
	m := p()
	m.Preset, m.Device = name, dev
	if m.Queues == nil {
		m.Queues = []int{0}
	}
	return m, nil
}

// PresetNames lists the presets: the modes first, then the seed reproductions.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for _, n := range ModeNames {
		names = append(names, string(n))
	}
	for _, n := range ModeNames {
		if _, ok := presets["seed-"+string(n)]; ok {
			names = append(names, "seed-"+string(n))
		}
	}
	return names
}

func ptr[T any](v T) *T { return &v }

var presets = map[string]func() Mode{
	string(Interrupts): func() Mode {
		return Mode{Name: Interrupts, PollCPU: AutoCPU, DeferHardIRQs: ptr[uint32](0),
			GROFlushTimeout: ptr(DefaultGROFlushTimeout), BusyRead: ptr[time.Duration](0),
			BusyPoll: ptr[time.Duration](0), App: AppSide{Poll: "inline"}}
	},
	string(BusyPoll):         func() Mode { return busyPollMode(BusyPoll, "inline") },
	string(BusyPollSeparate): func() Mode { return busyPollMode(BusyPollSeparate, "separate") },
	string(Threaded): func() Mode {
		return Mode{Name: Threaded, PollCPU: AutoCPU, FIFO: DefaultFIFO, DeferHardIRQs: ptr[uint32](0),
			GROFlushTimeout: ptr(DefaultGROFlushTimeout), BusyRead: ptr[time.Duration](0),
			BusyPoll: ptr[time.Duration](0), App: AppSide{Poll: "none"}}
	},
	string(ThreadedBusyPoll): func() Mode {
		return Mode{Name: ThreadedBusyPoll, PollCPU: AutoCPU, FIFO: DefaultFIFO,
			DeferHardIRQs: ptr[uint32](DefaultDeferHardIRQs), GROFlushTimeout: ptr(DefaultGROFlushTimeout),
			BusyRead: ptr[time.Duration](0), BusyPoll: ptr[time.Duration](0), App: AppSide{Poll: "none",
				Requirements: []string{"the kthread starts polling only after the NAPI is first scheduled: send " +
					"one warm-up packet before measuring",
					"keep the application off the poll CPU: the kthread occupies it completely"}}}
	},
	string(IRQSuspend): func() Mode {
		return Mode{Name: IRQSuspend, PollCPU: AutoCPU, DeferHardIRQs: ptr[uint32](DefaultDeferHardIRQs),
			GROFlushTimeout: ptr(DefaultGROFlushTimeout), IRQSuspendTimeout: ptr(DefaultIRQSuspendTimeout),
			BusyRead: ptr[time.Duration](0), BusyPoll: ptr[time.Duration](0),
			App: AppSide{Poll: "inline", PreferBusyPoll: true, BusyPollBudget: DefaultBusyPollBudget, Epoll: true,
				Requirements: []string{"drive the socket with epoll_wait after EPIOCSPARAMS with prefer_busy_poll " +
					"set: IRQs are suspended only while epoll keeps finding events",
					"irq-suspend-timeout must cover one pass of the application's processing, or IRQs come back " +
						"while it works"}}}
	},
	"seed-interrupts": func() Mode {
		m := seedMode(Interrupts, "inline")
		m.DeferHardIRQs, m.BusyRead = ptr[uint32](0), ptr[time.Duration](0)
		return m
	},
	"seed-busy-poll":          func() Mode { return seedBusyPoll(BusyPoll, "inline") },
	"seed-busy-poll-separate": func() Mode { return seedBusyPoll(BusyPollSeparate, "separate") },
	"seed-threaded-busy-poll": func() Mode {
		m := seedMode(ThreadedBusyPoll, "none")
		m.FIFO = DefaultFIFO
		m.DeferHardIRQs = ptr[uint32](DefaultDeferHardIRQs)
		m.BusyRead, m.BusyPoll = ptr[time.Duration](0), ptr[time.Duration](0)
		return m
	},
}

func busyPollMode(name ModeName, poll string) Mode {
	return Mode{Name: name, PollCPU: AutoCPU, DeferHardIRQs: ptr[uint32](DefaultDeferHardIRQs),
		GROFlushTimeout: ptr(DefaultGROFlushTimeout), BusyRead: ptr(DefaultBusyRead),
		App: AppSide{Poll: poll, PreferBusyPoll: true, BusyPollBudget: DefaultBusyPollBudget,
			Requirements: []string{busyReadRequirement,
				"the socket must report a NAPI id (SO_INCOMING_NAPI_ID ≠ 0), or busy polling polls nothing"}}}
}

const busyReadRequirement = "net.core.busy_read is copied into a socket when it is created: start the " +
	"application after applying the mode"

// seedMode is the part of the seed script every configuration runs: the host tuning, one queue pair, a
// 1024-entry rx ring, coalescing off, the device-wide sysfs files and CPU 2.
func seedMode(name ModeName, poll string) Mode {
	return Mode{Name: name, PollCPU: 2, Channels: 1, RingRX: 1024,
		Coalesce:        &ethtool.Coalesce{},
		GROFlushTimeout: ptr(DefaultGROFlushTimeout), DeviceWide: true,
		Host: HostTuning{TimerMigrationOff: true, SMTOff: true, RPSOff: true, PinIRQs: true, RTThrottlingOff: true,
			WorkqueueCPUs: "1-6"},
		// The xsk_rr the seed posted sets no socket option: busy polling comes from busy_read alone.
		App: AppSide{Poll: poll}}
}

func seedBusyPoll(name ModeName, poll string) Mode {
	m := seedMode(name, poll)
	m.DeferHardIRQs, m.BusyRead = ptr[uint32](DefaultDeferHardIRQs), ptr(DefaultBusyRead)
	m.App.Requirements = []string{busyReadRequirement}
	return m
}

// Validate checks what can be checked without looking at the machine, and names every problem in one sentence.
func (m Mode) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) { errs = append(errs, kernel.Fieldf(field, format, args...)) }
	if !slices.Contains(ModeNames, m.Name) {
		errs = append(errs, fmt.Errorf("unknown mode %q: use one of %s", m.Name, strings.Join(PresetNames(), ", ")))
	}
	if m.Device == "" {
		bad("dev", "is missing: name the interface, e.g. eth0")
	} else if len(m.Device) > 15 || strings.ContainsAny(m.Device, "/ \t\n\x00") || m.Device == "." || m.Device == ".." {
		bad("dev", "%q is not a valid interface name (at most 15 characters, no '/' or spaces)", m.Device)
	}
	if len(m.Queues) == 0 {
		bad("queue", "is missing: name the rx queue, e.g. 0")
	}
	for i, q := range m.Queues {
		if q < 0 {
			bad("queue", "%d is negative: rx queues are numbered from 0", q)
		}
		if slices.Contains(m.Queues[:i], q) {
			bad("queue", "%d is named twice", q)
		}
	}
	if m.PollCPU < AutoCPU || m.PollCPU >= sysknob.MaxCPUs {
		bad("poll-cpu", "%d is out of range: CPUs are numbered from 0", m.PollCPU)
	}
	if m.Name.kthread() && (m.FIFO < sysknob.MinFIFOPriority || m.FIFO > sysknob.MaxFIFOPriority) {
		bad("fifo", "priority %d is out of range: use %d to %d", m.FIFO, sysknob.MinFIFOPriority,
			sysknob.MaxFIFOPriority)
	}
	for _, d := range []struct {
		field string
		v     *time.Duration
	}{{"gro", m.GROFlushTimeout}, {"suspend", m.IRQSuspendTimeout}} {
		if d.v != nil && *d.v < 0 {
			bad(d.field, "%v is negative", *d.v)
		}
	}
	for _, d := range []struct {
		field string
		v     *time.Duration
	}{{"busy-read", m.BusyRead}, {"busy-poll", m.BusyPoll}} {
		if d.v != nil && (*d.v < 0 || *d.v%time.Microsecond != 0 || *d.v > time.Duration(1<<31-1)*time.Microsecond) {
			bad(d.field, "%v is not a whole number of microseconds between 0 and 2147483647µs", *d.v)
		}
	}
	if m.DeferHardIRQs != nil && *m.DeferHardIRQs > 1<<31-1 {
		bad("defer", "%d exceeds the kernel's limit of %d", *m.DeferHardIRQs, 1<<31-1)
	}
	if m.IRQSuspendTimeout != nil && m.Name != IRQSuspend && *m.IRQSuspendTimeout != 0 {
		bad("suspend", "only acts in mode irq-suspend, not %s: drop it", m.Name)
	}
	if m.Name == IRQSuspend && (m.IRQSuspendTimeout == nil || *m.IRQSuspendTimeout == 0) {
		bad("suspend", "must be above 0 in mode irq-suspend, e.g. 20ms")
	}
	if m.Host.WorkqueueCPUs != "" {
		if _, err := sysknob.ParseCPUList(m.Host.WorkqueueCPUs); err != nil {
			errs = append(errs, fmt.Errorf("workqueue CPUs %q: %v", m.Host.WorkqueueCPUs, err))
		}
	}
	switch m.App.Poll {
	case "inline", "separate", "none":
	default:
		errs = append(errs, fmt.Errorf("application poll driver %q is unknown: use inline, separate or none", m.App.Poll))
	}
	return errors.Join(errs...)
}

// UsesPollCPU reports whether the mode puts anything on its poll CPU: the NAPI kthread of a threaded mode, or
// the queues' IRQs of a seed preset.
func (m Mode) UsesPollCPU() bool { return m.Name.kthread() || m.Host.PinIRQs }

// UsesFIFO reports whether the mode schedules a NAPI kthread, the only thing its FIFO priority applies to.
func (m Mode) UsesFIFO() bool { return m.Name.kthread() }
