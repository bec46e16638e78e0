package sweep

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/agent"
	"github.com/napilab/napilab/internal/napi/napitest"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
	"github.com/napilab/napilab/internal/trace"
	"github.com/napilab/napilab/internal/version"
)

// inProcessServer serves an agent with the real machine in this process, over a pipe: the sweep's server end
// as napilab sweep reaches it, without the process around it.
func inProcessServer(t *testing.T, bed *testbed.Testbed) (*agent.Conn, agent.HelloResult) {
	t.Helper()
	ctrl, ag := net.Pipe()
	served := make(chan error, 1)
	magic := agent.Magic{Agent: agent.Protocol, Version: version.String(), SHA256: strings.Repeat("0", 64)}
	go func() {
		served <- agent.Serve(t.Context(), ag, ag, agent.NewMachine(agent.MachineOptions{}), magic)
		ag.Close()
	}()
	t.Cleanup(func() {
		ctrl.Close()
		select {
		case <-served:
		case <-time.After(time.Minute):
			t.Error("the agent did not end")
		}
	})
	c, err := agent.Dial(t.Context(), ctrl, agent.DialOptions{Version: version.String(), Where: "in-process agent"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Hello(t.Context(), agent.HelloArgs{Version: version.String(), Role: agent.RoleServer,
		Controller: "test", Dev: bed.B.Link, NetNS: bed.B.NetNSPath()})
	if err != nil {
		t.Fatal(err)
	}
	return c, h
}

// TestPrivSweep: a short sweep on a testbed measures every cell of the modes this kernel has, skips the others
// with a reason, answers every request exactly once, and leaves the device exactly as it found it.
func TestPrivSweep(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.Exclusive(t)
	bed := testbedtest.New(t, testbed.Topology{})
	before := napitest.DeviceState(t, bed.B.NetNSPath(), bed.B.Link)
	srv, hello := inProcessServer(t, bed)
	client := &LocalClient{NSPath: bed.A.NetNSPath(), Dev: bed.A.Link}
	defer client.Close()
	clientInfo, err := agent.Describe(agent.RoleClient, bed.A.Link, bed.A.NetNSPath())
	if err != nil {
		t.Fatal(err)
	}
	ends := Ends{Server: srv, ServerInfo: hello.End, ServerDev: bed.B.Link, ServerNS: bed.B.NetNSPath(),
		Client: client, ClientInfo: clientInfo, ClientDev: bed.A.Link, Peer: bed.B.IPv4.Addr(), SameHost: true}

	s := DefaultSpec()
	s.Modes = []string{"interrupts", "threaded", "threaded-busy-poll"}
	// 400/s for 500 ms: fewer requests per cell than the receive rings hold, so a server kept off its CPU by the
	// machine's load answers late but loses nothing. No warm-up: under TCG in the lab the inline sender ran 8 to
	// 118 ms behind its schedule, so a 50 ms warm-up at 2k/s took all of a 200 ms cell and measured nothing.
	// Without one the first request is measured unless the client's loop starts half a second late.
	s.Rows, s.Reps, s.Duration, s.Warmup = []Row{{Rate: 400}}, 2, 500*time.Millisecond, 0
	// A reply later than the timeout would count as lost: on a loaded machine (or under TCG in the lab) replies
	// can take long, but every one must come, exactly once.
	s.Timeout = 30 * time.Second
	var seen int
	res, err := Run(t.Context(), s, ends, Options{Progress: func(p Progress) {
		if p.Done != nil {
			seen++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cells) != 6 || seen != 6 {
		t.Fatalf("%d cells (%d reported); want 3 modes x 2 repetitions", len(res.Cells), seen)
	}
	if res.Cells[0].Mode != "interrupts" || res.Cells[1].Mode != "threaded" || res.Cells[3].Mode != "interrupts" {
		t.Fatalf("order %s %s %s %s", res.Cells[0].Mode, res.Cells[1].Mode, res.Cells[2].Mode, res.Cells[3].Mode)
	}
	for _, c := range res.Cells {
		if c.Mode == "threaded-busy-poll" {
			if c.Skipped == "" {
				t.Fatalf("threaded-busy-poll ran with the server and client on the only two CPUs: %+v", c)
			}
			continue
		}
		r := c.Client
		if c.Skipped != "" || r == nil || r.Measured == 0 || r.Latency.P50 <= 0 {
			t.Fatalf("cell %s rep %d: skipped %q client %+v", c.Mode, c.Rep, c.Skipped, r)
		}
		if r.Answered != r.Sent || r.Lost != 0 || r.Duplicates != 0 || c.Server == nil || c.Server.Stats.Replied < r.Sent {
			t.Fatalf("cell %s rep %d: sent %d answered %d lost %d duplicates %d; server %+v", c.Mode, c.Rep,
				r.Sent, r.Answered, r.Lost, r.Duplicates, c.Server)
		}
		// The server's trace attests who polled: the NAPI kthread under threaded, softirq under interrupts.
		want := map[string]trace.Kind{"interrupts": trace.KindSoftirq, "threaded": trace.KindKthread}[c.Mode]
		if tr := c.Server.Trace; tr == nil || tr.Kind != want || c.Mismatch != "" {
			t.Fatalf("cell %s rep %d: trace %+v (%s), mismatch %q; want %s", c.Mode, c.Rep, tr, c.Server.TraceNote,
				c.Mismatch, want)
		}
	}
	if res.Modes[1].Plan == nil || res.Header.ServerLink.Dev != bed.B.Link || res.Header.Server.Device.Ifindex == 0 {
		t.Fatalf("header %+v modes %+v", res.Header, res.Modes)
	}
	if _, err := srv.Bye(t.Context()); err != nil {
		t.Fatal(err)
	}
	client.Close()
	// The kernel lets go of a closed AF_XDP socket's queue asynchronously: wait for the queues to show no
	// socket before comparing.
	if after := napitest.DeviceState(t, bed.B.NetNSPath(), bed.B.Link); after != before {
		t.Fatalf("the sweep left the device changed:\nbefore %s\nafter  %s", before, after)
	}
}
