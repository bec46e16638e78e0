package xsk_test

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/xsk"
)

// scriptedKernel answers RX kicks from a script: on the kick numbered deliverAt it puts a frame on the RX ring,
// on stopAt it sets stop, and kicks listed in errs return that errno.
type scriptedKernel struct {
	rings     *xsk.KernelRings
	stop      *atomic.Bool
	kicks     int
	deliverAt int
	stopAt    int
	errs      map[int]error
}

func (k *scriptedKernel) KickTX() error { return nil }

func (k *scriptedKernel) KickRX() error {
	k.kicks++
	if k.kicks == k.deliverAt && k.rings.RX.Reserve(1) == 1 {
		k.rings.RX.Set(0, xsk.Desc{Addr: 0, Len: 60})
		k.rings.RX.Submit(1)
	}
	if k.kicks == k.stopAt {
		k.stop.Store(true)
	}
	return k.errs[k.kicks]
}

func (k *scriptedKernel) WaitRX(time.Duration) (bool, error) { return false, nil }
func (k *scriptedKernel) Stats() (xsk.Statistics, error)     { return xsk.Statistics{}, nil }

func TestSpinRX(t *testing.T) {
	for _, tc := range []struct {
		name                string
		deliverAt, stopAt   int
		errs                map[int]error
		stopBefore, preload bool
		wantKicks           uint32
		wantErr             error
		wantAgain           uint64
	}{
		{name: "empty ring: kicks up to the bound", wantKicks: 64},
		{name: "a frame on the ring: no kick", preload: true, wantKicks: 0},
		{name: "stopped: no kick", stopBefore: true, wantKicks: 0},
		{name: "a frame arrives on the 5th kick", deliverAt: 5, wantKicks: 5},
		{name: "stop set during the 7th kick", stopAt: 7, wantKicks: 7},
		{name: "backpressure counted, spin goes on", errs: map[int]error{2: syscall.EAGAIN, 3: syscall.EAGAIN},
			deliverAt: 10, wantKicks: 10, wantAgain: 2},
		{name: "an error ends the spin", errs: map[int]error{4: syscall.ENETDOWN}, wantKicks: 4,
			wantErr: syscall.ENETDOWN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stop atomic.Bool
			k := &scriptedKernel{stop: &stop, deliverAt: tc.deliverAt, stopAt: tc.stopAt, errs: tc.errs}
			s, rings, err := xsk.NewInMemory(xsk.DefaultConfig(), k)
			if err != nil {
				t.Fatal(err)
			}
			k.rings = rings
			if tc.preload {
				k.deliverAt = 0
				rings.RX.Reserve(1)
				rings.RX.Set(0, xsk.Desc{Len: 60})
				rings.RX.Submit(1)
			}
			stop.Store(tc.stopBefore)
			before := s.KickStats().RX
			n, err := s.SpinRX(&stop, 64)
			if n != tc.wantKicks || k.kicks != int(tc.wantKicks) {
				t.Errorf("SpinRX made %d kicks (the kernel saw %d), want %d", n, k.kicks, tc.wantKicks)
			}
			if got := s.KickStats().RX - before; got != uint64(tc.wantKicks) {
				t.Errorf("KickStats counts %d RX kicks, want %d", got, tc.wantKicks)
			}
			if got := s.KickStats().Again; got != tc.wantAgain {
				t.Errorf("KickStats counts %d EAGAIN answers, want %d", got, tc.wantAgain)
			}
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("SpinRX: %v", err)
			case tc.wantErr != nil:
				var op *kernel.OpError
				if !errors.Is(err, tc.wantErr) || !errors.As(err, &op) {
					t.Errorf("SpinRX error = %v, want an OpError wrapping %v", err, tc.wantErr)
				}
			}
			ready := tc.preload || (tc.deliverAt > 0 && tc.deliverAt <= int(tc.wantKicks))
			if got := s.RX().Peek(1) == 1; got != ready {
				t.Errorf("after SpinRX the RX ring holds a frame: %v, want %v", got, ready)
			}
		})
	}
}

func TestSpinRXDoesNotAllocate(t *testing.T) {
	var stop atomic.Bool
	k := &scriptedKernel{stop: &stop}
	s, rings, err := xsk.NewInMemory(xsk.DefaultConfig(), k)
	if err != nil {
		t.Fatal(err)
	}
	k.rings = rings
	if a := testing.AllocsPerRun(100, func() { _, _ = s.SpinRX(&stop, 16) }); a != 0 {
		t.Fatalf("SpinRX allocates %.1f times per spin", a)
	}
}
