# napilab mode plan busy-poll: veth-b (ifindex 2) in network namespace NETNS, poll CPU 1
#   rx-0 is polled by NAPI ID (no IRQ of its own)
# kernel KERNEL
# application side: poll inline, SO_PREFER_BUSY_POLL 1, SO_BUSY_POLL_BUDGET 64
#   requirement: net.core.busy_read is copied into a socket when it is created: start the application after applying the mode
#   requirement: the socket must report a NAPI id (SO_INCOMING_NAPI_ID ≠ 0), or busy polling polls nothing
#   note: veth-b does not link rx-0 to a NAPI in queue-get (veth never does); its only NAPI, ID, serves it

# 1. net.core.busy_read = 400 µs
#    each receive call on an empty socket busy-polls its NAPI for up to this long
echo 400 > /proc/sys/net/core/busy_read

# 2. napi ID (rx-0): defer-hard-irqs=100 gro-flush-timeout=15µs threaded=disabled
#    IRQs stay masked for up to 100 empty polls, with the gro_flush_timeout timer as backstop; a 15µs repoll timer replaces the IRQ while IRQs are deferred; the NAPI polls in softirq context, not in a kthread
nsenter --net=NETNS ynl --family netdev --do napi-set --json '{"id": ID, "defer-hard-irqs": 100, "gro-flush-timeout": 15000, "threaded": "disabled"}'
