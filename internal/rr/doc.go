// Package rr is napilab's request/response latency benchmark over AF_XDP: a server that answers UDP requests
// straight from its RX ring, and a client that sends them on a fixed schedule, keeps N in flight, or both (a paced
// window: the schedule, never more than N in flight — sockperf ping-pong's loop), and measures every round trip.
//
// The path a request takes is the one the NAPI polling modes change: the client's frame leaves through its TX ring,
// arrives at the server's NIC queue, is pulled off that queue by a NAPI poll (from a hard IRQ and softirq, a
// busy-polling recvfrom, or a threaded NAPI kthread), redirected by an XDP program into the server's AF_XDP
// socket, turned around in place, and comes back the same way. Which poll pulls it, and when, is most of the
// latency a user can tune.
//
// Measuring that honestly takes care the original xsk_rr does not take:
//   - Open-loop requests are due at t0 + k*period, and latency counts from the scheduled time as well as from the
//     actual send, so a stalled sender shows up in the results (no coordinated omission); sender lateness is
//     reported. An open loop counts every request due while a CPU was taken, a window only those it let out: a
//     stall of 2 ms at 12.5k/s delays ~25 requests of the one and one of the other, so tails are compared between
//     loops of one kind.
//   - The napilab payload carries a run id, a sequence number and both send times, so a reply is paired from
//     itself: loss, duplicates and reordering are counted and never shift later samples. The xsk_rr payload (all
//     'a') is kept for compatibility and paired first-in-first-out as the original does.
//   - Percentiles are true percentiles (HDR histogram) with xsk_rr's "pN" column beside them.
//   - The per-packet path allocates nothing, takes no lock and makes only the kicks the poll mode calls for; each
//     spinning loop runs on its own locked OS thread that can be pinned, and interval reports are produced by a
//     separate goroutine, never by the measuring thread. GC is off during a run.
//   - CPU cost is measured beside latency (package usage), and the server measures its own: busy time per
//     request and how long each request waited on its RX ring (from the XDP program's arrival stamp), which the
//     napilab payload carries back so the client splits its round trip.
//
// A spinning loop shares its CPU with whatever else wants it, and that is where a Go benchmark's tail comes
// from. Measured on a 2-vCPU VM (napilab trace sched, perf sched, /proc/<pid>/task/*): kernel threads (DAMON's
// kdamond, rcu_preempt, kworkers) take a loop's CPU for up to a few milliseconds at a time; the Go runtime's own
// threads wake about 200 times a second per process while a loop spins (sysmon every 10 ms, and the thread that
// hands a preempted locked loop its P back), each a context switch and some microseconds; a goroutine with real
// work (the reporter) takes its whole run from a loop's CPU. So the work beside the loops is kept small (the
// receiving thread records the whole run's histograms itself; the reporter only summarises an interval), the
// kicks are raw system calls (see package xsk: sysmon would otherwise poll every 20 µs), and where the machine
// has CPUs no loop uses, the process's other threads are kept there (isolate.go).
package rr
