package rr

// This file imports unsafe only for go:linkname. time.Since would read the same clock, but relative to an
// unknown origin (the process start): the XDP program's stamps are absolute CLOCK_MONOTONIC, and the runtime's
// nanotime is exactly that. The runtime keeps nanotime linkable on purpose (go.dev/issue/67401).

import _ "unsafe"

//go:linkname runtimeNano runtime.nanotime
func runtimeNano() int64
