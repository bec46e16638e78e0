// Package sysknob reads, writes, snapshots and restores the kernel settings a NAPI polling mode is made of: the
// per-device NAPI knobs in sysfs (threaded, napi_defer_hard_irqs, gro_flush_timeout, RPS), the busy-poll, RFS and
// RT-throttling sysctls in procfs, IRQ affinity, workqueue CPU masks, SMT, and the scheduling (SCHED_FIFO
// priority, CPU affinity) of the NAPI kthread.
//
// Each knob is a file whose text the kernel parses on write. A Knob converts units (time.Duration for
// nanosecond and microsecond files, CPUSet for CPU lists and hex masks) and refuses, before writing, values the
// kernel would refuse with a bare errno. A Snapshot keeps a file's exact text, so Restore leaves it byte for byte
// as it was.
//
// Network namespaces: sysfs shows the namespace of its mount, not of the caller, so a thread that setns(2)s into
// a namespace still sees the host's /sys/class/net. NetNS therefore creates a sysfs instance from inside the
// namespace (fsopen/fsmount: a detached mount that no mount table shows and that goes away on Close). procfs
// network sysctls follow the namespace of the thread that opens them, so a NetNS view opens them from a thread
// that joined the namespace. On Linux 6.18 net.core.busy_read, busy_poll and rps_sock_flow_entries exist only in
// the initial namespace: they are machine-wide, and a testbed namespace changes them for the whole machine.
//
// Everything works against any Root: the host (Host), a namespace (NetNS), or a directory tree (Dir), which is
// how sysknobtest fakes /sys and /proc for unprivileged tests. Hand-written because no maintained Go library
// models these files with units, validation, snapshots and namespaces; scheduling uses x/sys's sched_setattr and
// sched_setaffinity wrappers.
package sysknob
