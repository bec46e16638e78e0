// Package labsuite holds the end-to-end suites that only the qemu lab can run: the features napilab is about,
// on a kernel the host does not have (threaded NAPI busy poll is Linux 6.19; the host runs 6.18) and on a real NIC
// driver (virtio_net) rather than veth. The package has no code of its own; its tests are the product.
//
// The kernel model they exercise. virtio_net gives each rx queue a NAPI whose id the queue reports (queue-get
// napi-id) and to which an AF_XDP socket's busy polling is tied. napi-set threaded=busy-poll moves that NAPI into a
// kthread napi/<dev>-<id> that, once the NAPI is first scheduled by a packet, never sleeps: it polls the queue in
// a loop with the device IRQ masked, so the application needs no syscall at all (rr's poll driver "none"), at the
// price of a whole CPU. napilab pins that kthread to the poll CPU at SCHED_FIFO. Switching the NAPI back to
// threaded=disabled stops the kthread (napi_stop_kthread), which waits until the kthread owns the NAPI or the NAPI
// is idle; see the hang suite for when that wait never ends.
//
// The suites, each a test run by `napilab lab test ./internal/labsuite` (part of `make lab-test`):
//   - threaded busy poll end to end: napi's Apply on the server NIC's queue, napi-get, the kthread's policy and
//     affinity, its spinning while idle (schedstat), rr with poll driver none answering every request, restore;
//   - the kernel's busy_poller selftest in Go: 1 MiB over TCP into a sink whose NAPI busy-polls in its kthread;
//   - an fentry/fexit smoke test, so the tracing work can rely on the lab (the host refuses BPF tracing);
//   - the reproduction of a kernel hang (napi-set threaded=disabled while an AF_XDP zero-copy socket's fill
//     ring is starved), run only when asked for, and the default protection against it.
//
// On the host every suite skips with its reason, even under NAPILAB_REQUIRE_PRIV=1: what they need is a
// machine, not a privilege.
package labsuite
