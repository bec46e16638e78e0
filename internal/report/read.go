package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/agent"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/sweep"
)

// Run is one sweep result as the report reads it: who ran it where (Header), its cells, and the caveats attached
// to them. Everything the report draws or tabulates comes from a Run, and a Run comes from exactly one adapter
// (fromSweep), so a new result layout changes that function and nothing else.
type Run struct {
	Name   string // where it came from, e.g. the file name: for messages, and as a label of last resort
	Schema string // the layout it was read as
	Header Header
	Modes  []string // the columns, in the sweep's order
	Loads  []Load   // the rows
	Reps   int
	Cells  []Cell
	Notes  []Note // once each
	Raw    []byte // the document exactly as read: the page embeds it
}

// Header says where and how a run was made: the reproducibility header of both ends. An empty string is a field
// the result does not record; the page marks it as such instead of guessing.
type Header struct {
	Command  string // the command line that produced the result
	Started  time.Time
	Elapsed  time.Duration
	Duration time.Duration // measured per cell
	Warmup   time.Duration // unmeasured, before each cell
	Payload  int           // UDP payload bytes
	Server   End
	Client   End
	Plan     string            // the kernel-side settings each mode applied, as napilab mode plan prints them
	App      map[string]string // per mode: what the application side did (poll driver, socket options)
	// Derived is a command that reproduces the spec when Command is not recorded.
	Derived string
}

// End is one end of the benchmark.
type End struct {
	Host, Napilab, Kernel, CPUModel string
	NICDriver, NICFirmware          string
	Device, Queue, XDP, NAPIIDs     string
	CPU                             string // the CPU its benchmark loop was pinned to
}

// Load is one row: an open-loop request rate plus the client's processing time per reply.
type Load struct {
	Rate  float64
	Delay time.Duration
	Short string // "32k+30us", as --load takes it
	Label string // "32K pkt/s + 30us delay", as the cover letter writes it
}

// Cell is one mode under one load in one repetition.
type Cell struct {
	Mode    string
	Load    Load
	Rep     int
	Skipped string           // why the cell has no figures
	Client  *rr.ClientResult // the figures; nil when skipped
	Server  *rr.ServerStats  // the server's own counts and times; nil when not recorded
	Trace   *Trace           // who polled and how; nil when the result carries no trace
	// Mismatch says how the observed poller contradicts the mode; empty when they agree or nothing was traced.
	Mismatch string
}

// Trace is what tracing the server's queue during a cell found.
type Trace struct {
	Kind           string   // who polled most: kthread, softirq or busy-poll
	KindShare      float64  // the share of the packets (or polls) that kind took
	Preemptions    uint64   // of the poller
	PacketsPerPoll float64  // mean packets each NAPI poll of the queue handled
	IRQsPerRequest float64  // device interrupts per request answered
	Pollers        []Poller // who ran the polls
}

// Poller is one task that polled the queue, and how often.
type Poller struct {
	Name  string
	Polls uint64
}

// Note is a caveat for reading a mode's figures.
type Note struct {
	Mode     string
	Severity string // "" when the result does not grade it
	Text     string
}

// SchemaSweep is the result layout Read understands: sweep's.
const SchemaSweep = sweep.Schema

// ErrNotResult marks input Read cannot use.
var ErrNotResult = errors.New("not a napilab sweep result")

// Read reads one result document. name says where it came from (a file name), for messages and labels. Bad
// input gets an error that says what the file is and what report wants, never a panic.
func Read(name string, raw []byte) (*Run, error) {
	var probe struct {
		Schema *string          `json:"schema"`
		Spec   *json.RawMessage `json:"spec"`
		Cells  *json.RawMessage `json:"cells"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("%s is not a JSON object (%v): %w; report reads what napilab demo --json writes",
			name, jsonWhere(raw, err), ErrNotResult)
	}
	schema := ""
	if probe.Schema != nil {
		schema = *probe.Schema
	}
	switch {
	case strings.HasPrefix(schema, "napilab.rr/"):
		return nil, fmt.Errorf("%s is one rr run (%s), %w: report compares modes and loads, from what napilab demo --json writes",
			name, schema, ErrNotResult)
	case schema == "" && probe.Spec != nil && probe.Cells != nil:
		return nil, fmt.Errorf("%s is a sweep result from an older napilab (before %s, with no header for the two "+
			"ends): %w; run the sweep again with this napilab, or report it with the napilab that wrote it", name,
			SchemaSweep, ErrNotResult)
	case strings.HasPrefix(schema, "napilab.sweep/") && schema != SchemaSweep:
		return nil, fmt.Errorf("%s is a %s result, which this napilab cannot read (it reads %s): %w; use the napilab "+
			"version that wrote it", name, schema, SchemaSweep, ErrNotResult)
	case schema != SchemaSweep:
		return nil, fmt.Errorf("%s has schema %q: %w; report reads what napilab sweep --json and demo --json write",
			name, schema, ErrNotResult)
	case probe.Spec == nil || probe.Cells == nil:
		return nil, fmt.Errorf("%s has no spec and cells: %w; report reads what napilab demo --json writes", name, ErrNotResult)
	}
	var res sweep.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("%s does not read as a sweep result (%v): %w", name, jsonWhere(raw, err), ErrNotResult)
	}
	if len(res.Cells) == 0 {
		return nil, fmt.Errorf("%s holds no cells: the sweep stopped before its first measurement, so there is "+
			"nothing to report; run it again", name)
	}
	run := fromSweep(name, &res)
	run.Raw = raw
	return run, nil
}

// jsonWhere adds the line of a JSON syntax error.
func jsonWhere(raw []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset <= int64(len(raw)) {
		return fmt.Sprintf("line %d: %v", bytes.Count(raw[:se.Offset], []byte("\n"))+1, err)
	}
	return err.Error()
}

// Encode is the result document napilab writes for --json, the form Read reads back.
func Encode(res *sweep.Result) ([]byte, error) {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// FromResult is Read for a result still in memory (napilab demo --report): it reads the same bytes --json
// writes, so the page of a run and the page of its saved file are the same.
func FromResult(name string, res *sweep.Result) (*Run, error) {
	raw, err := Encode(res)
	if err != nil {
		return nil, err
	}
	return Read(name, raw)
}

// fromSweep is the adapter from a sweep result to a Run: the one function that knows the result's layout.
func fromSweep(name string, res *sweep.Result) *Run {
	run := &Run{Name: name, Schema: res.Schema, Modes: slices.Clone(res.Spec.Modes), Reps: res.Spec.Reps}
	loadOf := func(r sweep.Row) Load {
		return Load{Rate: r.Rate, Delay: r.Delay, Short: r.String(), Label: r.Label()}
	}
	for _, r := range res.Spec.Rows {
		run.addLoad(loadOf(r))
	}
	h := &run.Header
	s := res.Spec
	h.Started, h.Elapsed, h.Duration, h.Warmup, h.Payload = res.Started, res.Elapsed, s.Duration, s.Warmup, s.Payload
	h.Server = endOf(res.Header.Server, res.Header.ServerLink, s.ServerCPU)
	h.Client = endOf(res.Header.Client, res.Header.ClientLink, s.ClientCPU)
	h.Command = shellJoin(res.Header.Command)
	var plans []string
	for _, m := range res.Modes {
		switch {
		case m.Plan != nil:
			plans = append(plans, m.Plan.Format())
		case m.Skipped != "":
			plans = append(plans, fmt.Sprintf("# %s: skipped: %s\n", m.Mode, m.Skipped))
		}
	}
	h.Plan = strings.Join(plans, "\n")
	h.App = map[string]string{}
	seen := map[Note]bool{}
	add := func(mode string, notes []note.Note) {
		for _, n := range notes {
			nn := Note{Mode: mode, Severity: string(n.Severity), Text: n.Text}
			if !seen[nn] {
				seen[nn] = true
				run.Notes = append(run.Notes, nn)
			}
		}
	}
	add("", res.Notes)
	add("", res.Header.Server.Notes)
	add("", res.Header.Client.Notes)
	add("", res.Header.ServerLink.Notes)
	add("", res.Header.ClientLink.Notes)
	for _, c := range res.Cells {
		if !slices.Contains(run.Modes, c.Mode) {
			run.Modes = append(run.Modes, c.Mode)
		}
		load := run.addLoad(loadOf(c.Row))
		cell := Cell{Mode: c.Mode, Load: load, Rep: c.Rep, Skipped: c.Skipped, Client: c.Client, Mismatch: c.Mismatch}
		if c.Server != nil {
			cell.Server = &c.Server.Stats
		}
		if c.Server != nil && c.Server.Trace != nil {
			a := c.Server.Trace
			cell.Trace = &Trace{Kind: string(a.Kind), KindShare: a.KindShare, Preemptions: a.Preemptions,
				PacketsPerPoll: a.PacketsPerPoll, IRQsPerRequest: a.IRQsPer(c.Server.Stats.Replied)}
			if a.Poller != "" {
				cell.Trace.Pollers = []Poller{{Name: a.Poller, Polls: uint64(a.PollerShare * float64(a.Polls))}}
			}
		}
		if cell.Client == nil && cell.Skipped == "" {
			cell.Skipped = "no figures recorded"
		}
		run.Cells = append(run.Cells, cell)
		add(c.Mode, c.Notes)
		if c.Client == nil {
			continue
		}
		add(c.Mode, c.Client.Notes)
		if _, ok := h.App[c.Mode]; !ok {
			h.App[c.Mode] = appSide(c)
		}
	}
	if res.Incomplete != "" {
		add("", []note.Note{note.Warnf("the sweep stopped early: %s", res.Incomplete)})
	}
	h.Derived = derivedCommand(run, s)
	return run
}

// endOf is one end of the header: the host as its agent described it, and the link as opened for the sweep.
func endOf(e agent.EndInfo, l rr.LinkInfo, cpu int) End {
	out := End{Host: e.Hostname, Napilab: e.Napilab, Kernel: e.Kernel, CPUModel: e.CPUModel,
		NICDriver: e.Device.Driver, NICFirmware: e.Device.Firmware, Device: l.Dev, CPU: strconv.Itoa(cpu)}
	if out.Device == "" {
		out.Device = e.Device.Name
	}
	if e.Device.Version != "" && out.NICDriver != "" {
		out.NICDriver += " " + e.Device.Version
	}
	if l.Dev != "" {
		out.Queue = strconv.Itoa(l.Queue)
		out.XDP = l.XDPMode + ", " + map[bool]string{true: "zero-copy", false: "copy mode"}[l.ZeroCopy]
		out.NAPIIDs = strconv.FormatUint(uint64(l.NAPIID), 10)
	}
	return out
}

// shellJoin quotes a command line so that it can be pasted into a shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,+@%") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// addLoad returns the run's load equal to l, adding l when it is new.
func (r *Run) addLoad(l Load) Load {
	for _, have := range r.Loads {
		if have.Rate == l.Rate && have.Delay == l.Delay {
			return have
		}
	}
	r.Loads = append(r.Loads, l)
	return l
}

func appSide(c sweep.Cell) string {
	s := "poll " + c.App.Poll
	if c.App.Poll == "" {
		s = "no kick"
	}
	if c.App.PreferBusyPoll {
		s += ", SO_PREFER_BUSY_POLL"
	}
	if c.App.BusyPollBudget > 0 {
		s += ", SO_BUSY_POLL_BUDGET " + strconv.Itoa(c.App.BusyPollBudget)
	}
	return s
}

// derivedCommand is the demo command line that asks for spec s: what reproduces a result that does not record
// its own command line.
func derivedCommand(run *Run, s sweep.Spec) string {
	loads := make([]string, len(run.Loads))
	for i, l := range run.Loads {
		loads[i] = l.Short
	}
	cmd := fmt.Sprintf("napilab demo --modes %s --load %s --duration %s --warmup %s --reps %d --payload %d",
		strings.Join(run.Modes, ","), strings.Join(loads, ","), s.Duration, s.Warmup, s.Reps, s.Payload)
	d := sweep.DefaultSpec()
	if s.ServerCPU != d.ServerCPU || s.ClientCPU != d.ClientCPU || s.PollCPU != d.PollCPU || s.Ring != d.Ring {
		cmd += fmt.Sprintf("   # the result used server CPU %d, client CPU %d, poll CPU %d, ring %d, which demo does not set",
			s.ServerCPU, s.ClientCPU, s.PollCPU, s.Ring)
	}
	return cmd
}

// Label names the run in legends when runs are compared: host, kernel and NIC from its header, or its name where
// the header does not record them.
func (r *Run) Label() string {
	var parts []string
	for _, v := range []string{r.Header.Server.Host, r.Header.Server.Kernel, r.Header.Server.NICDriver} {
		if v != "" {
			parts = append(parts, v)
		}
	}
	if len(parts) == 0 {
		return r.Name
	}
	return strings.Join(parts, " ")
}

// cellsAt returns every repetition of a mode under a load.
func (r *Run) cellsAt(mode string, l Load) []*Cell {
	var out []*Cell
	for i := range r.Cells {
		if c := &r.Cells[i]; c.Mode == mode && c.Load.Rate == l.Rate && c.Load.Delay == l.Delay {
			out = append(out, c)
		}
	}
	return out
}
