# napilab mode plan busy-poll: vb (ifindex 5) in network namespace /run/netns/lab, poll CPU 1
#   rx-0 is polled by NAPI 259 (no IRQ of its own)
# kernel 6.18.44: per-NAPI config yes, irq-suspend-timeout yes, per-NAPI threaded yes, threaded busy poll no
# application side: poll inline, SO_PREFER_BUSY_POLL 1, SO_BUSY_POLL_BUDGET 64
#   requirement: net.core.busy_read is copied into a socket when it is created: start the application after applying the mode
#   requirement: the socket must report a NAPI id (SO_INCOMING_NAPI_ID ≠ 0), or busy polling polls nothing
#   note: vb does not link rx-0 to a NAPI in queue-get (veth never does); its only NAPI, 259, serves it

# 1. net.core.busy_read = 400 µs
#    each receive call on an empty socket busy-polls its NAPI for up to this long
echo 400 > /proc/sys/net/core/busy_read

# 2. napi 259 (rx-0): defer-hard-irqs=100 gro-flush-timeout=15µs threaded=disabled
#    IRQs stay masked for up to 100 empty polls, with the gro_flush_timeout timer as backstop; a 15µs repoll timer replaces the IRQ while IRQs are deferred; the NAPI polls in softirq context, not in a kthread
ip netns exec lab ynl --family netdev --do napi-set --json '{"id": 259, "defer-hard-irqs": 100, "gro-flush-timeout": 15000, "threaded": "disabled"}'
