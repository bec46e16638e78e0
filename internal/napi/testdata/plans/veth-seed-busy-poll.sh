# napilab mode plan seed-busy-poll: vb (ifindex 5) in network namespace /run/netns/lab, poll CPU 1
#   rx-0 is polled by NAPI 259 (no IRQ of its own)
# kernel 6.18.44: per-NAPI config yes, irq-suspend-timeout yes, per-NAPI threaded yes, threaded busy poll no
# application side: poll inline
#   requirement: net.core.busy_read is copied into a socket when it is created: start the application after applying the mode
#   note: rings: vb's driver has no ring settings (veth has none), so the rx ring stays as it is
#   note: vb rx-0 has no IRQ of its own (a veth's NAPI is scheduled by the sender): nothing to pin
#   note: workqueues: CPUs 4-6 of 1-6 are not online here; the masks name 1-3
#   note: coalescing: vb's driver has none (veth has none), so there is nothing to switch off
#   note: vb does not link rx-0 to a NAPI in queue-get (veth never does); its only NAPI, 259, serves it
#   note: the seed writes "1,2,3,4,5,6", a CPU list, into hex cpumask files (the kernel reads it as six 32-bit words); napilab writes the mask of the CPUs meant
#   note: the seed finds IRQs with gawk /eth0-(TxRx-)?1/ (queue 1, and all IRQs in one quoted word); napilab pins the IRQs of the configured queues, from napi-get or /proc/interrupts

# 1. napi 259: record its settings
#    record this NAPI's own settings: the device-wide writes below overwrite them
ip netns exec lab ynl --family netdev --do napi-get --json '{"id": 259}'  # keep the output to restore it

# 2. vb/threaded = 0
#    every NAPI of the device polls in softirq context, not in a kthread
ip netns exec lab sh -c 'echo 0 > /sys/class/net/vb/threaded'

# 3. kernel.timer_migration = 0
#    keep timers on the CPU that armed them, away from the poll CPU
echo 0 > /proc/sys/kernel/timer_migration

# 4. smt/control = off
#    no sibling hyperthread shares the poll CPU's core (machine-wide: takes the siblings offline)
echo off > /sys/devices/system/cpu/smt/control

# 5. channels: rx 1 tx 1 (skipped where the driver lacks it)
#    one queue pair: one NAPI and one IRQ carry the whole flow
ip netns exec lab ethtool -L vb rx 1 tx 1

# 6. net.core.rps_sock_flow_entries = 0
#    RFS off: no flow steering moves packets between CPUs
echo 0 > /proc/sys/net/core/rps_sock_flow_entries

# 7. vb/queues/rx-0/rps_cpus = none
#    RPS off: the packet is processed on the CPU that polled it
ip netns exec lab sh -c 'echo 0 > /sys/class/net/vb/queues/rx-0/rps_cpus'

# 8. kernel.sched_rt_runtime_us = -1
#    RT throttling off: a SCHED_FIFO poller that never sleeps would lose 5% of its CPU
echo -1 > /proc/sys/kernel/sched_rt_runtime_us

# 9. workqueue/blkcg_punt_bio/cpumask = 1-3
#    unbound kernel work runs on the housekeeping CPUs
echo e > /sys/devices/virtual/workqueue/blkcg_punt_bio/cpumask

# 10. workqueue/writeback/cpumask = 1-3
#    unbound kernel work runs on the housekeeping CPUs
echo e > /sys/devices/virtual/workqueue/writeback/cpumask

# 11. net.core.busy_read = 400 µs
#    each receive call on an empty socket busy-polls its NAPI for up to this long
echo 400 > /proc/sys/net/core/busy_read

# 12. vb/napi_defer_hard_irqs = 100
#    IRQs stay masked for up to 100 empty polls, with the gro_flush_timeout timer as backstop
ip netns exec lab sh -c 'echo 100 > /sys/class/net/vb/napi_defer_hard_irqs'

# 13. vb/gro_flush_timeout = 15000 ns
#    a 15µs repoll timer replaces the IRQ while IRQs are deferred
ip netns exec lab sh -c 'echo 15000 > /sys/class/net/vb/gro_flush_timeout'
