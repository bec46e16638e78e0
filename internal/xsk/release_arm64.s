//go:build !race

#include "textflag.h"

// func storeRelease(addr *uint32, v uint32)
// STLRW: a store-release, the order the kernel's rings ask for (smp_store_release), without the full barrier of
// sync/atomic's sequentially consistent store.
TEXT ·storeRelease(SB), NOSPLIT, $0-12
	MOVD addr+0(FP), R0
	MOVWU v+8(FP), R1
	STLRW R1, (R0)
	RET
