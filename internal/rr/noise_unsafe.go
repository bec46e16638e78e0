//go:build linux

package rr

// This file imports unsafe only to hand a buffer's address to pread(2): the noise loop's scheduler statistics
// are read with a raw system call, which neither os nor x/sys/unix offers without a call that can yield.

import (
	"syscall"
	"unsafe"
)

// rawPread reads the file from its start into b and returns the length read, 0 on an error.
//
//go:nosplit
func rawPread(fd uintptr, b *[96]byte) uintptr {
	n, _, e := syscall.RawSyscall6(syscall.SYS_PREAD64, fd, uintptr(unsafe.Pointer(b)), uintptr(len(b)), 0, 0, 0)
	if e != 0 {
		return 0
	}
	return n
}
