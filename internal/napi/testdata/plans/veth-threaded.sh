# napilab mode plan threaded: vb (ifindex 5) in network namespace /run/netns/lab, poll CPU 1
#   rx-0 is polled by NAPI 259 (no IRQ of its own)
# kernel 6.18.44: per-NAPI config yes, irq-suspend-timeout yes, per-NAPI threaded yes, threaded busy poll no
# application side: poll none
#   note: vb does not link rx-0 to a NAPI in queue-get (veth never does); its only NAPI, 259, serves it

# 1. net.core.busy_read = 0 µs
#    sockets do not busy-poll on their own
echo 0 > /proc/sys/net/core/busy_read

# 2. net.core.busy_poll = 0 µs
#    poll, select and epoll do not busy-poll
echo 0 > /proc/sys/net/core/busy_poll

# 3. napi 259 (rx-0): defer-hard-irqs=0 gro-flush-timeout=15µs threaded=enabled
#    IRQs come back after the first empty poll; a 15µs repoll timer replaces the IRQ while IRQs are deferred; a kthread polls the NAPI after each IRQ, then sleeps
ip netns exec lab ynl --family netdev --do napi-set --json '{"id": 259, "defer-hard-irqs": 0, "gro-flush-timeout": 15000, "threaded": "enabled"}'

# 4. kthread of napi 259: SCHED_FIFO 50 on CPU 1
#    the NAPI kthread runs only on the poll CPU, at SCHED_FIFO 50 above ordinary threads
pid=$(ip netns exec lab ynl --family netdev --do napi-get --json '{"id": 259}' --output-json | jq .pid)
chrt -f -p 50 "$pid" && taskset -pc 1 "$pid"
