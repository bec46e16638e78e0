package napi

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/sysknob"
)

// fakeOS is the machine as napi's interfaces see it, in memory. Every change is rendered as a line of text in
// log (reads are not), so tests compare what Apply and Restore did with golden files; state() captures
// everything that can change, so tests compare machines before and after.
//
// It behaves like the kernel where napi depends on it: the device-wide sysfs files write every NAPI of the
// device; a NAPI has a kthread (a pid) exactly while it is threaded; a driver without rings or coalescing
// answers "not supported".
type fakeOS struct {
	mu       sync.Mutex
	features netdev.Features
	links    []Link
	devices  []netdev.Device
	queues   []netdev.Queue
	napis    map[uint32]*netdev.NAPI
	knobs    map[string]string // by Knob.String()
	channels map[string]*ethtool.Channels
	rings    map[string]*ethtool.Rings
	coalesce map[string]*ethtool.Coalesce
	sched    map[int]*sysknob.Sched
	online   sysknob.CPUSet
	irqs     map[string][]int // "dev/queue" → IRQs
	wqs      []string
	units    map[string]bool // systemd units: running or not
	nextPID  int
	log      []string

	// before runs ahead of each change, without the lock held, and may fail it, block, or end the goroutine (to
	// model a crash: it must then take the lock, which the changing method's deferred Unlock releases).
	before func(op string) error
}

// newFakeOS returns a 4-CPU machine on kernel k with a virtio_net-like eth1 (ifindex 3, combined channels,
// rings, coalescing, NAPI 8193 on rx-0 and 8194 on rx-1, IRQs 38 and 40) and a veth vb (ifindex 5, one rx
// queue and NAPI 259, which queue-get does not link as on a real veth; no IRQs, no rings, no coalescing).
func newFakeOS(k netdev.Features) *fakeOS {
	f := &fakeOS{
		features: k,
		links:    []Link{{"lo", 1}, {"eth1", 3}, {"vb", 5}},
		devices: []netdev.Device{{Ifindex: 1}, {Ifindex: 3, XDPFeatures: 43},
			{Ifindex: 5, XDPFeatures: netdev.XDPBasic | netdev.XDPRedirect | netdev.XDPNDOXmit | netdev.XDPRXSG}},
		queues: []netdev.Queue{
			{ID: 0, Ifindex: 3, Type: netdev.QueueRX, NAPIID: 8193}, {ID: 1, Ifindex: 3, Type: netdev.QueueRX, NAPIID: 8194},
			{ID: 0, Ifindex: 3, Type: netdev.QueueTX, NAPIID: 8193}, {ID: 1, Ifindex: 3, Type: netdev.QueueTX, NAPIID: 8194},
			// veth links no queue to its NAPI in queue-get (6.18).
			{ID: 0, Ifindex: 5, Type: netdev.QueueRX}, {ID: 0, Ifindex: 5, Type: netdev.QueueTX},
		},
		napis: map[uint32]*netdev.NAPI{
			8193: {ID: 8193, Ifindex: 3, DeferHardIRQs: 2, GROFlushTimeout: 20000},
			8194: {ID: 8194, Ifindex: 3, IRQSuspendTimeout: 1000},
			259:  {ID: 259, Ifindex: 5},
		},
		knobs: map[string]string{
			"eth1/threaded": "0", "eth1/napi_defer_hard_irqs": "0", "eth1/gro_flush_timeout": "0",
			"eth1/queues/rx-0/rps_cpus": "", "eth1/queues/rx-1/rps_cpus": "2-3",
			"vb/threaded": "0", "vb/napi_defer_hard_irqs": "0", "vb/gro_flush_timeout": "0",
			"vb/queues/rx-0/rps_cpus": "",
			"net.core.busy_read":      "0", "net.core.busy_poll": "50", "net.core.rps_sock_flow_entries": "32768",
			"kernel.timer_migration": "1", "kernel.sched_rt_runtime_us": "950000", "smt/control": "on",
			"irq/38/smp_affinity_list": "0-3", "irq/40/smp_affinity_list": "0-3",
			"workqueue/writeback/cpumask": "0-3", "workqueue/blkcg_punt_bio/cpumask": "0-3",
		},
		channels: map[string]*ethtool.Channels{
			"eth1": {Combined: 2, CombinedMax: 4},
			"vb":   {RX: 1, TX: 1, RXMax: 4, TXMax: 4},
		},
		rings:    map[string]*ethtool.Rings{"eth1": {RX: 256, TX: 256, RXMax: 4096, TXMax: 4096}},
		coalesce: map[string]*ethtool.Coalesce{"eth1": {RXUsecs: 8, RXMaxFrames: 32, AdaptiveRX: true}},
		sched:    map[int]*sysknob.Sched{},
		online:   sysknob.CPURange(0, 3),
		irqs:     map[string][]int{"eth1/0": {38}, "eth1/1": {40}},
		wqs:      []string{"blkcg_punt_bio", "writeback"},
		nextPID:  700,
	}
	return f
}

var (
	_ Netdev    = (*fakeOS)(nil)
	_ Ethtool   = (*fakeOS)(nil)
	_ Knobs     = (*fakeOS)(nil)
	_ Scheduler = (*fakeOS)(nil)
	_ Links     = (*fakeOS)(nil)
)

var (
	features6_18 = netdev.Features{NAPISet: true, IRQSuspendTimeout: true, PerNAPIThreaded: true}
	features6_19 = netdev.Features{NAPISet: true, IRQSuspendTimeout: true, PerNAPIThreaded: true, ThreadedBusyPoll: true}
)

// system wires the fake into a System in a fake namespace.
func (f *fakeOS) system() *System {
	release := "6.19.2"
	if !f.features.ThreadedBusyPoll {
		release = "6.18.44"
	}
	return &System{Netdev: f, Ethtool: f, Knobs: f, Sched: f, Links: f, Services: f, Kernel: release,
		NetNS: NetNS{Path: "/run/netns/lab", Inode: 4026532305}}
}

func (f *fakeOS) change(format string, args ...any) error {
	op := fmt.Sprintf(format, args...)
	if f.before != nil {
		f.mu.Unlock() // a hook may block or end the goroutine: never with the lock held
		err := f.before(op)
		f.mu.Lock()
		if err != nil {
			return err
		}
	}
	f.log = append(f.log, op)
	return nil
}

func (f *fakeOS) takeLog() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := strings.Join(f.log, "\n")
	f.log = nil
	return s
}

// state is everything a mode can change, as comparable text.
func (f *fakeOS) state() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := json.MarshalIndent(struct {
		NAPIs    map[uint32]*netdev.NAPI
		Knobs    map[string]string
		Channels map[string]*ethtool.Channels
		Rings    map[string]*ethtool.Rings
		Coalesce map[string]*ethtool.Coalesce
		Sched    map[int]*sysknob.Sched
		Units    map[string]bool
	}{f.napis, f.knobs, f.channels, f.rings, f.coalesce, f.sched, f.units}, "", " ")
	return string(b)
}

func (f *fakeOS) devName(ifindex uint32) string {
	for _, l := range f.links {
		if l.Ifindex == ifindex {
			return l.Name
		}
	}
	return ""
}

// Links.

func (f *fakeOS) Links() ([]Link, error) { return slices.Clone(f.links), nil }

// Netdev.

func (f *fakeOS) Features() (netdev.Features, error) { return f.features, nil }

func (f *fakeOS) Devices() ([]netdev.Device, error) { return slices.Clone(f.devices), nil }

func (f *fakeOS) Queues(ifindex uint32) ([]netdev.Queue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netdev.Queue
	for _, q := range f.queues {
		if q.Ifindex == ifindex {
			out = append(out, q)
		}
	}
	return out, nil
}

func (f *fakeOS) NAPI(id uint32) (netdev.NAPI, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.napis[id]
	if !ok {
		return netdev.NAPI{}, &kernel.OpError{Op: "napi-get", Err: os.ErrNotExist}
	}
	return *n, nil
}

func (f *fakeOS) NAPIs(ifindex uint32) ([]netdev.NAPI, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netdev.NAPI
	for _, id := range slices.Sorted(maps.Keys(f.napis)) {
		if f.napis[id].Ifindex == ifindex {
			out = append(out, *f.napis[id])
		}
	}
	return out, nil
}

func (f *fakeOS) SetNAPI(id uint32, cfg netdev.NAPIConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.napis[id]
	if !ok {
		return &kernel.OpError{Op: "napi-set", Err: os.ErrNotExist}
	}
	if cfg.Threaded != nil && *cfg.Threaded == netdev.ThreadedBusyPoll && !f.features.ThreadedBusyPoll {
		return &kernel.UnsupportedError{Feature: "threaded NAPI busy poll", MinKernel: "6.19"}
	}
	if err := f.change("napi-set id=%d %s", id, cfg); err != nil {
		return err
	}
	if v := cfg.DeferHardIRQs; v != nil {
		n.DeferHardIRQs = *v
	}
	if v := cfg.GROFlushTimeout; v != nil {
		n.GROFlushTimeout = *v
	}
	if v := cfg.IRQSuspendTimeout; v != nil {
		n.IRQSuspendTimeout = *v
	}
	if v := cfg.Threaded; v != nil {
		f.setThreaded(n, *v)
	}
	return nil
}

// setThreaded starts or stops the NAPI's kthread, as napi_set_threaded does.
func (f *fakeOS) setThreaded(n *netdev.NAPI, t netdev.Threaded) {
	n.Threaded = t
	switch {
	case t == netdev.ThreadedDisabled && n.HasPID:
		delete(f.sched, int(n.PID))
		n.PID, n.HasPID = 0, false
	case t != netdev.ThreadedDisabled && !n.HasPID:
		f.nextPID++
		n.PID, n.HasPID = uint32(f.nextPID), true
		f.sched[f.nextPID] = &sysknob.Sched{PID: f.nextPID, CPUs: f.online}
	}
}

// Ethtool.

func notSupported(op string, dev ethtool.Device) error {
	return &ethtool.Error{Op: op, Device: dev, Driver: "veth", Err: kernel.ErrNotSupported}
}

func (f *fakeOS) Channels(d ethtool.Device) (ethtool.Channels, error) {
	return getEthtool(f, f.channels, "channels-get", d)
}

func (f *fakeOS) Rings(d ethtool.Device) (ethtool.Rings, error) {
	return getEthtool(f, f.rings, "rings-get", d)
}

func (f *fakeOS) Coalesce(d ethtool.Device) (ethtool.Coalesce, error) {
	return getEthtool(f, f.coalesce, "coalesce-get", d)
}

func getEthtool[T any](f *fakeOS, m map[string]*T, op string, d ethtool.Device) (T, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := m[d.Name]
	if !ok {
		var zero T
		return zero, notSupported(op, d)
	}
	return *v, nil
}

func (f *fakeOS) SetChannels(d ethtool.Device, want ethtool.Channels) error {
	return setEthtool(f, f.channels, "channels-set", d, want, "ethtool -L %s %s", d.Name, channelsText(want, "="))
}

func (f *fakeOS) SetRings(d ethtool.Device, want ethtool.Rings) error {
	return setEthtool(f, f.rings, "rings-set", d, want, "ethtool -G %s rx=%d", d.Name, want.RX)
}

func (f *fakeOS) SetCoalesce(d ethtool.Device, want ethtool.Coalesce) error {
	return setEthtool(f, f.coalesce, "coalesce-set", d, want, "ethtool -C %s %s rx-frames=%d", d.Name,
		coalesceText(want, "="), want.RXMaxFrames)
}

func setEthtool[T any](f *fakeOS, m map[string]*T, op string, d ethtool.Device, want T, format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := m[d.Name]
	if !ok {
		return notSupported(op, d)
	}
	if err := f.change(format, args...); err != nil {
		return err
	}
	*v = want
	return nil
}

// Knobs.

func (f *fakeOS) Get(k Knob) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.knobs[k.String()]
	if !ok {
		return "", kernel.NotFound("%s", "no "+k.String())
	}
	return v, nil
}

func (f *fakeOS) Set(k Knob, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.knobs[k.String()]; !ok {
		return kernel.NotFound("%s", "no "+k.String())
	}
	if err := f.change("write %s=%s", k, value); err != nil {
		return err
	}
	f.write(k, value)
	return nil
}

// write stores a knob; the device-wide NAPI files write every NAPI of the device, as on 6.13+.
func (f *fakeOS) write(k Knob, value string) {
	f.knobs[k.String()] = value
	for _, n := range f.napis {
		if k.Dev == "" || f.devName(n.Ifindex) != k.Dev {
			continue
		}
		var v uint64
		fmt.Sscan(value, &v)
		switch k.ID {
		case KnobDeferHardIRQs:
			n.DeferHardIRQs = uint32(v)
		case KnobGROFlushTimeout:
			n.GROFlushTimeout = time.Duration(v)
		case KnobThreaded:
			f.setThreaded(n, netdev.Threaded(v))
		}
	}
}

func (f *fakeOS) Snapshot(k Knob) (sysknob.Snapshot, error) {
	v, err := f.Get(k)
	return sysknob.Snapshot{Knob: k.String(), Path: k.Path(), Text: v + "\n"}, err
}

func (f *fakeOS) Restore(k Knob, s sysknob.Snapshot) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	text := strings.TrimSuffix(s.Text, "\n")
	if f.knobs[k.String()] == text {
		return nil
	}
	if err := f.change("restore %s=%s", k, text); err != nil {
		return err
	}
	f.write(k, text)
	return nil
}

func (f *fakeOS) OnlineCPUs() (sysknob.CPUSet, error) { return f.online, nil }

func (f *fakeOS) QueueIRQs(dev string, queue, _ int) ([]int, error) {
	irqs, ok := f.irqs[fmt.Sprintf("%s/%d", dev, queue)]
	if !ok {
		return nil, kernel.NotFound("found no IRQ of %s queue %d", dev, queue)
	}
	return irqs, nil
}

func (f *fakeOS) Workqueues() ([]string, error) { return slices.Clone(f.wqs), nil }

func (f *fakeOS) CheckRTThrottling() (warn, err error) {
	if v, _ := f.Get(Knob{ID: KnobSchedRTRuntime}); v != "-1" {
		return fmt.Errorf("RT throttling is on"), nil
	}
	return nil, nil
}

// Scheduler.

func (f *fakeOS) Sched(pid int) (sysknob.Sched, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sched[pid]
	if !ok {
		return sysknob.Sched{}, kernel.NotFound("thread %d is gone", pid)
	}
	return *s, nil
}

func (f *fakeOS) SetFIFO(pid, prio int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sched[pid]
	if !ok {
		return kernel.NotFound("thread %d is gone", pid)
	}
	if err := f.change("chrt -f -p %d %d", prio, pid); err != nil {
		return err
	}
	s.Policy, s.Priority = sysknob.PolicyFIFO, prio
	return nil
}

func (f *fakeOS) SetAffinity(pid int, cpus sysknob.CPUSet) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sched[pid]
	if !ok {
		return kernel.NotFound("thread %d is gone", pid)
	}
	if err := f.change("taskset -pc %s %d", cpus, pid); err != nil {
		return err
	}
	s.CPUs = cpus
	return nil
}

func (f *fakeOS) RestoreSched(prior sysknob.Sched) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sched[prior.PID]
	if !ok {
		return kernel.NotFound("thread %d is gone", prior.PID)
	}
	if err := f.change("sched %d %v/%d cpus %s", prior.PID, prior.Policy, prior.Priority, prior.CPUs); err != nil {
		return err
	}
	*s = prior
	return nil
}

// crashAt makes the n-th change (counting from 1) end the calling goroutine, as if the process was killed just
// before it: nothing after it runs, no deferred rollback, the journal stays as it was on disk.
func (f *fakeOS) crashAt(n int) {
	count := 0
	f.before = func(string) error {
		count++
		if count == n {
			f.mu.Lock() // the caller's deferred Unlock runs on the way out
			runtime.Goexit()
		}
		return nil
	}
}

func (f *fakeOS) Active(unit string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.units[unit], nil
}

func (f *fakeOS) Stop(unit string) error  { return f.setUnit(unit, false) }
func (f *fakeOS) Start(unit string) error { return f.setUnit(unit, true) }

func (f *fakeOS) setUnit(unit string, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.change("systemctl %s %s", map[bool]string{true: "start", false: "stop"}[on], unit); err != nil {
		return err
	}
	if f.units == nil {
		f.units = map[string]bool{}
	}
	f.units[unit] = on
	return nil
}
