# napilab mode plan seed-interrupts: eth1 (ifindex 3) in network namespace /run/netns/lab, poll CPU 2
#   rx-0 is polled by NAPI 8193 (IRQ 38)
# kernel 6.19.2: per-NAPI config yes, irq-suspend-timeout yes, per-NAPI threaded yes, threaded busy poll yes
# application side: poll inline
#   note: the seed sets rx 1 tx 1; eth1 has combined channels only, so napilab sets combined 1
#   note: workqueues: CPUs 4-6 of 1-6 are not online here; the masks name 1-3
#   note: the seed writes "1,2,3,4,5,6", a CPU list, into hex cpumask files (the kernel reads it as six 32-bit words); napilab writes the mask of the CPUs meant
#   note: the seed finds IRQs with gawk /eth0-(TxRx-)?1/ (queue 1, and all IRQs in one quoted word); napilab pins the IRQs of the configured queues, from napi-get or /proc/interrupts

# 1. napi 8193: record its settings
#    record this NAPI's own settings: the device-wide writes below overwrite them
ip netns exec lab ynl --family netdev --do napi-get --json '{"id": 8193}'  # keep the output to restore it

# 2. napi 8194: record its settings
#    record this NAPI's own settings: the device-wide writes below overwrite them
ip netns exec lab ynl --family netdev --do napi-get --json '{"id": 8194}'  # keep the output to restore it

# 3. eth1/threaded = 0
#    every NAPI of the device polls in softirq context, not in a kthread
ip netns exec lab sh -c 'echo 0 > /sys/class/net/eth1/threaded'

# 4. kernel.timer_migration = 0
#    keep timers on the CPU that armed them, away from the poll CPU
echo 0 > /proc/sys/kernel/timer_migration

# 5. smt/control = off
#    no sibling hyperthread shares the poll CPU's core (machine-wide: takes the siblings offline)
echo off > /sys/devices/system/cpu/smt/control

# 6. channels: combined 1 (skipped where the driver lacks it)
#    one combined channel: one NAPI and one IRQ carry the whole flow
ip netns exec lab ethtool -L eth1 combined 1

# 7. rx ring: 1024 entries (skipped where the driver lacks it)
#    a ring deep enough that a busy-poll pass never finds it full
ip netns exec lab ethtool -G eth1 rx 1024

# 8. net.core.rps_sock_flow_entries = 0
#    RFS off: no flow steering moves packets between CPUs
echo 0 > /proc/sys/net/core/rps_sock_flow_entries

# 9. eth1/queues/rx-0/rps_cpus = none
#    RPS off: the packet is processed on the CPU that polled it
ip netns exec lab sh -c 'echo 0 > /sys/class/net/eth1/queues/rx-0/rps_cpus'

# 10. irq/38/smp_affinity_list = 2
#    the IRQ of eth1 rx-0 fires on the poll CPU, where its NAPI runs
echo 2 > /proc/irq/38/smp_affinity_list

# 11. kernel.sched_rt_runtime_us = -1
#    RT throttling off: a SCHED_FIFO poller that never sleeps would lose 5% of its CPU
echo -1 > /proc/sys/kernel/sched_rt_runtime_us

# 12. workqueue/blkcg_punt_bio/cpumask = 1-3
#    unbound kernel work runs on the housekeeping CPUs
echo e > /sys/devices/virtual/workqueue/blkcg_punt_bio/cpumask

# 13. workqueue/writeback/cpumask = 1-3
#    unbound kernel work runs on the housekeeping CPUs
echo e > /sys/devices/virtual/workqueue/writeback/cpumask

# 14. coalescing: adaptive-rx off adaptive-tx off rx-usecs 0 tx-usecs 0 (skipped where the driver lacks it)
#    the NIC raises each interrupt at once instead of batching them
ip netns exec lab ethtool -C eth1 adaptive-rx off adaptive-tx off rx-usecs 0 tx-usecs 0

# 15. net.core.busy_read = 0 µs
#    sockets do not busy-poll on their own
echo 0 > /proc/sys/net/core/busy_read

# 16. eth1/napi_defer_hard_irqs = 0
#    IRQs come back after the first empty poll
ip netns exec lab sh -c 'echo 0 > /sys/class/net/eth1/napi_defer_hard_irqs'

# 17. eth1/gro_flush_timeout = 15000 ns
#    a 15µs repoll timer replaces the IRQ while IRQs are deferred
ip netns exec lab sh -c 'echo 15000 > /sys/class/net/eth1/gro_flush_timeout'
