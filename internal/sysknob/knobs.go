package sysknob

import (
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/kernel"
)

// Per-device knobs under /sys/class/net/<dev>.

// Threaded is the device-wide threaded NAPI switch: true moves every NAPI of dev into its own kthread. The
// kernel answers EOPNOTSUPP (kernel.ErrNotSupported) for a device without NAPI instances, such as a veth without
// XDP or GRO. Threaded busy poll is per NAPI and netlink-only; this file accepts only 0 and 1.
func (r *Root) Threaded(dev string) Knob[bool] {
	k := devKnob(r, dev, "threaded", boolCodec)
	k.refusal = "the device has no NAPI instance to thread (a veth has one only while XDP or GRO is on)"
	return k
}

// NAPIDeferHardIRQs is how many consecutive empty NAPI polls pass before the device's IRQs are re-enabled.
func (r *Root) NAPIDeferHardIRQs(dev string) Knob[uint64] {
	return devKnob(r, dev, "napi_defer_hard_irqs", uintCodec(math.MaxInt32))
}

// GROFlushTimeout is the repoll timer that replaces the IRQ unmask while IRQs are deferred (nanoseconds).
func (r *Root) GROFlushTimeout(dev string) Knob[time.Duration] {
	return devKnob(r, dev, "gro_flush_timeout", durationCodec(time.Nanosecond, math.MaxInt64, false))
}

// RPSCPUs is the RPS CPU mask of receive queue rxQueue (empty: RPS off).
func (r *Root) RPSCPUs(dev string, rxQueue int) Knob[CPUSet] {
	return devKnob(r, dev, fmt.Sprintf("queues/rx-%d/rps_cpus", rxQueue), cpuCodec(true), rxQueue)
}

// RPSFlowCnt is the RFS flow table size of receive queue rxQueue; the kernel rounds it up to a power of two.
func (r *Root) RPSFlowCnt(dev string, rxQueue int) Knob[uint64] {
	return devKnob(r, dev, fmt.Sprintf("queues/rx-%d/rps_flow_cnt", rxQueue), uintCodec(math.MaxInt32), rxQueue)
}

// devKnob names attr of dev; queue, when given, must be a valid queue index.
func devKnob[T any](r *Root, dev, attr string, c codec[T], queue ...int) Knob[T] {
	f := sysFile("class/net", dev, attr)
	k := Knob[T]{root: r, file: f, name: attr + " of " + dev, codec: c}
	if q, ok := strings.CutPrefix(attr, "queues/"); ok {
		k.name = path.Base(attr) + " of " + dev + " " + path.Dir(q)
	}
	k.missing = func() string {
		if !r.exists(sysFile("class/net", dev)) {
			return fmt.Sprintf("there is no device %s in /sys/class/net of %s; a device in another network "+
				"namespace needs that namespace's view (sysknob.NetNS)", dev, r)
		}
		return fmt.Sprintf("device %s has no %s in sysfs", dev, attr)
	}
	if err := validName("device", dev, 15); err != nil {
		k.err = err
	} else if len(queue) > 0 && queue[0] < 0 {
		k.err = fmt.Errorf("queue index %d is negative", queue[0])
	}
	return k
}

// validName refuses names that are empty, too long, or would leave their directory.
func validName(what, name string, maxLen int) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00 \t\n") || len(name) > maxLen {
		return fmt.Errorf("%s name %q is not valid: want 1 to %d characters without '/' or white space",
			what, name, maxLen)
	}
	return nil
}

// Machine-wide sysctls under /proc/sys.

// BusyRead is net.core.busy_read: the SO_BUSY_POLL time every new socket starts with (microseconds).
// Sockets copy it when they are created, so it must be set before the workload opens its sockets. The kernel keeps
// it machine-wide: only the initial network namespace has the file, and a NetNS view reports it missing.
func (r *Root) BusyRead() Knob[time.Duration] {
	return sysctl(r, "net/core/busy_read", durationCodec(time.Microsecond, math.MaxInt32, false))
}

// BusyPoll is net.core.busy_poll: how long poll, select and epoll busy poll (microseconds); machine-wide like
// BusyRead.
func (r *Root) BusyPoll() Knob[time.Duration] {
	return sysctl(r, "net/core/busy_poll", durationCodec(time.Microsecond, math.MaxInt32, false))
}

// RPSSockFlowEntries is net.core.rps_sock_flow_entries, the global RFS table size (0: RFS off); machine-wide.
func (r *Root) RPSSockFlowEntries() Knob[uint64] {
	return sysctl(r, "net/core/rps_sock_flow_entries", uintCodec(math.MaxInt32))
}

// TimerMigration is kernel.timer_migration: whether timers may move to a busy CPU. The seed's setup turns it off
// so timers stay where the latency-critical threads do not run.
func (r *Root) TimerMigration() Knob[bool] {
	return sysctl(r, "kernel/timer_migration", boolCodec)
}

// SchedRTRuntime is kernel.sched_rt_runtime_us: how much of every SchedRTPeriod all SCHED_FIFO/RR threads may
// run. Unlimited (-1) turns RT throttling off; the kernel refuses a runtime longer than the period (EINVAL).
func (r *Root) SchedRTRuntime() Knob[time.Duration] {
	return sysctl(r, "kernel/sched_rt_runtime_us", durationCodec(time.Microsecond, math.MaxInt32, true))
}

// SchedRTPeriod is kernel.sched_rt_period_us, the RT throttling period.
func (r *Root) SchedRTPeriod() Knob[time.Duration] {
	return sysctl(r, "kernel/sched_rt_period_us", durationCodec(time.Microsecond, math.MaxInt32, false))
}

func sysctl[T any](r *Root, rel string, c codec[T]) Knob[T] {
	f := procFile("sys", rel)
	name := strings.ReplaceAll(rel, "/", ".")
	return Knob[T]{root: r, file: f, name: name, codec: c, missing: func() string {
		if f.netSysctl() && r.netns >= 0 {
			return fmt.Sprintf("%s does not exist in %s: the kernel keeps it machine-wide, in the initial network "+
				"namespace only, so set it through the host view", name, r)
		}
		return "this kernel has no " + name
	}}
}

// IRQs.

// IRQAffinity is /proc/irq/<irq>/smp_affinity_list, the CPUs the IRQ may be delivered to.
func (r *Root) IRQAffinity(irq int) Knob[CPUSet] {
	k := Knob[CPUSet]{root: r, file: procFile("irq", strconv.Itoa(irq), "smp_affinity_list"),
		name: fmt.Sprintf("smp_affinity_list of IRQ %d", irq), codec: cpuCodec(false)}
	k.missing = func() string {
		if !r.exists(procFile("irq", strconv.Itoa(irq))) {
			return fmt.Sprintf("there is no IRQ %d (see /proc/interrupts)", irq)
		}
		return fmt.Sprintf("IRQ %d has no affinity setting", irq)
	}
	if irq < 0 {
		k.err = fmt.Errorf("IRQ number %d is negative", irq)
	}
	return k
}

// Interrupts reads and parses /proc/interrupts.
func (r *Root) Interrupts() (Interrupts, error) {
	f := procFile("interrupts")
	text, err := r.read(f)
	if err != nil {
		return Interrupts{}, r.fail("read", "the interrupt counters", f, err, nil)
	}
	return ParseInterrupts(text)
}

// IRQCounts returns how often irq fired on each online CPU since boot.
func (r *Root) IRQCounts(irq int) (map[int]uint64, error) {
	s, err := r.Interrupts()
	if err != nil {
		return nil, err
	}
	counts, ok := s.PerCPU(irq)
	if !ok {
		return nil, kernel.NotFound("IRQ %d is not listed in /proc/interrupts of %s", irq, r)
	}
	return counts, nil
}

// QueueIRQs returns the IRQs that serve queue q of dev. When the caller knows the IRQ of the queue's NAPI
// (netdev napi-get reports it as irq for drivers that register it), napiIRQ > 0 is checked and returned;
// otherwise the IRQs are found by name in /proc/interrupts (QueueIRQNames lists the names tried). A device
// without IRQs of its own, such as a veth, yields an error matching os.ErrNotExist.
func (r *Root) QueueIRQs(dev string, q, napiIRQ int) ([]int, error) {
	if err := validName("device", dev, 15); err != nil {
		return nil, err
	}
	if napiIRQ > 0 {
		if !r.exists(procFile("irq", strconv.Itoa(napiIRQ))) {
			return nil, kernel.NotFound("IRQ %d of %s queue %d (from napi-get) is not in /proc/irq", napiIRQ, dev, q)
		}
		return []int{napiIRQ}, nil
	}
	var busDev string
	if target, err := r.sys.Readlink(sysFile("class/net", dev, "device").rel); err == nil {
		busDev = path.Base(target)
	}
	s, err := r.Interrupts()
	if err != nil {
		return nil, err
	}
	irqs := MatchQueueIRQs(s, dev, busDev, q)
	if len(irqs) == 0 {
		return nil, kernel.NotFound("found no IRQ of %s queue %d in /proc/interrupts (looked for %s); "+
			"pass the irq that netdev napi-get reports for the queue's NAPI", dev, q,
			strings.Join(QueueIRQNames(dev, busDev, q), ", "))
	}
	return irqs, nil
}

// CPUs.

// OnlineCPUs returns the CPUs that are online now.
func (r *Root) OnlineCPUs() (CPUSet, error) { return r.cpuList("online") }

// PossibleCPUs returns every CPU the kernel could bring online; CPU masks may name no other.
func (r *Root) PossibleCPUs() (CPUSet, error) { return r.cpuList("possible") }

func (r *Root) cpuList(which string) (CPUSet, error) {
	k := Knob[CPUSet]{root: r, file: sysFile("devices/system/cpu", which), name: which + " CPUs",
		codec: codec[CPUSet]{parse: ParseCPUList}}
	return k.Get()
}

// SMT is the state of simultaneous multithreading as /sys/devices/system/cpu/smt/control spells it.
type SMT string

// SMT states. Set accepts SMTOn and SMTOff; "forceoff" is refused because only a reboot undoes it.
const (
	SMTOn             SMT = "on"
	SMTOff            SMT = "off"
	SMTForceOff       SMT = "forceoff"
	SMTNotSupported   SMT = "notsupported"   // the CPU has no SMT
	SMTNotImplemented SMT = "notimplemented" // the architecture cannot switch SMT
)

// SMTControl switches SMT siblings on or off (the seed's setup turns them off so that no sibling shares the
// busy-polling core). A machine without SMT reads SMTNotSupported, and Set then fails with
// kernel.ErrNotSupported; a kernel without the file fails with os.ErrNotExist.
func (r *Root) SMTControl() Knob[SMT] {
	states := []SMT{SMTOn, SMTOff, SMTForceOff, SMTNotSupported, SMTNotImplemented}
	c := codec[SMT]{
		parse: func(s string) (SMT, error) {
			if !slices.Contains(states, SMT(s)) {
				return "", fmt.Errorf("unexpected SMT state %q", shorten(s))
			}
			return SMT(s), nil
		},
		format: func(v SMT) (string, error) {
			if v != SMTOn && v != SMTOff {
				return "", fmt.Errorf("SMT can be set to on or off, not %q (forceoff lasts until reboot)", v)
			}
			return string(v), nil
		},
	}
	k := Knob[SMT]{root: r, file: sysFile("devices/system/cpu/smt/control"), name: "SMT control", codec: c,
		missing: func() string { return "this kernel has no SMT control (it needs CONFIG_HOTPLUG_SMT)" }}
	k.codec.check = func(*Root, string, SMT) error {
		cur, err := k.Get()
		if err != nil {
			return err
		}
		if cur == SMTNotSupported || cur == SMTNotImplemented {
			return fmt.Errorf("this machine cannot switch SMT (smt/control reads %s): %w", cur, kernel.ErrNotSupported)
		}
		return nil
	}
	return k
}

// Workqueues.

const workqueueDir = "devices/virtual/workqueue"

// Workqueues lists the workqueues whose CPU mask sysfs exposes (/sys/devices/virtual/workqueue/*/cpumask).
func (r *Root) Workqueues() ([]string, error) {
	f := sysFile(workqueueDir)
	d, err := r.sys.Open(f.rel)
	if err != nil {
		return nil, r.fail("list", "workqueues", f, err, func() string { return "this kernel exposes no workqueues in sysfs" })
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, r.fail("list", "workqueues", f, err, nil)
	}
	var out []string
	for _, n := range names {
		if r.exists(sysFile(workqueueDir, n, "cpumask")) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// WorkqueueCPUMask is the CPU mask of one unbound workqueue (the seed's setup keeps workqueues off the
// benchmark's CPUs).
func (r *Root) WorkqueueCPUMask(wq string) Knob[CPUSet] {
	k := Knob[CPUSet]{root: r, file: sysFile(workqueueDir, wq, "cpumask"), name: "cpumask of workqueue " + wq,
		codec: cpuCodec(true), missing: func() string { return "there is no workqueue " + wq + " with a CPU mask in sysfs" }}
	k.err = validName("workqueue", wq, 255)
	return k
}

// UnboundWorkqueueCPUMask is the mask every unbound workqueue is confined to (/sys/devices/virtual/workqueue/cpumask).
func (r *Root) UnboundWorkqueueCPUMask() Knob[CPUSet] {
	return Knob[CPUSet]{root: r, file: sysFile(workqueueDir, "cpumask"), name: "unbound workqueue cpumask",
		codec: cpuCodec(true), missing: func() string { return "this kernel has no unbound workqueue cpumask in sysfs" }}
}
