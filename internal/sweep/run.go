package sweep

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/napilab/napilab/internal/agent"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/sysknob"
	"github.com/napilab/napilab/internal/trace"
)

// Schema names the layout of Result. It changes only when a field changes meaning or disappears.
const Schema = "napilab.sweep/v2"

// ServerEnd is the server's end of a sweep, where modes are applied and the rr server answers: an agent session
// (*agent.Conn), whether the agent runs on another host over ssh or on this one.
type ServerEnd interface {
	Probe(ctx context.Context, modes []napi.Mode) ([]agent.ModeSupport, error)
	Apply(ctx context.Context, m napi.Mode, lease time.Duration) (agent.ApplyResult, error)
	Renew(ctx context.Context, lease time.Duration) (time.Time, error)
	Restore(ctx context.Context) (agent.RestoreResult, error)
	ServerOpen(ctx context.Context, a agent.ServerOpenArgs) (rr.LinkInfo, error)
	ServerStart(ctx context.Context, a agent.ServerStartArgs) error
	ServerStop(ctx context.Context) (agent.ServerResult, error)
}

// ClientEnd is the client's end: in this process (NewLocalClient) or an agent session on another host.
type ClientEnd interface {
	ClientOpen(ctx context.Context, a agent.ClientOpenArgs) (rr.LinkInfo, error)
	ClientRun(ctx context.Context, a agent.ClientRunArgs) (*rr.ClientResult, error)
}

// Ends are the two ends of a sweep and what the engine needs to know about them.
type Ends struct {
	Server     ServerEnd
	ServerInfo agent.EndInfo // from the server's hello
	ServerDev  string
	ServerNS   string // the device's namespace on the server host (a name or a path there)
	Client     ClientEnd
	ClientInfo agent.EndInfo
	ClientDev  string
	// Peer is the server's address as the client reaches it.
	Peer netip.Addr
	// SameHost says the two ends share one machine (a testbed): their spinning loops then need CPUs of their own.
	SameHost bool
}

// Options tune Run.
type Options struct {
	// Lease is how long the server end keeps a mode without hearing from the controller; it is renewed before
	// every cell. 0 picks three cells' worth, at least 30 s.
	Lease time.Duration
	// Progress, if set, is told when a cell starts and when it ends.
	Progress func(Progress)
	// Command is the command line, for the result's header.
	Command []string
	// Force lets Channels and RingRX reset the device that carries the ssh session to the server host.
	Force bool
	// KeepIrqbalance keeps irqbalance running on the ends during the sweep (it is stopped otherwise).
	KeepIrqbalance bool
}

// Progress is where a sweep is.
type Progress struct {
	Cell      int           // 1-based number of the cell starting or done
	Cells     int           // cells in the sweep
	Mode      string        // the cell's mode
	Row       Row           // and load
	Rep       int           // and repetition
	Remaining time.Duration // estimated time left, this cell included when it starts
	Done      *Cell         // the finished cell; nil when the cell is starting
}

// Header says where and how a sweep ran, for both ends: enough to reproduce and compare it.
type Header struct {
	Command    []string      `json:"command,omitempty"`
	Server     agent.EndInfo `json:"server"`
	Client     agent.EndInfo `json:"client"`
	ServerLink rr.LinkInfo   `json:"server_link"`
	ClientLink rr.LinkInfo   `json:"client_link"`
	Peer       string        `json:"peer"`
	Lease      time.Duration `json:"lease_ns"`
}

// ModeRecord is what a mode put in place on the server, or why it was skipped.
type ModeRecord struct {
	Mode    string     `json:"mode"`
	Plan    *napi.Plan `json:"plan,omitempty"`
	Skipped string     `json:"skipped,omitempty"`
}

// Cell is one mode under one load in one repetition.
type Cell struct {
	Mode    string              `json:"mode"`
	Row     Row                 `json:"row"`
	Rep     int                 `json:"rep"`
	Skipped string              `json:"skipped,omitempty"` // why the cell has no numbers
	Notes   []note.Note         `json:"notes,omitempty"`   // caveats for reading its numbers
	App     napi.AppSide        `json:"app"`
	Client  *rr.ClientResult    `json:"client,omitempty"`
	Server  *agent.ServerResult `json:"server,omitempty"`
	// Mismatch says how the poller the server's trace observed contradicts the mode: the cell did not measure
	// what its mode's name says. Empty when they agree, or when nothing was traced.
	Mismatch string `json:"mismatch,omitempty"`
}

// Result is a sweep, finished or not: cells measured before an interruption or a failure are kept.
type Result struct {
	Schema  string        `json:"schema"`
	Header  Header        `json:"header"`
	Spec    Spec          `json:"spec"`
	Started time.Time     `json:"started"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Modes   []ModeRecord  `json:"modes"`
	Cells   []Cell        `json:"cells"`
	Notes   []note.Note   `json:"notes,omitempty"`
	// Incomplete says why the sweep stopped early; empty when every cell ran.
	Incomplete string `json:"incomplete,omitempty"`
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

// Run runs the sweep between the two ends: it opens both datapaths, checks that requests come back before any
// setting changes, then for every repetition puts each mode in place on the server (under a lease renewed before
// every cell), measures every load, and restores. Repetitions interleave the modes. It returns what it measured
// even when it stops early; an error then says why. The ends' sessions are the caller's to close: closing a
// server end's session restores whatever it still holds.
func Run(ctx context.Context, s Spec, ends Ends, o Options) (*Result, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	e := &engine{s: s, ends: ends, o: o}
	if e.o.Lease == 0 {
		e.o.Lease = max(30*time.Second, 3*e.cellTime())
	}
	if e.o.Lease < 2*e.cellTime() {
		return nil, fmt.Errorf("a lease of %v does not outlast two cells (%v each): give --lease %v or more, or "+
			"shorter cells", e.o.Lease, e.cellTime(), 2*e.cellTime())
	}
	res := &Result{Schema: Schema, Spec: s, Started: time.Now().UTC(),
		Header: Header{Command: o.Command, Server: ends.ServerInfo, Client: ends.ClientInfo, Peer: ends.Peer.String(),
			Lease: e.o.Lease}}
	e.res = res
	err := e.run(ctx)
	res.Elapsed = time.Since(res.Started)
	switch {
	case err != nil && ctx.Err() != nil:
		res.Incomplete = fmt.Sprintf("interrupted after %d of %d cells", len(res.Cells),
			len(s.Modes)*len(s.Rows)*s.Reps)
	case err != nil:
		res.Incomplete = err.Error()
	}
	return res, err
}

type engine struct {
	s     Spec
	ends  Ends
	o     Options
	res   *Result
	modes []napi.Mode
	skip  map[string]string // mode → why it cannot run here
	done  int
}

// cellTime is how long one cell takes at most: warm-up, measurement, and the reply timeout after the last send.
func (e *engine) cellTime() time.Duration { return e.s.Warmup + e.s.Duration + e.s.Timeout }

func (e *engine) run(ctx context.Context) error {
	if err := e.checkEnds(); err != nil {
		return err
	}
	// The links open first: on veth the NAPI a mode configures exists only while an XDP program is attached.
	if err := e.openLinks(ctx); err != nil {
		return err
	}
	if err := e.prepareModes(ctx); err != nil {
		return err
	}
	if err := e.preflight(ctx); err != nil {
		return err
	}
	if err := e.stopIrqbalance(ctx); err != nil {
		return err
	}
	for rep := 0; rep < e.s.Reps; rep++ {
		for _, m := range e.modes {
			if err := e.runMode(ctx, m, rep); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkCPU refuses a CPU the end cannot run a loop on: one napilab may not run on there (offline, or outside
// its affinity), or, when the end did not say which it may, one beyond its CPU count. -1 (poll-cpu: the
// server's) is not a CPU.
func checkCPU(field string, cpu int, end agent.EndInfo) error {
	if cpu < 0 {
		return nil
	}
	if usable, err := sysknob.ParseCPUList(end.UsableCPUs); err == nil && end.UsableCPUs != "" {
		if !usable.Has(cpu) {
			return kernel.Fieldf(field, "%d is not a CPU napilab can run on at %s: choose among %s (online and "+
				"allowed)", cpu, end.Hostname, usable)
		}
		return nil
	}
	if end.CPUs > 0 && cpu >= end.CPUs {
		return kernel.Fieldf(field, "%d does not exist on %s, which has CPUs 0-%d", cpu, end.Hostname, end.CPUs-1)
	}
	return nil
}

// checkEnds refuses what cannot give an honest comparison before anything is opened.
func (e *engine) checkEnds() error {
	ends, s := e.ends, e.s
	if ends.SameHost && s.ServerCPU == s.ClientCPU {
		return kernel.Fieldf("client-cpu", "%d is also the server's CPU, and both ends run on this machine: give "+
			"them two different CPUs", s.ClientCPU)
	}
	for _, c := range []struct {
		field string
		cpu   int
		end   agent.EndInfo
	}{{"server-cpu", s.ServerCPU, ends.ServerInfo}, {"client-cpu", s.ClientCPU, ends.ClientInfo},
		{"poll-cpu", s.PollCPU, ends.ServerInfo}} {
		if err := checkCPU(c.field, c.cpu, c.end); err != nil {
			return err
		}
	}
	// The client addresses the server's own address: with NAT in between, the server would see requests for an
	// address it does not have, and the latency would include a translation napilab cannot account for.
	if addrs := ends.ServerInfo.Device.Addrs; len(addrs) > 0 && !hasAddr(addrs, ends.Peer) {
		return kernel.Fieldf("peer", "%s is not an address of %s on %s (it has %v): give the server device's own "+
			"address; a NAT between the hosts is not supported", ends.Peer, ends.ServerDev,
			ends.ServerInfo.Hostname, addrs)
	}
	if (s.Channels > 0 || s.RingRX > 0) && ends.ServerInfo.CarriesSSH && !e.o.Force {
		field := "channels"
		if s.Channels == 0 {
			field = "ring-rx"
		}
		return kernel.Fieldf(field, "would reset %s on %s, which carries the ssh session napilab drives the host "+
			"through: the session (and the restore it guarantees) could be cut mid-change; use another device, or "+
			"pass --force", ends.ServerDev, ends.ServerInfo.Hostname)
	}
	if mtu := ends.ServerInfo.Device.MTU; mtu > 0 && s.Payload+48 > mtu {
		return kernel.Fieldf("payload", "of %d bytes does not fit %s's MTU of %d with its IPv6 and UDP headers: "+
			"use at most %d bytes", s.Payload, ends.ServerDev, mtu, mtu-48)
	}
	if mtu := ends.ClientInfo.Device.MTU; mtu > 0 && s.Payload+48 > mtu {
		return kernel.Fieldf("payload", "of %d bytes does not fit %s's MTU of %d with its IPv6 and UDP headers: "+
			"use at most %d bytes", s.Payload, ends.ClientDev, mtu, mtu-48)
	}
	return nil
}

func hasAddr(addrs []string, ip netip.Addr) bool {
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Unmap() == ip.Unmap() {
			return true
		}
	}
	return false
}

// prepareModes resolves every mode for the server's device and asks the server which it can put in place.
func (e *engine) prepareModes(ctx context.Context) error {
	e.skip = map[string]string{}
	for _, name := range e.s.Modes {
		m, err := napi.Preset(name, e.ends.ServerDev)
		if err != nil {
			return err
		}
		m.NetNS, m.Queues, m.PollCPU = e.ends.ServerNS, []int{0}, e.s.ServerCPU
		m.Channels, m.RingRX = e.s.Channels, e.s.RingRX
		if e.s.PollCPU >= 0 {
			m.PollCPU = e.s.PollCPU
		}
		e.modes = append(e.modes, m)
		if why := e.cannotRun(m); why != "" {
			e.skip[name] = why
		}
	}
	sup, err := e.ends.Server.Probe(ctx, e.modes)
	if err != nil {
		return fmt.Errorf("probe the server's modes: %w", err)
	}
	for _, s := range sup {
		if !s.Supported && e.skip[s.Mode] == "" {
			e.skip[s.Mode] = s.Reason
		}
	}
	for _, m := range e.modes {
		e.res.Modes = append(e.res.Modes, ModeRecord{Mode: m.Preset, Skipped: e.skip[m.Preset]})
	}
	return nil
}

// cannotRun says why a mode cannot be measured honestly with these CPUs, or "".
func (e *engine) cannotRun(m napi.Mode) string {
	if m.App.Epoll {
		return "IRQ suspension works only through epoll busy polling, and rr has no epoll poll driver: the cell " +
			"would measure plain busy polling under another name"
	}
	// A kthread that never sleeps, at real-time priority, owns the CPU it is pinned to: it needs one that no
	// benchmark loop uses.
	if m.Name == napi.ThreadedBusyPoll && (m.PollCPU == e.s.ServerCPU || e.ends.SameHost && m.PollCPU == e.s.ClientCPU) {
		cpus := e.ends.ServerInfo.CPUs
		if cpus > 0 && cpus < 3 && e.ends.SameHost {
			return fmt.Sprintf("needs a CPU of its own for the busy-polling NAPI kthread; this machine has %d, used "+
				"by the server and the client", cpus)
		}
		return "the busy-polling NAPI kthread needs a CPU of its own: set the poll CPU apart from the server's" +
			" (and, on one machine, the client's)"
	}
	return ""
}

func (e *engine) serverLink() rr.LinkOptions {
	l := rr.DefaultLink(e.ends.ServerDev)
	l.Ring = e.s.Ring
	return l
}

func (e *engine) workload(row Row) rr.Workload {
	w := rr.DefaultWorkload()
	w.Payload, w.Duration, w.Warmup, w.Timeout = e.s.Payload, e.s.Duration, e.s.Warmup, e.s.Timeout
	w.Period, w.Delay = row.Period(), row.Delay
	// Ten intervals per cell, so the result shows how the tail moves over the cell.
	w.Interval = max(e.s.Duration/10, 100*time.Millisecond)
	return w
}

func (e *engine) clientThreads() rr.Threads {
	th := rr.Threads{CPUs: []int{e.s.ClientCPU}, Poll: rr.PollNone, Sender: rr.SenderInline}
	if e.ends.SameHost {
		th.Colocated = 1 // the server spins on this machine too
	}
	return th
}

// openLinks opens the server's datapath first: a zero-copy driver drops even ARP until its fill ring has frames.
func (e *engine) openLinks(ctx context.Context) error {
	svc := rr.DefaultService()
	svc.Payload = e.s.Payload
	info, err := e.ends.Server.ServerOpen(ctx, agent.ServerOpenArgs{Link: e.serverLink(), Service: svc})
	if err != nil {
		return fmt.Errorf("server link: %w", err)
	}
	e.res.Header.ServerLink = info
	cl := rr.DefaultLink(e.ends.ClientDev)
	cl.PeerIP, cl.Ring = e.ends.Peer, e.s.Ring
	info, err = e.ends.Client.ClientOpen(ctx, agent.ClientOpenArgs{Link: cl, Workload: e.workload(e.s.Rows[0]),
		Threads: e.clientThreads()})
	if err != nil {
		return fmt.Errorf("client link: %w", err)
	}
	e.res.Header.ClientLink = info
	return nil
}

// ServiceStopper stops a systemd unit on an end for the rest of the sweep, journaled and started again after:
// *agent.Conn (a server or client agent) and *LocalClient do.
type ServiceStopper interface {
	StopService(ctx context.Context, unit string, lease time.Duration) (agent.StopServiceResult, error)
}

// irqbalanceUnit is the unit of irqbalance, which moves IRQ affinity back behind napilab's back.
const irqbalanceUnit = "irqbalance.service"

// stopIrqbalance stops irqbalance on each end it runs on, for the sweep; where it cannot (no systemd), the result
// says so and why, and the sweep goes on.
func (e *engine) stopIrqbalance(ctx context.Context) error {
	if e.o.KeepIrqbalance {
		for _, end := range []agent.EndInfo{e.ends.ServerInfo, e.ends.ClientInfo} {
			if end.Irqbalance != "" {
				e.res.Notes = append(e.res.Notes, note.Warnf("irqbalance %s on %s and was kept for the run, as "+
					"asked: it may move IRQ affinity while cells measure", end.Irqbalance, end.Hostname))
			}
		}
		return nil
	}
	for _, end := range []struct {
		info agent.EndInfo
		ctl  any
	}{{e.ends.ServerInfo, e.ends.Server}, {e.ends.ClientInfo, e.ends.Client}} {
		if end.info.Irqbalance == "" {
			continue
		}
		stopper, ok := end.ctl.(ServiceStopper)
		if !ok {
			continue
		}
		_, err := stopper.StopService(ctx, irqbalanceUnit, e.o.Lease)
		switch {
		case err == nil:
			e.res.Notes = append(e.res.Notes, note.Infof("irqbalance was stopped on %s for the run and started "+
				"again after", end.info.Hostname))
		case errors.Is(err, kernel.ErrNotSupported):
			e.res.Notes = append(e.res.Notes, note.Warnf("irqbalance %s on %s, and napilab could not stop it for "+
				"the run (%v): stop it yourself, or read cells whose mode pins IRQs with care", end.info.Irqbalance,
				end.info.Hostname, err))
		default:
			return fmt.Errorf("stop irqbalance on %s for the run: %w", end.info.Hostname, err)
		}
	}
	return nil
}

// preflightCount is how many requests the preflight sends, one at a time.
const preflightCount = 20

// preflight sends a few requests before any setting is changed: a server that does not answer is found while
// there is nothing to restore, with a sentence saying what to check.
func (e *engine) preflight(ctx context.Context) error {
	if err := e.ends.Server.ServerStart(ctx, agent.ServerStartArgs{Threads: rr.Threads{CPUs: []int{e.s.ServerCPU},
		Poll: rr.PollInline}}); err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	w := rr.DefaultWorkload()
	w.Payload, w.Period, w.Outstanding, w.Count, w.Duration, w.Warmup, w.Interval = e.s.Payload, 0, 1, preflightCount, 0, 0, 0
	w.Timeout = max(e.s.Timeout, 2*time.Second)
	res, cerr := e.ends.Client.ClientRun(ctx, agent.ClientRunArgs{Workload: w, Threads: e.clientThreads()})
	_, serr := e.ends.Server.ServerStop(ctx)
	if err := errors.Join(cerr, serr); err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	if res.Answered < res.Sent || res.Sent == 0 {
		return fmt.Errorf("preflight: the server at %s answered %d of %d requests before any setting was changed: "+
			"check that --peer is the address of %s on the server host, that %s is the client device on that path, "+
			"and that nothing between the hosts drops UDP to port %d", e.ends.Peer, res.Answered, res.Sent,
			e.ends.ServerDev, e.ends.ClientDev, e.serverLink().Port)
	}
	return nil
}

// runMode puts one mode in place and measures every load under it. A mode the server cannot do gives skipped
// cells; an error means the sweep cannot go on.
func (e *engine) runMode(ctx context.Context, m napi.Mode, rep int) (err error) {
	if why := e.skip[m.Preset]; why != "" {
		for _, row := range e.s.Rows {
			c := Cell{Mode: m.Preset, Row: row, Rep: rep, Skipped: why, App: m.App}
			e.progress(&c)
			e.res.Cells = append(e.res.Cells, c)
		}
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	srv := e.ends.Server
	applied, err := srv.Apply(ctx, m, e.o.Lease)
	if err != nil {
		return fmt.Errorf("apply %s: %w", m.Preset, err)
	}
	if i := slices.IndexFunc(e.res.Modes, func(r ModeRecord) bool { return r.Mode == m.Preset }); i >= 0 &&
		e.res.Modes[i].Plan == nil {
		e.res.Modes[i].Plan = applied.Plan
	}
	defer func() {
		// Restore also when ctx has ended: that is when it matters most.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, rerr := srv.Restore(rctx); rerr != nil {
			err = errors.Join(err, fmt.Errorf("restore %s on the server: %w", m.Preset, rerr))
		}
	}()
	th, bp := serverSide(m, e.s.ServerCPU)
	notes := e.modeNotes(th, bp)
	for _, row := range e.s.Rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := Cell{Mode: m.Preset, Row: row, Rep: rep, App: m.App, Notes: notes}
		e.progress(nil, c)
		if _, err := srv.Renew(ctx, e.o.Lease); err != nil {
			return fmt.Errorf("%s: renew the lease before %s: %w", m.Preset, row, err)
		}
		if err := srv.ServerStart(ctx, agent.ServerStartArgs{Threads: th, BusyPoll: bp}); err != nil {
			return fmt.Errorf("%s, %s: start the server: %w", m.Preset, row, err)
		}
		res, cerr := e.ends.Client.ClientRun(ctx, agent.ClientRunArgs{Workload: e.workload(row),
			Threads: e.clientThreads()})
		sres, serr := srv.ServerStop(context.WithoutCancel(ctx))
		if err := errors.Join(cerr, serr); err != nil {
			return fmt.Errorf("%s, %s: %w", m.Preset, row, err)
		}
		if sres.LeaseLost {
			return fmt.Errorf("%s, %s: the server's lease ran out during the cell and the agent restored the mode, "+
				"so the cell did not run under it: pass a longer --lease", m.Preset, row)
		}
		c.Client, c.Server = res, &sres
		c.Notes = append(slices.Clone(c.Notes), cellNotes(row, res)...)
		if sres.Trace != nil {
			if c.Mismatch = trace.Check(m.Preset, *sres.Trace); c.Mismatch != "" {
				// One sentence per mode and poller, so the notes say it once; the cell keeps the details.
				c.Notes = append(c.Notes, note.Warnf("the server's trace saw %s poll the NAPI, not what %s "+
					"expects: these cells do not measure %s (each cell's mismatch has the details)",
					sres.Trace.Kind, m.Preset, m.Preset))
			}
		} else if sres.TraceNote != "" {
			c.Notes = note.Merge(c.Notes, note.Infof("%s", sres.TraceNote))
		}
		e.progress(&c)
		e.res.Cells = append(e.res.Cells, c)
		if res.StoppedEarly && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// serverSide is the server's side of a mode: its threads and poll driver, and its socket's busy-poll options.
func serverSide(m napi.Mode, cpu int) (rr.Threads, rr.BusyPoll) {
	th := rr.Threads{CPUs: []int{cpu}, Poll: rr.PollDriver(m.App.Poll)}
	bp := rr.BusyPoll{Prefer: m.App.PreferBusyPoll, Budget: m.App.BusyPollBudget}
	if m.BusyRead != nil {
		// busy_read only reaches sockets created after it is set; the open socket gets the same value directly.
		bp.Usec = int(*m.BusyRead / time.Microsecond)
	}
	if th.Poll == rr.PollSeparate {
		th.CPUs = nil // the poller shares the CPUs with everything else: let the scheduler place both threads
	}
	return th, bp
}

func (e *engine) modeNotes(th rr.Threads, bp rr.BusyPoll) []note.Note {
	var notes []note.Note
	if bp.Active() || th.Poll == rr.PollSeparate {
		notes = note.Merge(notes, e.res.Header.ServerLink.BusyPollNotes()...)
	}
	if th.Poll == rr.PollSeparate && e.ends.SameHost && e.ends.ServerInfo.CPUs > 0 && e.ends.ServerInfo.CPUs < 3 {
		notes = append(notes, note.Warnf("3 spinning threads (server, its poller, client) share %d CPUs",
			e.ends.ServerInfo.CPUs))
	}
	return notes
}

// cellNotes are the caveats a cell's own numbers call for.
func cellNotes(row Row, r *rr.ClientResult) []note.Note {
	var notes []note.Note
	if late := r.SenderLateness.P99; late > int64(row.Period()) {
		notes = append(notes, note.Warnf("at %s the client could not keep to its schedule (sender lateness p99 %v > "+
			"the %v period): the load saturates the client, and latencies include queueing", row,
			time.Duration(late), row.Period()))
	}
	if r.TargetRate > 0 && r.SendRate < 0.98*r.TargetRate {
		notes = append(notes, note.Warnf("at %s the client sent %.0f requests/s of the %.0f asked for", row,
			r.SendRate, r.TargetRate))
	}
	return notes
}

// progress reports a cell starting (done == nil, start set) or finished.
func (e *engine) progress(done *Cell, start ...Cell) {
	if e.o.Progress == nil {
		if done != nil {
			e.done++
		}
		return
	}
	total := len(e.s.Modes) * len(e.s.Rows) * e.s.Reps
	measured := func(n int) time.Duration {
		left := 0
		for i := n; i < total; i++ {
			if e.skip[e.s.Modes[(i/len(e.s.Rows))%len(e.s.Modes)]] == "" {
				left++
			}
		}
		return time.Duration(left) * e.cellTime()
	}
	if done == nil {
		c := start[0]
		e.o.Progress(Progress{Cell: e.done + 1, Cells: total, Mode: c.Mode, Row: c.Row, Rep: c.Rep,
			Remaining: measured(e.done)})
		return
	}
	e.done++
	e.o.Progress(Progress{Cell: e.done, Cells: total, Mode: done.Mode, Row: done.Row, Rep: done.Rep,
		Remaining: measured(e.done), Done: done})
}
