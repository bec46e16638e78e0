// Package trace observes, with eBPF, what a polling mode does in the kernel: which thread polls each NAPI, how
// many packets each poll finds, how often the device interrupts, how often the poller loses its CPU, and how
// long the AF_XDP kick system calls take. napilab applies a mode through the kernel's own interfaces; this
// package proves which one is in effect.
//
// The kernel model. A NAPI instance is polled by whoever runs its poll function, and the napi_poll tracepoint
// fires after every poll, in every network namespace, with the NAPI (whose napi_id is unique machine-wide) and
// the packets the poll processed:
//   - in NET_RX softirq, after the device's IRQ or a napi_schedule (on veth the sender's transmit schedules the
//     peer's NAPI on the sender's CPU), on the time of whatever task was running, or in ksoftirqd;
//   - in the NAPI's kthread napi/<dev>-<id> when the NAPI is threaded (and, with threaded busy poll, in a loop);
//   - in an application thread's system call, when socket busy polling (napi_busy_loop) polls it.
//
// The tracer tells them apart by marking, per CPU, when NET_RX softirq runs (softirq_entry and softirq_exit),
// and by whether the polling task is a kernel thread named napi/... (task_struct.flags & PF_KTHREAD). Context
// switches (sched_switch, sched_wakeup) of the pollers and of given threads give preemptions, off-CPU time and
// wake-up latency; irq_handler_entry counts IRQs (or /proc/interrupts deltas, where that cannot be traced);
// raw_syscalls sys_enter and sys_exit time the kick system calls; fentry and fexit time xsk_recvmsg itself, as
// the seed's bpftrace histogram does with kprobes.
//
// How. The programs are written with cilium/ebpf's asm package (no C compiler at build or run time) as raw
// tracepoint programs, which load where BPF trampolines (fentry/fexit, tp_btf) are refused: they read the
// tracepoint's arguments as u64s and kernel memory with bpf_probe_read_kernel, at struct offsets looked up in
// the running kernel's BTF at load time, never compiled in; the tracepoints' argument lists are checked against
// the same BTF. Counting happens in the kernel, in hash maps, so nothing is lost when user space is slow and an
// event costs a few map operations; a full map is counted as dropped. The map layouts are shared by the
// programs and the pure decoders that read them (records.go), which are fuzzed.
//
// Use. An Observer loads its tracers once and observes many times (a sweep's cells), attaching them only while
// it observes: Start a Target (NAPI ids, thread ids, IRQs, which ResolveDevice finds for a device through the
// netdev family in its namespace), run the traffic, Stop, and Attest the Observation; Check compares the
// attestation with the poller a polling mode should have. SyscallTracer and XSKRecvTracer serve napilab trace
// syscalls and xsk-recvmsg; TurnaroundTracer times a server's share of each round trip (turnaround.go).
package trace
