package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/rr"
)

// Conn is the controller's side of a session with an agent: one request at a time, each answered before the
// next is sent. Closing the stream (Close, or the controller dying) is the agent's signal to restore.
type Conn struct {
	rw    io.ReadWriteCloser
	r     *reader
	next  uint64
	Magic Magic // the agent's first line

	mu     sync.Mutex
	closed bool
}

// DialOptions tune Dial.
type DialOptions struct {
	// Version is the controller's napilab version; the agent must run the same.
	Version string
	// Where names the end for messages, e.g. "root@lab1" or "netns napilab-demo-b".
	Where string
	// Timeout bounds the wait for the agent's first line; 0 means 30 s (an agent copied over a slow link
	// starts after its upload, which is not counted here).
	Timeout time.Duration
}

// Dial reads the agent's first line from rw and checks that it is napilab's agent of the same version. Lines
// before it were printed by the remote shell: they make Dial fail, quoted, since a shell that prints on a
// non-interactive session may print again in the middle of the protocol.
func Dial(ctx context.Context, rw io.ReadWriteCloser, o DialOptions) (*Conn, error) {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	c := &Conn{rw: rw, r: newReader(rw), next: 1}
	type magicOr struct {
		m   Magic
		pre string
		err error
	}
	got := make(chan magicOr, 1)
	go func() {
		m, pre, err := readMagic(c.r)
		got <- magicOr{m, pre, err}
	}()
	var res magicOr
	select {
	case res = <-got:
	case <-ctx.Done():
		rw.Close()
		return nil, ctx.Err()
	case <-time.After(o.Timeout):
		rw.Close()
		return nil, fmt.Errorf("%s: the agent did not start within %v", o.Where, o.Timeout)
	}
	if pre := strings.TrimSpace(res.pre); pre != "" {
		rw.Close()
		return nil, ShellPrinted(o.Where, pre)
	}
	if res.err != nil {
		rw.Close()
		if errors.Is(res.err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%s: the agent exited before it said hello (see its error output above)", o.Where)
		}
		return nil, fmt.Errorf("%s: %w", o.Where, res.err)
	}
	if res.m.Agent != Protocol || res.m.Version != o.Version {
		rw.Close()
		return nil, &kernel.SentenceError{Kind: errVersion, Msg: fmt.Sprintf("%s runs napilab %s (agent protocol "+
			"%d), this is napilab %s (protocol %d): run the same napilab on both ends (drop --agent-path to let "+
			"napilab copy itself there)", o.Where, res.m.Version, res.m.Agent, o.Version, Protocol)}
	}
	c.Magic = res.m
	return c, nil
}

// ShellPrinted is the error for text a remote shell printed on a session that should carry only napilab's
// own output (the agent's protocol, or the deployment's answers): quoted, with the usual fix.
func ShellPrinted(where, printed string) error {
	return fmt.Errorf("%s: the remote shell printed %q before napilab's agent started: make the shell's "+
		"startup files (.bashrc, .profile) print nothing when not interactive, e.g. by putting "+
		"`[[ $- == *i* ]] || return` at the top of .bashrc", where, clip(strings.TrimSpace(printed), 200))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ErrVersion matches a refusal because the two ends run different napilab versions.
var ErrVersion = errVersion

// call sends one request and waits for its answer. A context that ends meanwhile closes the session: the
// agent cannot be interrupted mid-operation otherwise, and it restores when its stream closes.
func (c *Conn) call(ctx context.Context, op string, a, result any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("%s: the session with the agent is closed", op)
	}
	req := Request{ID: c.next, Op: op}
	if a != nil {
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		req.Args = b
	}
	c.next++
	type respOr struct {
		r   Response
		err error
	}
	got := make(chan respOr, 1)
	go func() {
		if err := writeLine(c.rw, req); err != nil {
			got <- respOr{err: fmt.Errorf("send %s to the agent: %w", op, err)}
			return
		}
		line, err := c.r.line()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = errors.New("the agent closed the session (see its error output above)")
			}
			got <- respOr{err: fmt.Errorf("%s: %w", op, err)}
			return
		}
		r, err := ParseResponse(line)
		got <- respOr{r, err}
	}()
	var res respOr
	select {
	case res = <-got:
	case <-ctx.Done():
		c.closeLocked()
		return fmt.Errorf("%s: %w", op, context.Cause(ctx))
	}
	if res.err != nil {
		c.closeLocked()
		return res.err
	}
	if res.r.ID != req.ID {
		c.closeLocked()
		if res.r.Error != nil {
			return fmt.Errorf("%s: %w", op, fromWire(res.r.Error))
		}
		return fmt.Errorf("%s: %w", op, protoErrorf("answer %d to request %d", res.r.ID, req.ID))
	}
	if res.r.Error != nil {
		err := fromWire(res.r.Error)
		var pe *ProtocolError
		if errors.As(err, &pe) {
			c.closeLocked()
		}
		return err
	}
	if result == nil {
		return nil
	}
	if err := decodeStrict(res.r.Result, result); err != nil {
		c.closeLocked()
		return fmt.Errorf("%s: %w", op, protoErrorf("a result that does not decode: %v", err))
	}
	return nil
}

// Close ends the session; the agent restores whatever it holds.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLocked()
}

func (c *Conn) closeLocked() error {
	if c.closed {
		return nil
	}
	c.closed = true
	return c.rw.Close()
}

// Hello introduces the controller, locks the end's device and returns the end's header.
func (c *Conn) Hello(ctx context.Context, a HelloArgs) (HelloResult, error) {
	a.Protocol = Protocol
	var r HelloResult
	return r, c.call(ctx, OpHello, a, &r)
}

// Probe checks which modes the end can put in place.
func (c *Conn) Probe(ctx context.Context, modes []napi.Mode) ([]ModeSupport, error) {
	var r ProbeResult
	err := c.call(ctx, OpProbe, ProbeArgs{Modes: modes}, &r)
	return r.Modes, err
}

// Plan returns what a mode would change on the end.
func (c *Conn) Plan(ctx context.Context, m napi.Mode) (*napi.Plan, error) {
	var p napi.Plan
	if err := c.call(ctx, OpPlan, PlanArgs{Mode: m}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Apply puts a mode in place under a lease.
func (c *Conn) Apply(ctx context.Context, m napi.Mode, lease time.Duration) (ApplyResult, error) {
	var r ApplyResult
	return r, c.call(ctx, OpApply, ApplyArgs{Mode: m, Lease: lease}, &r)
}

// Renew extends the lease of the mode in place.
func (c *Conn) Renew(ctx context.Context, lease time.Duration) (time.Time, error) {
	var r RenewResult
	err := c.call(ctx, OpRenew, RenewArgs{Lease: lease}, &r)
	return r.Deadline, err
}

// Restore puts back the mode in place.
func (c *Conn) Restore(ctx context.Context) (RestoreResult, error) {
	var r RestoreResult
	return r, c.call(ctx, OpRestore, empty{}, &r)
}

// ServerOpen opens the server's datapath on the end.
func (c *Conn) ServerOpen(ctx context.Context, a ServerOpenArgs) (rr.LinkInfo, error) {
	var r rr.LinkInfo
	return r, c.call(ctx, OpServerOpen, a, &r)
}

// ServerStart starts answering; it returns once the server polls.
func (c *Conn) ServerStart(ctx context.Context, a ServerStartArgs) error {
	return c.call(ctx, OpServerStart, a, nil)
}

// ServerStop ends the server's run and returns what it did.
func (c *Conn) ServerStop(ctx context.Context) (ServerResult, error) {
	var r ServerResult
	return r, c.call(ctx, OpServerStop, empty{}, &r)
}

// ClientOpen opens a client end's datapath.
func (c *Conn) ClientOpen(ctx context.Context, a ClientOpenArgs) (rr.LinkInfo, error) {
	var r rr.LinkInfo
	return r, c.call(ctx, OpClientOpen, a, &r)
}

// ClientRun runs one cell on a client end.
func (c *Conn) ClientRun(ctx context.Context, a ClientRunArgs) (*rr.ClientResult, error) {
	var r rr.ClientResult
	if err := c.call(ctx, OpClientRun, a, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// StopService stops a systemd unit on the end for the rest of the session, under the mode's lease.
func (c *Conn) StopService(ctx context.Context, unit string, lease time.Duration) (StopServiceResult, error) {
	var r StopServiceResult
	return r, c.call(ctx, OpStopService, StopServiceArgs{Unit: unit, Lease: lease}, &r)
}

// Stats returns the session's state.
func (c *Conn) Stats(ctx context.Context) (StatsResult, error) {
	var r StatsResult
	return r, c.call(ctx, OpStats, empty{}, &r)
}

// Bye restores, closes and ends the agent; the session is closed afterwards.
func (c *Conn) Bye(ctx context.Context) (RestoreResult, error) {
	var r RestoreResult
	err := c.call(ctx, OpBye, empty{}, &r)
	return r, errors.Join(err, c.Close())
}
