package xsk

import (
	"fmt"
	"math"
	"time"

	"github.com/napilab/napilab/internal/kernel"
)

// sockopt names the SOL_SOCKET options xsk uses; the Linux file maps them to their numbers, which differ by
// architecture.
type sockopt int

const (
	optBusyPoll       sockopt = iota // SO_BUSY_POLL: µs to busy-poll the socket's NAPI in recvfrom/sendto
	optPreferBusyPoll                // SO_PREFER_BUSY_POLL: keep softirq processing away while busy polling
	optBusyPollBudget                // SO_BUSY_POLL_BUDGET: packets per busy-poll round
	optNAPIID                        // SO_INCOMING_NAPI_ID: the NAPI the socket polls, 0 if none
)

// SetBusyPoll sets SO_BUSY_POLL: each kick busy-polls the device's NAPI for up to d (microsecond resolution;
// 0 turns it off). The global sysctl net.core.busy_read seeds this value only for sockets created after it was
// set.
func (s *Socket) SetBusyPoll(d time.Duration) error {
	us := d.Microseconds()
	if d < 0 || us > math.MaxInt32 {
		return fmt.Errorf("busy-poll time %v is out of range: use 0 to %v", d, time.Duration(math.MaxInt32)*time.Microsecond)
	}
	return s.setOpt("set SO_BUSY_POLL on", optBusyPoll, int(us))
}

// BusyPoll reads SO_BUSY_POLL back.
func (s *Socket) BusyPoll() (time.Duration, error) {
	us, err := s.getOpt("read SO_BUSY_POLL of", optBusyPoll)
	return time.Duration(us) * time.Microsecond, err
}

// SetPreferBusyPoll sets SO_PREFER_BUSY_POLL, which keeps the device's interrupts and softirq processing
// deferred while the application busy-polls (with napi_defer_hard_irqs and gro_flush_timeout set); without it
// softirq processing competes with the busy poller. Turning it on needs CAP_NET_ADMIN.
func (s *Socket) SetPreferBusyPoll(on bool) error {
	v := 0
	if on {
		v = 1
	}
	return s.setOpt("set SO_PREFER_BUSY_POLL on", optPreferBusyPoll, v)
}

// PreferBusyPoll reads SO_PREFER_BUSY_POLL back.
func (s *Socket) PreferBusyPoll() (bool, error) {
	v, err := s.getOpt("read SO_PREFER_BUSY_POLL of", optPreferBusyPoll)
	return v != 0, err
}

// SetBusyPollBudget sets SO_BUSY_POLL_BUDGET, the packets one busy-poll round may process (0–65535; raising it
// above the current value needs CAP_NET_ADMIN). The kernel has no getter for it: getsockopt answers ENOPROTOOPT,
// so the value cannot be read back.
func (s *Socket) SetBusyPollBudget(n int) error {
	if n < 0 || n > math.MaxUint16 {
		return fmt.Errorf("busy-poll budget %d is out of range: use 0 to %d", n, math.MaxUint16)
	}
	return s.setOpt("set SO_BUSY_POLL_BUDGET on", optBusyPollBudget, n)
}

// NAPIID reads SO_INCOMING_NAPI_ID: the NAPI instance the kernel busy-polls for this socket, recorded at bind
// from the NAPI the driver linked to the queue. 0 means there is none and busy polling (SO_BUSY_POLL, kicks)
// polls nothing; RequireNAPI says why.
func (s *Socket) NAPIID() (uint32, error) {
	id, err := s.getOpt("read SO_INCOMING_NAPI_ID of", optNAPIID)
	return uint32(id), err
}

// RequireNAPI returns the socket's NAPI id, or an error matching ErrNoNAPI that explains how to get one when it
// is 0.
func (s *Socket) RequireNAPI() (uint32, error) {
	id, err := s.NAPIID()
	if err != nil || id != 0 {
		return id, err
	}
	return 0, kernel.WithHint(kernel.NewOpError("busy-poll", s.subject, ErrNoNAPI),
		"busy polling polls nothing without one: the kernel copies it from the queue's NAPI at bind, so attach the XDP program first, "+
			"on a driver that links its queues to NAPIs (virtio_net and most NIC drivers; not veth as of Linux 6.18, "+
			"nor copy-mode sockets on Linux 6.13 to early 6.15)")
}

func (s *Socket) setOpt(op string, o sockopt, v int) error {
	if err := s.kernelSocket(op); err != nil {
		return err
	}
	return kernel.NewOpError(op, s.subject, setsockoptInt(s.fd, o, v))
}

func (s *Socket) getOpt(op string, o sockopt) (int, error) {
	if err := s.kernelSocket(op); err != nil {
		return 0, err
	}
	v, err := getsockoptInt(s.fd, o)
	return v, kernel.NewOpError(op, s.subject, err)
}

// kernelSocket fails for sockets that have no kernel socket to set options on.
func (s *Socket) kernelSocket(op string) error {
	switch {
	case s.closed:
		return s.errClosed(op)
	case s.backend != nil:
		return s.errInMemory(op)
	}
	return nil
}
