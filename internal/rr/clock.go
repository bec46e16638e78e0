package rr

import "time"

// epoch anchors the package's monotonic clock. time.Since reads the monotonic clock through the vDSO, with no
// system call.
var epoch = time.Now()

// nanotime is the benchmark's clock: nanoseconds on the monotonic clock since the process started.
func nanotime() int64 { return int64(time.Since(epoch)) }
