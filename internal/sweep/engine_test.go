package sweep

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/agent"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/trace"
)

// fakeEnds record every call the engine makes, in order, and answer like ends that work.
type fakeEnds struct {
	log      []string
	applied  string // the mode in place, "" when none
	unsup    map[string]string
	answered func(w rr.Workload) uint64 // how many requests a client run gets answered
	failRun  error                      // returned by the first measured client run
	cancel   context.CancelFunc         // called in the middle of the n-th measured run
	cancelAt int
	runs     int
	// poller is who the server's trace sees polling; "" for none traced.
	poller trace.Kind
	// noSystemd makes StopService unsupported.
	noSystemd bool
}

func (f *fakeEnds) logf(format string, args ...any) {
	f.log = append(f.log, fmt.Sprintf(format, args...))
}

func (f *fakeEnds) Probe(_ context.Context, modes []napi.Mode) ([]agent.ModeSupport, error) {
	var out []agent.ModeSupport
	for _, m := range modes {
		out = append(out, agent.ModeSupport{Mode: m.Preset, Supported: f.unsup[m.Preset] == "", Reason: f.unsup[m.Preset]})
	}
	f.logf("probe")
	return out, nil
}

func (f *fakeEnds) Apply(_ context.Context, m napi.Mode, lease time.Duration) (agent.ApplyResult, error) {
	if f.applied != "" {
		return agent.ApplyResult{}, fmt.Errorf("%s still applied", f.applied)
	}
	f.applied = m.Preset
	f.logf("apply %s", m.Preset)
	return agent.ApplyResult{Plan: &napi.Plan{Mode: m}}, nil
}

func (f *fakeEnds) Renew(context.Context, time.Duration) (time.Time, error) {
	if f.applied == "" {
		return time.Time{}, errors.New("renew with nothing applied")
	}
	f.logf("renew")
	return time.Now(), nil
}

func (f *fakeEnds) Restore(context.Context) (agent.RestoreResult, error) {
	f.logf("restore %s", f.applied)
	f.applied = ""
	return agent.RestoreResult{}, nil
}

func (f *fakeEnds) StopService(_ context.Context, unit string, _ time.Duration) (agent.StopServiceResult, error) {
	f.logf("stop-service %s", unit)
	if f.noSystemd {
		return agent.StopServiceResult{}, &kernel.UnsupportedError{Feature: "stopping a service for the run"}
	}
	return agent.StopServiceResult{WasActive: true}, nil
}

func (f *fakeEnds) ServerOpen(_ context.Context, a agent.ServerOpenArgs) (rr.LinkInfo, error) {
	f.logf("server-open %s", a.Link.Dev)
	return rr.LinkInfo{Dev: a.Link.Dev}, nil
}

func (f *fakeEnds) ServerStart(_ context.Context, a agent.ServerStartArgs) error {
	f.logf("server-start %s", a.Threads.Poll)
	return nil
}

func (f *fakeEnds) ServerStop(context.Context) (agent.ServerResult, error) {
	f.logf("server-stop")
	if f.poller == "" {
		return agent.ServerResult{}, nil
	}
	return agent.ServerResult{Trace: &trace.Attestation{Polls: 100, Packets: 100, Kind: f.poller, KindShare: 1,
		Verdict: string(f.poller) + " in effect"}}, nil
}

func (f *fakeEnds) ClientOpen(_ context.Context, a agent.ClientOpenArgs) (rr.LinkInfo, error) {
	f.logf("client-open %s -> %s", a.Link.Dev, a.Link.PeerIP)
	return rr.LinkInfo{Dev: a.Link.Dev}, nil
}

func (f *fakeEnds) ClientRun(ctx context.Context, a agent.ClientRunArgs) (*rr.ClientResult, error) {
	w := a.Workload
	if w.Count == preflightCount && !w.OpenLoop() {
		f.logf("preflight")
	} else {
		f.runs++
		f.logf("run %s %v", f.applied, w.Period)
		if f.failRun != nil && f.runs == 1 {
			return nil, f.failRun
		}
		if f.cancel != nil && f.runs == f.cancelAt {
			f.cancel()
			return &rr.ClientResult{Sent: 3, Answered: 3, StoppedEarly: true}, nil
		}
	}
	n := w.Count
	if n == 0 {
		n = 100
	}
	got := n
	if f.answered != nil {
		got = f.answered(w)
	}
	return &rr.ClientResult{Sent: n, Answered: got, Measured: got, TargetRate: w.Rate(), SendRate: w.Rate()}, nil
}

func testEnds(f *fakeEnds) Ends {
	addrs := []string{"198.18.0.2/24"}
	return Ends{Server: f, Client: f, ServerDev: "vb", ClientDev: "va", Peer: netip.MustParseAddr("198.18.0.2"),
		ServerInfo: agent.EndInfo{Hostname: "server", CPUs: 4, Device: agent.DeviceInfo{Name: "vb", MTU: 1500, Addrs: addrs}},
		ClientInfo: agent.EndInfo{Hostname: "client", CPUs: 4, Device: agent.DeviceInfo{Name: "va", MTU: 1500}}}
}

func shortSpec() Spec {
	s := DefaultSpec()
	s.Modes = []string{"interrupts", "threaded"}
	s.Rows = s.Rows[:2]
	s.Reps, s.Duration, s.Warmup = 2, 100*time.Millisecond, 0
	return s
}

// TestEngineOrder: links open once, a preflight runs before any mode, every repetition interleaves the modes,
// each cell renews the lease, and every mode is restored before the next.
func TestEngineOrder(t *testing.T) {
	f := &fakeEnds{}
	var progress []string
	res, err := Run(t.Context(), shortSpec(), testEnds(f), Options{Progress: func(p Progress) {
		if p.Done != nil {
			progress = append(progress, fmt.Sprintf("%d/%d %s %s", p.Cell, p.Cells, p.Mode, p.Row))
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	cell := "renew\nserver-start %s\nrun %s %s\nserver-stop"
	mode := func(name, poll string) string {
		return "apply " + name + "\n" + fmt.Sprintf(cell, poll, name, "80µs") + "\n" +
			fmt.Sprintf(cell, poll, name, "31.25µs") + "\nrestore " + name
	}
	want := strings.Join([]string{"server-open vb", "client-open va -> 198.18.0.2", "probe",
		"server-start inline", "preflight", "server-stop",
		mode("interrupts", "inline"), mode("threaded", "none"), mode("interrupts", "inline"), mode("threaded", "none")}, "\n")
	if got := strings.Join(f.log, "\n"); got != want {
		t.Fatalf("calls:\n%s\n\nwant:\n%s", got, want)
	}
	if len(res.Cells) != 8 || res.Cells[2].Mode != "threaded" || res.Cells[4].Rep != 1 || res.Incomplete != "" {
		t.Fatalf("cells %+v", res.Cells)
	}
	if len(progress) != 8 || progress[7] != "8/8 threaded 32k+30us" {
		t.Fatalf("progress %q", progress)
	}
	if res.Schema != Schema || res.Modes[1].Plan == nil || res.Header.Server.Hostname != "server" {
		t.Fatalf("result header %+v modes %+v", res.Header, res.Modes)
	}
}

// TestEngineSkips: a mode the server cannot do, and one rr cannot drive honestly, give skipped cells with the
// reason, and nothing is applied for them.
func TestEngineSkips(t *testing.T) {
	f := &fakeEnds{unsup: map[string]string{"threaded-busy-poll": "threaded NAPI busy poll needs Linux 6.19"}}
	s := shortSpec()
	s.Modes, s.Reps, s.PollCPU = []string{"threaded-busy-poll", "irq-suspend", "threaded"}, 1, 3
	res, err := Run(t.Context(), s, testEnds(f), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Cells {
		switch c.Mode {
		case "threaded-busy-poll":
			if !strings.Contains(c.Skipped, "6.19") {
				t.Errorf("threaded-busy-poll: %q", c.Skipped)
			}
		case "irq-suspend":
			if !strings.Contains(c.Skipped, "epoll") {
				t.Errorf("irq-suspend: %q", c.Skipped)
			}
		default:
			if c.Skipped != "" || c.Client == nil {
				t.Errorf("%s: %+v", c.Mode, c)
			}
		}
	}
	if strings.Contains(strings.Join(f.log, "\n"), "apply threaded-busy-poll") {
		t.Fatal("an unsupported mode was applied")
	}
}

// TestEngineThreadedBusyPollNeedsACPU: the busy-polling kthread may not share a CPU with a benchmark loop.
func TestEngineThreadedBusyPollNeedsACPU(t *testing.T) {
	f := &fakeEnds{}
	s := shortSpec()
	s.Modes, s.Reps = []string{"threaded-busy-poll"}, 1
	ends := testEnds(f)
	ends.SameHost, ends.ServerInfo.CPUs = true, 2
	res, err := Run(t.Context(), s, ends, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Cells[0].Skipped, "this machine has 2") {
		t.Fatalf("skipped %q", res.Cells[0].Skipped)
	}
}

// TestEngineRefusesBeforeAnything: NAT, a CPU the host lacks, one CPU for both ends, a payload above the MTU
// and a lease shorter than two cells are refused before anything is opened.
func TestEngineRefusesBeforeAnything(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Spec, *Ends, *Options)
		want string
	}{
		{"nat", func(_ *Spec, e *Ends, _ *Options) { e.Peer = netip.MustParseAddr("203.0.113.9") }, "NAT"},
		{"missing cpu", func(s *Spec, _ *Ends, _ *Options) { s.ServerCPU = 9 }, "does not exist on server"},
		{"offline cpu", func(s *Spec, e *Ends, _ *Options) { s.ClientCPU, e.ClientInfo.UsableCPUs = 1, "0,2-3" },
			"client-cpu 1 is not a CPU napilab can run on at"},
		{"offline poll cpu", func(s *Spec, e *Ends, _ *Options) { s.PollCPU, e.ServerInfo.UsableCPUs = 3, "0-2" },
			"poll-cpu 3 is not a CPU napilab can run on at"},
		{"shared cpu", func(s *Spec, e *Ends, _ *Options) { e.SameHost, s.ClientCPU = true, s.ServerCPU }, "two different CPUs"},
		{"mtu", func(s *Spec, e *Ends, _ *Options) { s.Payload, e.ServerInfo.Device.MTU = 1400, 1280 }, "MTU of 1280"},
		{"lease", func(_ *Spec, _ *Ends, o *Options) { o.Lease = 150 * time.Millisecond }, "does not outlast"},
		{"ssh device", func(s *Spec, e *Ends, _ *Options) { s.Channels, e.ServerInfo.CarriesSSH = 2, true }, "carries the ssh session"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEnds{}
			s, e, o := shortSpec(), testEnds(f), Options{}
			tc.edit(&s, &e, &o)
			_, err := Run(t.Context(), s, e, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v; want %q", err, tc.want)
			}
			if len(f.log) > 0 && tc.name != "lease" {
				t.Fatalf("the ends were used: %q", f.log)
			}
		})
	}
}

// TestEnginePreflight: a server that does not answer stops the sweep before any mode is applied.
func TestEnginePreflight(t *testing.T) {
	f := &fakeEnds{answered: func(rr.Workload) uint64 { return 0 }}
	_, err := Run(t.Context(), shortSpec(), testEnds(f), Options{})
	if err == nil || !strings.Contains(err.Error(), "answered 0 of 20 requests before any setting was changed") {
		t.Fatalf("Run = %v", err)
	}
	if strings.Contains(strings.Join(f.log, "\n"), "apply") {
		t.Fatal("a mode was applied after a failed preflight")
	}
}

// TestEngineFailureRestoresAndKeeps: a failing cell restores the mode, and the cells before it stay.
func TestEngineFailureRestoresAndKeeps(t *testing.T) {
	f := &fakeEnds{failRun: errors.New("client died")}
	res, err := Run(t.Context(), shortSpec(), testEnds(f), Options{})
	if err == nil || !strings.Contains(err.Error(), "client died") {
		t.Fatalf("Run = %v", err)
	}
	if f.applied != "" || !strings.HasSuffix(strings.Join(f.log, "\n"), "restore interrupts") {
		t.Fatalf("not restored: %q", f.log)
	}
	if res == nil || res.Incomplete == "" {
		t.Fatalf("result %+v", res)
	}
}

// TestEngineInterruptKeepsCells: an interruption mid-sweep restores, keeps every finished cell and says so.
func TestEngineInterruptKeepsCells(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f := &fakeEnds{cancel: cancel, cancelAt: 3}
	res, err := Run(ctx, shortSpec(), testEnds(f), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	if f.applied != "" {
		t.Fatalf("%s left applied", f.applied)
	}
	if len(res.Cells) != 3 || !res.Cells[2].Client.StoppedEarly || res.Incomplete == "" {
		t.Fatalf("cells %d, incomplete %q", len(res.Cells), res.Incomplete)
	}
}

// TestEngineFlagsAContradictingPoller: a cell whose traced poller is not its mode's says so, in the cell and in
// a note; one that agrees does not.
func TestEngineFlagsAContradictingPoller(t *testing.T) {
	f := &fakeEnds{poller: trace.KindSoftirq}
	s := shortSpec()
	s.Reps, s.Rows = 1, s.Rows[:1]
	res, err := Run(t.Context(), s, testEnds(f), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Cells {
		switch c.Mode {
		case "interrupts":
			if c.Mismatch != "" {
				t.Errorf("interrupts polled in softirq was flagged: %q", c.Mismatch)
			}
		case "threaded":
			if !strings.Contains(c.Mismatch, "threaded expects") || !strings.Contains(c.Mismatch, "softirq in effect") ||
				!strings.Contains(fmt.Sprint(c.Notes), "the server's trace saw softirq poll the NAPI") {
				t.Errorf("threaded polled in softirq: mismatch %q, notes %v", c.Mismatch, c.Notes)
			}
		}
	}
}

// TestEngineStopsIrqbalance: irqbalance, which moves IRQ affinity, is stopped on each end it runs on before the
// first mode; an end that cannot stop it says why in the result, and --keep-irqbalance keeps it with a warning.
func TestEngineStopsIrqbalance(t *testing.T) {
	for _, tc := range []struct {
		name      string
		noSystemd bool
		keep      bool
		calls     int
		want      string
	}{
		{"stopped", false, false, 2, "irqbalance was stopped on server"},
		{"no systemd", true, false, 2, "could not stop it for the run"},
		{"kept", false, true, 0, "was kept for the run, as asked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEnds{noSystemd: tc.noSystemd}
			ends := testEnds(f)
			ends.ServerInfo.Irqbalance, ends.ClientInfo.Irqbalance = "running (pid 7)", "running (pid 9)"
			s := shortSpec()
			s.Reps, s.Modes = 1, s.Modes[:1]
			res, err := Run(t.Context(), s, ends, Options{KeepIrqbalance: tc.keep})
			if err != nil {
				t.Fatal(err)
			}
			log := strings.Join(f.log, "\n")
			if n := strings.Count(log, "stop-service irqbalance.service"); n != tc.calls {
				t.Fatalf("%d stop-service calls, want %d:\n%s", n, tc.calls, log)
			}
			if strings.Index(log, "stop-service") > strings.Index(log, "apply") && tc.calls > 0 {
				t.Fatalf("irqbalance stopped after the first mode:\n%s", log)
			}
			if !strings.Contains(fmt.Sprint(res.Notes), tc.want) {
				t.Fatalf("notes %v; want %q", res.Notes, tc.want)
			}
		})
	}
}
