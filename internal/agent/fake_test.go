package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/rr"
)

// fakeMachine records what the agent asks of the machine, and keeps the state a test asserts on: what is
// applied, whether the server runs, whether the machine was closed.
type fakeMachine struct {
	mu      sync.Mutex
	log     []string
	holds   []*fakeHold
	serving bool
	closed  bool
	// failHold, if set, is the error Hold returns.
	failHold error
	// runFor is how long a client run takes; runStarted is told when one starts.
	runFor     time.Duration
	runStarted chan struct{}
}

func (f *fakeMachine) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf(format, args...))
}

func (f *fakeMachine) Log() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.log, "\n")
}

// applied returns the holds not restored yet.
func (f *fakeMachine) applied() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, h := range f.holds {
		if !h.released() {
			n++
		}
	}
	return n
}

func (f *fakeMachine) state() (applied int, serving, closed bool) {
	applied = f.applied()
	f.mu.Lock()
	defer f.mu.Unlock()
	return applied, f.serving, f.closed
}

func (f *fakeMachine) Hello(_ context.Context, a HelloArgs) (HelloResult, error) {
	f.record("hello %s %s", a.Role, a.Dev)
	return HelloResult{End: EndInfo{Role: a.Role, Napilab: a.Version, Device: DeviceInfo{Name: a.Dev, MTU: 1500}}}, nil
}

func (f *fakeMachine) Probe(_ context.Context, modes []napi.Mode) ([]ModeSupport, error) {
	out := make([]ModeSupport, len(modes))
	for i, m := range modes {
		out[i] = ModeSupport{Mode: m.Preset, Supported: m.Name != napi.ThreadedBusyPoll}
		if !out[i].Supported {
			out[i].Reason = "threaded NAPI busy poll needs Linux 6.19 or newer"
		}
	}
	f.record("probe %d", len(modes))
	return out, nil
}

func (f *fakeMachine) Plan(_ context.Context, m napi.Mode) (*napi.Plan, error) {
	f.record("plan %s", m.Preset)
	return &napi.Plan{Mode: m}, nil
}

func (f *fakeMachine) Hold(_ context.Context, m napi.Mode, lease time.Duration) (Holding, error) {
	if f.failHold != nil {
		return nil, f.failHold
	}
	f.record("apply %s lease %v", m.Preset, lease)
	return f.hold(ApplyResult{Plan: &napi.Plan{Mode: m}, Journal: "/fake/" + m.Preset}, lease), nil
}

func (f *fakeMachine) HoldService(_ context.Context, unit string, lease time.Duration) (Holding, error) {
	f.record("stop-service %s lease %v", unit, lease)
	return f.hold(ApplyResult{Plan: &napi.Plan{Mode: napi.Mode{Preset: "stop " + unit}}, Journal: "/fake/" + unit,
		Entries: []napi.Entry{{Prior: &napi.Prior{Service: &napi.ServicePrior{Active: true}}}}}, lease), nil
}

// hold starts a fake lease on res, which expires unless renewed, as the real machine's watchdog would.
func (f *fakeMachine) hold(res ApplyResult, lease time.Duration) *fakeHold {
	h := &fakeHold{f: f, res: res, done: make(chan struct{}), deadline: time.Now().Add(lease)}
	h.timer = time.AfterFunc(lease, func() { h.expire() })
	f.mu.Lock()
	f.holds = append(f.holds, h)
	f.mu.Unlock()
	return h
}

func (f *fakeMachine) OpenServer(_ context.Context, a ServerOpenArgs) (Server, rr.LinkInfo, error) {
	f.record("server-open %s", a.Link.Dev)
	return &fakeServer{f: f}, rr.LinkInfo{Dev: a.Link.Dev, NAPIID: 7}, nil
}

func (f *fakeMachine) OpenClient(_ context.Context, a ClientOpenArgs) (Client, rr.LinkInfo, error) {
	f.record("client-open %s", a.Link.Dev)
	return &fakeClient{f: f}, rr.LinkInfo{Dev: a.Link.Dev}, nil
}

func (f *fakeMachine) Close() error {
	f.record("close")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

type fakeHold struct {
	f     *fakeMachine
	res   ApplyResult
	timer *time.Timer
	done  chan struct{}

	mu       sync.Mutex
	deadline time.Time
	rel      bool
	expired  bool
}

func (h *fakeHold) Result() ApplyResult { return h.res }

func (h *fakeHold) Renew(d time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rel {
		return errors.New("already restored")
	}
	h.deadline = time.Now().Add(d)
	h.timer.Reset(d)
	return nil
}

func (h *fakeHold) Deadline() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deadline
}

func (h *fakeHold) expire() {
	h.mu.Lock()
	if h.rel {
		h.mu.Unlock()
		return
	}
	h.expired = true
	h.mu.Unlock()
	_, _ = h.Release()
}

func (h *fakeHold) Release() (*napi.RestoreReport, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.rel {
		h.rel = true
		h.timer.Stop()
		h.f.record("restore %s", h.res.Plan.Mode.Preset)
		close(h.done)
	}
	return &napi.RestoreReport{Preset: h.res.Plan.Mode.Preset}, nil
}

func (h *fakeHold) released() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rel
}

func (h *fakeHold) Done() <-chan struct{} { return h.done }

func (h *fakeHold) Expired() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.expired
}

type fakeServer struct {
	f       *fakeMachine
	running bool
}

func (s *fakeServer) Start(_ context.Context, th rr.Threads, _ rr.BusyPoll) error {
	s.f.record("server-start poll %s", th.Poll)
	s.running = true
	s.f.mu.Lock()
	s.f.serving = true
	s.f.mu.Unlock()
	return nil
}

func (s *fakeServer) Stop() (ServerResult, error) {
	if !s.running {
		return ServerResult{}, errors.New("not running")
	}
	s.running = false
	s.f.record("server-stop")
	s.f.mu.Lock()
	s.f.serving = false
	s.f.mu.Unlock()
	return ServerResult{Stats: rr.ServerStats{Received: 10, Replied: 10}}, nil
}

func (s *fakeServer) Close() error {
	s.f.record("server-close")
	return nil
}

type fakeClient struct{ f *fakeMachine }

func (c *fakeClient) Run(ctx context.Context, w rr.Workload, _ rr.Threads) (*rr.ClientResult, error) {
	c.f.record("client-run count %d", w.Count)
	if c.f.runStarted != nil {
		c.f.runStarted <- struct{}{}
	}
	select {
	case <-time.After(c.f.runFor):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &rr.ClientResult{Sent: w.Count, Answered: w.Count}, nil
}

func (c *fakeClient) Close() error {
	c.f.record("client-close")
	return nil
}
