# napilab mode plan interrupts: veth-b (ifindex 2) in network namespace NETNS, poll CPU 1
#   rx-0 is polled by NAPI ID (no IRQ of its own)
# kernel KERNEL
# application side: poll inline
#   note: veth-b does not link rx-0 to a NAPI in queue-get (veth never does); its only NAPI, ID, serves it

# 1. net.core.busy_read = 0 µs
#    sockets do not busy-poll on their own
echo 0 > /proc/sys/net/core/busy_read

# 2. net.core.busy_poll = 0 µs
#    poll, select and epoll do not busy-poll
echo 0 > /proc/sys/net/core/busy_poll

# 3. napi ID (rx-0): defer-hard-irqs=0 gro-flush-timeout=15µs threaded=disabled
#    IRQs come back after the first empty poll; a 15µs repoll timer replaces the IRQ while IRQs are deferred; the NAPI polls in softirq context, not in a kthread
nsenter --net=NETNS ynl --family netdev --do napi-set --json '{"id": ID, "defer-hard-irqs": 0, "gro-flush-timeout": 15000, "threaded": "disabled"}'
