// Package xsktest joins two in-memory xsk sockets into a wire, so code on top of xsk (the rr client and server)
// runs in unit tests without privileges, a device or an XDP program.
//
// Each socket's UMEM and rings are ordinary Go memory (xsk.NewInMemory); a fake kernel stands behind them and
// behaves like the copy-mode kernel path on veth: a TX kick moves up to 32 descriptors from the socket's TX ring
// into the peer's RX ring (copying the bytes between the two UMEMs into a frame taken from the peer's fill ring,
// at frame start + 256 + headroom) and posts their addresses on the sender's completion ring, answering EAGAIN
// when it left descriptors behind. It keeps the kernel's XDP_STATISTICS counters: a frame for a peer with an
// empty fill ring is dropped (RxDropped, RxFillRingEmptyDescs), one for a full RX ring too (RxRingFull), an
// invalid TX descriptor is skipped without completion (TxInvalidDescs), a kick with nothing to send is counted
// (TxRingEmptyDescs). RX kicks do nothing, as in copy mode; Pump delivers everything pending without a kick.
//
// Each direction has its own lock, standing in for the kernel's per-socket TX mutex, so the two sockets may be
// driven from two goroutines.
package xsktest

import (
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/napilab/napilab/internal/xdp"
	"github.com/napilab/napilab/internal/xsk"
)

// kickBudget is how many TX descriptors one kick moves, like TX_BATCH_SIZE of the kernel's copy-mode sendmsg.
const kickBudget = 32

// Pair is two in-memory sockets, A and B, whose frames cross to each other. Close the Pair, not the sockets.
type Pair struct {
	A, B *xsk.Socket
	// Stamp, if set before traffic starts, is the clock of a steering program that stamps every frame it
	// delivers, as napilab's XDP program does (xdp.StampLen): the stamp goes in front of the frame in the UMEM.
	// Nil stands for a driver without XDP metadata: frames arrive unstamped.
	Stamp func() int64
	// OnKickRX, if set before traffic starts, runs in every RX kick of either socket, on the kicking thread: a
	// test stalls it there as the scheduler or the hypervisor would.
	OnKickRX func(s *xsk.Socket)
	ends     [2]end
	once     sync.Once
}

// end is one socket and the fake kernel's view of it.
type end struct {
	pair *Pair
	sock *xsk.Socket
	k    *xsk.KernelRings
	peer *end

	// mu serialises the direction from this socket's TX ring to the peer's RX ring: it guards this socket's TX
	// and completion rings, the peer's fill and RX rings, and the counters of both that this direction updates.
	mu    sync.Mutex
	stats xsk.Statistics // TX counters under mu, RX counters under peer.mu
	ready chan struct{}  // a token when frames arrived on the RX ring
}

// NewPair makes two sockets with configuration cfg, joined to each other.
func NewPair(cfg xsk.Config) (*Pair, error) {
	p := &Pair{}
	for i := range p.ends {
		e := &p.ends[i]
		e.pair, e.peer, e.ready = p, &p.ends[1-i], make(chan struct{}, 1)
		var err error
		if e.sock, e.k, err = xsk.NewInMemory(cfg, e); err != nil {
			return nil, err
		}
	}
	p.A, p.B = p.ends[0].sock, p.ends[1].sock
	return p, nil
}

// Pump delivers every frame waiting on either TX ring, as the kernel would without waiting for a kick, and
// returns how many it completed.
func (p *Pair) Pump() int {
	total := 0
	for i := range p.ends {
		e := &p.ends[i]
		e.mu.Lock()
		n, _ := e.transmit(e.sock.Config().TXSize, false)
		e.mu.Unlock()
		total += int(n)
	}
	return total
}

// Close closes both sockets once no kick is running.
func (p *Pair) Close() error {
	var err error
	p.once.Do(func() {
		p.lockBoth()
		defer p.unlockBoth()
		err = errors.Join(p.A.Close(), p.B.Close())
	})
	return err
}

func (p *Pair) lockBoth()   { p.ends[0].mu.Lock(); p.ends[1].mu.Lock() }
func (p *Pair) unlockBoth() { p.ends[1].mu.Unlock(); p.ends[0].mu.Unlock() }

// KickTX sends up to kickBudget frames; EAGAIN says some are left.
func (e *end) KickTX() error {
	e.mu.Lock()
	_, left := e.transmit(kickBudget, true)
	e.mu.Unlock()
	if left {
		return syscall.EAGAIN
	}
	return nil
}

// KickRX does nothing but call OnKickRX: in copy mode frames arrive without one.
func (e *end) KickRX() error {
	if f := e.pair.OnKickRX; f != nil {
		f(e.sock)
	}
	return nil
}

// WaitRX waits for the peer to deliver frames.
func (e *end) WaitRX(timeout time.Duration) (bool, error) {
	if timeout < 0 {
		<-e.ready
		return true, nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-e.ready:
		return true, nil
	case <-t.C:
		return false, nil
	}
}

// Stats returns the socket's counters.
func (e *end) Stats() (xsk.Statistics, error) {
	e.pair.lockBoth()
	defer e.pair.unlockBoth()
	return e.stats, nil
}

// transmit moves up to budget descriptors from e's TX ring to the peer and reports how many it completed and
// whether descriptors are left on the TX ring. Called with e.mu held.
func (e *end) transmit(budget uint32, kicked bool) (completed uint32, left bool) {
	tx, comp := e.k.TX, e.k.Completion
	n := tx.Peek(budget)
	if n == 0 {
		if kicked {
			e.stats.TxRingEmptyDescs++
		}
		return 0, false
	}
	// As in the kernel, a frame is sent only when its completion slot is reserved.
	if room := comp.Reserve(n); room < n {
		tx.Cancel(n - room)
		n = room
	}
	for i := range n {
		d := tx.Get(i)
		pkt := e.sock.Frame(d.Addr, d.Len)
		if d.Len == 0 || pkt == nil || d.Options != 0 {
			e.stats.TxInvalidDescs++
			continue
		}
		e.peer.receive(pkt)
		comp.Set(completed, d.Addr)
		completed++
	}
	comp.Cancel(n - completed)
	comp.Submit(completed)
	tx.Release(n)
	if tx.Peek(1) == 1 {
		tx.Cancel(1)
		left = true
	}
	return completed, left
}

// receive puts pkt on e's RX ring in a frame from e's fill ring, or counts why it could not. Called with
// e.peer.mu held.
func (e *end) receive(pkt []byte) {
	cfg := e.sock.Config()
	if uint32(len(pkt)) > cfg.MaxRXLen() {
		e.stats.RxDropped++
		return
	}
	fill, rx := e.k.Fill, e.k.RX
	var addr uint64
	for {
		if fill.Peek(1) == 0 {
			e.stats.RxDropped++
			e.stats.RxFillRingEmptyDescs++
			return
		}
		if addr = fill.Get(0); addr < cfg.UMEMSize() {
			break
		}
		fill.Release(1) // the kernel skips fill addresses outside the UMEM
	}
	if rx.Reserve(1) == 0 {
		fill.Cancel(1)
		e.stats.RxRingFull++
		return
	}
	rxAddr := e.sock.FrameAddr(e.sock.FrameIndex(addr)) + xsk.XDPPacketHeadroom + uint64(cfg.Headroom)
	copy(e.sock.Frame(rxAddr, uint32(len(pkt))), pkt)
	if e.pair.Stamp != nil {
		xdp.PutStamp(e.sock.Frame(rxAddr-xdp.StampLen, xdp.StampLen), e.pair.Stamp())
	}
	rx.Set(0, xsk.Desc{Addr: rxAddr, Len: uint32(len(pkt))})
	rx.Submit(1)
	fill.Release(1)
	select {
	case e.ready <- struct{}{}:
	default:
	}
}
