package labsuite

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/netdev"
)

// TestLabBusyPollerTCP is the kernel's busy_poller selftest (tools/testing/selftests/net/busy_poller.c, run by
// busy_poll_test.sh as test_busypoll_with_napi_threaded) in Go: a TCP sink reading through epoll with
// EPIOCSPARAMS (busy_poll_usecs 0, budget 16, prefer_busy_poll 0, as the threaded case passes them) receives
// 1 MiB of random bytes from the other namespace while the sink NIC's NAPI busy-polls in its kthread, and what
// arrives is what was sent. The selftest runs on netdevsim; this one on virtio_net, and it also checks that the
// bytes came through that NAPI (SO_INCOMING_NAPI_ID) and that the NAPI stayed in busy poll throughout.
func TestLabBusyPollerTCP(t *testing.T) {
	b := applyThreadedBusyPoll(t)
	checkEpollParams(t)
	const port = 48675 // the selftest's SERVER_PORT
	sent := make([]byte, 1<<20)
	if _, err := rand.Read(sent); err != nil {
		t.Fatal(err)
	}
	sink, err := listenTCP(b.bed.B.Do, netip.AddrPortFrom(b.bed.B.IPv4.Addr(), port))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sink)
	type result struct {
		got    []byte
		napiID int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		got, id, err := pollerSink(sink, time.Minute)
		done <- result{got, id, err}
	}()

	var conn net.Conn
	if err := b.bed.A.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", fmt.Sprintf("%s:%d", b.bed.B.IPv4.Addr(), port), 30*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(sent); err != nil {
		t.Fatalf("send 1 MiB: %v", err)
	}
	conn.Close()
	r := <-done
	if r.err != nil {
		t.Fatalf("sink: %v", r.err)
	}
	if sha256.Sum256(r.got) != sha256.Sum256(sent) {
		t.Fatalf("the sink received %d bytes that differ from the 1 MiB sent", len(r.got))
	}
	if uint32(r.napiID) != b.before.ID {
		t.Errorf("the connection came in on NAPI %d, want the busy-polling %d", r.napiID, b.before.ID)
	}
	if n := b.napiNow(t); n.Threaded != netdev.ThreadedBusyPoll || !n.HasPID {
		t.Errorf("after the transfer the NAPI is %+v; want it still in threaded busy poll", n)
	}
}

// listenTCP opens a non-blocking listening TCP socket on addr inside the namespace do runs in.
func listenTCP(do func(func() error) error, addr netip.AddrPort) (int, error) {
	fd := -1
	err := do(func() (err error) {
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		sa := &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return err
		}
		if err := unix.Bind(fd, sa); err != nil {
			return err
		}
		return unix.Listen(fd, 1)
	})
	if err != nil && fd >= 0 {
		unix.Close(fd)
	}
	return fd, err
}

// epollParams encodes struct epoll_params (u32 busy_poll_usecs, u16 busy_poll_budget, u8 prefer_busy_poll, u8
// pad) in the byte order of the machine: x/sys has the ioctl number but not the struct.
func epollParams(usecs uint32, budget uint16, prefer bool) []byte {
	p := make([]byte, 8)
	binary.NativeEndian.PutUint32(p, usecs)
	binary.NativeEndian.PutUint16(p[4:], budget)
	if prefer {
		p[6] = 1
	}
	return p
}

// checkEpollParams proves the kernel reads epollParams' bytes as struct epoll_params: it refuses a
// prefer_busy_poll of 2 and a non-zero pad byte, and takes the selftest's values.
func checkEpollParams(t *testing.T) {
	t.Helper()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	bad := epollParams(0, 16, false)
	bad[6] = 2
	padded := epollParams(0, 16, false)
	padded[7] = 1
	for _, p := range [][]byte{bad, padded} {
		if err := unix.IoctlSetString(ep, unix.EPIOCSPARAMS, string(p)); !errors.Is(err, unix.EINVAL) {
			t.Fatalf("EPIOCSPARAMS %x: %v, want EINVAL", p, err)
		}
	}
	if err := unix.IoctlSetString(ep, unix.EPIOCSPARAMS, string(epollParams(0, 16, false))); err != nil {
		t.Fatalf("EPIOCSPARAMS with the selftest's values: %v", err)
	}
}

// pollerSink does what busy_poller's run_poller does: an edge-triggered epoll set with EPIOCSPARAMS, accept one
// connection and read it to the end. It returns the bytes and the connection's SO_INCOMING_NAPI_ID.
func pollerSink(listen int, limit time.Duration) ([]byte, int, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, 0, err
	}
	defer unix.Close(ep)
	// IoctlSetString passes a pointer to the string's bytes (plus a NUL the kernel does not read): the 8-byte
	// struct without package unsafe.
	if err := unix.IoctlSetString(ep, unix.EPIOCSPARAMS, string(epollParams(0, 16, false))); err != nil {
		return nil, 0, fmt.Errorf("EPIOCSPARAMS: %w", err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, listen, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(listen)}); err != nil {
		return nil, 0, err
	}
	var got bytes.Buffer
	buf := make([]byte, 64<<10)
	conn, napiID := -1, 0
	defer func() {
		if conn >= 0 {
			unix.Close(conn)
		}
	}()
	events := make([]unix.EpollEvent, 8) // the selftest's MAX_EVENTS
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		n, err := unix.EpollWait(ep, events, 1000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		for _, ev := range events[:n] {
			if int(ev.Fd) == listen {
				if conn >= 0 {
					continue
				}
				if conn, _, err = unix.Accept4(listen, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC); err != nil {
					return nil, 0, fmt.Errorf("accept: %w", err)
				}
				if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, conn, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(conn)}); err != nil {
					return nil, 0, err
				}
				continue
			}
			for { // edge-triggered: drain until EAGAIN
				m, err := unix.Read(conn, buf)
				if m > 0 {
					got.Write(buf[:m])
					continue
				}
				if errors.Is(err, unix.EAGAIN) {
					break
				}
				if err != nil {
					return nil, 0, fmt.Errorf("read: %w", err)
				}
				napiID, err = unix.GetsockoptInt(conn, unix.SOL_SOCKET, unix.SO_INCOMING_NAPI_ID)
				return got.Bytes(), napiID, err // EOF
			}
		}
	}
	return nil, 0, fmt.Errorf("no end of stream within %v (%d bytes so far)", limit, got.Len())
}
