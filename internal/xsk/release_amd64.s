//go:build !race

#include "textflag.h"

// func storeRelease(addr *uint32, v uint32)
// A plain MOV: x86's total store order makes every store a release, and unlike sync/atomic's XCHG it does not
// wait for the store buffer to drain.
TEXT ·storeRelease(SB), NOSPLIT, $0-12
	MOVQ addr+0(FP), AX
	MOVL v+8(FP), BX
	MOVL BX, (AX)
	RET
