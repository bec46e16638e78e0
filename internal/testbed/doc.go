// Package testbed builds napilab's one-machine network: two network namespaces joined by a veth pair, so that a
// client in one and a server in the other exchange real packets through the kernel's receive path.
//
//	testbed NAME: Topology{Queues: Q, MTU: M, NAPI: ...}
//
//	+- netns NAME-a --------------+                  +- netns NAME-b --------------+
//	| veth-a  ifindex I           |------ veth ------| veth-b  ifindex I           |
//	| MAC of veth-a               |                  | MAC of veth-b               |
//	| 198.18.0.1/24               |                  | 198.18.0.2/24               |
//	| fd6e:6170:696c::1/64        |                  | fd6e:6170:696c::2/64        |
//	+-----------------------------+                  +-----------------------------+
//	  lo up                         Q rx + Q tx queues  lo up
//
// With Topology.Bridge the hosts are joined through a bridge in a third namespace instead, so that
// Testbed.Impair can put netem on the path (loss, delay, reordering, duplication per direction):
//
//	+- netns NAME-a -+                  +- netns NAME-m ------------+                  +- netns NAME-b -+
//	| veth-a         |------ veth ------| port-a = bridge = port-b  |------ veth ------| veth-b         |
//	| 198.18.0.1/24  |                  | netem to a / netem to b   |                  | 198.18.0.2/24  |
//	+----------------+                  +---------------------------+                  +----------------+
//
// The impairment lives on the bridge ports because copy-mode AF_XDP transmit hands frames straight to the
// driver (__dev_direct_xmit), past the sending device's queueing discipline, while the bridge transmits every
// frame it forwards through its port's discipline (netem on veth-a would not touch napilab's requests).
//
// The kernel model, briefly. A network namespace is a private copy of the network stack: devices, addresses,
// routes, sockets. A veth pair is two devices whose transmit is the peer's receive; a veth end has a NAPI (and
// so busy polling, threaded NAPI and a napi id on received sockets) only while XDP is attached or GRO is on, and
// with GRO alone only packets from a TSO-less sender use it (Topology.NAPI sets both). AF_XDP on veth runs in copy
// mode. Namespaces belong to threads: setns(2) moves one OS thread, and a forked child inherits the namespaces of
// the thread that forked it, which is how Host.Do and Host.Start work. sysfs, however, shows the network namespace
// it was mounted in, so Host.Start gives children a private mount namespace with a fresh /sys, as `ip netns exec`
// does.
//
// Up returns only when both ends can carry traffic: carrier is up at once, but the kernel's link watcher swaps
// the "noop" queueing discipline, which drops every frame without an error, for the real one a moment later.
//
// Lifetimes. An Ephemeral testbed (tests, one-shot runs) lives in anonymous namespaces held only by this
// process's file descriptors, so the kernel removes it when the process dies, even by SIGKILL. Named testbeds
// (Owned, Persistent: the CLI) are bind-mounted under /run/netns and recorded in a state file under
// /run/napilab/testbed, written before anything is created, so Down and Reap find everything a process made,
// even one that died half-way, and remove nothing else (other processes here hold namespaces of their own).
//
// Everything goes through rtnetlink (vishvananda/netlink: links, addresses, neighbours) and system calls (setns,
// unshare, mount, one legacy ethtool ioctl for GRO/TSO), never the ip binary, so it also runs in the qemu lab's
// initramfs. Written here rather than taken from a library: no maintained Go library builds netns topologies
// with these lifetime guarantees.
package testbed
