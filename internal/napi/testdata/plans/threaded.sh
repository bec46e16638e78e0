# napilab mode plan threaded: eth1 (ifindex 3) in network namespace /run/netns/lab, poll CPU 3
#   rx-0 is polled by NAPI 8193 (IRQ 38)
# kernel 6.19.2: per-NAPI config yes, irq-suspend-timeout yes, per-NAPI threaded yes, threaded busy poll yes
# application side: poll none

# 1. net.core.busy_read = 0 µs
#    sockets do not busy-poll on their own
echo 0 > /proc/sys/net/core/busy_read

# 2. net.core.busy_poll = 0 µs
#    poll, select and epoll do not busy-poll
echo 0 > /proc/sys/net/core/busy_poll

# 3. napi 8193 (rx-0): defer-hard-irqs=0 gro-flush-timeout=15µs threaded=enabled
#    IRQs come back after the first empty poll; a 15µs repoll timer replaces the IRQ while IRQs are deferred; a kthread polls the NAPI after each IRQ, then sleeps
ip netns exec lab ynl --family netdev --do napi-set --json '{"id": 8193, "defer-hard-irqs": 0, "gro-flush-timeout": 15000, "threaded": "enabled"}'

# 4. kthread of napi 8193: SCHED_FIFO 50 on CPU 3
#    the NAPI kthread runs only on the poll CPU, at SCHED_FIFO 50 above ordinary threads
pid=$(ip netns exec lab ynl --family netdev --do napi-get --json '{"id": 8193}' --output-json | jq .pid)
chrt -f -p 50 "$pid" && taskset -pc 3 "$pid"
