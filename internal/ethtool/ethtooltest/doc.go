// Package ethtooltest fakes the kernel's ethtool generic netlink family for tests of internal/ethtool and its
// callers: devices shaped like veth (channels only; rings and coalescing answer EOPNOTSUPP) and virtio_net
// (combined channels, rings, a subset of coalescing parameters), kept in memory across requests, with the
// kernel's validation and extended-ack sentences, and a record of every request's exact bytes. Linux only, like
// the constants it is built on.
package ethtooltest
