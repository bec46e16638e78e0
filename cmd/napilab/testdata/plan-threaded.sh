# napilab mode plan threaded: veth-b (ifindex 2) in network namespace NETNS, poll CPU 1
#   rx-0 is polled by NAPI ID (no IRQ of its own)
# kernel KERNEL
# application side: poll none
#   note: veth-b does not link rx-0 to a NAPI in queue-get (veth never does); its only NAPI, ID, serves it

# 1. net.core.busy_read = 0 µs
#    sockets do not busy-poll on their own
echo 0 > /proc/sys/net/core/busy_read

# 2. net.core.busy_poll = 0 µs
#    poll, select and epoll do not busy-poll
echo 0 > /proc/sys/net/core/busy_poll

# 3. napi ID (rx-0): defer-hard-irqs=0 gro-flush-timeout=15µs threaded=enabled
#    IRQs come back after the first empty poll; a 15µs repoll timer replaces the IRQ while IRQs are deferred; a kthread polls the NAPI after each IRQ, then sleeps
nsenter --net=NETNS ynl --family netdev --do napi-set --json '{"id": ID, "defer-hard-irqs": 0, "gro-flush-timeout": 15000, "threaded": "enabled"}'

# 4. kthread of napi ID: SCHED_FIFO 50 on CPU 1
#    the NAPI kthread runs only on the poll CPU, at SCHED_FIFO 50 above ordinary threads
pid=$(nsenter --net=NETNS ynl --family netdev --do napi-get --json '{"id": ID}' --output-json | jq .pid)
chrt -f -p 50 "$pid" && taskset -pc 1 "$pid"
