package napi

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/sysknob"
)

// Target is what the machine looks like where a mode goes: the plan's second input besides the Mode. Resolve
// reads it (without changing anything); tests write it out.
type Target struct {
	Kernel      string          `json:"kernel"`
	Features    netdev.Features `json:"features"`
	NetNS       NetNS           `json:"netns"`
	Device      string          `json:"device"`
	Ifindex     uint32          `json:"ifindex"`
	Queues      []QueueTarget   `json:"queues"`       // the mode's queues, in its order
	DeviceNAPIs []uint32        `json:"device_napis"` // every NAPI of the device (device-wide writes reach them all)
	OnlineCPUs  sysknob.CPUSet  `json:"online_cpus"`
	// NetSysctls says why the machine-wide network sysctls cannot be reached from where napilab runs (it is
	// not in the initial network namespace); empty when they can. See System.NetSysctls.
	NetSysctls string            `json:"net_sysctls_unreachable,omitempty"`
	SMT        sysknob.SMT       `json:"smt,omitempty"`      // read when the mode turns SMT off
	Channels   *ethtool.Channels `json:"channels,omitempty"` // read when the mode sets them; nil: the driver has none
	Rings      *ethtool.Rings    `json:"rings,omitempty"`
	Coalesce   *ethtool.Coalesce `json:"coalesce,omitempty"`
	Workqueues []string          `json:"workqueues,omitempty"`
}

// QueueTarget is one rx queue of the mode: the NAPI that services it and the IRQs that schedule that NAPI.
type QueueTarget struct {
	ID   int         `json:"id"`
	NAPI netdev.NAPI `json:"napi"`
	IRQs []int       `json:"irqs,omitempty"` // none for devices without IRQs of their own (veth)
	// Unlinked says that queue-get names no NAPI for the queue and the device's only NAPI was taken (veth).
	Unlinked bool `json:"unlinked,omitzero"`
}

// Kind is the kind of a Change.
type Kind string

// Kinds of change.
const (
	KindNAPI     Kind = "napi-set" // per-NAPI configuration over netlink; no settings: only recorded for restore
	KindKnob     Kind = "knob"     // a sysfs or procfs file
	KindChannels Kind = "channels" // ethtool -L
	KindRings    Kind = "rings"    // ethtool -G
	KindCoalesce Kind = "coalesce" // ethtool -C
	KindKthread  Kind = "kthread"  // SCHED_FIFO priority and CPU affinity of a NAPI's kthread
	KindService  Kind = "service"  // a systemd unit stopped for the run (irqbalance)
)

// Change is one step of a plan: its target, the value, and why.
type Change struct {
	Kind Kind   `json:"kind"`
	Why  string `json:"why"`
	// Optional steps may be refused as not supported (a driver without coalescing, a machine without SMT
	// control): Apply records them as skipped instead of failing.
	Optional bool `json:"optional,omitzero"`

	NAPI     uint32        `json:"napi,omitzero"`  // KindNAPI, KindKthread
	Queue    int           `json:"queue,omitzero"` // the rx queue the NAPI services, for messages
	Settings *NAPISettings `json:"settings,omitempty"`

	Knob  *Knob  `json:"knob,omitempty"`
	Value string `json:"value,omitempty"`

	Channels *ethtool.Channels `json:"channels,omitempty"`
	Rings    *ethtool.Rings    `json:"rings,omitempty"`
	Coalesce *ethtool.Coalesce `json:"coalesce,omitempty"`

	FIFO int            `json:"fifo,omitzero"`
	CPUs sysknob.CPUSet `json:"cpus,omitzero"`

	Service string `json:"service,omitempty"` // KindService: the unit to stop
}

// recordOnly reports whether the change only records a NAPI's state so that Restore can put it back after
// device-wide writes overwrote it.
func (c Change) recordOnly() bool { return c.Kind == KindNAPI && *c.Settings == (NAPISettings{}) }

// NAPISettings is a napi-set request as plans and journals keep it: nil fields are left alone, and Threaded
// ("disabled", "enabled", "busy-poll"; empty: left alone) is spelled as the kernel names it.
type NAPISettings struct {
	DeferHardIRQs     *uint32        `json:"defer_hard_irqs,omitempty"`
	GROFlushTimeout   *time.Duration `json:"gro_flush_timeout_ns,omitempty"`
	IRQSuspendTimeout *time.Duration `json:"irq_suspend_timeout_ns,omitempty"`
	Threaded          string         `json:"threaded,omitempty"`
}

// Config is the netdev request.
func (s NAPISettings) Config() (netdev.NAPIConfig, error) {
	cfg := netdev.NAPIConfig{DeferHardIRQs: s.DeferHardIRQs, GROFlushTimeout: s.GROFlushTimeout,
		IRQSuspendTimeout: s.IRQSuspendTimeout}
	if s.Threaded != "" {
		var t netdev.Threaded
		if err := t.UnmarshalText([]byte(s.Threaded)); err != nil {
			return cfg, err
		}
		cfg.Threaded = &t
	}
	return cfg, nil
}

func (s NAPISettings) String() string {
	cfg, err := s.Config()
	if err != nil {
		return err.Error()
	}
	return cfg.String()
}

// Plan is the ordered list of changes that put a mode in place, with what it leaves out and why.
type Plan struct {
	Mode    Mode        `json:"mode"`
	Target  Target      `json:"target"`
	PollCPU int         `json:"poll_cpu"`
	Changes []Change    `json:"changes"`
	Notes   []note.Note `json:"notes,omitempty"`
}

// Build plans mode m on target t. It fails, before anything could change, when the kernel is too old for the
// mode, a CPU or queue does not exist, or a value is out of the device's range.
func Build(m Mode, t Target) (*Plan, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := checkGates(m, t); err != nil {
		return nil, err
	}
	b := &builder{m: m, t: t, p: &Plan{Mode: m, Target: t}}
	if err := b.build(); err != nil {
		return nil, err
	}
	// A plan whose steps could not be carried out from here is no plan: its script would fail too.
	if err := checkNetSysctls(b.p.Changes, t.NetSysctls); err != nil {
		return nil, err
	}
	return b.p, nil
}

// ErrNotInitialNetNS matches the error of a plan that sets a machine-wide network sysctl from outside the
// initial network namespace, the only one where the kernel has them.
var ErrNotInitialNetNS = errors.New("the machine-wide network sysctls exist only in the initial network namespace")

// netSysctl reports whether the knob is a network sysctl of the initial namespace alone.
func (k Knob) netSysctl() bool {
	return k.ID == KnobBusyRead || k.ID == KnobBusyPoll || k.ID == KnobRPSSockFlowEntries
}

// checkNetSysctls refuses changes to network sysctls when why says they cannot be reached.
func checkNetSysctls(changes []Change, why string) error {
	if why == "" {
		return nil
	}
	var names []string
	for _, c := range changes {
		if c.Kind == KindKnob && c.Knob.netSysctl() && !slices.Contains(names, c.Knob.String()) {
			names = append(names, c.Knob.String())
		}
	}
	if len(names) == 0 {
		return nil
	}
	return &kernel.SentenceError{Kind: ErrNotInitialNetNS, Msg: fmt.Sprintf("%s exists only in the initial "+
		"network namespace, and %s: run napilab in the initial namespace and name the device's namespace instead",
		strings.Join(names, " and "), why)}
}

// checkGates refuses a mode this kernel cannot run, naming the first kernel that can.
func checkGates(m Mode, t Target) error {
	f := t.Features
	switch {
	case m.Name == ThreadedBusyPoll && !f.ThreadedBusyPoll:
		return &kernel.UnsupportedError{Feature: string(ThreadedBusyPoll), MinKernel: "6.19"}
	case m.Name == IRQSuspend && !f.IRQSuspendTimeout:
		return &kernel.UnsupportedError{Feature: string(IRQSuspend), MinKernel: "6.13"}
	case m.Name == ThreadedBusyPoll && len(m.Queues) > 1:
		return fmt.Errorf("threaded-busy-poll spins one CPU per NAPI, so it takes one queue at a time: apply it "+
			"once per queue (%d queues were given), each with its own poll CPU", len(m.Queues))
	}
	if len(t.Queues) != len(m.Queues) {
		return fmt.Errorf("the target describes %d queues but the mode names %d: resolve the target for this mode",
			len(t.Queues), len(m.Queues))
	}
	for i, q := range t.Queues {
		if q.ID != m.Queues[i] || q.NAPI.ID == 0 {
			return fmt.Errorf("the target's queue %d (NAPI %d) does not match the mode's queue %d: resolve the "+
				"target for this mode", q.ID, q.NAPI.ID, m.Queues[i])
		}
	}
	return nil
}

type builder struct {
	m Mode
	t Target
	p *Plan
}

func (b *builder) note(format string, args ...any) {
	b.p.Notes = append(b.p.Notes, note.Infof(format, args...))
}

func (b *builder) add(c Change) { b.p.Changes = append(b.p.Changes, c) }

func (b *builder) knob(k Knob, value, why string) {
	b.add(Change{Kind: KindKnob, Knob: &k, Value: value, Why: why})
}

func (b *builder) build() error {
	if err := b.pollCPU(); err != nil {
		return err
	}
	b.deviceThreaded()
	b.hostTuning()
	if err := b.nic(); err != nil {
		return err
	}
	b.hostPlacement()
	b.coalesce()
	b.sysctls()
	b.napis()
	b.kthreads()
	b.seedNotes()
	return nil
}

func (b *builder) pollCPU() error {
	online := b.t.OnlineCPUs
	if online.IsEmpty() {
		return fmt.Errorf("the target lists no online CPU: resolve the target on the machine")
	}
	cpu := b.m.PollCPU
	if cpu == AutoCPU {
		cpu = online.Max()
	}
	if !online.Has(cpu) {
		seed := ""
		if strings.HasPrefix(b.m.Preset, "seed-") && b.m.PollCPU == 2 {
			seed = " (the seed script polls on CPU 2)"
		}
		return kernel.Fieldf("poll-cpu", "%d is not online on this machine%s: choose one of %s", cpu, seed, online)
	}
	b.p.PollCPU = cpu
	return nil
}

// deviceWideNAPI reports whether the plan writes the device-wide NAPI files: by choice (the seed) or because
// this kernel has no per-NAPI configuration.
func (b *builder) deviceWideNAPI() bool { return b.m.DeviceWide || !b.t.Features.NAPISet }

// recordNAPIs keeps every NAPI's own settings in the journal before the first device-wide write, so that
// Restore puts back per-NAPI values that the device-wide file cannot express.
func (b *builder) recordNAPIs() {
	if !b.t.Features.NAPISet || slices.ContainsFunc(b.p.Changes, func(c Change) bool { return c.recordOnly() }) {
		return
	}
	for _, id := range b.t.DeviceNAPIs {
		b.add(Change{Kind: KindNAPI, NAPI: id, Settings: &NAPISettings{},
			Why: "record this NAPI's own settings: the device-wide writes below overwrite them"})
	}
}

func (b *builder) deviceThreaded() {
	want := b.m.Name.threaded()
	if b.t.Features.PerNAPIThreaded && !b.m.DeviceWide {
		return // set per NAPI in napis
	}
	b.recordNAPIs()
	value, why := "0", "every NAPI of the device polls in softirq context, not in a kthread"
	if want == netdev.ThreadedEnabled {
		value, why = "1", "every NAPI of the device polls in its own kthread"
	}
	if !b.m.DeviceWide {
		b.note("this kernel has no per-NAPI threaded setting (Linux 6.17): the device-wide %s file "+
			"applies to every NAPI of %s", KnobThreaded, b.t.Device)
	}
	if want == netdev.ThreadedBusyPoll {
		why = "the seed script's first step; busy polling is switched on per NAPI below"
	}
	b.knob(Knob{ID: KnobThreaded, Dev: b.t.Device}, value, why)
}

func (b *builder) hostTuning() {
	h := b.m.Host
	if h.TimerMigrationOff {
		b.knob(Knob{ID: KnobTimerMigration}, "0", "keep timers on the CPU that armed them, away from the poll CPU")
	}
	if h.SMTOff {
		switch b.t.SMT {
		case sysknob.SMTOn:
			b.knob(Knob{ID: KnobSMT}, string(sysknob.SMTOff),
				"no sibling hyperthread shares the poll CPU's core (machine-wide: takes the siblings offline)")
		case "":
			b.note("SMT: not read, so left alone")
		default:
			b.note("SMT is %s here: nothing to switch off", b.t.SMT)
		}
	}
}

// nic plans channels and rings: these may re-create the device's queues, so they come before anything that
// names a NAPI.
func (b *builder) nic() error {
	dev := b.t.Device
	if n := b.m.Channels; n > 0 {
		ch := b.t.Channels
		switch {
		case ch == nil:
			b.note("channels: %s's driver has none to set, so its queue count stays as it is", dev)
		case ch.RXMax > 0 && ch.TXMax > 0:
			if n > ch.RXMax || n > ch.TXMax {
				return fmt.Errorf("%s allows at most %d rx and %d tx channels, not %d: pass a smaller count",
					dev, ch.RXMax, ch.TXMax, n)
			}
			want := *ch
			want.RX, want.TX = n, n
			b.add(Change{Kind: KindChannels, Channels: &want, Optional: true,
				Why: "one queue pair: one NAPI and one IRQ carry the whole flow"})
		case ch.CombinedMax > 0:
			if n > ch.CombinedMax {
				return fmt.Errorf("%s allows at most %d combined channels, not %d: pass a smaller count",
					dev, ch.CombinedMax, n)
			}
			want := *ch
			want.Combined = n
			b.add(Change{Kind: KindChannels, Channels: &want, Optional: true,
				Why: "one combined channel: one NAPI and one IRQ carry the whole flow"})
			if strings.HasPrefix(b.m.Preset, "seed-") {
				b.note("the seed sets rx 1 tx 1; %s has combined channels only, so napilab sets combined %d", dev, n)
			}
		default:
			b.note("channels: %s reports no channel maxima, so its queue count stays as it is", dev)
		}
	}
	if n := b.m.RingRX; n > 0 {
		r := b.t.Rings
		switch {
		case r == nil:
			b.note("rings: %s's driver has no ring settings (veth has none), so the rx ring stays as it is", dev)
		default:
			if n > r.RXMax {
				if !strings.HasPrefix(b.m.Preset, "seed-") {
					return fmt.Errorf("%s allows an rx ring of at most %d entries, not %d: pass a smaller size",
						dev, r.RXMax, n)
				}
				b.note("the seed asks for a %d-entry rx ring; %s allows at most %d, so napilab sets %d", n, dev,
					r.RXMax, r.RXMax)
				n = r.RXMax
			}
			want := *r
			want.RX = n
			b.add(Change{Kind: KindRings, Rings: &want, Optional: true,
				Why: "a ring deep enough that a busy-poll pass never finds it full"})
		}
	}
	return nil
}

// hostPlacement plans RPS, IRQ affinity, RT throttling and workqueues, in the seed's order.
func (b *builder) hostPlacement() {
	h, dev := b.m.Host, b.t.Device
	if h.RPSOff {
		b.knob(Knob{ID: KnobRPSSockFlowEntries}, "0", "RFS off: no flow steering moves packets between CPUs")
		for _, q := range b.t.Queues {
			b.knob(Knob{ID: KnobRPSCPUs, Dev: dev, Queue: q.ID}, "",
				"RPS off: the packet is processed on the CPU that polled it")
		}
	}
	if h.PinIRQs {
		cpu := strconv.Itoa(b.p.PollCPU)
		for _, q := range b.t.Queues {
			if len(q.IRQs) == 0 {
				b.note("%s rx-%d has no IRQ of its own (a veth's NAPI is scheduled by the sender): nothing to pin",
					dev, q.ID)
			}
			for _, irq := range q.IRQs {
				b.knob(Knob{ID: KnobIRQAffinity, IRQ: irq}, cpu, fmt.Sprintf(
					"the IRQ of %s rx-%d fires on the poll CPU, where its NAPI runs", dev, q.ID))
			}
		}
	}
	if h.RTThrottlingOff {
		b.knob(Knob{ID: KnobSchedRTRuntime}, "-1",
			"RT throttling off: a SCHED_FIFO poller that never sleeps would lose 5% of its CPU")
	}
	if h.WorkqueueCPUs != "" {
		want, _ := sysknob.ParseCPUList(h.WorkqueueCPUs) // Validate parsed it
		cpus := want.Minus(want.Minus(b.t.OnlineCPUs))
		if cpus.IsEmpty() {
			b.note("workqueues: none of CPUs %s is online here, so their masks stay as they are", want)
		} else {
			for _, wq := range b.t.Workqueues {
				b.knob(Knob{ID: KnobWorkqueueCPUMask, Workqueue: wq}, cpus.String(),
					"unbound kernel work runs on the housekeeping CPUs")
			}
			if !cpus.Equal(want) {
				b.note("workqueues: CPUs %s of %s are not online here; the masks name %s", want.Minus(cpus), want, cpus)
			}
		}
	}
}

func (b *builder) coalesce() {
	c := b.m.Coalesce
	if c == nil {
		return
	}
	cur := b.t.Coalesce
	if cur == nil {
		b.note("coalescing: %s's driver has none (veth has none), so there is nothing to switch off", b.t.Device)
		return
	}
	want := *cur
	want.RXUsecs, want.TXUsecs, want.AdaptiveRX, want.AdaptiveTX = c.RXUsecs, c.TXUsecs, c.AdaptiveRX, c.AdaptiveTX
	b.add(Change{Kind: KindCoalesce, Coalesce: &want, Optional: true,
		Why: "the NIC raises each interrupt at once instead of batching them"})
}

func (b *builder) sysctls() {
	if d := b.m.BusyRead; d != nil {
		why := "sockets do not busy-poll on their own"
		if *d > 0 {
			why = "each receive call on an empty socket busy-polls its NAPI for up to this long"
		}
		b.knob(Knob{ID: KnobBusyRead}, durationText(*d, time.Microsecond), why)
	}
	if d := b.m.BusyPoll; d != nil {
		why := "poll, select and epoll do not busy-poll"
		if *d > 0 {
			why = "poll, select and epoll busy-poll for up to this long"
		}
		b.knob(Knob{ID: KnobBusyPoll}, durationText(*d, time.Microsecond), why)
	}
}

// napis plans the per-NAPI settings: one napi-set per NAPI, or the device-wide files.
func (b *builder) napis() {
	m, t := b.m, b.t
	if b.deviceWideNAPI() && (m.DeferHardIRQs != nil || m.GROFlushTimeout != nil) {
		b.recordNAPIs()
		if !m.DeviceWide {
			b.note("this kernel has no per-NAPI configuration (Linux 6.13): the device-wide files apply to every "+
				"NAPI of %s", t.Device)
		}
		if m.DeferHardIRQs != nil {
			b.knob(Knob{ID: KnobDeferHardIRQs, Dev: t.Device}, strconv.FormatUint(uint64(*m.DeferHardIRQs), 10),
				deferWhy(*m.DeferHardIRQs))
		}
		if m.GROFlushTimeout != nil {
			b.knob(Knob{ID: KnobGROFlushTimeout, Dev: t.Device}, durationText(*m.GROFlushTimeout, time.Nanosecond),
				groWhy(*m.GROFlushTimeout))
		}
	}
	for _, q := range t.Queues {
		var cfg NAPISettings
		var why []string
		if !b.deviceWideNAPI() {
			cfg.DeferHardIRQs, cfg.GROFlushTimeout = m.DeferHardIRQs, m.GROFlushTimeout
			if m.DeferHardIRQs != nil {
				why = append(why, deferWhy(*m.DeferHardIRQs))
			}
			if m.GROFlushTimeout != nil {
				why = append(why, groWhy(*m.GROFlushTimeout))
			}
		}
		if m.IRQSuspendTimeout != nil {
			cfg.IRQSuspendTimeout = m.IRQSuspendTimeout
			why = append(why, "an epoll busy-poller that keeps finding events keeps IRQs suspended this long")
		}
		want := m.Name.threaded()
		if t.Features.PerNAPIThreaded && (!m.DeviceWide || want == netdev.ThreadedBusyPoll) {
			cfg.Threaded = want.String()
			why = append(why, threadedWhy(want))
		}
		if cfg == (NAPISettings{}) {
			continue
		}
		b.add(Change{Kind: KindNAPI, NAPI: q.NAPI.ID, Queue: q.ID, Settings: &cfg, Why: strings.Join(why, "; ")})
	}
}

func deferWhy(n uint32) string {
	if n == 0 {
		return "IRQs come back after the first empty poll"
	}
	return fmt.Sprintf("IRQs stay masked for up to %d empty polls, with the gro_flush_timeout timer as backstop", n)
}

func groWhy(d time.Duration) string {
	if d == 0 {
		return "no repoll timer"
	}
	return fmt.Sprintf("a %v repoll timer replaces the IRQ while IRQs are deferred", d)
}

func threadedWhy(t netdev.Threaded) string {
	switch t {
	case netdev.ThreadedEnabled:
		return "a kthread polls the NAPI after each IRQ, then sleeps"
	case netdev.ThreadedBusyPoll:
		return "a kthread polls the NAPI continuously, with its IRQ masked (100% of a CPU)"
	}
	return "the NAPI polls in softirq context, not in a kthread"
}

func (b *builder) kthreads() {
	if !b.m.Name.kthread() {
		return
	}
	for _, q := range b.t.Queues {
		b.add(Change{Kind: KindKthread, NAPI: q.NAPI.ID, Queue: q.ID, FIFO: b.m.FIFO,
			CPUs: sysknob.CPUs(b.p.PollCPU), Why: fmt.Sprintf(
				"the NAPI kthread runs only on the poll CPU, at SCHED_FIFO %d above ordinary threads", b.m.FIFO)})
	}
}

func (b *builder) seedNotes() {
	for _, q := range b.t.Queues {
		if q.Unlinked {
			b.note("%s does not link rx-%d to a NAPI in queue-get (veth never does); its only NAPI, %d, serves it",
				b.t.Device, q.ID, q.NAPI.ID)
		}
	}
	if strings.HasPrefix(b.m.Preset, "seed-") {
		b.note("the seed writes \"1,2,3,4,5,6\", a CPU list, into hex cpumask files (the kernel reads it as six " +
			"32-bit words); napilab writes the mask of the CPUs meant")
		b.note("the seed finds IRQs with gawk /eth0-(TxRx-)?1/ (queue 1, and all IRQs in one quoted word); napilab " +
			"pins the IRQs of the configured queues, from napi-get or /proc/interrupts")
		if b.m.Name == ThreadedBusyPoll {
			b.note("the seed's ynl call lacks --do napi-set and quotes the NAPI id as a string; napilab sends the " +
				"napi-set the kernel documents")
		}
	}
	if b.m.App.Poll != "none" && b.m.BusyRead != nil && *b.m.BusyRead > 0 {
		if v, err := kernel.ParseRelease(b.t.Kernel); err == nil && v.AtLeast(6, 13) && !v.AtLeast(6, 15) {
			b.note("on %s, AF_XDP copy-mode sockets get no NAPI id unless b95ed5517354 (6.15, 6.14.y) is "+
				"applied: check SO_INCOMING_NAPI_ID, or busy polling polls nothing", b.t.Kernel)
		}
	}
}
