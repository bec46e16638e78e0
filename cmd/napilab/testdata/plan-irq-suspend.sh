# napilab mode plan irq-suspend: veth-b (ifindex 2) in network namespace NETNS, poll CPU 1
#   rx-0 is polled by NAPI ID (no IRQ of its own)
# kernel KERNEL
# application side: poll inline, epoll_wait with EPIOCSPARAMS, SO_PREFER_BUSY_POLL 1, SO_BUSY_POLL_BUDGET 64
#   requirement: drive the socket with epoll_wait after EPIOCSPARAMS with prefer_busy_poll set: IRQs are suspended only while epoll keeps finding events
#   requirement: irq-suspend-timeout must cover one pass of the application's processing, or IRQs come back while it works
#   note: veth-b does not link rx-0 to a NAPI in queue-get (veth never does); its only NAPI, ID, serves it

# 1. net.core.busy_read = 0 µs
#    sockets do not busy-poll on their own
echo 0 > /proc/sys/net/core/busy_read

# 2. net.core.busy_poll = 0 µs
#    poll, select and epoll do not busy-poll
echo 0 > /proc/sys/net/core/busy_poll

# 3. napi ID (rx-0): defer-hard-irqs=100 gro-flush-timeout=15µs irq-suspend-timeout=20ms threaded=disabled
#    IRQs stay masked for up to 100 empty polls, with the gro_flush_timeout timer as backstop; a 15µs repoll timer replaces the IRQ while IRQs are deferred; an epoll busy-poller that keeps finding events keeps IRQs suspended this long; the NAPI polls in softirq context, not in a kthread
nsenter --net=NETNS ynl --family netdev --do napi-set --json '{"id": ID, "defer-hard-irqs": 100, "gro-flush-timeout": 15000, "irq-suspend-timeout": 20000000, "threaded": "disabled"}'
