package rr

// nanotime is the benchmark's clock: CLOCK_MONOTONIC in ns, read through the vDSO without a system call (about
// 25 ns on a 2-vCPU VM with the TSC as clocksource). It is the clock of bpf_ktime_get_ns too, so the arrival
// stamps of the XDP program (xdp.StampLen) and the server's own readings are differences on one clock.
func nanotime() int64 { return runtimeNano() }
