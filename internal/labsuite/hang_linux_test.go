package labsuite

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/lab"
	"github.com/napilab/napilab/internal/lab/guest"
	"github.com/napilab/napilab/internal/lab/labtest"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testenv"
	"github.com/napilab/napilab/internal/xdp"
	"github.com/napilab/napilab/internal/xsk"
)

// The hang (lab.md §11, pinned down here). An AF_XDP socket bound zero-copy to a virtio_net queue WITHOUT
// need_wakeup, its fill ring empty, the queue's NAPI threaded (busy-poll or enabled): napi-set threaded=disabled
// never returns. The caller sits in D state in napi_set_threaded (napi_stop_kthread's msleep loop, waiting for the
// kthread to let go of the NAPI) while the kthread stays runnable: without need_wakeup the driver answers an empty
// fill ring by keeping the NAPI scheduled to retry, so the poll never completes and the kthread never looks at the
// state it is asked to leave. With need_wakeup the driver sets the ring's wakeup flag and completes the NAPI
// instead, and the same sequence finishes; so it does in copy mode, and when the application keeps the fill ring
// supplied. Closing the socket first is no cure: its pool is torn down by deferred work that needs the device's
// instance lock, which the waiting napi-set holds, so it joins the hang.
//
// napilab's protection is in package xsk: zero-copy needs need_wakeup (Config.Validate refuses it otherwise, and
// auto mode settles for copy mode), so no napilab datapath can get into this state. TestLabZeroCopyNeedsWakeup
// checks that on virtio_net in every lab run; TestLabHang reproduces the hang itself, only when asked
// (NAPILAB_LAB_HANG=1), in a guest of its own whose watchdog turns the hang into evidence.

const (
	envHang  = "NAPILAB_LAB_HANG" // "1": run the hang reproduction (it takes the guest down)
	hangPort = 54399
	// hangFrames is the UMEM of the starved socket: fewer frames than the virtio rx ring (256) can take, posted
	// once and never returned.
	hangFrames = 64
)

// TestLabHang is the host side: it boots a guest that runs TestLabZeroCopyNeedsWakeup (the control: with
// need_wakeup the sequence completes) and then TestLabHangGuest, and asserts that the guest watchdog had to stop
// the latter with napi_set_threaded blocked in the kernel. Opt-in: it hangs a kernel on purpose and costs a boot.
func TestLabHang(t *testing.T) {
	if testenv.InLab() {
		t.Skip("the host side boots a lab of its own; the lab does not nest")
	}
	if os.Getenv(envHang) != "1" {
		t.Skipf("reproduces a kernel hang in a throwaway qemu guest: set %s=1 to run it (make lab-hang)", envHang)
	}
	testenv.RequirePriv(t)
	if err := lab.CheckHostTools(); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec := lab.Spec{
		NICs: 2, ZeroCopy: true,
		Timeout: 2 * time.Minute, Watchdog: time.Minute, // the hang comes seconds after boot
		Steps: []lab.Step{{Path: exe, Args: []string{"-test.run=^(TestLabZeroCopyNeedsWakeup|TestLabHangGuest)$", "-test.v",
			"-test.timeout=0"},
			Env: []string{envHang + "=1"}}},
		Progress: testWriter{t},
	}
	res, err := lab.Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	con := string(res.Console)
	if !strings.Contains(con, "--- PASS: TestLabZeroCopyNeedsWakeup") {
		t.Errorf("the control (the same sequence with need_wakeup) did not pass first")
	}
	if res.ExitCode != guest.ExitWatchdog || !strings.Contains(con, hangMarker) {
		t.Fatalf("kernel %s: exit code %d, want %d (the guest watchdog stopping the hung napi-set); console:\n%s",
			res.KernelRelease, res.ExitCode, guest.ExitWatchdog, con)
	}
	if !strings.Contains(con, "napi_set_threaded") {
		t.Errorf("the watchdog's stack dump does not show the caller blocked in napi_set_threaded; console:\n%s", con)
	}
	_, dump, _ := strings.Cut(con, "napilab-init: watchdog")
	if end := strings.Index(dump, "SIGQUIT"); end > 0 {
		dump = dump[:end]
	}
	t.Logf("kernel %s hangs as docs/lab.md describes; the guest watchdog's dump:\n%s", res.KernelRelease, dump)
}

// TestLabZeroCopyNeedsWakeup is napilab's protection against the hang, on the lab's virtio_net: zero-copy
// without need_wakeup is refused, auto mode without it settles for copy mode, and with need_wakeup (napilab's
// default) the very sequence that hangs completes, as it does in copy mode.
func TestLabZeroCopyNeedsWakeup(t *testing.T) {
	testenv.RequireKernel(t, 6, 19, "threaded NAPI busy poll")
	t.Run("auto mode", func(t *testing.T) {
		bed := labtest.Virtio(t, testbed.Topology{})
		for _, wakeup := range []bool{true, false} {
			cfg := xsk.DefaultConfig()
			cfg.NeedWakeup = wakeup
			s, err := openXSK(t, bed.B, cfg)
			if err != nil {
				t.Fatal(err)
			}
			zc := s.ZeroCopy()
			s.Close()
			if zc != wakeup {
				t.Errorf("auto mode with need_wakeup=%v bound zero-copy=%v on virtio_net; want zero-copy only with need_wakeup", wakeup, zc)
			}
		}
	})
	t.Run("zero copy without need_wakeup", func(t *testing.T) {
		bed := labtest.Virtio(t, testbed.Topology{})
		cfg := xsk.DefaultConfig()
		cfg.Mode, cfg.NeedWakeup = xsk.ModeZeroCopy, false
		s, err := openXSK(t, bed.B, cfg)
		if err == nil {
			s.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "zero-copy without need_wakeup is refused") {
			t.Fatalf("zero-copy without need_wakeup: %v; want the refusal", err)
		}
	})
	testenv.Exclusive(t) // the starved cases run the NAPI in threaded busy poll
	t.Run("zero copy with need_wakeup, starved", func(t *testing.T) {
		starve(t, xsk.ModeZeroCopy, true).threadedOff(t)
	})
	t.Run("copy mode, starved", func(t *testing.T) {
		starve(t, xsk.ModeCopy, false).threadedOff(t)
	})
}

// TestLabHangGuest is the guest side (see TestLabHang): the starved case, bound zero-copy without need_wakeup,
// which napilab otherwise refuses. (An application that keeps the fill ring supplied does not avoid it reliably:
// it hung in one of the lab's runs too.)
func TestLabHangGuest(t *testing.T) {
	if os.Getenv(envHang) != "1" {
		t.Skipf("reproduces a kernel hang: runs only in a guest of its own, booted by TestLabHang (%s=1)", envHang)
	}
	testenv.RequireKernel(t, 6, 19, "threaded NAPI busy poll")
	testenv.Exclusive(t)
	sc := starve(t, xsk.ModeZeroCopy, false)
	done := make(chan error, 1)
	go func() { done <- sc.nd.SetNAPI(sc.napi.ID, netdev.NAPIConfig{Threaded: new(netdev.ThreadedDisabled)}) }()
	t.Logf("%s (napi %d); the kernel hangs here", hangMarker, sc.napi.ID)
	err := <-done
	st, _ := sc.sock.Stats()
	t.Fatalf("napi-set threaded=disabled returned (%v, socket %+v): this kernel no longer hangs; update docs/lab.md", err, st)
}

// hangMarker is logged right before the napi-set that hangs.
const hangMarker = "napi-set threaded=disabled sent on a starved zero-copy queue without need_wakeup"

// scene is a virtio queue in threaded busy poll with an AF_XDP socket whose fill ring the kernel found empty.
type scene struct {
	bed  *testbed.Testbed
	nd   *netdev.Client
	napi netdev.NAPI
	sock *xsk.Socket
	prog *xdp.Program

	received []uint64 // addresses of the frames taken off the RX ring and not given back
}

// starve builds the lab.md §11 state on the lab's second virtio NIC: an AF_XDP socket in mode on rx queue 0 with
// hangFrames frames posted to its fill ring once, the steering program, the NAPI in threaded busy poll, and
// traffic until the kernel reports the fill ring empty.
func starve(t *testing.T, mode xsk.Mode, needWakeup bool) *scene {
	t.Helper()
	bed := labtest.Virtio(t, testbed.Topology{Neighbours: true})
	nd, n := rxNAPI(t, bed.B)
	sc := &scene{bed: bed, nd: nd, napi: n}
	cfg := xsk.DefaultConfig()
	cfg.Mode, cfg.FrameSize, cfg.FrameCount, cfg.NeedWakeup = mode, 2048, 2*hangFrames, needWakeup
	cfg.HazardousZeroCopyWithoutWakeup = mode == xsk.ModeZeroCopy && !needWakeup
	cfg.FillSize, cfg.RXSize, cfg.TXSize, cfg.CompletionSize = hangFrames, hangFrames, hangFrames, hangFrames
	var err error
	if sc.prog, err = xdp.Load(xdp.Spec{Port: hangPort, Queues: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.prog.Close() })
	if err := bed.B.Do(func() (err error) { _, err = sc.prog.Attach(bed.B.Ifindex, xdp.ModeNative); return err }); err != nil {
		t.Fatal(err)
	}
	if sc.sock, err = openXSK(t, bed.B, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.sock.Close() })
	if sc.sock.ZeroCopy() != (mode == xsk.ModeZeroCopy) {
		t.Fatalf("socket bound zero-copy=%v in %v mode", sc.sock.ZeroCopy(), mode)
	}
	if err := sc.prog.Register(0, sc.sock.FD()); err != nil {
		t.Fatal(err)
	}
	if got := sc.sock.FillAll(sc.sock.FramePool(0, hangFrames)); got != hangFrames {
		t.Fatalf("posted %d frames to the fill ring, want %d", got, hangFrames)
	}
	if err := nd.SetNAPI(n.ID, netdev.NAPIConfig{Threaded: new(netdev.ThreadedBusyPoll)}); err != nil {
		t.Fatal(err)
	}
	// The frames were posted after the bind, when the driver had already found the ring empty and set
	// need_wakeup: a zero-copy driver takes them only when woken (ndo_xsk_wakeup schedules the NAPI).
	if err := sc.sock.KickRX(); err != nil {
		t.Fatal(err)
	}
	// Whatever happens below, the NAPI must not stay busy-polling: its kthread would spin for the rest of the run.
	// (In the hang case this cleanup never runs; the guest is done then anyway.)
	t.Cleanup(func() { nd.SetNAPI(n.ID, netdev.NAPIConfig{Threaded: new(netdev.ThreadedDisabled)}) })
	// A few more datagrams than frames: enough to run the fill ring dry, few enough to fit the sender's socket
	// buffer. (Once eth1 has no buffer posted, qemu holds back eth0's transmit queue: its NICs share a hub with
	// flow control, so more would block the sender, not reach the socket.)
	sendUDP(t, bed.A, bed.B, hangPort, hangFrames+hangFrames/4, 64)
	// Starved: every posted frame came back on the RX ring (none is returned), and the kernel has since looked
	// for another one. (The empty count alone is not enough: a zero-copy bind already counts the ring slots it
	// could not fill.)
	rx := sc.sock.RX()
	waitFor(t, time.Minute, "the traffic using up the fill ring", func() (bool, error) {
		n := rx.Peek(hangFrames - uint32(len(sc.received)))
		for i := range n {
			sc.received = append(sc.received, rx.Get(i).Addr) // claimed, not released: the frames stay out
		}
		st, err := sc.sock.Stats()
		return len(sc.received) == hangFrames && (st.RxFillRingEmptyDescs > 0 || st.RxDropped > 0), err
	})
	st, _ := sc.sock.Stats()
	t.Logf("%v socket: all %d frames received and kept, statistics %+v", mode, len(sc.received), st)
	return sc
}

// threadedOff switches the NAPI back to threaded=disabled, which must complete and remove the kthread.
func (sc *scene) threadedOff(t *testing.T) {
	t.Helper()
	if err := sc.nd.SetNAPI(sc.napi.ID, netdev.NAPIConfig{Threaded: new(netdev.ThreadedDisabled)}); err != nil {
		t.Fatal(err)
	}
	n, err := sc.nd.NAPI(sc.napi.ID)
	if err != nil || n.Threaded != netdev.ThreadedDisabled || n.HasPID {
		t.Fatalf("after threaded=disabled: %+v, %v; want no kthread", n, err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
