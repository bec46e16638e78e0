package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/rr"
)

// Serve is the agent: it writes magic, then answers the controller's requests from r on w until the
// controller says bye, closes r, breaks the protocol, or ctx ends (a signal). Whatever it put in place it
// restores on every one of those ways out, and when a mode's lease runs out without a renewal (a partition
// that never closes the pipe). It returns nil after a bye or a clean end of r, and the reason otherwise.
func Serve(ctx context.Context, r io.Reader, w io.Writer, m Machine, magic Magic) error {
	s := &session{m: m, w: w, next: 1, magic: magic}
	defer s.cleanup()
	if err := writeLine(w, magic); err != nil {
		return fmt.Errorf("write the agent line: %w", err)
	}
	opCtx, cancelOp := context.WithCancel(ctx)
	defer cancelOp()
	lines := make(chan lineOrErr)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		rd := newReader(r)
		for {
			b, err := rd.line()
			if err != nil {
				cancelOp() // an operation in progress ends with the session
			}
			select {
			case lines <- lineOrErr{b, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		var expired <-chan struct{}
		if s.hold != nil {
			expired = s.hold.Done()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent stopped: %w", context.Cause(ctx))
		case <-expired:
			s.lost = s.hold.Expired()
			s.hold = nil
		case l := <-lines:
			if l.err != nil {
				if errors.Is(l.err, io.EOF) {
					return nil // the controller went away between requests: clean up, nothing to say
				}
				var pe *ProtocolError
				if errors.As(l.err, &pe) {
					s.fail(l.err)
				}
				return l.err
			}
			done, err := s.handle(opCtx, l.b)
			if err != nil || done {
				return err
			}
		}
	}
}

type lineOrErr struct {
	b   []byte
	err error
}

// session is the agent's state between requests.
type session struct {
	m     Machine
	w     io.Writer
	next  uint64
	magic Magic

	helloed bool
	role    Role
	hold    Holding
	service Holding // a unit stopped for the session
	lost    bool    // the last hold's lease ran out and the agent restored by itself
	server  Server
	serving bool
	client  Client
}

// handle answers one request line. done is set after a bye; an error ends the session (the protocol is
// broken, or the answer could not be written).
func (s *session) handle(ctx context.Context, line []byte) (done bool, err error) {
	req, err := ParseRequest(line)
	if err != nil {
		return true, s.fail(err)
	}
	if req.ID != s.next {
		return true, s.fail(protoErrorf("request %d when %d was due: messages are out of order or lost", req.ID, s.next))
	}
	s.next++
	if !s.helloed && req.Op != OpHello {
		return true, s.fail(protoErrorf("%s before hello", req.Op))
	}
	result, opErr := s.dispatch(ctx, req)
	var pe *ProtocolError
	if errors.As(opErr, &pe) {
		return true, s.fail(opErr)
	}
	resp := Response{ID: req.ID}
	if opErr != nil {
		resp.Error = toWire(opErr)
	} else {
		b, err := json.Marshal(result)
		if err != nil {
			return true, fmt.Errorf("encode the %s result: %w", req.Op, err)
		}
		resp.Result = b
	}
	if err := writeLine(s.w, resp); err != nil {
		return true, fmt.Errorf("answer %s: %w", req.Op, err)
	}
	return req.Op == OpBye, nil
}

// fail tells the controller why the session ends, as far as it still listens, and returns err.
func (s *session) fail(err error) error {
	_ = writeLine(s.w, Response{ID: s.next, Error: toWire(err)})
	return err
}

func args[T any](req Request) (T, error) {
	var a T
	if len(req.Args) == 0 {
		return a, nil
	}
	if err := decodeStrict(req.Args, &a); err != nil {
		return a, protoErrorf("%s arguments: %v", req.Op, err)
	}
	return a, nil
}

func (s *session) dispatch(ctx context.Context, req Request) (any, error) {
	switch req.Op {
	case OpHello:
		a, err := args[HelloArgs](req)
		if err != nil {
			return nil, err
		}
		return s.hello(ctx, a)
	case OpProbe:
		a, err := args[ProbeArgs](req)
		if err != nil {
			return nil, err
		}
		modes, err := s.m.Probe(ctx, a.Modes)
		return ProbeResult{Modes: modes}, err
	case OpPlan:
		a, err := args[PlanArgs](req)
		if err != nil {
			return nil, err
		}
		return s.m.Plan(ctx, a.Mode)
	case OpApply:
		a, err := args[ApplyArgs](req)
		if err != nil {
			return nil, err
		}
		return s.apply(ctx, a)
	case OpRenew:
		a, err := args[RenewArgs](req)
		if err != nil {
			return nil, err
		}
		return s.renew(a)
	case OpRestore:
		if _, err := args[empty](req); err != nil {
			return nil, err
		}
		return s.restore()
	case OpServerOpen:
		a, err := args[ServerOpenArgs](req)
		if err != nil {
			return nil, err
		}
		return s.serverOpen(ctx, a)
	case OpServerStart:
		a, err := args[ServerStartArgs](req)
		if err != nil {
			return nil, err
		}
		return s.serverStart(ctx, a)
	case OpServerStop:
		if _, err := args[empty](req); err != nil {
			return nil, err
		}
		return s.serverStop()
	case OpClientOpen:
		a, err := args[ClientOpenArgs](req)
		if err != nil {
			return nil, err
		}
		return s.clientOpen(ctx, a)
	case OpClientRun:
		a, err := args[ClientRunArgs](req)
		if err != nil {
			return nil, err
		}
		if s.client == nil {
			return nil, errors.New("client-run before client-open")
		}
		return s.client.Run(ctx, a.Workload, a.Threads)
	case OpStats:
		if _, err := args[empty](req); err != nil {
			return nil, err
		}
		return s.stats(), nil
	case OpStopService:
		a, err := args[StopServiceArgs](req)
		if err != nil {
			return nil, err
		}
		return s.stopService(ctx, a)
	case OpBye:
		if _, err := args[empty](req); err != nil {
			return nil, err
		}
		return s.cleanup()
	}
	return nil, protoErrorf("unknown operation %q", req.Op)
}

func (s *session) hello(ctx context.Context, a HelloArgs) (HelloResult, error) {
	if s.helloed {
		return HelloResult{}, protoErrorf("a second hello")
	}
	if a.Protocol != Protocol || a.Version != s.magic.Version {
		return HelloResult{}, &kernel.SentenceError{Kind: errVersion, Msg: fmt.Sprintf("the agent is napilab %s "+
			"(protocol %d) and the controller napilab %s (protocol %d): run the same napilab on both ends (drop "+
			"--agent-path to let the controller copy itself)", s.magic.Version, Protocol, a.Version, a.Protocol)}
	}
	switch a.Role {
	case RoleServer, RoleClient:
	default:
		return HelloResult{}, protoErrorf("hello with role %q", a.Role)
	}
	res, err := s.m.Hello(ctx, a)
	if err != nil {
		return HelloResult{}, err
	}
	s.helloed, s.role = true, a.Role
	res.Agent = s.magic
	return res, nil
}

var errVersion = errors.New("version mismatch")

func (s *session) serverOnly(op string) error {
	if s.role != RoleServer {
		return protoErrorf("%s on a %s end", op, s.role)
	}
	return nil
}

func (s *session) apply(ctx context.Context, a ApplyArgs) (ApplyResult, error) {
	if err := s.serverOnly(OpApply); err != nil {
		return ApplyResult{}, err
	}
	if s.hold != nil {
		return ApplyResult{}, fmt.Errorf("%s is applied: restore it before applying %s",
			s.hold.Result().Plan.Mode.Preset, a.Mode.Preset)
	}
	if a.Lease < leaseFloor {
		return ApplyResult{}, fmt.Errorf("a lease of %v is too short: give at least %v (the agent restores when "+
			"it runs out)", a.Lease, leaseFloor)
	}
	h, err := s.m.Hold(ctx, a.Mode, a.Lease)
	if err != nil {
		return ApplyResult{}, err
	}
	s.hold, s.lost = h, false
	return h.Result(), nil
}

func (s *session) renew(a RenewArgs) (RenewResult, error) {
	if err := s.serverOnly(OpRenew); err != nil {
		return RenewResult{}, err
	}
	if s.hold == nil {
		if s.lost {
			return RenewResult{}, errLeaseLost
		}
		return RenewResult{}, errors.New("nothing is applied: there is no lease to renew")
	}
	if err := s.hold.Renew(a.Lease); err != nil {
		return RenewResult{}, err
	}
	if s.service != nil {
		if err := s.service.Renew(a.Lease); err != nil {
			return RenewResult{}, err
		}
	}
	return RenewResult{Deadline: s.hold.Deadline()}, nil
}

var errLeaseLost = errors.New("the lease ran out before it was renewed, and the agent restored the mode: " +
	"renew more often than the lease (or pass a longer --lease)")

func (s *session) restore() (RestoreResult, error) {
	if err := s.serverOnly(OpRestore); err != nil {
		return RestoreResult{}, err
	}
	if s.hold == nil {
		return RestoreResult{Expired: s.lost}, nil
	}
	rep, err := s.hold.Release()
	s.hold = nil
	return RestoreResult{Report: rep}, err
}

func (s *session) serverOpen(ctx context.Context, a ServerOpenArgs) (rr.LinkInfo, error) {
	if err := s.serverOnly(OpServerOpen); err != nil {
		return rr.LinkInfo{}, err
	}
	if s.server != nil {
		return rr.LinkInfo{}, errors.New("the server's link is open already")
	}
	srv, info, err := s.m.OpenServer(ctx, a)
	if err != nil {
		return rr.LinkInfo{}, err
	}
	s.server = srv
	return info, nil
}

func (s *session) serverStart(ctx context.Context, a ServerStartArgs) (empty, error) {
	switch {
	case s.server == nil:
		return empty{}, errors.New("server-start before server-open")
	case s.serving:
		return empty{}, errors.New("the server is running already")
	}
	// The server runs beyond this request: it gets the session's context, not the operation's.
	if err := s.server.Start(context.WithoutCancel(ctx), a.Threads, a.BusyPoll); err != nil {
		return empty{}, err
	}
	s.serving = true
	return empty{}, nil
}

func (s *session) serverStop() (ServerResult, error) {
	if !s.serving {
		return ServerResult{}, errors.New("server-stop without a running server")
	}
	s.serving = false
	res, err := s.server.Stop()
	res.LeaseLost = s.lost || s.hold != nil && s.hold.Expired()
	return res, err
}

func (s *session) clientOpen(ctx context.Context, a ClientOpenArgs) (rr.LinkInfo, error) {
	if s.role != RoleClient {
		return rr.LinkInfo{}, protoErrorf("%s on a %s end", OpClientOpen, s.role)
	}
	if s.client != nil {
		return rr.LinkInfo{}, errors.New("the client's link is open already")
	}
	c, info, err := s.m.OpenClient(ctx, a)
	if err != nil {
		return rr.LinkInfo{}, err
	}
	s.client = c
	return info, nil
}

func (s *session) stopService(ctx context.Context, a StopServiceArgs) (StopServiceResult, error) {
	switch {
	case s.service != nil:
		return StopServiceResult{}, errors.New("a unit is stopped for this session already")
	case a.Unit == "" || strings.ContainsAny(a.Unit, "/ \t\n"):
		return StopServiceResult{}, protoErrorf("stop-service of unit %q", a.Unit)
	case a.Lease < leaseFloor:
		return StopServiceResult{}, fmt.Errorf("a lease of %v is too short: give at least %v", a.Lease, leaseFloor)
	}
	h, err := s.m.HoldService(ctx, a.Unit, a.Lease)
	if err != nil {
		return StopServiceResult{}, err
	}
	s.service = h
	r := h.Result()
	res := StopServiceResult{Journal: r.Journal}
	if len(r.Entries) > 0 && r.Entries[0].Prior != nil && r.Entries[0].Prior.Service != nil {
		res.WasActive = r.Entries[0].Prior.Service.Active
	}
	return res, nil
}

func (s *session) stats() StatsResult {
	st := StatsResult{Serving: s.serving, Expired: s.lost}
	if s.hold != nil {
		st.Applied, st.Deadline = s.hold.Result().Plan.Mode.Preset, s.hold.Deadline()
	}
	return st
}

// cleanup puts back and closes everything, in the order that keeps the system safe: the server stops polling
// before its mode is restored, and the lock goes last. It runs once per way out; later calls find nothing.
func (s *session) cleanup() (RestoreResult, error) {
	var errs []error
	if s.serving {
		_, err := s.server.Stop()
		s.serving = false
		errs = append(errs, err)
	}
	var res RestoreResult
	if s.hold != nil {
		rep, err := s.hold.Release()
		res.Report = rep
		s.hold = nil
		errs = append(errs, err)
	}
	res.Expired = s.lost
	if s.service != nil {
		_, err := s.service.Release()
		s.service = nil
		errs = append(errs, err)
	}
	if s.server != nil {
		errs = append(errs, s.server.Close())
	}
	if s.client != nil {
		errs = append(errs, s.client.Close())
	}
	s.server, s.client = nil, nil
	if s.m != nil {
		errs = append(errs, s.m.Close())
		s.m = nil
	}
	return res, errors.Join(errs...)
}

// toWire turns an error into its wire form, keeping what callers branch on.
func toWire(err error) *WireError {
	w := &WireError{Message: err.Error()}
	if fe, ok := err.(*kernel.FieldError); ok {
		w.Field, w.Message = fe.Field, fe.Msg
	}
	var pe *ProtocolError
	switch {
	case errors.As(err, &pe):
		w.Kind = KindProtocol
	case errors.Is(err, errLeaseLost):
		w.Kind = KindLeaseLost
	case errors.Is(err, napi.ErrHeld):
		w.Kind = KindHeld
	case errors.Is(err, kernel.ErrNotSupported):
		w.Kind = KindUnsupported
	case errors.Is(err, os.ErrNotExist):
		w.Kind = KindNotExist
	case errors.Is(err, os.ErrPermission):
		w.Kind = KindPermission
	}
	return w
}

// fromWire turns a wire error back into one that matches what it matched on the agent.
func fromWire(w *WireError) error {
	var kind error
	switch w.Kind {
	case KindProtocol:
		return &ProtocolError{Msg: w.Message}
	case KindLeaseLost:
		kind = errLeaseLost
	case KindHeld:
		kind = napi.ErrHeld
	case KindUnsupported:
		kind = kernel.ErrNotSupported
	case KindNotExist:
		kind = os.ErrNotExist
	case KindPermission:
		kind = os.ErrPermission
	}
	if w.Field != "" {
		return &kernel.FieldError{Field: w.Field, Msg: w.Message, Kind: kind}
	}
	return &kernel.SentenceError{Msg: w.Message, Kind: kind}
}

// ErrLeaseLost matches an error that says the agent restored a mode because its lease ran out.
var ErrLeaseLost = errLeaseLost

// leaseFloor is the shortest lease an apply accepts: shorter ones would expire between two requests.
const leaseFloor = 100 * time.Millisecond
