package xsk

import (
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

// Open creates an AF_XDP socket, registers a UMEM of cfg.FrameCount frames with it, maps its four rings and binds
// it to queue of the device ifindex. The socket lives in the network namespace of the calling thread: to open
// one in another namespace, lock the OS thread and switch it there first.
//
// Every frame starts out owned by the application (none is on the fill ring); see FramePool and FillAll. On any
// failure Open undoes what it did and returns an error that says what to fix: errors.Is(err, os.ErrPermission)
// for missing privileges or locked memory, os.ErrNotExist for an unknown ifindex, kernel.ErrNotSupported for
// zero-copy on a driver without it.
func Open(ifindex, queue int, cfg Config) (*Socket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open AF_XDP socket: %w", err)
	}
	if ifindex <= 0 {
		return nil, kernel.WithHint(&kernel.OpError{Op: "open AF_XDP socket", Subject: fmt.Sprintf("on ifindex %d", ifindex), Err: unix.ENODEV},
			"interface indexes start at 1: pass the index of an existing interface")
	}
	if queue < 0 {
		return nil, fmt.Errorf("open AF_XDP socket: queue %d is negative: pass a queue number from 0", queue)
	}
	s := &Socket{fd: -1, ifindex: ifindex, queue: queue, subject: describe(ifindex, queue), cfg: cfg,
		frameShift: uint(bits.TrailingZeros32(cfg.FrameSize))}
	if err := s.open(); err != nil {
		s.closeKernel()
		return nil, err
	}
	return s, nil
}

// describe names the device for error messages, falling back to its index when it cannot be found.
func describe(ifindex, queue int) string {
	if ifi, err := net.InterfaceByIndex(ifindex); err == nil {
		return fmt.Sprintf("%s queue %d", ifi.Name, queue)
	}
	return fmt.Sprintf("ifindex %d queue %d", ifindex, queue)
}

func (s *Socket) open() error {
	cfg := s.cfg
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		err = kernel.NewOpError("create AF_XDP socket for", s.subject, err)
		switch {
		case errors.Is(err, os.ErrPermission):
			return kernel.WithHint(err, "run as root or grant CAP_NET_RAW")
		case errors.Is(err, kernel.ErrNotSupported):
			return kernel.WithHint(err, "the kernel lacks AF_XDP sockets (CONFIG_XDP_SOCKETS)")
		}
		return err
	}
	s.fd = fd

	umem, err := unix.Mmap(-1, 0, int(cfg.UMEMSize()), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return kernel.NewOpError(fmt.Sprintf("map %s of UMEM for", mib(cfg.UMEMSize())), s.subject, err)
	}
	s.maps = append(s.maps, umem)
	if err := registerUMEM(fd, umem, cfg.FrameSize, cfg.Headroom); err != nil {
		return s.umemError(err)
	}
	s.umem = umem

	for _, r := range []struct {
		name string
		opt  int
		size uint32
	}{
		{"fill", unix.XDP_UMEM_FILL_RING, cfg.FillSize}, {"completion", unix.XDP_UMEM_COMPLETION_RING, cfg.CompletionSize},
		{"RX", unix.XDP_RX_RING, cfg.RXSize}, {"TX", unix.XDP_TX_RING, cfg.TXSize},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, r.opt, int(r.size)); err != nil {
			return kernel.NewOpError(fmt.Sprintf("create %d-entry %s ring on", r.size, r.name), s.subject, err)
		}
	}
	var off unix.XDPMmapOffsets
	if n, err := getsockoptXDP(fd, unix.XDP_MMAP_OFFSETS, &off); err != nil {
		return kernel.NewOpError("read XDP_MMAP_OFFSETS of", s.subject, err)
	} else if n < int(unsafeSizeofMmapOffsets) {
		return kernel.WithHint(kernel.NewOpError("read XDP_MMAP_OFFSETS of", s.subject, kernel.ErrNotSupported),
			"the kernel predates ring flags (Linux 5.4): upgrade it")
	}

	fill, err := s.mapRing(unix.XDP_UMEM_PGOFF_FILL_RING, ringBytes[uint64](off.Fr, cfg.FillSize), "fill")
	if err != nil {
		return err
	}
	comp, err := s.mapRing(unix.XDP_UMEM_PGOFF_COMPLETION_RING, ringBytes[uint64](off.Cr, cfg.CompletionSize), "completion")
	if err != nil {
		return err
	}
	rx, err := s.mapRing(unix.XDP_PGOFF_RX_RING, ringBytes[Desc](off.Rx, cfg.RXSize), "RX")
	if err != nil {
		return err
	}
	tx, err := s.mapRing(unix.XDP_PGOFF_TX_RING, ringBytes[Desc](off.Tx, cfg.TXSize), "TX")
	if err != nil {
		return err
	}
	s.fill = newProducer(ringView[uint64](fill, off.Fr, cfg.FillSize))
	s.comp = newConsumer(ringView[uint64](comp, off.Cr, cfg.CompletionSize))
	s.rx = newConsumer(ringView[Desc](rx, off.Rx, cfg.RXSize))
	s.tx = newProducer(ringView[Desc](tx, off.Tx, cfg.TXSize))

	if err := unix.Bind(fd, &unix.SockaddrXDP{Flags: bindFlags(cfg), Ifindex: uint32(s.ifindex), QueueID: uint32(s.queue)}); err != nil {
		return s.bindError(err)
	}
	opts, err := unix.GetsockoptInt(fd, unix.SOL_XDP, unix.XDP_OPTIONS)
	if err != nil {
		return kernel.NewOpError("read XDP_OPTIONS of", s.subject, err)
	}
	s.zeroCopy = opts&unix.XDP_OPTIONS_ZEROCOPY != 0
	return nil
}

func bindFlags(cfg Config) uint16 {
	var f uint16
	switch cfg.Mode {
	case ModeAuto:
		if !cfg.NeedWakeup {
			f |= unix.XDP_COPY // zero-copy needs need_wakeup (see Config.Validate): auto settles for copy
		}
	case ModeCopy:
		f |= unix.XDP_COPY
	case ModeZeroCopy:
		f |= unix.XDP_ZEROCOPY
	}
	if cfg.NeedWakeup {
		f |= unix.XDP_USE_NEED_WAKEUP
	}
	return f
}

func (s *Socket) mapRing(pgoff int64, length int, name string) ([]byte, error) {
	mem, err := unix.Mmap(s.fd, pgoff, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, kernel.NewOpError("map "+name+" ring of", s.subject, err)
	}
	s.maps = append(s.maps, mem)
	return mem, nil
}

// memlockError is a UMEM larger than the locked memory the process may pin: the kernel answers ENOBUFS, which
// is a missing privilege rather than a lack of memory.
type memlockError struct{ umem, limit uint64 }

func (e *memlockError) Error() string {
	return fmt.Sprintf("%s of UMEM exceeds the locked-memory limit (RLIMIT_MEMLOCK %s, shared by all processes of the user)",
		mib(e.umem), mib(e.limit))
}
func (e *memlockError) Is(target error) bool { return target == os.ErrPermission }
func (e *memlockError) Unwrap() error        { return unix.ENOBUFS }

func (s *Socket) umemError(err error) error {
	const op = "register UMEM (XDP_UMEM_REG) on"
	if err != unix.ENOBUFS {
		return kernel.NewOpError(op, s.subject, err)
	}
	var lim unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim)
	return kernel.WithHint(kernel.NewOpError(op, s.subject, &memlockError{umem: s.cfg.UMEMSize(), limit: lim.Cur}),
		fmt.Sprintf("grant CAP_IPC_LOCK, raise the limit above %s (ulimit -l, or LimitMEMLOCK= for a service), or use fewer frames",
			mib(s.cfg.UMEMSize())))
}

func (s *Socket) bindError(err error) error {
	err = kernel.NewOpError(fmt.Sprintf("bind AF_XDP socket in %s mode to", s.cfg.Mode), s.subject, err)
	var errno unix.Errno
	errors.As(err, &errno)
	switch errno {
	case unix.ENODEV:
		return kernel.WithHint(err, fmt.Sprintf("no interface has index %d in this network namespace: open the socket from the namespace the device lives in", s.ifindex))
	case unix.EOPNOTSUPP:
		if s.cfg.Mode == ModeZeroCopy {
			return kernel.WithHint(err, "the driver does not support zero-copy AF_XDP: use copy or auto mode")
		}
	case unix.EINVAL:
		return kernel.WithHint(err, fmt.Sprintf("queue %d is probably out of range: check the device's channels (ethtool -l) and bind a queue it has", s.queue))
	case unix.EBUSY:
		return kernel.WithHint(err, fmt.Sprintf("queue %d already has an AF_XDP socket or is reserved by the driver: close the other socket or bind another queue", s.queue))
	}
	return err
}

func mib(b uint64) string {
	if b >= 1<<60 {
		return "unlimited"
	}
	return fmt.Sprintf("%g MiB", float64(b)/(1<<20))
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// kickTX and kickRX make the system call directly: unix.Sendto and unix.Recvfrom build socket addresses and a
// buffer pointer that a kick does not need, and may allocate. They use RawSyscall6, which does not tell the Go
// scheduler about the call: a kick never blocks (MSG_DONTWAIT), and a loop that kicks a million times a second
// would otherwise be caught inside one by sysmon, which then takes its P away and, having taken one, polls every
// 20 µs for a while: measured on a 2-vCPU VM, the xsk_rr drop-in's server (a recvfrom kick on every empty
// peek) saw sysmon wake about 2000 times a second on its CPU and preempt the loop each time; with raw kicks,
// about 100 times (its floor while any goroutine runs).
//
// They call package syscall's RawSyscall6, which x/sys/unix's only forwards to: on amd64 the forward is an
// assembly jump into an ABI wrapper, which took 2.3 % of an idle server thread's samples (about 15 ns of each
// 650 ns kick), where syscall's Go function goes straight to the runtime's system call.
func (s *Socket) kickTX() error {
	_, _, e := syscall.RawSyscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return errnoErr(e)
}

func (s *Socket) kickRX() error { return errnoErr(recvfromKick(s.fd)) }

// recvfromKick is the system call alone, small enough to be inlined into SpinRX's loop.
func recvfromKick(fd int) syscall.Errno {
	_, _, e := syscall.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}

func (s *Socket) waitRX(timeout time.Duration) (bool, error) { return pollIn(s.fd, timeout) }

func (s *Socket) stats() (Statistics, error) {
	var st unix.XDPStatistics
	// Kernels before 5.9 write only the first three counters; the others then read as zero.
	if _, err := getsockoptXDP(s.fd, unix.XDP_STATISTICS, &st); err != nil {
		return Statistics{}, err
	}
	return Statistics{
		RxDropped:            st.Rx_dropped,
		RxInvalidDescs:       st.Rx_invalid_descs,
		TxInvalidDescs:       st.Tx_invalid_descs,
		RxRingFull:           st.Rx_ring_full,
		RxFillRingEmptyDescs: st.Rx_fill_ring_empty_descs,
		TxRingEmptyDescs:     st.Tx_ring_empty_descs,
	}, nil
}

// closeKernel releases whatever open managed to set up, in any state.
func (s *Socket) closeKernel() error {
	var errs []error
	for _, m := range s.maps {
		errs = append(errs, unix.Munmap(m))
	}
	s.maps = nil
	if s.fd >= 0 {
		errs = append(errs, unix.Close(s.fd))
		s.fd = -1
	}
	return errors.Join(errs...)
}

func sockoptLevelName(o sockopt) (int, int) {
	switch o {
	case optBusyPoll:
		return unix.SOL_SOCKET, unix.SO_BUSY_POLL
	case optPreferBusyPoll:
		return unix.SOL_SOCKET, unix.SO_PREFER_BUSY_POLL
	case optBusyPollBudget:
		return unix.SOL_SOCKET, unix.SO_BUSY_POLL_BUDGET
	}
	return unix.SOL_SOCKET, unix.SO_INCOMING_NAPI_ID
}

func setsockoptInt(fd int, o sockopt, v int) error {
	level, name := sockoptLevelName(o)
	return unix.SetsockoptInt(fd, level, name, v)
}

func getsockoptInt(fd int, o sockopt) (int, error) {
	level, name := sockoptLevelName(o)
	return unix.GetsockoptInt(fd, level, name)
}
