package trace

import (
	"os"
	"runtime"
	"testing"

	"github.com/napilab/napilab/internal/lab/labtest"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testenv"
)

// The lab's virtio NICs have what veth lacks: IRQs, a NAPI id on the AF_XDP socket (so busy polling reaches the
// NAPI), and a kernel that runs fentry and threaded busy poll. These tests skip outside the lab.
//
// They are about what the tracers see, not about the datapath: qemu without KVM on a loaded host drops replies
// now and then (the server finds its copy-mode TX ring full; labsuite's threaded busy poll test fails the same
// way, before and after this package, once the host's load average passes the CPU count), and the kick counts
// and pollers the assertions compare do not depend on every request being answered.

// virtioBench is newBench on the lab's NICs, where lost requests are logged rather than failed.
func virtioBench(t *testing.T, bed *testbed.Testbed, poll rr.PollDriver, tune ...func(*bench)) *bench {
	t.Helper()
	return newBench(t, bed, poll, append(tune, func(b *bench) { b.lossOK = true })...)
}

// TestLabXSKRecvmsgCountsKicks: fentry/fexit on xsk_recvmsg, the seed's bpftrace histogram, counts exactly the
// recvfrom kicks rr's sockets made.
func TestLabXSKRecvmsgCountsKicks(t *testing.T) {
	bed := labtest.Virtio(t, testbed.Topology{})
	b := virtioBench(t, bed, rr.PollInline)
	tr, err := NewXSKRecvTracer(os.Getpid(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	cli, srv := b.exchange(t)
	x, err := tr.Read()
	if err != nil {
		t.Fatal(err)
	}
	logReport(t, x)
	if want := cli.RX + srv.RX; x.Calls != want || want == 0 {
		t.Errorf("xsk_recvmsg ran %d times; rr's sockets made %d recvfrom kicks (client %d, server %d)", x.Calls,
			want, cli.RX, srv.RX)
	}
	if x.Time.Count() != x.Calls || x.Total <= 0 {
		t.Errorf("histogram holds %d of %d calls, total %v", x.Time.Count(), x.Calls, x.Total)
	}
}

// TestLabBusyPollRecordsTheApp: with busy-poll on the server NIC's queue and SO_BUSY_POLL on its socket, the
// server's own thread polls the NAPI from its recvfrom kicks, and the tracer names it as a busy poller. Who takes
// the packets is what the attestation reports, not what this test asserts: in the lab (qemu without KVM) the
// device IRQ and the gro_flush_timeout timer keep delivering in softirq while the application's busy polls find
// the ring empty, with SO_PREFER_BUSY_POLL or without; the attestation then disagrees with busy-poll, which is
// the point of having one.
func TestLabBusyPollRecordsTheApp(t *testing.T) {
	bed := labtest.Virtio(t, testbed.Topology{})
	ob := newObserver(t)
	b := virtioBench(t, bed, rr.PollInline, func(b *bench) { b.server.BusyPoll.Usec = 400 })
	applyMode(t, bed, "busy-poll", 0)
	obs, _ := observe(t, ob, b)
	a := obs.Attest()
	t.Logf("%s; Check: %q", a.Verdict, Check("busy-poll", a))
	var busy Poller
	for _, p := range obs.NAPIs()[0].Pollers {
		if p.Kind == KindBusyPoll && p.Comm == "rr-server" {
			busy = p
		}
	}
	if busy.Polls == 0 {
		t.Fatalf("the rr-server thread's busy polls were not recorded: %+v", obs.NAPIs()[0].Pollers)
	}
	if th, ok := obs.Thread(busy.TID); !ok || !th.Poller || th.Comm != "rr-server" {
		t.Errorf("the busy poller's scheduling was not recorded from its first poll: %+v", obs.Threads)
	}
	if (Check("busy-poll", a) == "") != (a.Kind == KindBusyPoll) {
		t.Errorf("Check(busy-poll) = %q for an attestation of kind %s", Check("busy-poll", a), a.Kind)
	}
}

// TestLabInterruptsIRQs: under interrupts the server NIC's queue IRQ fires and softirq polls; the device's IRQs
// are found by name and counted by irq_handler_entry, exactly as /proc/interrupts counts them.
func TestLabInterruptsIRQs(t *testing.T) {
	bed := labtest.Virtio(t, testbed.Topology{})
	ob := newObserver(t)
	b := virtioBench(t, bed, rr.PollInline)
	applyMode(t, bed, "interrupts", 0)
	dev, err := ResolveDevice(bed.B.NetNSPath(), bed.B.Link)
	if err != nil {
		t.Fatal(err)
	}
	if len(dev.IRQs) == 0 {
		t.Fatalf("no IRQ found for %+v", dev)
	}
	var w irqWindow
	obs := w.observe(t, ob, dev.Target(), func() { b.exchange(t) })
	a := obs.Attest()
	t.Logf("%s; %d IRQs for 1000 requests (%v)", a.Verdict, a.IRQs, dev.IRQs)
	if a.Kind != KindSoftirq || a.IRQs == 0 || a.IRQSource != IRQSourceBPF || Check("interrupts", a) != "" {
		t.Errorf("attestation %+v; want softirq polling after counted IRQs", a)
	}
}

// TestLabThreadedBusyPollKthread: threaded busy poll (Linux 6.19) puts the NAPI in its kthread, which spins on a
// CPU of its own and takes the packets.
func TestLabThreadedBusyPollKthread(t *testing.T) {
	bed := labtest.Virtio(t, testbed.Topology{})
	testenv.RequireKernel(t, 6, 19, "threaded NAPI busy poll")
	if runtime.NumCPU() < 2 {
		t.Fatalf("the lab has %d CPU; the busy-polling kthread needs one of its own", runtime.NumCPU())
	}
	ob := newObserver(t)
	poll := runtime.NumCPU() - 1
	// Both rr ends share CPU 0; the kthread spins on the other.
	b := virtioBench(t, bed, rr.PollNone, func(b *bench) { b.server.CPUs, b.client.CPUs = []int{0}, []int{0} })
	applyMode(t, bed, "threaded-busy-poll", poll)
	obs, dev := observe(t, ob, b)
	a := obs.Attest()
	t.Log(a.Verdict)
	if a.Kind != KindKthread || a.PollerTID != dev.NAPIs[0].Kthread || Check("threaded-busy-poll", a) != "" {
		t.Errorf("attestation %+v; want the NAPI kthread (pid %d)", a, dev.NAPIs[0].Kthread)
	}
}
