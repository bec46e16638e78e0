// Package napi puts a NAPI polling mode in place on a device queue, records what it changed, and puts it back.
//
// # The kernel model
//
// A NIC queue is drained by a NAPI instance. Normally its IRQ schedules the NAPI in softirq context; the poll
// re-enables the IRQ when it finds the queue empty. Three families of knobs change who polls and when:
//
//   - IRQ deferral: napi_defer_hard_irqs empty polls may pass before the IRQ comes back, with a
//     gro_flush_timeout (ns) timer re-polling meanwhile. irq-suspend-timeout (6.13) lets an epoll busy-poller
//     that keeps finding events keep IRQs off that long.
//   - Busy polling: a socket with SO_BUSY_POLL (default net.core.busy_read, copied into each socket when it is
//     created) polls its NAPI from the receive call; SO_PREFER_BUSY_POLL promises to keep doing so, so the
//     kernel leaves the IRQ masked. An AF_XDP socket busy-polls once per recvfrom kick.
//   - Threaded NAPI: a kthread napi/<dev>-<id> polls instead of softirq (device-wide via sysfs since 5.12,
//     per NAPI via netlink napi-set since 6.17). With threaded = busy-poll (6.19) the kthread never sleeps and
//     keeps the IRQ masked: it takes a whole CPU, so it is pinned to its own CPU at SCHED_FIFO priority, and RT
//     throttling would otherwise take 5% of that CPU away.
//
// Documentation/networking/napi.rst is the reference; kernel.md in the project notes has the version gates.
//
// # Modes, and every knob each sets
//
// Durations are the presets' defaults; flags override them. "napi-set" is one netlink request per queue's NAPI.
//
//	interrupts          napi-set defer-hard-irqs=0 gro-flush-timeout=15µs threaded=disabled;
//	                    net.core.busy_read=0, net.core.busy_poll=0. App: poll inline (a plain syscall).
//	busy-poll           napi-set defer-hard-irqs=100 gro-flush-timeout=15µs threaded=disabled;
//	                    net.core.busy_read=400µs. App: poll inline, SO_PREFER_BUSY_POLL, budget 64.
//	busy-poll-separate  as busy-poll. App: a separate thread kicks continuously.
//	threaded            napi-set defer-hard-irqs=0 gro-flush-timeout=15µs threaded=enabled; busy_read=0,
//	                    busy_poll=0; kthread SCHED_FIFO 50 pinned to the poll CPU. App: no kick.
//	threaded-busy-poll  napi-set defer-hard-irqs=100 gro-flush-timeout=15µs threaded=busy-poll (6.19);
//	                    busy_read=0, busy_poll=0; kthread SCHED_FIFO 50 pinned to the poll CPU. App: no kick.
//	irq-suspend         napi-set defer-hard-irqs=100 gro-flush-timeout=15µs irq-suspend-timeout=20ms
//	                    threaded=disabled (6.13); busy_read=0, busy_poll=0. App: epoll with EPIOCSPARAMS,
//	                    prefer busy poll, budget 64.
//
// The seed-* presets reproduce the cover letter's setup script ("Add support to do threaded napi busy poll",
// v10): the mode's values written to the device-wide sysfs files (threaded, napi_defer_hard_irqs,
// gro_flush_timeout) as the script does, plus its host tuning: kernel.timer_migration=0, SMT off (only with
// --allow-smt), one queue pair (channels), a 1024-entry rx ring, net.core.rps_sock_flow_entries=0 and the
// queue's rps_cpus=0, the queue's IRQs and the kthread on CPU 2, kernel.sched_rt_runtime_us=-1, workqueue
// cpumasks to CPUs 1-6, and coalescing off (adaptive-rx/tx off, rx/tx-usecs 0). Where the script is wrong,
// napilab does what it meant and the plan says so: it writes a CPU list into hex cpumask files, greps the IRQ
// of queue 1 and quotes all IRQs into one word, and its ynl call lacks --do napi-set.
//
// # Plan, apply, restore
//
// A Mode is a pure value. Resolve reads what a plan depends on (features, NAPI ids, IRQs, CPUs) without
// changing anything; Build turns mode and target into a Plan of ordered, typed Changes, refusing a mode the
// kernel is too old for before anything changes. Apply records every target's state in a Journal, written
// atomically (temporary file, fsync, link or rename, fsync of the directory) before the first change; applies in
// order; reads each change back; finds the NAPI kthread through napi-get's pid and schedules it; and rolls back
// on failure. Restore, in this process or another one after a crash, puts back exactly what the journal
// recorded, in reverse order, idempotently, and reports what it could not (a device that is gone), each knob as
// old → new. Machine-wide knobs (busy_read, RT throttling, SMT, ...) have one owner across applied modes, the
// host registry (host.go): modes wanting the same value share it, one wanting another is refused, the last to
// restore puts back the value from before the first, and a value someone else set since is left alone. Reassert,
// run after attaching an XDP program, puts back what a driver reset undid and re-pins a replaced kthread.
//
// Restoring threaded NAPI to disabled while an AF_XDP socket bound zero-copy without need_wakeup has an empty fill
// ring hangs the kernel (reproduced on virtio_net, Linux 7.2 and 7.3, in the qemu lab: napi_stop_kthread never
// returns). Package xsk refuses such sockets; napi still runs that napi-set under a timeout and reports rather than
// waits, in case another program bound one.
//
// Everything goes through small interfaces (Netdev, Ethtool, Knobs, Scheduler, Links) that packages netdev,
// ethtool and sysknob implement and that tests fake. Written here because no library models NAPI polling
// modes: the adapters speak the kernel interfaces, this package decides what to change, in what order, and
// how to undo it.
package napi
