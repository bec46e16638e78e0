package rr

import (
	"runtime"
	"sync"
)

// Spinning loops hold a Go P for as long as they run. With GOMAXPROCS equal to the CPU count, every other
// goroutine (the reporter, timers, the CPU sampler) has to take a P away from a spinner: the scheduler preempts
// the spinning goroutine, its locked thread sleeps until the P comes back, and a reply waits meanwhile. Each run
// therefore adds a P per spinning thread for its duration, so the spinners are never the only Ps there are.
var procs struct {
	mu    sync.Mutex
	base  int // GOMAXPROCS before the first reservation
	extra int
}

// reserveProcs adds n Ps until the returned function is called.
func reserveProcs(n int) (release func()) {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	if procs.extra == 0 {
		procs.base = runtime.GOMAXPROCS(0)
	}
	procs.extra += n
	runtime.GOMAXPROCS(procs.base + procs.extra)
	return func() {
		procs.mu.Lock()
		defer procs.mu.Unlock()
		procs.extra -= n
		runtime.GOMAXPROCS(procs.base + procs.extra)
	}
}
