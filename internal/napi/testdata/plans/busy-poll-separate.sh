# napilab mode plan busy-poll-separate: eth1 (ifindex 3) in network namespace /run/netns/lab, poll CPU 3
#   rx-0 is polled by NAPI 8193 (IRQ 38)
# kernel 6.19.2: per-NAPI config yes, irq-suspend-timeout yes, per-NAPI threaded yes, threaded busy poll yes
# application side: poll separate, SO_PREFER_BUSY_POLL 1, SO_BUSY_POLL_BUDGET 64
#   requirement: net.core.busy_read is copied into a socket when it is created: start the application after applying the mode
#   requirement: the socket must report a NAPI id (SO_INCOMING_NAPI_ID ≠ 0), or busy polling polls nothing

# 1. net.core.busy_read = 400 µs
#    each receive call on an empty socket busy-polls its NAPI for up to this long
echo 400 > /proc/sys/net/core/busy_read

# 2. napi 8193 (rx-0): defer-hard-irqs=100 gro-flush-timeout=15µs threaded=disabled
#    IRQs stay masked for up to 100 empty polls, with the gro_flush_timeout timer as backstop; a 15µs repoll timer replaces the IRQ while IRQs are deferred; the NAPI polls in softirq context, not in a kthread
ip netns exec lab ynl --family netdev --do napi-set --json '{"id": 8193, "defer-hard-irqs": 100, "gro-flush-timeout": 15000, "threaded": "disabled"}'
