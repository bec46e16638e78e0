package testbed

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// Lifetime says what ends a testbed.
type Lifetime uint8

const (
	// Ephemeral testbeds live in anonymous namespaces held by file descriptors of the creating process: the
	// kernel removes them when the process exits, however it exits. Nothing is written to disk. Tests use this.
	Ephemeral Lifetime = iota
	// Owned testbeds have named namespaces (/run/netns, visible to `napilab testbed exec` and `ip netns`) and
	// a state file naming the creating process. Down removes them; Reap removes them once that process is dead.
	Owned
	// Persistent testbeds have named namespaces and a state file and stay until Down (`napilab testbed down`).
	Persistent
)

var lifetimeNames = [...]string{Ephemeral: "ephemeral", Owned: "owned", Persistent: "persistent"}

func (l Lifetime) String() string {
	if int(l) < len(lifetimeNames) {
		return lifetimeNames[l]
	}
	return "lifetime(" + strconv.Itoa(int(l)) + ")"
}

// Named reports whether the testbed's namespaces are bind-mounted under /run/netns and recorded in a state file.
func (l Lifetime) Named() bool { return l == Owned || l == Persistent }

// MarshalText implements encoding.TextMarshaler.
func (l Lifetime) MarshalText() ([]byte, error) {
	if int(l) >= len(lifetimeNames) {
		return nil, fmt.Errorf("unknown testbed lifetime %d", l)
	}
	return []byte(l.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *Lifetime) UnmarshalText(b []byte) error {
	for i, n := range lifetimeNames {
		if string(b) == n {
			*l = Lifetime(i)
			return nil
		}
	}
	return fmt.Errorf("unknown testbed lifetime %q: use ephemeral, owned or persistent", b)
}

// Defaults applied by Topology.Resolve to zero fields.
const (
	DefaultPrefix   = "napilab"
	DefaultQueues   = 1
	DefaultMTU      = 1500
	DefaultStateDir = "/run/napilab/testbed"

	// LinkA and LinkB name the veth ends. Each lives alone in a fresh namespace, so fixed names cannot collide,
	// and they show up readably in NAPI kthread names (napi/veth-b-<id>).
	LinkA = "veth-a"
	LinkB = "veth-b"

	// BridgeName names the bridge of a Bridge testbed; PortA and PortB its ports, the peers of LinkA and LinkB.
	BridgeName = "bridge"
	PortA      = "port-a"
	PortB      = "port-b"

	// MaxQueues bounds the rx/tx queue count of each veth end (the kernel allows up to 4096; more queues than
	// CPUs only adds NAPIs that share them).
	MaxQueues = 256
	maxName   = 48
)

var (
	// DefaultIPv4 is a /24 from 198.18.0.0/15, the range RFC 2544 reserves for benchmarking: it is never
	// routed and rarely used on real networks, so it does not shadow the host's own.
	DefaultIPv4 = netip.MustParsePrefix("198.18.0.0/24")
	// DefaultIPv6 is a ULA /64 (RFC 4193) whose 40-bit global ID spells "napil".
	DefaultIPv6 = netip.MustParsePrefix("fd6e:6170:696c::/64")
)

// Topology describes a testbed: two network namespaces joined by a veth pair. It is a pure value: Resolve fills
// defaults and validates without touching the kernel; only Up builds it.
type Topology struct {
	// Name names the testbed; its namespaces are Name-a and Name-b. Empty: Prefix-<pid>-<n>, unique among the
	// processes of this machine.
	Name string `json:"name,omitempty"`
	// Prefix starts generated names. Default "napilab".
	Prefix string `json:"prefix,omitempty"`
	// Queues is the number of rx and of tx queues of each veth end. Default 1.
	Queues int `json:"queues"`
	// IPv4 is the subnet of the veth pair: host A gets its first address, host B the second. Default DefaultIPv4.
	IPv4 netip.Prefix `json:"ipv4"`
	// IPv6 is the same for IPv6. Addresses are added without duplicate address detection, usable at once.
	IPv6 netip.Prefix `json:"ipv6"`
	// MTU of both ends. Default 1500; at least 1280 because IPv6 is always configured.
	MTU int `json:"mtu"`
	// NAPI turns GRO on and TSO off on both ends. A veth has a NAPI only while XDP or GRO is on, and with GRO
	// alone packets from a TSO-capable sender still bypass it through the backlog; with both set, ordinary
	// socket traffic really passes the receiving end's NAPI (and its kthread, when threaded) without any XDP.
	NAPI bool `json:"napi"`
	// Neighbours adds permanent ARP and NDP entries for the peer, so no first packet waits for resolution and
	// no ARP/ND frame ever shares the wire with measured traffic.
	Neighbours bool `json:"neighbours"`
	// Bridge joins the hosts through a Linux bridge in a third namespace (Name-m) instead of one veth pair:
	// veth-a and veth-b each pair with a bridge port there. Frames the bridge forwards leave through the ports'
	// queueing disciplines, so Testbed.Impair can drop, delay and reorder every frame between the hosts,
	// AF_XDP frames included (copy-mode AF_XDP transmit bypasses the sending device's own discipline). Only for
	// Ephemeral testbeds.
	Bridge bool `json:"bridge,omitempty"`
	// Devices adopts two existing, wired network devices instead of creating a veth pair: Devices[0] moves into
	// host A's namespace and Devices[1] into host B's, with the addresses and neighbours a veth pair gets, and
	// Down moves them back to the namespace they came from. This is how the same tests run against a real NIC
	// driver, e.g. the qemu lab's two virtio NICs on one hub: its IRQs, channels, rings and a NAPI per rx queue.
	// The devices keep their own queues, so Queues, NAPI and Bridge do not apply. Only for Ephemeral testbeds: if
	// the process dies, the kernel moves the devices of the vanished namespaces back to the initial one.
	Devices [2]string `json:"devices,omitzero"`
	// Lifetime says what ends the testbed. Default Ephemeral.
	Lifetime Lifetime `json:"lifetime"`
	// StateDir holds the state files of named testbeds. Default DefaultStateDir.
	StateDir string `json:"-"`
}

// Resolve returns t with defaults filled in, or an error naming the first invalid field and how to fix it.
// The name stays empty when none was given: Up generates it.
func (t Topology) Resolve() (Topology, error) {
	if t.Prefix == "" {
		t.Prefix = DefaultPrefix
	}
	if t.Queues == 0 {
		t.Queues = DefaultQueues
	}
	if !t.IPv4.IsValid() {
		t.IPv4 = DefaultIPv4
	}
	if !t.IPv6.IsValid() {
		t.IPv6 = DefaultIPv6
	}
	if t.MTU == 0 {
		t.MTU = DefaultMTU
	}
	if t.StateDir == "" {
		t.StateDir = DefaultStateDir
	}
	t.IPv4, t.IPv6 = t.IPv4.Masked(), t.IPv6.Masked()
	return t, t.validate()
}

func (t Topology) validate() error {
	if t.Name != "" {
		if err := ValidateName(t.Name); err != nil {
			return err
		}
	}
	if err := validateName("testbed name prefix", t.Prefix); err != nil {
		return err
	}
	if t.Queues < 1 || t.Queues > MaxQueues {
		return fmt.Errorf("testbed queue count %d is out of range: use 1 to %d", t.Queues, MaxQueues)
	}
	if !t.IPv4.Addr().Is4() || t.IPv4.Bits() > 30 {
		return fmt.Errorf("testbed IPv4 subnet %s is not an IPv4 prefix with room for two hosts: use e.g. %s",
			t.IPv4, DefaultIPv4)
	}
	if !t.IPv6.Addr().Is6() || t.IPv6.Addr().Is4In6() || t.IPv6.Bits() > 126 {
		return fmt.Errorf("testbed IPv6 subnet %s is not an IPv6 prefix with room for two hosts: use e.g. %s",
			t.IPv6, DefaultIPv6)
	}
	if t.MTU < 1280 || t.MTU > 65535 {
		return fmt.Errorf("testbed MTU %d is out of range: use 1280 (the IPv6 minimum) to 65535", t.MTU)
	}
	if int(t.Lifetime) >= len(lifetimeNames) {
		return fmt.Errorf("testbed lifetime %d is unknown: use Ephemeral, Owned or Persistent", t.Lifetime)
	}
	if err := t.validateDevices(); err != nil {
		return err
	}
	if t.Bridge && t.Lifetime.Named() {
		return fmt.Errorf("a bridged testbed cannot be %s: its middle namespace is not recorded in the state file; use an Ephemeral one", t.Lifetime)
	}
	return nil
}

// Adopted reports whether the testbed adopts existing devices (Topology.Devices) rather than making a veth pair.
func (t Topology) Adopted() bool { return t.Devices != [2]string{} }

func (t Topology) validateDevices() error {
	if !t.Adopted() {
		return nil
	}
	a, b := t.Devices[0], t.Devices[1]
	for _, d := range t.Devices {
		if d == "" || len(d) > 15 || d == "." || d == ".." || strings.ContainsAny(d, "/: \t\n") {
			return fmt.Errorf("testbed device %q is not a network interface name: name two existing devices, e.g. eth0 and eth1", d)
		}
	}
	switch {
	case a == b:
		return fmt.Errorf("testbed devices are both %q: name two different devices wired to each other", a)
	case t.Bridge:
		return fmt.Errorf("a testbed of adopted devices %s and %s cannot have a bridge: drop the bridge, or the devices to get veth pairs", a, b)
	case t.NAPI:
		return fmt.Errorf("the NAPI option sets GRO and TSO on veth ends; adopted devices %s and %s keep their own features: drop it", a, b)
	case t.Queues != DefaultQueues:
		return fmt.Errorf("adopted devices %s and %s keep their own queues: drop the queue count %d (set channels with ethtool instead)", a, b, t.Queues)
	case t.Lifetime.Named():
		return fmt.Errorf("a testbed of adopted devices cannot be %s: only an Ephemeral one is sure to give them back when its process dies", t.Lifetime)
	}
	return nil
}

// ValidateName checks a testbed name: 1 to 48 letters, digits, '.', '_' or '-', starting with a letter or digit,
// so that Name-a and Name-b are valid file names under /run/netns.
func ValidateName(name string) error { return validateName("testbed name", name) }

func validateName(what, name string) error {
	if name == "" || len(name) > maxName {
		return fmt.Errorf("%s %q must be 1 to %d characters long", what, name, maxName)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && strings.ContainsRune("._-", r)
		if !ok {
			return fmt.Errorf("%s %q has %q at byte %d: use letters, digits, '.', '_' and '-', starting with a letter or digit",
				what, name, r, i)
		}
	}
	return nil
}

// hostAddrs returns the addresses of hosts A and B in prefix p: its first and second address after the
// network address, with p's length.
func hostAddrs(p netip.Prefix) (a, b netip.Prefix) {
	first := p.Masked().Addr().Next()
	return netip.PrefixFrom(first, p.Bits()), netip.PrefixFrom(first.Next(), p.Bits())
}

// namespaceNames returns the names of the namespaces of testbed name.
func namespaceNames(name string) (a, b string) { return name + "-a", name + "-b" }

// middleName returns the name of the bridge namespace of testbed name.
func middleName(name string) string { return name + "-m" }

var nameCounter atomic.Uint64

// generateName returns prefix-<pid>-<n>: the pid separates processes (other processes here hold namespaces of
// their own) and n the testbeds of one process.
func generateName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), nameCounter.Add(1))
}
