package trace

import (
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/lab/labtest"
	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
	"github.com/napilab/napilab/internal/xsk"
)

// bench is an rr exchange across a testbed, server on side B, client on side A, with both links open (on veth
// the NAPI a mode configures exists only while XDP is attached, as in a sweep).
type bench struct {
	bed    *testbed.Testbed
	sl, cl *rr.Link
	server side
	client side
	srv    *rr.Server
	cli    *rr.Client
	lossOK bool // the test is about something else than the datapath, which may lose requests
}

// side is one end's option sets, embedded so a test sets any field by name.
type side struct {
	rr.LinkOptions
	rr.Threads
	svc  rr.Service
	load rr.Workload
}

// newBench opens the server's and the client's links on bed; poll is both ends' poll driver, the server runs on
// CPU 0 and the client on the last CPU, in copy mode (rr with both ends in zero copy stalls now and then in the
// lab; see docs/lab.md). tune may change the parameters before the links open.
func newBench(t testing.TB, bed *testbed.Testbed, poll rr.PollDriver, tune ...func(*bench)) *bench {
	t.Helper()
	testenv.Exclusive(t)
	b := &bench{bed: bed}
	b.server = side{LinkOptions: rr.DefaultLink(bed.B.Link), Threads: rr.Threads{Poll: poll, CPUs: []int{0}},
		svc: rr.DefaultService()}
	b.server.Ring = 4096
	b.client = side{LinkOptions: rr.DefaultLink(bed.A.Link), Threads: rr.Threads{Poll: poll,
		CPUs: []int{runtime.NumCPU() - 1}, Sender: rr.SenderInline, Colocated: 1}, load: rr.DefaultWorkload()}
	b.client.PeerIP, b.client.Ring = bed.B.IPv4.Addr(), 4096
	// More receive ring than requests and fewer requests than any window: every request is answered whatever
	// the scheduling (the lab's emulated CPUs are slow), so the counts below cannot depend on timing.
	w := &b.client.load
	w.Period, w.Duration, w.Warmup, w.Count, w.Interval, w.Timeout = 50*time.Microsecond, 0, 0, 1000, 0, 10*time.Second
	b.server.Bind, b.client.Bind = rr.BindCopy, rr.BindCopy
	for _, f := range tune {
		f(b)
	}
	labtest.WaitQueueFree(t, bed.A, 0) // an earlier test's sockets are released from deferred work
	labtest.WaitQueueFree(t, bed.B, 0)
	ctx := t.Context()
	if err := bed.B.Do(func() (err error) { b.sl, err = rr.OpenLink(ctx, b.server.LinkOptions); return }); err != nil {
		t.Fatalf("server link: %v", err)
	}
	t.Cleanup(func() { b.sl.Close() })
	if err := bed.A.Do(func() (err error) { b.cl, err = rr.OpenLink(ctx, b.client.LinkOptions); return }); err != nil {
		t.Fatalf("client link: %v", err)
	}
	t.Cleanup(func() { b.cl.Close() })
	return b
}

// exchange runs the client's 1000 requests against the server, checks every one was answered, and returns
// both ends' kick counts.
func (b *bench) exchange(t testing.TB) (client, server xsk.KickStats) {
	res, st := b.run(t)
	return res.Kicks, st.Kicks
}

// run is exchange returning the results.
func (b *bench) run(t testing.TB) (*rr.ClientResult, rr.ServerStats) {
	t.Helper()
	if b.srv == nil { // once per socket: the server fills its fill ring, the client resolves its peer
		var err error
		if b.srv, err = rr.NewServer(b.sl.Sock, b.server.svc, b.server.Threads, rr.ServerOptions{Local: b.sl.Info.Local}); err != nil {
			t.Fatal(err)
		}
		if b.cli, err = rr.NewClient(b.cl.Sock, b.client.load, b.client.Threads, rr.ClientOptions{Local: b.cl.Info.Local,
			Peer: b.cl.Info.Peer, UsableCPUs: runtime.NumCPU()}); err != nil {
			t.Fatal(err)
		}
	}
	res, st, err := rr.Exchange(t.Context(), b.srv, b.cli)
	if err != nil {
		t.Fatal(err)
	}
	if b.lossOK && res.Lost > 0 {
		t.Logf("rr: %d of 1000 answered (client %+v, server %+v)", res.Answered, res.Kicks, st)
	} else if res.Answered != 1000 || res.Lost != 0 || st.Replied != 1000 {
		t.Fatalf("rr: %d of 1000 answered, %d lost, server replied %d; want every request answered once "+
			"(client %+v %+v, server %+v %+v)", res.Answered, res.Lost, st.Replied, res.XSK, res.Kicks, st.XSK, st.Kicks)
	}
	return res, st
}

// applyMode puts napi's preset mode on the server's queue, its kthread (if any) pinned to pollCPU, and restores
// it when the test ends.
func applyMode(t testing.TB, bed *testbed.Testbed, mode string, pollCPU int) {
	t.Helper()
	sys, err := napi.OpenNetNS(napi.NetNS{Path: bed.B.NetNSPath()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	m, err := napi.Preset(mode, bed.B.Link)
	if err != nil {
		t.Fatal(err)
	}
	m.PollCPU = pollCPU
	target, err := sys.Resolve(m)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := napi.Build(m, target)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := sys.Apply(t.Context(), plan, napi.ApplyOptions{Journal: filepath.Join(t.TempDir(), "journal")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sys.Restore(applied.Journal, napi.RestoreOptions{}).Err(); err != nil {
			t.Errorf("restore %s: %v", mode, err)
		}
	})
}

// newBed is a fresh veth testbed.
func newBed(t testing.TB) *testbed.Testbed {
	t.Helper()
	return testbedtest.New(t, testbed.Topology{})
}
