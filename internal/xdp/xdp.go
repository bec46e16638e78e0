package xdp

import (
	"fmt"
	"os"
	"strconv"
)

// DefaultQueues is the XSKMAP size used when Spec.Queues is 0: more rx queues than any NIC napilab targets has,
// for 8 KiB of kernel memory.
const DefaultQueues = 1024

// MaxQueues bounds Spec.Queues (the kernel allows at most 4096 rx queues per device).
const MaxQueues = 4096

// Spec describes the steering program before it is loaded.
type Spec struct {
	// Port is the UDP destination port to steer, in host order. Required.
	Port uint16
	// Queues is the number of XSKMAP entries: queue ids 0..Queues-1 can get a socket. 0 means DefaultQueues.
	Queues int
	// NoStamp leaves out the arrival stamp (StampLen), for an end that never reads it: it saves the program a
	// clock read and the metadata area per frame.
	NoStamp bool

	// fallback is the verdict of a steered frame whose queue has no socket. It is XDP_PASS; tests set it to
	// XDP_DROP so that BPF_PROG_TEST_RUN tells "steered" from "passed" without a socket.
	fallback uint32
}

// Validate reports the first problem with s as one sentence.
func (s Spec) Validate() error {
	if s.Port == 0 {
		return fmt.Errorf("xdp: UDP port 0 cannot be steered: give the port the AF_XDP traffic is sent to")
	}
	if s.Queues < 0 || s.Queues > MaxQueues {
		return fmt.Errorf("xdp: %d queues is out of range: use 1 to %d (0 for %d)", s.Queues, MaxQueues, DefaultQueues)
	}
	return nil
}

func (s Spec) queues() int {
	if s.Queues == 0 {
		return DefaultQueues
	}
	return s.Queues
}

// Mode is where on the receive path XDP runs.
type Mode uint8

const (
	// ModeAuto is native mode, or generic mode when the driver has no native XDP.
	ModeAuto Mode = iota
	// ModeNative runs the program in the driver, before any skb exists (XDP_FLAGS_DRV_MODE).
	ModeNative
	// ModeGeneric runs it on the skb early in the stack; any device can do it, at a cost (XDP_FLAGS_SKB_MODE).
	ModeGeneric
	// ModeOffload runs it on the NIC. napilab never attaches in this mode; it is reported when found.
	ModeOffload
)

var modeNames = [...]string{ModeAuto: "auto", ModeNative: "native", ModeGeneric: "generic", ModeOffload: "offload"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode parses "auto", "native" or "generic" (also "drv" and "skb", as ip(8) calls them).
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto", "":
		return ModeAuto, nil
	case "native", "drv", "driver":
		return ModeNative, nil
	case "generic", "skb":
		return ModeGeneric, nil
	}
	return 0, fmt.Errorf("xdp: unknown mode %q: use auto, native or generic", s)
}

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *Mode) UnmarshalText(b []byte) (err error) {
	*m, err = ParseMode(string(b))
	return err
}

// Attachment is the XDP program attached to a device, as the kernel reports it.
type Attachment struct {
	ProgramID uint32
	Name      string // the program's name; empty when it cannot be read
	Mode      Mode
	// LinkID is the bpf_link that holds the program, 0 when it was attached the legacy way (netlink), in which
	// case it stays attached after its creator exits.
	LinkID uint32
}

func (a Attachment) String() string {
	name := a.Name
	if name == "" {
		name = "(unnamed)"
	}
	s := fmt.Sprintf("program %s (id %d) in %s mode", name, a.ProgramID, a.Mode)
	if a.LinkID != 0 {
		return s + fmt.Sprintf(" held by bpf_link %d", a.LinkID)
	}
	return s + " attached through netlink"
}

// removal says how to remove attachment a from device dev.
func (a Attachment) removal(dev string) string {
	if a.LinkID != 0 {
		return fmt.Sprintf("stop the process that holds bpf_link %d, or run `bpftool link detach id %d`", a.LinkID, a.LinkID)
	}
	off := "xdp off"
	switch a.Mode {
	case ModeGeneric:
		off = "xdpgeneric off"
	case ModeOffload:
		off = "xdpoffload off"
	}
	return fmt.Sprintf("remove it with `ip link set dev %s %s`", dev, off)
}

// AttachedError says that a device already has an XDP program. errors.Is(err, os.ErrExist) holds.
type AttachedError struct {
	Device   string
	Existing Attachment
	Err      error // what the kernel said
}

func (e *AttachedError) Error() string {
	return fmt.Sprintf("xdp: %s already has %s; %s", e.Device, e.Existing, e.Existing.removal(e.Device))
}

func (e *AttachedError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, os.ErrExist) true.
func (e *AttachedError) Is(target error) bool { return target == os.ErrExist }
