# napilab mode plan interrupts: eth1 (ifindex 3) in network namespace /run/netns/lab, poll CPU 3
#   rx-0 is polled by NAPI 8193 (IRQ 38)
# kernel 6.19.2: per-NAPI config yes, irq-suspend-timeout yes, per-NAPI threaded yes, threaded busy poll yes
# application side: poll inline

# 1. net.core.busy_read = 0 µs
#    sockets do not busy-poll on their own
echo 0 > /proc/sys/net/core/busy_read

# 2. net.core.busy_poll = 0 µs
#    poll, select and epoll do not busy-poll
echo 0 > /proc/sys/net/core/busy_poll

# 3. napi 8193 (rx-0): defer-hard-irqs=0 gro-flush-timeout=15µs threaded=disabled
#    IRQs come back after the first empty poll; a 15µs repoll timer replaces the IRQ while IRQs are deferred; the NAPI polls in softirq context, not in a kthread
ip netns exec lab ynl --family netdev --do napi-set --json '{"id": 8193, "defer-hard-irqs": 0, "gro-flush-timeout": 15000, "threaded": "disabled"}'
