// Package netdev is a typed client of the kernel's "netdev" generic netlink family: the interface through which
// Linux reports network devices, their queues and the NAPI instances that poll them, and through which each NAPI
// instance is configured.
//
// # The kernel model
//
// A device (ifindex) has rx and tx queues, numbered separately from 0. A driver services queues with NAPI
// instances: a NAPI instance is scheduled by the device interrupt (or by a timer or a busy-polling caller), then
// polls its queues with interrupts masked. Every NAPI instance has a system-wide id (above NR_CPUS, so 0 means
// none); queue-get shows which NAPI services a queue, and an AF_XDP or busy-polling socket reports the same id
// via SO_INCOMING_NAPI_ID. A NAPI instance runs in softirq context unless it is threaded: then a kthread named
// napi/<dev>-<id> polls it, and napi-get reports that kthread's pid so it can be pinned and given a real-time
// priority. With threaded = busy-poll the kthread never sleeps: it polls continuously and keeps the device
// interrupt masked, at the cost of a whole CPU.
//
// Since 6.13 each NAPI instance carries its own configuration, kept across queue reconfiguration:
// defer-hard-irqs (empty polls before interrupts come back), gro-flush-timeout (a repoll timer armed instead of
// re-enabling interrupts, ns), irq-suspend-timeout (how long an epoll busy-poller may keep interrupts suspended,
// ns), and since 6.17 threaded. Documentation/networking/napi.rst explains how the knobs combine.
//
// # Kernel versions
//
//	6.3   the family, dev-get (XDP and AF_XDP features of a device)
//	6.8   queue-get, napi-get
//	6.9   qstats-get (per-queue statistics)
//	6.13  napi-set: defer-hard-irqs, gro-flush-timeout, irq-suspend-timeout
//	6.15  queue-get reports a bound AF_XDP socket (xsk)
//	6.17  per-NAPI threaded (disabled/enabled) in napi-get and napi-set
//	6.19  threaded = busy-poll
//
// Features probes napi-set's capabilities from the policy the kernel publishes (CTRL_CMD_GETPOLICY) instead of
// trying settings, so probing never changes a NAPI. A refused setting comes back as *kernel.UnsupportedError
// naming the kernel that has it; the kernel validates a whole request before it changes anything, so a refused
// napi-set leaves the NAPI as it was.
//
// # Wire details that matter
//
// napi-set must request an ACK (the kernel sends no other reply, and a client waiting for one would block);
// the client enables extended ACKs so the kernel's reason ("integer out of range") reaches the error text.
// Dumps filter on different attribute numbers: napi-get on 1, queue-get on 2. gro-flush-timeout,
// irq-suspend-timeout and the statistics counters are NLA_UINT, sent as 4 bytes when the value fits and as 8
// otherwise, and are decoded by length. Attributes this package does not know are skipped.
//
// # Why it is written by hand
//
// No Go library speaks the netdev family: mdlayher/genetlink carries the messages, and this package adds the
// family's commands, attributes, decoding and error model on top. Package netdevtest fakes the family for
// unprivileged tests.
package netdev
