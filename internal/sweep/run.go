package sweep

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/rr"
)

// Env is where a sweep runs: the server's and the client's devices and network namespaces (paths such as
// /run/netns/NAME; empty for napilab's own), and the server's address as the client reaches it.
type Env struct {
	ServerDev, ServerNS string
	ClientDev, ClientNS string
	Peer                netip.Addr
	// Journal is where napi journals each mode while it is in place; empty for napi's default, so that
	// `napilab mode restore` finds it after a crash.
	Journal string
}

// Cell is one mode under one load in one repetition.
type Cell struct {
	Mode    string           `json:"mode"`
	Row     Row              `json:"row"`
	Rep     int              `json:"rep"`
	Skipped string           `json:"skipped,omitempty"` // why the cell has no numbers
	Notes   []string         `json:"notes,omitempty"`   // caveats for reading its numbers
	App     napi.AppSide     `json:"app"`
	Client  *rr.ClientResult `json:"client,omitempty"`
	Server  *rr.ServerStats  `json:"server,omitempty"`
	Link    rr.LinkInfo      `json:"link"`
}

// Result is a finished sweep.
type Result struct {
	Spec    Spec          `json:"spec"`
	Started time.Time     `json:"started"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Cells   []Cell        `json:"cells"`
}

// Cell returns the cell of a mode, row and repetition, or nil.
func (r *Result) Cell(mode string, row, rep int) *Cell {
	for i := range r.Cells {
		c := &r.Cells[i]
		if c.Mode == mode && c.Row == r.Spec.Rows[row] && c.Rep == rep {
			return c
		}
	}
	return nil
}

// Run runs the sweep. progress, if set, is called after each cell. Whatever a mode changes is restored before
// the next mode starts, when ctx is cancelled, and when a cell fails; a failure to restore ends the sweep.
func Run(ctx context.Context, s Spec, env Env, progress func(Cell)) (*Result, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	res := &Result{Spec: s, Started: time.Now().UTC()}
	b, err := open(ctx, s, env)
	if err != nil {
		return nil, err
	}
	defer b.close()
	for rep := 0; rep < s.Reps; rep++ {
		for _, mode := range s.Modes {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			cells, err := b.runMode(ctx, mode, rep)
			for _, c := range cells {
				res.Cells = append(res.Cells, c)
				if progress != nil {
					progress(c)
				}
			}
			if err != nil {
				res.Elapsed = time.Since(res.Started)
				return res, err
			}
		}
	}
	res.Elapsed = time.Since(res.Started)
	return res, nil
}

// skipAll marks every row of a mode skipped.
func skipAll(s Spec, mode string, rep int, why string) []Cell {
	cells := make([]Cell, len(s.Rows))
	for i, r := range s.Rows {
		cells[i] = Cell{Mode: mode, Row: r, Rep: rep, Skipped: why}
	}
	return cells
}

// bench is the datapath a sweep measures through: both links stay open for the whole sweep (on veth the NAPI a
// mode configures exists only while an XDP program is attached, and a closed socket's queue is released
// asynchronously), and the server and client are re-parameterised per mode and load.
type bench struct {
	s              Spec
	env            Env
	sl, cl         *rr.Link
	srv            *rr.Server
	cli            *rr.Client
	server, client rr.Params
}

func open(ctx context.Context, s Spec, env Env) (_ *bench, err error) {
	b := &bench{s: s, env: env}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	b.server = rr.DefaultParams(rr.RoleServer)
	b.server.Dev, b.server.Payload, b.server.Ring = env.ServerDev, s.Payload, s.Ring
	b.client = rr.DefaultParams(rr.RoleClient)
	b.client.Dev, b.client.PeerIP, b.client.Payload, b.client.Ring = env.ClientDev, env.Peer, s.Payload, s.Ring
	b.client.CPUs, b.client.Poll, b.client.Sender, b.client.Colocated = []int{s.ClientCPU}, rr.PollNone, rr.SenderInline, 1
	b.client.Duration, b.client.Warmup, b.client.Interval, b.client.Count = s.Duration, s.Warmup, 0, 0
	b.client.Period = s.Rows[0].Period()
	if s.ReplyTimeout != 0 {
		b.client.Timeout = s.ReplyTimeout
	}
	if err := errors.Join(b.server.Validate(), b.client.Validate()); err != nil {
		return nil, err
	}
	if b.sl, err = rr.OpenLinkIn(ctx, b.server, env.ServerNS); err != nil {
		return nil, fmt.Errorf("server link: %w", err)
	}
	// The server fills its fill ring before the client looks for it: a zero-copy driver drops even ARP without.
	if b.srv, err = rr.NewServer(b.sl.Sock, b.server, rr.ServerOptions{Local: b.sl.Info.Local}); err != nil {
		return nil, err
	}
	if b.cl, err = rr.OpenLinkIn(ctx, b.client, env.ClientNS); err != nil {
		return nil, fmt.Errorf("client link: %w", err)
	}
	b.cli, err = rr.NewClient(b.cl.Sock, b.client, rr.ClientOptions{Local: b.cl.Info.Local, Peer: b.cl.Info.Peer,
		UsableCPUs: runtime.NumCPU()})
	return b, err
}

func (b *bench) close() {
	if b.cl != nil {
		b.cl.Close()
	}
	if b.sl != nil {
		b.sl.Close()
	}
}

// serverParams is the server's side of a mode: its poll driver and busy-poll socket options.
func (b *bench) serverParams(m napi.Mode) rr.Params {
	p := b.server
	p.CPUs = []int{b.s.ServerCPU}
	p.Poll = rr.PollDriver(m.App.Poll)
	p.PreferBusyPoll, p.BusyPollBudget, p.BusyPollUsec = m.App.PreferBusyPoll, m.App.BusyPollBudget, 0
	if m.BusyRead != nil {
		// busy_read only reaches sockets created after it is set; the open socket gets the same value directly.
		p.BusyPollUsec = int(*m.BusyRead / time.Microsecond)
	}
	if p.Poll == rr.PollSeparate {
		p.CPUs = nil // the poller shares the CPUs with everything else: let the scheduler place both threads
	}
	return p
}

// setSocket puts a mode's busy-poll options on the server's socket, clearing those of the previous mode.
func (b *bench) setSocket(p rr.Params) error {
	sock := b.sl.Sock
	return errors.Join(sock.SetBusyPoll(time.Duration(p.BusyPollUsec)*time.Microsecond),
		sock.SetPreferBusyPoll(p.PreferBusyPoll), sock.SetBusyPollBudget(p.BusyPollBudget))
}

// runMode puts one mode in place and runs every row under it. An error return means the sweep cannot go on
// (the system may not be as it was); a mode the machine cannot do is a skipped cell, not an error.
func (b *bench) runMode(ctx context.Context, mode string, rep int) (cells []Cell, err error) {
	s, env := b.s, b.env
	m, err := napi.Preset(mode, env.ServerDev)
	if err != nil {
		return nil, err
	}
	m.NetNS, m.Queues = env.ServerNS, []int{0}
	m.PollCPU = s.ServerCPU
	if s.PollCPU >= 0 {
		m.PollCPU = s.PollCPU
	}
	// A kthread that never sleeps, at real-time priority, owns the CPU it is pinned to: it needs one that no
	// benchmark loop uses.
	if m.Name == napi.ThreadedBusyPoll && (m.PollCPU == s.ServerCPU || m.PollCPU == s.ClientCPU) {
		if runtime.NumCPU() < 3 {
			return skipAll(s, mode, rep, fmt.Sprintf("needs a CPU of its own for the busy-polling NAPI kthread; this machine has %d, used by the server and the client", runtime.NumCPU())), nil
		}
		return skipAll(s, mode, rep, "the busy-polling NAPI kthread needs a CPU of its own: set the poll CPU apart from the server's and the client's"), nil
	}
	server := b.serverParams(m)
	if err := b.srv.SetParams(server); err != nil {
		return nil, err
	}

	sys, err := napi.Open(env.ServerNS)
	if err != nil {
		return nil, err
	}
	defer sys.Close()
	target, err := sys.Resolve(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mode, err)
	}
	plan, err := napi.Build(m, target)
	if errors.Is(err, kernel.ErrNotSupported) {
		return skipAll(s, mode, rep, err.Error()), nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mode, err)
	}
	if err := b.setSocket(server); err != nil {
		return nil, fmt.Errorf("%s: %w", mode, err)
	}
	applied, err := sys.Apply(ctx, plan, napi.ApplyOptions{Journal: env.Journal})
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", mode, err)
	}
	defer func() {
		report := sys.Restore(applied.Journal, napi.RestoreOptions{})
		if rerr := report.Err(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("restore after %s (journal kept at %s; run napilab mode restore): %w",
				mode, applied.Journal.Path(), rerr))
			return
		}
		err = errors.Join(err, napi.RemoveJournal(applied.Journal.Path()))
	}()

	notes := append([]string{}, b.sl.Info.Warnings...)
	if b.sl.Info.NAPIID == 0 && (server.BusyPollUsec > 0 || server.PreferBusyPoll || server.Poll == rr.PollSeparate) {
		notes = append(notes, fmt.Sprintf("the server's socket on %s has no NAPI id, so its busy polling reaches no "+
			"NAPI (the driver does not link its queues to NAPIs; veth does not as of Linux 6.18): the mode's "+
			"kernel-side settings still apply", env.ServerDev))
	}
	if server.Poll == rr.PollSeparate && runtime.NumCPU() < 3 {
		notes = append(notes, fmt.Sprintf("3 spinning threads (server, its poller, client) share %d CPUs", runtime.NumCPU()))
	}
	for _, row := range s.Rows {
		c := Cell{Mode: mode, Row: row, Rep: rep, App: m.App, Link: b.sl.Info, Notes: notes}
		client := b.client
		client.Period, client.Delay = row.Period(), row.Delay
		if err := b.cli.SetParams(client); err != nil {
			return cells, err
		}
		r, st, err := rr.Exchange(ctx, b.srv, b.cli)
		if err != nil {
			return cells, fmt.Errorf("%s, %s: %w", mode, row, err)
		}
		c.Client, c.Server = r, &st
		if late := r.SenderLateness.P99; late > int64(row.Period()) {
			c.Notes = append(append([]string{}, c.Notes...), fmt.Sprintf("at %s the client could not keep to its schedule "+
				"(sender lateness p99 %s > the %s period): the load saturates this machine, and latencies include queueing",
				row, rr.FormatNs(late), rr.FormatNs(int64(row.Period()))))
		}
		cells = append(cells, c)
		if ctx.Err() != nil {
			return cells, ctx.Err()
		}
	}
	return cells, nil
}
