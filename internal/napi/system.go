package napi

import (
	"errors"
	"fmt"
	"os"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/sysknob"
)

// The seam between the configurator and the machine: small interfaces that the adapters implement
// (*netdev.Client, *ethtool.Client, *sysknob.Root, NewKnobs) and that a fake implements in tests, rendering
// every operation as text.

// Netdev is the part of the netdev generic netlink family napi uses; *netdev.Client implements it.
type Netdev interface {
	Features() (netdev.Features, error)
	Devices() ([]netdev.Device, error)
	Queues(ifindex uint32) ([]netdev.Queue, error)
	NAPI(id uint32) (netdev.NAPI, error)
	NAPIs(ifindex uint32) ([]netdev.NAPI, error)
	SetNAPI(id uint32, cfg netdev.NAPIConfig) error
}

// Ethtool is the part of the ethtool family napi uses; *ethtool.Client implements it. Drivers without an
// operation answer errors matching kernel.ErrNotSupported (veth has no rings and no coalescing).
type Ethtool interface {
	Channels(ethtool.Device) (ethtool.Channels, error)
	SetChannels(ethtool.Device, ethtool.Channels) error
	Rings(ethtool.Device) (ethtool.Rings, error)
	SetRings(ethtool.Device, ethtool.Rings) error
	Coalesce(ethtool.Device) (ethtool.Coalesce, error)
	SetCoalesce(ethtool.Device, ethtool.Coalesce) error
}

// Knobs reads, writes, snapshots and restores sysfs/procfs settings (NewKnobs over sysknob views), and answers
// the machine questions a plan depends on.
type Knobs interface {
	Get(Knob) (string, error)
	Set(k Knob, value string) error
	Snapshot(Knob) (sysknob.Snapshot, error)
	Restore(Knob, sysknob.Snapshot) error
	OnlineCPUs() (sysknob.CPUSet, error)
	QueueIRQs(dev string, queue, napiIRQ int) ([]int, error)
	Workqueues() ([]string, error)
	CheckRTThrottling() (warn, err error)
}

// Services stops and starts a systemd unit (irqbalance, which moves IRQ affinity back behind napilab's back).
// A machine without systemd answers kernel.ErrNotSupported, with the reason.
type Services interface {
	Active(unit string) (bool, error)
	Stop(unit string) error
	Start(unit string) error
}

// Scheduler reads and sets how a thread is scheduled; *sysknob.Root implements it.
type Scheduler interface {
	Sched(pid int) (sysknob.Sched, error)
	SetFIFO(pid, prio int) error
	SetAffinity(pid int, cpus sysknob.CPUSet) error
	RestoreSched(sysknob.Sched) error
}

// Link is a network interface of the device's namespace.
type Link struct {
	Name    string `json:"name"`
	Ifindex uint32 `json:"ifindex"`
}

// Links names the interfaces of the device's namespace (netdev reports ifindexes only).
type Links interface {
	Links() ([]Link, error)
}

// NetNS identifies a network namespace across processes: a path another process can open (/run/netns/NAME,
// /proc/PID/fd/N) or empty for the namespace napilab itself runs in, and the namespace's inode, which tells a
// namespace from a later one that reuses its name.
type NetNS struct {
	Path  string `json:"path,omitempty"`
	Inode uint64 `json:"inode"`
}

func (n NetNS) String() string {
	if n.Path == "" {
		return fmt.Sprintf("napilab's network namespace (net:[%d])", n.Inode)
	}
	return fmt.Sprintf("network namespace %s (net:[%d])", n.Path, n.Inode)
}

// System is the machine as napi sees it: every operation on the device's namespace and on the host goes
// through these interfaces.
type System struct {
	Netdev  Netdev
	Ethtool Ethtool
	Knobs   Knobs
	Sched   Scheduler
	Links   Links
	// Services controls systemd units; nil means systemctl (see SystemdServices).
	Services Services
	NetNS    NetNS  // the namespace Netdev, Ethtool, Links and the device knobs address
	Kernel   string // the running kernel's release, for plans and messages
	// Registry is the host registry's path (DefaultRegistry), which owns the machine-wide knobs across
	// applied modes; "" leaves them to each journal alone (tests of one mode at a time).
	Registry string
	// NetSysctls says why the machine-wide network sysctls (net.core.busy_read, busy_poll,
	// rps_sock_flow_entries) cannot be reached from where napilab runs; "" when they can. The kernel has them
	// in the initial network namespace only.
	NetSysctls string

	closers []func() error
}

// Close releases the system's sockets and views.
func (s *System) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	s.closers = nil
	return errors.Join(errs...)
}

// linkByName finds dev among the namespace's interfaces.
func (s *System) linkByName(dev string) (Link, error) {
	links, err := s.Links.Links()
	if err != nil {
		return Link{}, fmt.Errorf("list network interfaces: %w", err)
	}
	for _, l := range links {
		if l.Name == dev {
			return l, nil
		}
	}
	return Link{}, &kernel.FieldError{Field: "dev", Kind: os.ErrNotExist, Msg: fmt.Sprintf("%q does not exist in "+
		"%s: check the device's name and the network namespace it lives in", dev, s.NetNS)}
}

// openRegistry locks the host registry, or returns nil when the system has none.
func (s *System) openRegistry() (*Registry, error) {
	if s.Registry == "" {
		return nil, nil
	}
	return OpenRegistry(s.Registry)
}

func (s *System) services() Services {
	if s.Services == nil {
		return SystemdServices{}
	}
	return s.Services
}

// ServicePlan is the plan that stops unit on t's machine for a run: a hold of it (Hold, with the sweep's lease)
// journals whether the unit ran and starts it again on release. why says what the unit would disturb.
func ServicePlan(t Target, unit, why string) *Plan {
	return &Plan{Mode: Mode{Preset: "stop " + unit, Device: t.Device, NetNS: t.NetNS.Path}, Target: t,
		Changes: []Change{{Kind: KindService, Service: unit, Why: why}}}
}

// DeviceTarget is the target a ServicePlan journals under: the device names the directory the journal goes to.
func (s *System) DeviceTarget(dev string) (Target, error) {
	l, err := s.linkByName(dev)
	if err != nil {
		return Target{}, err
	}
	return Target{Kernel: s.Kernel, NetNS: s.NetNS, Device: l.Name, Ifindex: l.Ifindex}, nil
}
