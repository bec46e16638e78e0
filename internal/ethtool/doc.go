// Package ethtool reads and sets the three ethtool objects a NAPI polling mode touches, over the kernel's
// "ethtool" generic netlink family: channels (ethtool -l/-L: how many RX, TX and combined queues, so how many
// NAPI instances and IRQs), rings (-g/-G: descriptor ring sizes) and interrupt coalescing (-c/-C: how long the
// NIC delays an interrupt, which busy polling and IRQ deferral replace).
//
// Each request nests ETHTOOL_A_*_HEADER with the device's ifindex and/or name; set requests carry only the
// attributes that change, ask for an acknowledgement (the kernel sends nothing back otherwise) and, with extended
// acknowledgements on, come back with the kernel's own sentence ("requested channel count exceeds maximum").
// A driver without an operation answers EOPNOTSUPP: veth has channels but no rings or coalescing, so callers
// test errors.Is(err, kernel.ErrNotSupported) and carry on. Config.NetNS opens the socket inside a network
// namespace, so testbed devices are reached without moving threads.
//
// Hand-written on mdlayher/genetlink and x/sys's ETHTOOL_* constants because mdlayher/ethtool (v0.7.0) covers
// link info, modes, WoL and FEC but not channels, rings or coalescing. ethtooltest is a fake of the family that
// behaves like veth and virtio_net and records every request.
package ethtool
