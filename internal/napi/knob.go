package napi

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/sysknob"
)

// KnobID names a sysfs or procfs setting a plan may change.
type KnobID string

// The knobs. Device knobs (threaded, napi_defer_hard_irqs, gro_flush_timeout, rps_cpus) are read through the
// device's network namespace; the rest are machine-wide.
const (
	KnobThreaded           KnobID = "threaded"
	KnobDeferHardIRQs      KnobID = "napi_defer_hard_irqs"
	KnobGROFlushTimeout    KnobID = "gro_flush_timeout"
	KnobRPSCPUs            KnobID = "rps_cpus"
	KnobBusyRead           KnobID = "net.core.busy_read"
	KnobBusyPoll           KnobID = "net.core.busy_poll"
	KnobRPSSockFlowEntries KnobID = "net.core.rps_sock_flow_entries"
	KnobTimerMigration     KnobID = "kernel.timer_migration"
	KnobSchedRTRuntime     KnobID = "kernel.sched_rt_runtime_us"
	KnobSMT                KnobID = "smt"
	KnobIRQAffinity        KnobID = "smp_affinity_list"
	KnobWorkqueueCPUMask   KnobID = "workqueue_cpumask"
)

// Knob is one setting: its kind and what it belongs to. Values travel as text in the file's own unit (what
// `echo` would write), except CPU masks, which travel as CPU lists ("1-6") and are converted on write.
type Knob struct {
	ID        KnobID `json:"id"`
	Dev       string `json:"dev,omitempty"`
	Queue     int    `json:"queue,omitzero"`
	IRQ       int    `json:"irq,omitzero"`
	Workqueue string `json:"workqueue,omitempty"`
}

// device reports whether the knob lives below /sys/class/net and so in the device's network namespace.
func (k Knob) device() bool {
	switch k.ID {
	case KnobThreaded, KnobDeferHardIRQs, KnobGROFlushTimeout, KnobRPSCPUs:
		return true
	}
	return false
}

// String is the knob's path without the obvious prefix: "vb/threaded", "net.core.busy_read",
// "irq/38/smp_affinity_list".
func (k Knob) String() string {
	p := k.Path()
	for _, prefix := range []string{"/sys/class/net/", "/sys/devices/virtual/", "/sys/devices/system/cpu/", "/proc/"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			p = rest
			break
		}
	}
	if rest, ok := strings.CutPrefix(p, "sys/"); ok {
		return strings.ReplaceAll(rest, "/", ".") // a sysctl
	}
	return p
}

// Path is the file on a real system.
func (k Knob) Path() string {
	switch k.ID {
	case KnobThreaded, KnobDeferHardIRQs, KnobGROFlushTimeout:
		return "/sys/class/net/" + k.Dev + "/" + string(k.ID)
	case KnobRPSCPUs:
		return fmt.Sprintf("/sys/class/net/%s/queues/rx-%d/rps_cpus", k.Dev, k.Queue)
	case KnobIRQAffinity:
		return fmt.Sprintf("/proc/irq/%d/smp_affinity_list", k.IRQ)
	case KnobWorkqueueCPUMask:
		return "/sys/devices/virtual/workqueue/" + k.Workqueue + "/cpumask"
	case KnobSMT:
		return "/sys/devices/system/cpu/smt/control"
	}
	return "/proc/sys/" + strings.ReplaceAll(string(k.ID), ".", "/")
}

// mask reports whether the file holds a hex CPU mask while napilab spells the value as a CPU list.
func (k Knob) mask() bool { return k.ID == KnobRPSCPUs || k.ID == KnobWorkqueueCPUMask }

// unit is how plans print the value's unit.
func (k Knob) unit() string {
	switch k.ID {
	case KnobGROFlushTimeout:
		return "ns"
	case KnobBusyRead, KnobBusyPoll, KnobSchedRTRuntime:
		return "µs"
	}
	return ""
}

// echoText is what `echo` must write for value v (CPU masks in hex).
func (k Knob) echoText(v string) string {
	if k.mask() {
		if s, err := sysknob.ParseCPUList(v); err == nil {
			return s.Mask()
		}
	}
	return v
}

// durationText spells d in unit as the knob files do.
func durationText(d, unit time.Duration) string { return strconv.FormatInt(int64(d/unit), 10) }

// sysknobKnobs implements Knobs over two sysknob views: the device's network namespace for device files and
// the host for everything machine-wide (on 6.18 the busy-poll sysctls exist only in the initial namespace).
type sysknobKnobs struct {
	dev, host *sysknob.Root
}

// NewKnobs returns the Knobs of sysknob views: dev for the device files (a NetNS view when the device is in
// another namespace), host for everything else. They may be the same view.
func NewKnobs(dev, host *sysknob.Root) Knobs { return sysknobKnobs{dev: dev, host: host} }

// binding ties a Knob to a typed sysknob knob: text in, text out.
type binding struct {
	get      func() (string, error)
	set      func(string) error
	snapshot func() (sysknob.Snapshot, error)
}

func bind[T any](k sysknob.Knob[T], parse func(string) (T, error), format func(T) string) binding {
	return binding{
		get: func() (string, error) {
			v, err := k.Get()
			if err != nil {
				return "", err
			}
			return format(v), nil
		},
		set: func(text string) error {
			v, err := parse(text)
			if err != nil {
				return fmt.Errorf("set %s: %w", k.Name(), err)
			}
			return k.Set(v)
		},
		snapshot: k.Snapshot,
	}
}

func parseUint(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q is not an unsigned integer", s)
	}
	return v, nil
}

func formatUint(v uint64) string { return strconv.FormatUint(v, 10) }

func parseBool(s string) (bool, error) {
	switch s {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("value %q is neither 0 nor 1", s)
}

func formatBool(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// durationIn parses an integer count of unit; with unlimited, -1 is sysknob.Unlimited.
func durationIn(unit time.Duration, unlimited bool) (func(string) (time.Duration, error), func(time.Duration) string) {
	parse := func(s string) (time.Duration, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		switch {
		case err != nil:
			return 0, fmt.Errorf("value %q is not an integer count of %v", s, unit)
		case n == -1 && unlimited:
			return sysknob.Unlimited, nil
		}
		return time.Duration(n) * unit, nil
	}
	format := func(d time.Duration) string {
		if d == sysknob.Unlimited && unlimited {
			return "-1"
		}
		return durationText(d, unit)
	}
	return parse, format
}

func formatCPUs(s sysknob.CPUSet) string { return s.String() }

func (s sysknobKnobs) bind(k Knob) (binding, error) {
	r := s.host
	if k.device() {
		r = s.dev
	}
	us, usText := durationIn(time.Microsecond, false)
	switch k.ID {
	case KnobThreaded:
		return bind(r.Threaded(k.Dev), parseBool, formatBool), nil
	case KnobDeferHardIRQs:
		return bind(r.NAPIDeferHardIRQs(k.Dev), parseUint, formatUint), nil
	case KnobGROFlushTimeout:
		ns, nsText := durationIn(time.Nanosecond, false)
		return bind(r.GROFlushTimeout(k.Dev), ns, nsText), nil
	case KnobRPSCPUs:
		return bind(r.RPSCPUs(k.Dev, k.Queue), sysknob.ParseCPUList, formatCPUs), nil
	case KnobBusyRead:
		return bind(r.BusyRead(), us, usText), nil
	case KnobBusyPoll:
		return bind(r.BusyPoll(), us, usText), nil
	case KnobRPSSockFlowEntries:
		return bind(r.RPSSockFlowEntries(), parseUint, formatUint), nil
	case KnobTimerMigration:
		return bind(r.TimerMigration(), parseBool, formatBool), nil
	case KnobSchedRTRuntime:
		rt, rtText := durationIn(time.Microsecond, true)
		return bind(r.SchedRTRuntime(), rt, rtText), nil
	case KnobSMT:
		return bind(r.SMTControl(), func(s string) (sysknob.SMT, error) { return sysknob.SMT(s), nil },
			func(v sysknob.SMT) string { return string(v) }), nil
	case KnobIRQAffinity:
		return bind(r.IRQAffinity(k.IRQ), sysknob.ParseCPUList, formatCPUs), nil
	case KnobWorkqueueCPUMask:
		return bind(r.WorkqueueCPUMask(k.Workqueue), sysknob.ParseCPUList, formatCPUs), nil
	}
	return binding{}, fmt.Errorf("unknown knob %q", k.ID)
}

func (s sysknobKnobs) Get(k Knob) (string, error) {
	b, err := s.bind(k)
	if err != nil {
		return "", err
	}
	return b.get()
}

func (s sysknobKnobs) Set(k Knob, value string) error {
	b, err := s.bind(k)
	if err != nil {
		return err
	}
	return b.set(value)
}

func (s sysknobKnobs) Snapshot(k Knob) (sysknob.Snapshot, error) {
	b, err := s.bind(k)
	if err != nil {
		return sysknob.Snapshot{}, err
	}
	return b.snapshot()
}

func (s sysknobKnobs) Restore(k Knob, snap sysknob.Snapshot) error {
	r := s.host
	if k.device() {
		r = s.dev
	}
	return r.Restore(snap)
}

func (s sysknobKnobs) OnlineCPUs() (sysknob.CPUSet, error) { return s.host.OnlineCPUs() }

func (s sysknobKnobs) QueueIRQs(dev string, queue, napiIRQ int) ([]int, error) {
	return s.dev.QueueIRQs(dev, queue, napiIRQ)
}

func (s sysknobKnobs) Workqueues() ([]string, error) { return s.host.Workqueues() }

func (s sysknobKnobs) CheckRTThrottling() (warn, err error) { return s.host.CheckRTThrottling() }
