package xsk

import (
	"fmt"
	"math/bits"
)

// Mode chooses how the kernel moves frames between the device and the UMEM.
type Mode int

const (
	// ModeAuto asks for zero-copy and lets the kernel fall back to copy mode when the driver cannot do it.
	// Without need_wakeup it binds copy mode (see Config.Validate).
	ModeAuto Mode = iota
	// ModeCopy forces copy mode (XDP_COPY): the kernel copies every frame; works on every device, veth included.
	ModeCopy
	// ModeZeroCopy forces zero-copy (XDP_ZEROCOPY): the driver DMAs straight into the UMEM; binding fails where
	// the driver lacks it.
	ModeZeroCopy
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeCopy:
		return "copy"
	case ModeZeroCopy:
		return "zero-copy"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// XDPPacketHeadroom is the headroom the kernel keeps in front of every received frame (XDP_PACKET_HEADROOM) on
// top of Config.Headroom: an RX descriptor's address is its frame's start plus both.
const XDPPacketHeadroom = 256

// maxEthernetFrame is the largest frame of a 1500-byte MTU (14-byte Ethernet header, no FCS): every UMEM frame
// must be able to receive one.
const maxEthernetFrame = 1514

// Limits that keep the UMEM addressable with 32-bit frame indexes and the rings within what the kernel allocates.
const (
	maxFrames   = 1 << 20
	maxRingSize = 1 << 16
)

// Config describes an AF_XDP socket before it exists. It is a plain value: Validate checks it without touching
// the kernel.
type Config struct {
	FrameSize  uint32 // bytes per UMEM frame (chunk): 2048 or 4096
	FrameCount uint32 // frames in the UMEM, a power of two; at least FillSize+TXSize
	Headroom   uint32 // bytes reserved in front of each received frame, after the kernel's 256

	FillSize       uint32 // fill ring entries (frames handed to the kernel for receiving)
	CompletionSize uint32 // completion ring entries (frames the kernel has finished sending); at least TXSize
	RXSize         uint32 // RX ring entries (received frames)
	TXSize         uint32 // TX ring entries (frames to send)

	Mode       Mode
	NeedWakeup bool // bind with XDP_USE_NEED_WAKEUP: the kernel says when a kick is needed

	// HazardousZeroCopyWithoutWakeup lifts the rule that zero-copy needs need_wakeup (see Validate). It exists
	// only so that the qemu lab can reproduce the kernel hang the rule prevents; nothing else may set it.
	HazardousZeroCopyWithoutWakeup bool
}

// DefaultConfig is a small socket for request/response traffic: 1024 frames of 4096 bytes (4 MiB, half of a
// typical 8 MiB RLIMIT_MEMLOCK) and 512-entry rings, so half of the UMEM can wait on the fill ring while the other
// half serves the TX ring. Auto mode, need_wakeup on.
func DefaultConfig() Config {
	return Config{
		FrameSize:      4096,
		FrameCount:     1024,
		Headroom:       0,
		FillSize:       512,
		CompletionSize: 512,
		RXSize:         512,
		TXSize:         512,
		Mode:           ModeAuto,
		NeedWakeup:     true,
	}
}

// UMEMSize is the number of bytes of packet memory the socket registers (and the kernel pins).
func (c Config) UMEMSize() uint64 { return uint64(c.FrameSize) * uint64(c.FrameCount) }

// MaxRXLen is the longest frame the socket can receive: frame size minus both headrooms. Longer frames are
// dropped by the kernel and counted in Statistics.RxDropped.
func (c Config) MaxRXLen() uint32 { return c.FrameSize - XDPPacketHeadroom - c.Headroom }

// Validate reports the first problem with c as one sentence that says how to fix it.
//
// The rules: frames are 2048 or 4096 bytes (the kernel's minimum chunk and the page size); the frame count and
// every ring size are powers of two (the kernel and the ring index masks need them); the UMEM holds at least
// FillSize+TXSize frames, so the fill ring can be kept full while a full TX ring is in flight; the completion
// ring is at least as large as the TX ring, so every frame in flight can be completed; the headroom leaves
// room for a full 1514-byte Ethernet frame behind the kernel's 256-byte XDP headroom; and zero-copy comes with
// need_wakeup. Without need_wakeup a zero-copy driver that finds the fill ring empty keeps its NAPI scheduled to
// retry, so the NAPI never completes, and switching threaded NAPI off then never returns (napi_stop_kthread waits
// for a kthread that keeps repolling): the netlink caller hangs in D state until reboot. Measured on virtio_net
// in the qemu lab (Linux 7.2 and 7.3; docs/lab.md); with need_wakeup the driver lets the NAPI complete instead.
func (c Config) Validate() error {
	if c.FrameSize != 2048 && c.FrameSize != 4096 {
		return fmt.Errorf("frame size %d is not supported: use 2048 or 4096", c.FrameSize)
	}
	if err := powerOfTwo("frame count", c.FrameCount, maxFrames); err != nil {
		return err
	}
	for _, r := range []struct {
		name string
		size uint32
	}{{"fill ring", c.FillSize}, {"completion ring", c.CompletionSize}, {"RX ring", c.RXSize}, {"TX ring", c.TXSize}} {
		if err := powerOfTwo(r.name+" size", r.size, maxRingSize); err != nil {
			return err
		}
	}
	if need := c.FillSize + c.TXSize; c.FrameCount < need {
		return fmt.Errorf("UMEM too small: %d frames cannot cover the fill ring (%d) plus the TX ring (%d); use at least %d frames",
			c.FrameCount, c.FillSize, c.TXSize, ceilPowerOfTwo(need))
	}
	if c.CompletionSize < c.TXSize {
		return fmt.Errorf("completion ring (%d) is smaller than the TX ring (%d), so frames in flight could not all complete; use a completion ring of at least %d",
			c.CompletionSize, c.TXSize, c.TXSize)
	}
	if limit := c.FrameSize - XDPPacketHeadroom - maxEthernetFrame; c.Headroom > limit {
		return fmt.Errorf("headroom %d leaves no room for a %d-byte Ethernet frame in %d-byte frames (the kernel keeps %d bytes too); use at most %d",
			c.Headroom, maxEthernetFrame, c.FrameSize, XDPPacketHeadroom, limit)
	}
	if c.Mode < ModeAuto || c.Mode > ModeZeroCopy {
		return fmt.Errorf("bind mode %d is unknown: use auto, copy or zero-copy", int(c.Mode))
	}
	if c.Mode == ModeZeroCopy && !c.NeedWakeup && !c.HazardousZeroCopyWithoutWakeup {
		return fmt.Errorf("zero-copy without need_wakeup is refused: a driver that finds the fill ring empty then " +
			"repolls forever, and switching threaded NAPI off hangs the kernel; keep need_wakeup on, or bind in copy mode")
	}
	return nil
}

func powerOfTwo(what string, n, max uint32) error {
	if n > max {
		return fmt.Errorf("%s %d is larger than napilab allows: use at most %d", what, n, max)
	}
	if n == 0 || n&(n-1) != 0 {
		return fmt.Errorf("%s %d is not a power of two: use %d", what, n, ceilPowerOfTwo(n))
	}
	return nil
}

// ceilPowerOfTwo is the smallest power of two >= n (1 for 0); callers keep n <= 1<<31.
func ceilPowerOfTwo(n uint32) uint32 {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len32(n-1)
}
