package labsuite

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/napilab/napilab/internal/lab/labtest"
	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/sysknob"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testenv"
	"github.com/napilab/napilab/internal/usage"
)

// busyPollBed is the lab's virtio pair with the server NIC's queue 0 in napilab's threaded-busy-poll mode, its
// kthread pinned to the last CPU at SCHED_FIFO 50, restored (from the journal) when the test ends if the test did
// not restore it itself.
type busyPollBed struct {
	bed     *testbed.Testbed
	sys     *napi.System
	plan    *napi.Plan
	applied *napi.Applied
	journal string
	before  netdev.NAPI
}

func applyThreadedBusyPoll(t *testing.T) *busyPollBed {
	t.Helper()
	testenv.RequireKernel(t, 6, 19, "threaded NAPI busy poll")
	bed := labtest.Virtio(t, testbed.Topology{Neighbours: true})
	testenv.Exclusive(t) // the kthread spins a CPU
	if runtime.NumCPU() < 2 {
		t.Fatalf("the lab has %d CPU; the busy-polling kthread needs one of its own (napilab lab test --vcpus 2)", runtime.NumCPU())
	}
	sys, err := napi.OpenNetNS(napi.NetNS{Path: bed.B.NetNSPath()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	m, err := napi.Preset(string(napi.ThreadedBusyPoll), bed.B.Link)
	if err != nil {
		t.Fatal(err)
	}
	m.PollCPU = runtime.NumCPU() - 1 // RT throttling stays on: the others keep 5% of that CPU
	target, err := sys.Resolve(m)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := napi.Build(m, target)
	if err != nil {
		t.Fatal(err)
	}
	b := &busyPollBed{bed: bed, sys: sys, plan: plan, journal: filepath.Join(t.TempDir(), "mode.journal"),
		before: target.Queues[0].NAPI}
	if b.applied, err = sys.Apply(t.Context(), plan, napi.ApplyOptions{Journal: b.journal}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := os.Stat(b.journal); err == nil {
			if _, err := napi.RestoreFile(b.journal, napi.OpenNetNS, napi.RestoreOptions{}); err != nil {
				t.Errorf("restore after the test: %v", err)
			}
		}
	})
	return b
}

// napiNow reads the mode's NAPI back through napi-get.
func (b *busyPollBed) napiNow(t *testing.T) netdev.NAPI {
	t.Helper()
	n, err := b.sys.Netdev.NAPI(b.before.ID)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLabThreadedBusyPollEndToEnd is the seed's feature on a real driver: napilab's threaded-busy-poll mode on the
// server NIC's queue gives its NAPI a kthread in busy-poll, scheduled as asked, that spins while idle once a packet
// has scheduled it; napilab rr with poll driver none (no syscall on the receive path) gets every request
// answered; restore ends with threaded disabled, no kthread, and the NAPI's settings as they were.
func TestLabThreadedBusyPollEndToEnd(t *testing.T) {
	b := applyThreadedBusyPoll(t)
	n := b.napiNow(t)
	if n.Threaded != netdev.ThreadedBusyPoll || !n.HasPID {
		t.Fatalf("napi-get after apply: %+v; want threaded=busy-poll with a kthread pid", n)
	}
	pid := int(n.PID)
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if want := fmt.Sprintf("napi/%s-%d\n", b.bed.B.Link, n.ID); err != nil || string(comm) != want {
		t.Fatalf("pid %d is %q (%v), not the NAPI kthread %q", pid, comm, err, want)
	}
	host, err := sysknob.Host()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	sched, err := host.Sched(pid)
	if err != nil {
		t.Fatal(err)
	}
	if sched.Policy != sysknob.PolicyFIFO || sched.Priority != napi.DefaultFIFO || !sched.CPUs.Equal(sysknob.CPUs(b.plan.PollCPU)) {
		t.Fatalf("kthread %d is %v %d on CPUs %s; want SCHED_FIFO %d on CPU %d", pid, sched.Policy, sched.Priority,
			sched.CPUs, napi.DefaultFIFO, b.plan.PollCPU)
	}

	// rr with poll driver none on both ends, both pinned away from the poll CPU: the kthread alone polls the
	// server's queue. Copy mode: rr with both ends zero copy stalls intermittently in the lab (see docs/lab.md);
	// the kthread polls the same NAPI either way, and native XDP copies each request to the socket inside its poll.
	appCPU := 0
	res, st, info := rrExchange(t, b.bed, rr.PollNone, appCPU, 1000)
	if res.Answered != 1000 || res.Lost != 0 || st.Replied != 1000 || st.Malformed != 0 {
		t.Fatalf("rr over threaded busy poll: client %d answered, %d lost; server %+v; want all 1000 answered",
			res.Answered, res.Lost, st)
	}
	if info.XDPMode != "native" || info.NAPIID != n.ID {
		t.Errorf("server link %+v: want native XDP and the socket on napi %d", info, n.ID)
	}
	t.Logf("rr over virtio_net, threaded busy poll, poll none: p50 %v p99 %v", time.Duration(res.Latency.P50), time.Duration(res.Latency.P99))

	// Idle now (no request is in flight), the kthread must go on polling: it accumulates CPU time while the
	// device receives next to nothing, and it is always runnable. A kthread that slept when idle (threaded=enabled)
	// would need thousands of packets for a quarter second of CPU.
	rxBefore := rxPackets(t, b.bed.B)
	first, err := usage.Take(usage.Spec{Tasks: map[string]int{"napi": pid}})
	if err != nil {
		t.Fatal(err)
	}
	// Its state is sampled as it goes: one sample can catch it in S (in the lab it once was, while taking 86 %
	// of its CPU), but a kthread that sleeps when idle is never seen runnable without traffic.
	var last usage.Snapshot
	states := map[string]int{}
	waitFor(t, time.Minute, "the idle kthread using a quarter second of CPU", func() (bool, error) {
		states[taskState(t, pid)]++
		last, err = usage.Take(usage.Spec{Tasks: map[string]int{"napi": pid}})
		return last.Tasks["napi"].OnCPU-first.Tasks["napi"].OnCPU >= 250*time.Millisecond, err
	})
	states[taskState(t, pid)]++
	if rx := rxPackets(t, b.bed.B) - rxBefore; rx > 100 {
		t.Errorf("%s received %d packets during the idle window; the spin must not be traffic", b.bed.B.Link, rx)
	}
	if states["R"] == 0 {
		t.Errorf("the idle busy-polling kthread was never seen runnable (states %v), want R: it never sleeps", states)
	}
	u := usage.Sub(first, last)
	t.Logf("idle kthread: %v on CPU in %v of wall time (%.0f%% of its CPU; RT throttling leaves others 5%%)",
		u.Tasks["napi"].OnCPU.Round(time.Millisecond), u.Wall.Round(time.Millisecond), u.Tasks["napi"].Percent)

	// Restore while the server's socket is still bound, as a sweep does between modes (zero copy would be safe
	// too, napilab binds it only with need_wakeup: see TestLabZeroCopyNeedsWakeup).
	if _, err := napi.RestoreFile(b.journal, napi.OpenNetNS, napi.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	after := b.napiNow(t)
	if after.Threaded != netdev.ThreadedDisabled || after.HasPID {
		t.Fatalf("napi-get after restore: %+v; want threaded=disabled and no pid", after)
	}
	if after != b.before {
		t.Errorf("restore left the NAPI %+v, it was %+v", after, b.before)
	}
	waitFor(t, 30*time.Second, "the kthread exiting", func() (bool, error) {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		return os.IsNotExist(err), nil
	})
}

// rrExchange runs count requests of napilab rr from host A to a server on host B with poll driver poll, every
// spinning loop pinned to cpu, and returns the client's result, the server's counters and the server's link.
func rrExchange(t *testing.T, bed *testbed.Testbed, poll rr.PollDriver, cpu int, count uint64) (*rr.ClientResult, rr.ServerStats, rr.LinkInfo) {
	t.Helper()
	ctx := t.Context()
	serverLink, clientLink := rr.DefaultLink(bed.B.Link), rr.DefaultLink(bed.A.Link)
	serverLink.Ring, serverLink.Bind = 4096, rr.BindCopy
	clientLink.PeerIP, clientLink.Ring, clientLink.Bind = bed.B.IPv4.Addr(), 4096, rr.BindCopy
	svc := rr.DefaultService()
	serverThreads := rr.Threads{Poll: poll, CPUs: []int{cpu}}
	// A closed loop of 32 requests in flight and a generous reply timeout: two spinning loops share one emulated
	// CPU, so replies come late, but none may be lost. An open loop would not do: when the emulated device falls
	// behind, its transmit queue fills (copy-mode kicks answer EAGAIN), the server's 512-entry TX ring with it,
	// and the server drops replies it has no slot for (seen with one host CPU busy: 140 of 1000, tx_full 140).
	// 32 in flight can never fill a ring, however slow the machine.
	load := rr.DefaultWorkload()
	load.Period, load.Outstanding, load.Count, load.Timeout = 0, 32, count, 30*time.Second
	load.Duration, load.Warmup, load.Interval = 0, 0, 0
	clientThreads := rr.Threads{Poll: poll, CPUs: []int{cpu}, Sender: rr.SenderInline, Colocated: 1}
	labtest.WaitQueueFree(t, bed.A, 0)
	labtest.WaitQueueFree(t, bed.B, 0)
	var sl, cl *rr.Link
	if err := bed.B.Do(func() (err error) { sl, err = rr.OpenLink(ctx, serverLink); return }); err != nil {
		t.Fatalf("server link: %v", err)
	}
	t.Cleanup(func() { sl.Close() })
	if err := bed.A.Do(func() (err error) { cl, err = rr.OpenLink(ctx, clientLink); return }); err != nil {
		t.Fatalf("client link: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	srv, err := rr.NewServer(sl.Sock, svc, serverThreads, rr.ServerOptions{Local: sl.Info.Local})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := rr.NewClient(cl.Sock, load, clientThreads, rr.ClientOptions{Local: cl.Info.Local, Peer: cl.Info.Peer, UsableCPUs: runtime.NumCPU()})
	if err != nil {
		t.Fatal(err)
	}
	res, st, err := rr.Exchange(ctx, srv, cli)
	if err != nil {
		t.Fatal(err)
	}
	return res, st, sl.Info
}

// rxPackets is the device's received-packet counter, read through rtnetlink in its namespace.
func rxPackets(t *testing.T, h *testbed.Host) uint64 {
	t.Helper()
	var n uint64
	if err := h.Do(func() error {
		l, err := netlink.LinkByName(h.Link)
		if err == nil {
			n = l.Attrs().Statistics.RxPackets
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// taskState is the state letter of /proc/<pid>/stat (R running, S sleeping, D uninterruptible, ...).
func taskState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+3 > len(b) {
		t.Fatalf("malformed /proc/%d/stat: %q", pid, b)
	}
	return string(b[i+2 : i+3])
}
