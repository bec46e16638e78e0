// Package rr is napilab's request/response latency benchmark over AF_XDP: a server that answers UDP requests
// straight from its RX ring, and a client that sends them on a fixed schedule (or keeps N in flight) and measures
// every round trip.
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
//     reported.
//   - The napilab payload carries a run id, a sequence number and both send times, so a reply is paired from
//     itself: loss, duplicates and reordering are counted and never shift later samples. The xsk_rr payload (all
//     'a') is kept for compatibility and paired first-in-first-out as the original does.
//   - Percentiles are true percentiles (HDR histogram) with xsk_rr's "pN" column beside them.
//   - The per-packet path allocates nothing, takes no lock and makes only the kicks the poll mode calls for; each
//     spinning loop runs on its own locked OS thread that can be pinned, and interval reports are produced by a
//     separate goroutine, never by the measuring thread. GC is off during a run.
//   - CPU cost is measured beside latency (package usage).
package rr
