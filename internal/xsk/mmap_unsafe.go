//go:build linux

package xsk

// Everything in xsk that needs package unsafe is in this file: x/sys/unix has no typed socket options for
// AF_XDP's structs (XDP_UMEM_REG, XDP_MMAP_OFFSETS, XDP_STATISTICS), the UMEM's address must be handed to the
// kernel, and the rings are typed views of memory the kernel maps into the process.

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ring entry types must match the kernel's layouts.
var (
	_ [unsafe.Sizeof(Desc{}) - unsafe.Sizeof(unix.XDPDesc{})]struct{}
	_ [unsafe.Sizeof(unix.XDPDesc{}) - unsafe.Sizeof(Desc{})]struct{}
)

// registerUMEM hands the UMEM to the kernel (XDP_UMEM_REG, aligned chunks, no TX metadata).
func registerUMEM(fd int, umem []byte, frameSize, headroom uint32) error {
	reg := unix.XDPUmemReg{
		Addr:     uint64(uintptr(unsafe.Pointer(&umem[0]))),
		Len:      uint64(len(umem)),
		Size:     frameSize,
		Headroom: headroom,
	}
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0)
	return errnoErr(e)
}

// getsockoptXDP reads a SOL_XDP option into *v and returns how many bytes the kernel wrote.
func getsockoptXDP[T any](fd, opt int, v *T) (int, error) {
	n := uint32(unsafe.Sizeof(*v))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt),
		uintptr(unsafe.Pointer(v)), uintptr(unsafe.Pointer(&n)), 0)
	return int(n), errnoErr(e)
}

// ringView makes a ring over the mapping of one of the socket's rings, at the offsets the kernel reported.
func ringView[T Entry](mem []byte, off unix.XDPRingOffset, entries uint32) ring[T] {
	return ring[T]{
		producer: (*uint32)(unsafe.Pointer(&mem[off.Producer])),
		consumer: (*uint32)(unsafe.Pointer(&mem[off.Consumer])),
		flags:    (*uint32)(unsafe.Pointer(&mem[off.Flags])),
		entries:  unsafe.Slice((*T)(unsafe.Pointer(&mem[off.Desc])), entries),
		mask:     entries - 1,
	}
}

// ringBytes is the length of a ring's mapping.
func ringBytes[T Entry](off unix.XDPRingOffset, entries uint32) int {
	var zero T
	return int(off.Desc) + int(entries)*int(unsafe.Sizeof(zero))
}

// pollIn waits in ppoll(2) for fd to become readable. An interrupted wait reports false without an error.
func pollIn(fd int, timeout time.Duration) (bool, error) {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	var ts *unix.Timespec
	if timeout >= 0 {
		t := unix.NsecToTimespec(int64(timeout))
		ts = &t
	}
	n, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 1, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	switch {
	case e == unix.EINTR:
		return false, nil
	case e != 0:
		return false, e
	case fds[0].Revents&unix.POLLNVAL != 0:
		return false, unix.EBADF
	}
	return n > 0 && fds[0].Revents&unix.POLLIN != 0, nil
}

// unsafeSizeofMmapOffsets is the size of struct xdp_mmap_offsets with the flags fields (Linux 5.4 and later).
const unsafeSizeofMmapOffsets = unsafe.Sizeof(unix.XDPMmapOffsets{})
