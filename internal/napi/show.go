package napi

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/netdev"
)

// State is what `napilab show` reports: the machine-wide polling knobs, and for each device its XDP features,
// queues, NAPIs with their IRQs and kthreads. It holds nothing that changes by itself (no counters), so two
// States compare equal exactly when the configuration is the same.
type State struct {
	Kernel   string           `json:"kernel"`
	NetNS    string           `json:"netns,omitempty"`
	Features *netdev.Features `json:"napi_set_features,omitempty"` // nil when it could not be read
	Host     HostState        `json:"host"`
	Devices  []DeviceState    `json:"devices"`
	// Modes lists the polling modes applied on this machine (by any napilab), with their journals: shown from
	// napilab's own namespace, every one (they hold machine-wide knobs); else the namespace's, or the device's.
	Modes []ModeState `json:"modes,omitempty"`
	// Unreadable lists what could not be read, one sentence each: "could not check", not "off".
	Unreadable []string `json:"unreadable,omitempty"`
}

// HostState holds the machine-wide knobs; nil when unreadable.
type HostState struct {
	OnlineCPUs         string            `json:"online_cpus"`
	SMT                string            `json:"smt,omitempty"`
	BusyReadUS         *int64            `json:"busy_read_us,omitempty"`
	BusyPollUS         *int64            `json:"busy_poll_us,omitempty"`
	RPSSockFlowEntries *int64            `json:"rps_sock_flow_entries,omitempty"`
	TimerMigration     *int64            `json:"timer_migration,omitempty"`
	SchedRTRuntimeUS   *int64            `json:"sched_rt_runtime_us,omitempty"` // -1: RT throttling off
	WorkqueueCPUs      map[string]string `json:"workqueue_cpus,omitempty"`
	// NetSysctls says why busy_read, busy_poll and rps_sock_flow_entries were not read: they exist in the
	// initial network namespace only, and napilab runs in another one. Empty when they were read.
	NetSysctls string `json:"net_sysctls_unreachable,omitempty"`
}

// DeviceState is one network device.
type DeviceState struct {
	Name        string `json:"name"`
	Ifindex     uint32 `json:"ifindex"`
	XDPFeatures string `json:"xdp_features"`
	XSKZeroCopy bool   `json:"xsk_zerocopy"`
	// The device-wide sysfs files.
	Threaded          *int64            `json:"threaded,omitempty"`
	DeferHardIRQs     *int64            `json:"napi_defer_hard_irqs,omitempty"`
	GROFlushTimeoutNS *int64            `json:"gro_flush_timeout_ns,omitempty"`
	Channels          *ethtool.Channels `json:"channels,omitempty"`
	Rings             *ethtool.Rings    `json:"rings,omitempty"`
	Coalesce          *ethtool.Coalesce `json:"coalesce,omitempty"`
	Queues            []QueueState      `json:"queues"`
	NAPIs             []NAPIState       `json:"napis"`
}

// QueueState is one queue.
type QueueState struct {
	Type    string `json:"type"`
	ID      uint32 `json:"id"`
	NAPI    uint32 `json:"napi,omitzero"`
	XSK     bool   `json:"xsk,omitzero"`      // an AF_XDP socket is bound
	RPSCPUs string `json:"rps_cpus,omitzero"` // rx queues; empty: RPS off
}

// NAPIState is one NAPI instance.
type NAPIState struct {
	ID                  uint32        `json:"id"`
	IRQs                []IRQState    `json:"irqs,omitempty"`
	Threaded            string        `json:"threaded"`
	PID                 uint32        `json:"pid,omitzero"`
	Kthread             *KthreadState `json:"kthread,omitempty"`
	DeferHardIRQs       uint32        `json:"defer_hard_irqs"`
	GROFlushTimeoutNS   int64         `json:"gro_flush_timeout_ns"`
	IRQSuspendTimeoutNS int64         `json:"irq_suspend_timeout_ns"`
	Queues              []string      `json:"queues"` // e.g. "rx-0", "tx-0"
}

// IRQState is an IRQ that schedules a NAPI and the CPUs it may fire on.
type IRQState struct {
	IRQ      int    `json:"irq"`
	Affinity string `json:"affinity,omitempty"`
}

// KthreadState is how a NAPI kthread is scheduled.
type KthreadState struct {
	Policy   string `json:"policy"`
	Priority int    `json:"priority"`
	CPUs     string `json:"cpus"`
}

// Show reads the state of device dev, or of every device of the namespace when dev is "". Whatever cannot be
// read is listed in State.Unreadable rather than failing the whole report; an unknown dev is an error.
func (s *System) Show(dev string) (*State, error) {
	st := &State{Kernel: s.Kernel, NetNS: s.NetNS.Path}
	unreadable := func(err error) { st.Unreadable = append(st.Unreadable, err.Error()) }
	if f, err := s.Netdev.Features(); err != nil {
		unreadable(err)
	} else {
		st.Features = &f
	}
	st.Host = s.hostState(unreadable)
	if modes, err := ListApplied(s.Registry); err != nil {
		unreadable(fmt.Errorf("the applied modes: %w", err))
	} else {
		for _, m := range modes {
			// The kernel reuses a gone namespace's inode for a new one: the journal's must still be there.
			here := m.NetNS.Inode == s.NetNS.Inode && sameNetNS(m.NetNS)
			switch {
			case dev != "" && m.Device == dev && here: // the device's own
			case dev == "" && (s.NetNS.Path == "" || here): // the namespace's, or from napilab's own every one
			default:
				continue
			}
			st.Modes = append(st.Modes, m)
		}
	}
	links, err := s.Links.Links()
	if err != nil {
		return nil, err
	}
	devs, err := s.Netdev.Devices()
	if err != nil {
		return nil, err
	}
	names := map[uint32]string{}
	for _, l := range links {
		names[l.Ifindex] = l.Name
	}
	found := false
	for _, d := range devs {
		name := names[d.Ifindex]
		if dev != "" && name != dev {
			continue
		}
		found = true
		st.Devices = append(st.Devices, s.deviceState(d, name, unreadable))
	}
	if dev != "" && !found {
		_, err := s.linkByName(dev)
		if err == nil {
			err = fmt.Errorf("the netdev family does not report device %s", dev)
		}
		return nil, err
	}
	return st, nil
}

// knobInt reads a numeric knob.
func (s *System) knobInt(k Knob, unreadable func(error)) *int64 {
	text, err := s.Knobs.Get(k)
	if err != nil {
		unreadable(err)
		return nil
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		unreadable(fmt.Errorf("%s reads %q, not a number", k, text))
		return nil
	}
	return &v
}

func (s *System) knobText(k Knob, unreadable func(error)) string {
	text, err := s.Knobs.Get(k)
	if err != nil {
		unreadable(err)
	}
	return text
}

func (s *System) hostState(unreadable func(error)) HostState {
	var h HostState
	if cpus, err := s.Knobs.OnlineCPUs(); err != nil {
		unreadable(err)
	} else {
		h.OnlineCPUs = cpus.String()
	}
	h.SMT = s.knobText(Knob{ID: KnobSMT}, func(error) {}) // machines without SMT control have no file
	if h.NetSysctls = s.NetSysctls; h.NetSysctls == "" {
		h.BusyReadUS = s.knobInt(Knob{ID: KnobBusyRead}, unreadable)
		h.BusyPollUS = s.knobInt(Knob{ID: KnobBusyPoll}, unreadable)
		h.RPSSockFlowEntries = s.knobInt(Knob{ID: KnobRPSSockFlowEntries}, unreadable)
	}
	h.TimerMigration = s.knobInt(Knob{ID: KnobTimerMigration}, unreadable)
	h.SchedRTRuntimeUS = s.knobInt(Knob{ID: KnobSchedRTRuntime}, unreadable)
	wqs, err := s.Knobs.Workqueues()
	if err != nil {
		unreadable(err)
	}
	for _, wq := range wqs {
		if h.WorkqueueCPUs == nil {
			h.WorkqueueCPUs = map[string]string{}
		}
		h.WorkqueueCPUs[wq] = s.knobText(Knob{ID: KnobWorkqueueCPUMask, Workqueue: wq}, unreadable)
	}
	return h
}

func (s *System) deviceState(d netdev.Device, name string, unreadable func(error)) DeviceState {
	ds := DeviceState{Name: name, Ifindex: d.Ifindex, XDPFeatures: d.XDPFeatures.String(),
		XSKZeroCopy: d.XDPFeatures.Has(netdev.XDPXSKZeroCopy)}
	if name == "" {
		unreadable(fmt.Errorf("ifindex %d has no name in this namespace", d.Ifindex))
		return ds
	}
	ds.Threaded = s.knobInt(Knob{ID: KnobThreaded, Dev: name}, unreadable)
	ds.DeferHardIRQs = s.knobInt(Knob{ID: KnobDeferHardIRQs, Dev: name}, unreadable)
	ds.GROFlushTimeoutNS = s.knobInt(Knob{ID: KnobGROFlushTimeout, Dev: name}, unreadable)
	edev := ethtool.Device{Index: int(d.Ifindex), Name: name}
	var err error
	if ds.Channels, err = optional(s.Ethtool.Channels(edev)); err != nil {
		unreadable(err)
	}
	if ds.Rings, err = optional(s.Ethtool.Rings(edev)); err != nil {
		unreadable(err)
	}
	if ds.Coalesce, err = optional(s.Ethtool.Coalesce(edev)); err != nil {
		unreadable(err)
	}
	queues, err := s.Netdev.Queues(d.Ifindex)
	if err != nil {
		unreadable(err)
	}
	servedBy := map[uint32][]string{}
	rxOf := map[uint32][]int{}
	for _, q := range queues {
		qs := QueueState{Type: q.Type.String(), ID: q.ID, NAPI: q.NAPIID, XSK: q.XSK}
		if q.Type == netdev.QueueRX {
			qs.RPSCPUs = s.knobText(Knob{ID: KnobRPSCPUs, Dev: name, Queue: int(q.ID)}, unreadable)
			if q.NAPIID != 0 {
				rxOf[q.NAPIID] = append(rxOf[q.NAPIID], int(q.ID))
			}
		}
		if q.NAPIID != 0 {
			servedBy[q.NAPIID] = append(servedBy[q.NAPIID], fmt.Sprintf("%v-%d", q.Type, q.ID))
		}
		ds.Queues = append(ds.Queues, qs)
	}
	napis, err := s.Netdev.NAPIs(d.Ifindex)
	if err != nil {
		unreadable(err)
	}
	for _, n := range napis {
		ns := NAPIState{ID: n.ID, Threaded: n.Threaded.String(), DeferHardIRQs: n.DeferHardIRQs,
			GROFlushTimeoutNS: n.GROFlushTimeout.Nanoseconds(), IRQSuspendTimeoutNS: n.IRQSuspendTimeout.Nanoseconds(),
			Queues: servedBy[n.ID]}
		ns.IRQs = s.napiIRQs(name, n, rxOf[n.ID], unreadable)
		if n.HasPID {
			ns.PID = n.PID
			if sched, err := s.Sched.Sched(int(n.PID)); err != nil {
				unreadable(err)
			} else {
				ns.Kthread = &KthreadState{Policy: sched.Policy.String(), Priority: sched.Priority,
					CPUs: sched.CPUs.String()}
			}
		}
		ds.NAPIs = append(ds.NAPIs, ns)
	}
	slices.SortFunc(ds.NAPIs, func(a, b NAPIState) int { return int(a.ID) - int(b.ID) })
	return ds
}

// napiIRQs finds the IRQs that schedule NAPI n: the one napi-get reports, or else those /proc/interrupts names
// after its rx queues. A device without IRQs of its own (veth, lo) has none, which is not an error.
func (s *System) napiIRQs(dev string, n netdev.NAPI, rx []int, unreadable func(error)) []IRQState {
	var irqs []int
	if n.HasIRQ {
		irqs = []int{int(n.IRQ)}
	} else {
		for _, q := range rx {
			found, err := s.Knobs.QueueIRQs(dev, q, 0)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				unreadable(err)
			}
			irqs = append(irqs, found...)
		}
	}
	var out []IRQState
	for _, irq := range irqs {
		out = append(out, IRQState{IRQ: irq, Affinity: s.knobText(Knob{ID: KnobIRQAffinity, IRQ: irq}, unreadable)})
	}
	return out
}

// Format renders the state as tables for people.
func (st *State) Format() string {
	var b strings.Builder
	h := st.Host
	ns := st.NetNS
	if ns == "" {
		ns = "napilab's own"
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	row := func(cells ...any) {
		for i, c := range cells {
			if i > 0 {
				tw.Write([]byte{'\t'})
			}
			fmt.Fprint(tw, c)
		}
		tw.Write([]byte{'\n'})
	}
	section := func(title string) {
		tw.Flush()
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(title + "\n")
	}
	section("machine")
	row("  kernel", st.Kernel)
	row("  network namespace", ns)
	if f := st.Features; f != nil {
		row("  napi-set", featuresText(*f))
	}
	row("  online CPUs", h.OnlineCPUs)
	row("  SMT", orDash(h.SMT))
	if h.NetSysctls != "" {
		// Not "?": these exist, in the initial namespace only.
		row("  net.core.busy_read, busy_poll,", "not here: the kernel keeps them in the initial network namespace "+
			"only, and "+h.NetSysctls)
		row("  rps_sock_flow_entries", "(run napilab show in the initial namespace, with --netns for the devices)")
	} else {
		row("  net.core.busy_read", intText(h.BusyReadUS, " µs"))
		row("  net.core.busy_poll", intText(h.BusyPollUS, " µs"))
		row("  net.core.rps_sock_flow_entries", intText(h.RPSSockFlowEntries, ""))
	}
	row("  kernel.timer_migration", intText(h.TimerMigration, ""))
	row("  kernel.sched_rt_runtime_us", rtText(h.SchedRTRuntimeUS))
	wqs := make([]string, 0, len(h.WorkqueueCPUs))
	for wq := range h.WorkqueueCPUs {
		wqs = append(wqs, wq)
	}
	slices.Sort(wqs)
	for _, wq := range wqs {
		row("  workqueue "+wq, "CPUs "+orDash(h.WorkqueueCPUs[wq]))
	}

	section("devices")
	row("  DEVICE", "IFINDEX", "XDP FEATURES", "THREADED", "DEFER", "GRO NS", "CHANNELS", "RX RING", "COALESCING")
	for _, d := range st.Devices {
		ring, coal, ch := "-", "-", "-"
		if d.Rings != nil {
			ring = fmt.Sprintf("%d/%d", d.Rings.RX, d.Rings.RXMax)
		}
		if d.Coalesce != nil {
			coal = coalesceText(*d.Coalesce, " ")
		}
		if d.Channels != nil {
			ch = channelsText(*d.Channels, " ")
		}
		row("  "+d.Name, d.Ifindex, d.XDPFeatures, intText(d.Threaded, ""), intText(d.DeferHardIRQs, ""),
			intText(d.GROFlushTimeoutNS, ""), ch, ring, coal)
	}

	section("queues")
	row("  DEVICE", "QUEUE", "NAPI", "AF_XDP SOCKET", "RPS CPUS")
	for _, d := range st.Devices {
		for _, q := range d.Queues {
			napi, rps := "-", "-"
			if q.NAPI != 0 {
				napi = strconv.FormatUint(uint64(q.NAPI), 10)
			}
			if q.Type == "rx" {
				rps = orDash(q.RPSCPUs)
			}
			row("  "+d.Name, fmt.Sprintf("%s-%d", q.Type, q.ID), napi, yesNo(q.XSK), rps)
		}
	}

	section("NAPIs")
	row("  DEVICE", "NAPI", "QUEUES", "IRQ → CPUS", "THREADED", "KTHREAD", "DEFER", "GRO NS", "SUSPEND NS")
	for _, d := range st.Devices {
		for _, n := range d.NAPIs {
			var irqs []string
			for _, irq := range n.IRQs {
				irqs = append(irqs, fmt.Sprintf("%d → %s", irq.IRQ, orDash(irq.Affinity)))
			}
			kt := "-"
			if n.Kthread != nil {
				kt = fmt.Sprintf("pid %d %s %d on CPUs %s", n.PID, n.Kthread.Policy, n.Kthread.Priority,
					n.Kthread.CPUs)
			} else if n.PID != 0 {
				kt = fmt.Sprintf("pid %d", n.PID)
			}
			row("  "+d.Name, n.ID, orDash(strings.Join(n.Queues, " ")), orDash(strings.Join(irqs, ", ")),
				n.Threaded, kt, n.DeferHardIRQs, n.GROFlushTimeoutNS, n.IRQSuspendTimeoutNS)
		}
	}
	tw.Flush()
	if len(st.Modes) > 0 {
		b.WriteString("\napplied modes\n")
		for _, m := range st.Modes {
			fmt.Fprintf(&b, "  %s\n", m)
			if m.Orphaned != "" || !m.Held {
				fmt.Fprintf(&b, "    restore it: %s\n", m.Fix)
			}
		}
	}
	if len(st.Unreadable) > 0 {
		b.WriteString("\ncould not read:\n")
		for _, u := range st.Unreadable {
			b.WriteString("  - " + u + "\n")
		}
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func intText(v *int64, unit string) string {
	if v == nil {
		return "?"
	}
	return strconv.FormatInt(*v, 10) + unit
}

func rtText(v *int64) string {
	if v != nil && *v == -1 {
		return "-1 (RT throttling off)"
	}
	return intText(v, " µs")
}
