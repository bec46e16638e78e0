package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/rr"
)

const testVersion = "v0.0.0-test"

var testMagic = Magic{Agent: Protocol, Version: testVersion, SHA256: strings.Repeat("ab", 32), Arch: "amd64",
	Hostname: "server"}

// generous bounds waits for what must happen; it never measures speed.
const generous = 30 * time.Second

// session is an agent served in-process over a pipe, and the controller's end of it.
type testSession struct {
	f      *fakeMachine
	ctrl   net.Conn // the controller's end of the pipe
	served chan error
}

func serveFake(t *testing.T, f *fakeMachine) *testSession {
	t.Helper()
	ctrl, ag := net.Pipe()
	s := &testSession{f: f, ctrl: ctrl, served: make(chan error, 1)}
	go func() {
		s.served <- Serve(t.Context(), ag, ag, f, testMagic)
		ag.Close()
	}()
	t.Cleanup(func() {
		ctrl.Close()
		s.wait(t)
	})
	return s
}

// wait returns Serve's error once the agent is done.
func (s *testSession) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.served:
		s.served <- err // for a later wait (Cleanup)
		return err
	case <-time.After(generous):
		t.Fatal("the agent did not end")
		return nil
	}
}

func dial(t *testing.T, s *testSession) *Conn {
	t.Helper()
	c, err := Dial(t.Context(), s.ctrl, DialOptions{Version: testVersion, Where: "test agent"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func hello(t *testing.T, c *Conn, role Role) HelloResult {
	t.Helper()
	r, err := c.Hello(t.Context(), HelloArgs{Version: testVersion, Role: role, Controller: "laptop", Dev: "eth1"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mode(preset string) napi.Mode {
	m, err := napi.Preset(preset, "eth1")
	if err != nil {
		panic(err)
	}
	return m
}

// TestSessionCell is a sweep's conversation for one mode: everything asked arrives in order, and bye leaves
// nothing applied.
func TestSessionCell(t *testing.T) {
	f := &fakeMachine{}
	s := serveFake(t, f)
	c := dial(t, s)
	if c.Magic.Hostname != "server" {
		t.Fatalf("magic %+v", c.Magic)
	}
	h := hello(t, c, RoleServer)
	if h.End.Device.Name != "eth1" || h.Agent.SHA256 != testMagic.SHA256 {
		t.Fatalf("hello %+v", h)
	}
	ctx := t.Context()
	sup, err := c.Probe(ctx, []napi.Mode{mode("threaded"), mode("threaded-busy-poll")})
	if err != nil || len(sup) != 2 || !sup[0].Supported || sup[1].Supported || sup[1].Reason == "" {
		t.Fatalf("probe = %+v, %v", sup, err)
	}
	if _, err := c.ServerOpen(ctx, ServerOpenArgs{Link: rr.DefaultLink("eth1"), Service: rr.DefaultService()}); err != nil {
		t.Fatal(err)
	}
	if r, err := c.StopService(ctx, "irqbalance.service", time.Minute); err != nil || !r.WasActive {
		t.Fatalf("stop-service = %+v, %v", r, err)
	}
	if _, err := c.Apply(ctx, mode("threaded"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Renew(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.ServerStart(ctx, ServerStartArgs{Threads: rr.Threads{Poll: rr.PollNone}}); err != nil {
		t.Fatal(err)
	}
	st, err := c.ServerStop(ctx)
	if err != nil || st.Stats.Replied != 10 || st.LeaseLost {
		t.Fatalf("server-stop = %+v, %v", st, err)
	}
	if _, err := c.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, mode("busy-poll"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if stats, err := c.Stats(ctx); err != nil || stats.Applied != "busy-poll" {
		t.Fatalf("stats = %+v, %v", stats, err)
	}
	bye, err := c.Bye(ctx)
	if err != nil || bye.Report == nil || bye.Report.Preset != "busy-poll" {
		t.Fatalf("bye = %+v, %v", bye, err)
	}
	if err := s.wait(t); err != nil {
		t.Fatalf("Serve after bye: %v", err)
	}
	want := `hello server eth1
probe 2
server-open eth1
stop-service irqbalance.service lease 1m0s
apply threaded lease 1m0s
server-start poll none
server-stop
restore threaded
apply busy-poll lease 1m0s
restore busy-poll
restore stop irqbalance.service
server-close
close`
	if got := f.Log(); got != want {
		t.Errorf("machine log:\n%s\nwant:\n%s", got, want)
	}
}

// serveUnder opens the server, applies threaded under lease and starts serving: a cell in progress.
func serveUnder(t *testing.T, c *Conn, lease time.Duration) {
	t.Helper()
	ctx := t.Context()
	if _, err := c.ServerOpen(ctx, ServerOpenArgs{Link: rr.DefaultLink("eth1"), Service: rr.DefaultService()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, mode("threaded"), lease); err != nil {
		t.Fatal(err)
	}
	if err := c.ServerStart(ctx, ServerStartArgs{Threads: rr.Threads{Poll: rr.PollNone}}); err != nil {
		t.Fatal(err)
	}
}

// TestCutPipeMidCell: the controller dies while the server serves under a mode; the agent stops the server,
// restores and closes.
func TestCutPipeMidCell(t *testing.T) {
	f := &fakeMachine{}
	s := serveFake(t, f)
	c := dial(t, s)
	hello(t, c, RoleServer)
	serveUnder(t, c, time.Hour)
	s.ctrl.Close() // SIGKILL of the controller, or of its ssh
	if err := s.wait(t); err != nil {
		t.Fatalf("Serve after the pipe closed: %v", err)
	}
	if applied, serving, closed := f.state(); applied != 0 || serving || !closed {
		t.Fatalf("after the cut: %d applied, serving %v, closed %v\n%s", applied, serving, closed, f.Log())
	}
}

// TestCutPipeDuringClientRun: a client end in the middle of a cell stops it when the controller goes away.
func TestCutPipeDuringClientRun(t *testing.T) {
	f := &fakeMachine{runFor: time.Hour, runStarted: make(chan struct{}, 1)}
	s := serveFake(t, f)
	c := dial(t, s)
	hello(t, c, RoleClient)
	w := rr.DefaultWorkload()
	if _, err := c.ClientOpen(t.Context(), ClientOpenArgs{Link: rr.DefaultLink("eth1"), Workload: w,
		Threads: rr.DefaultThreads()}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.ClientRun(context.Background(), ClientRunArgs{Workload: w, Threads: rr.DefaultThreads()})
		errc <- err
	}()
	<-f.runStarted
	s.ctrl.Close()
	s.wait(t)
	if err := <-errc; err == nil {
		t.Fatal("the cut client run returned a result")
	}
	if _, _, closed := f.state(); !closed || !strings.Contains(f.Log(), "client-close") {
		t.Fatalf("the client end was not closed:\n%s", f.Log())
	}
}

// TestLeaseExpiry: no renewal, and the agent restores by itself; the controller learns it on its next call.
func TestLeaseExpiry(t *testing.T) {
	f := &fakeMachine{}
	s := serveFake(t, f)
	c := dial(t, s)
	hello(t, c, RoleServer)
	ctx := t.Context()
	serveUnder(t, c, leaseFloor)
	f.mu.Lock()
	h := f.holds[0]
	f.mu.Unlock()
	select {
	case <-h.Done():
	case <-time.After(generous):
		t.Fatal("the lease ran out and nothing was restored")
	}
	st, err := c.ServerStop(ctx)
	if err != nil || !st.LeaseLost {
		t.Fatalf("server-stop after the lease ran out = %+v, %v; want LeaseLost", st, err)
	}
	if _, err := c.Renew(ctx, time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew after expiry = %v; want ErrLeaseLost", err)
	}
	if r, err := c.Restore(ctx); err != nil || !r.Expired || r.Report != nil {
		t.Fatalf("restore after expiry = %+v, %v", r, err)
	}
}

// TestSignalRestores: the agent's context ending (SIGTERM) restores and closes.
func TestSignalRestores(t *testing.T) {
	f := &fakeMachine{}
	ctx, cancel := context.WithCancel(t.Context())
	ctrl, ag := net.Pipe()
	defer ctrl.Close()
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ag, ag, f, testMagic) }()
	c, err := Dial(t.Context(), ctrl, DialOptions{Version: testVersion})
	if err != nil {
		t.Fatal(err)
	}
	hello(t, c, RoleServer)
	if _, err := c.Apply(t.Context(), mode("threaded"), time.Hour); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-served:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(generous):
		t.Fatal("the agent did not stop")
	}
	if applied, _, closed := f.state(); applied != 0 || !closed {
		t.Fatalf("after the signal: %d applied, closed %v", applied, closed)
	}
}

// rawSession talks to an agent line by line, as a broken or hostile controller would.
type rawSession struct {
	*testSession
	r *bufio.Reader
}

func raw(t *testing.T) (*rawSession, *fakeMachine) {
	t.Helper()
	f := &fakeMachine{}
	s := serveFake(t, f)
	r := bufio.NewReader(s.ctrl)
	if _, err := r.ReadBytes('\n'); err != nil { // the magic line
		t.Fatal(err)
	}
	return &rawSession{s, r}, f
}

func (r *rawSession) send(t *testing.T, line string) {
	t.Helper()
	go func() { _, _ = io.WriteString(r.ctrl, line) }() // a pipe write blocks until read; the agent may be gone
}

func (r *rawSession) answer(t *testing.T) Response {
	t.Helper()
	line, err := r.r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	resp, err := ParseResponse(line[:len(line)-1])
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func helloLine(id int) string {
	return fmt.Sprintf(`{"id":%d,"op":"hello","args":{"protocol":%d,"version":%q,"role":"server","controller":"x","dev":"eth1"}}`+"\n",
		id, Protocol, testVersion)
}

func applyLine(id int) string {
	b, _ := json.Marshal(Request{ID: uint64(id), Op: OpApply, Args: mustJSON(ApplyArgs{Mode: mode("threaded"), Lease: time.Hour})})
	return string(b) + "\n"
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestProtocolViolations: every kind of broken message gets a protocol error, ends the session, and leaves
// nothing applied — also when a mode was applied before the violation.
func TestProtocolViolations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string // sent before the bad one, each answered
		bad   string
		want  string
	}{
		{"not json", nil, "hello\n", "not one"},
		{"op before hello", nil, applyLine(1), "apply before hello"},
		{"unknown op", []string{helloLine(1)}, `{"id":2,"op":"format-disk"}` + "\n", "unknown operation"},
		{"unknown field", []string{helloLine(1)}, `{"id":2,"op":"stats","args":{"all":true}}` + "\n", "unknown field"},
		{"repeated id", []string{helloLine(1)}, `{"id":1,"op":"stats"}` + "\n", "out of order"},
		{"skipped id", []string{helloLine(1), applyLine(2)}, `{"id":4,"op":"stats"}` + "\n", "out of order"},
		{"second hello", []string{helloLine(1)}, helloLine(2), "second hello"},
		{"trailing data", []string{helloLine(1)}, `{"id":2,"op":"stats"} {}` + "\n", "not one"},
		{"client op on a server", []string{helloLine(1)}, `{"id":2,"op":"client-run","args":{}}` + "\n", "before client-open"},
		{"oversized", []string{helloLine(1), applyLine(2)}, `{"id":3,"op":"stats","pad":"` + strings.Repeat("x", MaxLine) + `"}` + "\n", "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, f := raw(t)
			for _, l := range tc.lines {
				r.send(t, l)
				if a := r.answer(t); a.Error != nil {
					t.Fatalf("%s: %s", l, a.Error.Message)
				}
			}
			r.send(t, tc.bad)
			a := r.answer(t)
			if a.Error == nil || !strings.Contains(a.Error.Message, tc.want) {
				t.Fatalf("answer %+v; want an error containing %q", a, tc.want)
			}
			if tc.name != "client op on a server" && a.Error.Kind != KindProtocol {
				t.Fatalf("kind %q, want %q", a.Error.Kind, KindProtocol)
			}
			if tc.name == "client op on a server" {
				return // an operation error, not a broken protocol: the session goes on
			}
			r.wait(t)
			if applied, serving, closed := f.state(); applied != 0 || serving || !closed {
				t.Fatalf("after the violation: %d applied, serving %v, closed %v", applied, serving, closed)
			}
		})
	}
}

// TestDialNoisyShell: lines before the agent's are reported, quoted, as the remote shell's.
func TestDialNoisyShell(t *testing.T) {
	ctrl, ag := net.Pipe()
	defer ctrl.Close()
	go func() {
		io.WriteString(ag, "Welcome to lab1!\nLast login: never\n")
		writeLine(ag, testMagic)
		ag.Close()
	}()
	_, err := Dial(t.Context(), ctrl, DialOptions{Version: testVersion, Where: "root@lab1"})
	if err == nil || !strings.Contains(err.Error(), `the remote shell printed "Welcome to lab1!\nLast login: never"`) ||
		!strings.Contains(err.Error(), ".bashrc") {
		t.Fatalf("Dial = %v", err)
	}
}

// TestDialVersionMismatch: an agent of another napilab is refused, both versions named.
func TestDialVersionMismatch(t *testing.T) {
	ctrl, ag := net.Pipe()
	defer ctrl.Close()
	old := testMagic
	old.Version = "v0.0.1-old"
	go func() {
		writeLine(ag, old)
		ag.Close()
	}()
	_, err := Dial(t.Context(), ctrl, DialOptions{Version: testVersion, Where: "root@lab1"})
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "v0.0.1-old") || !strings.Contains(err.Error(), testVersion) {
		t.Fatalf("Dial = %v", err)
	}
}

// TestHelloVersionMismatch: the agent too refuses a controller of another version, naming both.
func TestHelloVersionMismatch(t *testing.T) {
	f := &fakeMachine{}
	s := serveFake(t, f)
	c := dial(t, s)
	_, err := c.Hello(t.Context(), HelloArgs{Version: "v9.9.9", Role: RoleServer, Dev: "eth1"})
	if err == nil || !strings.Contains(err.Error(), "v9.9.9") || !strings.Contains(err.Error(), testVersion) {
		t.Fatalf("hello = %v", err)
	}
	if strings.Contains(f.Log(), "hello") {
		t.Fatal("the machine was asked anything")
	}
}

// TestDialAgentDies: an agent that exits before its first line is an error, not a hang.
func TestDialAgentDies(t *testing.T) {
	ctrl, ag := net.Pipe()
	defer ctrl.Close()
	ag.Close()
	if _, err := Dial(t.Context(), ctrl, DialOptions{Version: testVersion, Where: "x"}); err == nil ||
		!strings.Contains(err.Error(), "exited before") {
		t.Fatalf("Dial = %v", err)
	}
}

// TestApplyFailureIsAnAnswer: a machine error is an error answer and the session goes on.
func TestApplyFailureIsAnAnswer(t *testing.T) {
	f := &fakeMachine{failHold: napi.ErrHeld}
	s := serveFake(t, f)
	c := dial(t, s)
	hello(t, c, RoleServer)
	if _, err := c.Apply(t.Context(), mode("threaded"), time.Minute); !errors.Is(err, napi.ErrHeld) {
		t.Fatalf("apply = %v; want ErrHeld across the wire", err)
	}
	if _, err := c.Stats(t.Context()); err != nil {
		t.Fatalf("the session did not go on: %v", err)
	}
	if _, err := c.Apply(t.Context(), mode("threaded"), time.Millisecond); err == nil ||
		!strings.Contains(err.Error(), "too short") {
		t.Fatalf("a 1 ms lease: %v", err)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(helloLine(1)))
	f.Add([]byte(applyLine(2)))
	f.Add([]byte(`{"id":3,"op":"renew","args":{"lease_ns":1000000000}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err == nil && (r.ID == 0 || r.Op == "") {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(`{"id":1,"result":{}}`))
	f.Add([]byte(`{"id":2,"error":{"message":"no","kind":"held"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResponse(b)
		if err == nil && (r.ID == 0 || (r.Error == nil) == (r.Result == nil)) {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzParseMagic(f *testing.F) {
	b, _ := json.Marshal(testMagic)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMagic(b)
		if err == nil && (m.Agent <= 0 || len(m.SHA256) != 64) {
			t.Fatalf("accepted %+v", m)
		}
	})
}

// FuzzServe feeds an agent arbitrary input: it must never panic, and whatever the input did, nothing stays
// applied or serving once the session is over.
func FuzzServe(f *testing.F) {
	f.Add([]byte(helloLine(1) + applyLine(2)))
	f.Add([]byte(helloLine(1) + `{"id":2,"op":"server-open","args":{"link":{"dev":"eth1","queue":0,"port":1,` +
		`"bind":"auto","xdp_mode":"auto","need_wakeup":true,"ring":64,"busy_poll":{"prefer":false}},` +
		`"service":{"payload_bytes":64,"format":"napilab","verify":false,"reply":"echo","delay_ns":0}}}` + "\n" +
		`{"id":3,"op":"server-start","args":{"threads":{"poll":"none"},"busy_poll":{"prefer":false}}}` + "\n"))
	f.Add([]byte(helloLine(1) + applyLine(2) + `{"id":3,"op":"bye"}` + "\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		fm := &fakeMachine{}
		err := Serve(context.Background(), strings.NewReader(string(in)), io.Discard, fm, testMagic)
		_ = err
		if applied, serving, closed := fm.state(); applied != 0 || serving || !closed {
			t.Fatalf("after %q: %d applied, serving %v, closed %v", in, applied, serving, closed)
		}
	})
}
