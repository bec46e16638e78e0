//go:build (!amd64 && !arm64) || race

package xsk

import "sync/atomic"

// storeRelease is sync/atomic's store where no assembly release store is written (or under the race detector).
func storeRelease(addr *uint32, v uint32) { atomic.StoreUint32(addr, v) }
