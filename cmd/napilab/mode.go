package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/sysknob"
)

type modeCmd struct {
	Plan    modePlanCmd    `cmd:"" help:"Print what a polling mode would change, as a shell script; nothing is changed."`
	Apply   modeApplyCmd   `cmd:"" help:"Put a polling mode in place, journaling everything it changes; it stays until 'mode restore'."`
	Restore modeRestoreCmd `cmd:"" help:"Put back what the last apply changed, also after the applying process died."`
	List    modeListCmd    `cmd:"" help:"List the modes and presets and what each sets."`
}

// modeFlags select and tune a mode; unset tuning flags keep the preset's values. A flag given is kept as given:
// an explicit 0 or a flag the mode has no use for is refused, never read as "not set".
type modeFlags struct {
	Mode     string         `arg:"" help:"Mode or preset: interrupts, busy-poll, busy-poll-separate, threaded, threaded-busy-poll, irq-suspend, or seed-<mode> for the seed script's setup."`
	Dev      string         `required:"" placeholder:"IFACE" help:"Network interface."`
	Queue    []int          `default:"0" placeholder:"N" help:"Rx queue(s) whose NAPI the mode configures."`
	PollCPU  *int           `name:"poll-cpu" placeholder:"C" help:"CPU of the NAPI kthread (threaded modes) and of the queues' IRQs (seed presets), as sweep's --poll-cpu. Default: the preset's, else the last online CPU."`
	FIFO     *int           `name:"fifo" placeholder:"PRIO" help:"SCHED_FIFO priority of the NAPI kthread, 1-99 (threaded modes; default 50)."`
	NetNS    string         `name:"netns" placeholder:"NAME" help:"Network namespace of the device: a name under /run/netns or a path."`
	Defer    *uint32        `placeholder:"N" help:"napi defer-hard-irqs: empty polls before the IRQ comes back."`
	GRO      *time.Duration `name:"gro" placeholder:"DURATION" help:"gro-flush-timeout, e.g. 15us."`
	Suspend  *time.Duration `placeholder:"DURATION" help:"irq-suspend-timeout (irq-suspend), e.g. 20ms."`
	BusyRead *time.Duration `name:"busy-read" placeholder:"DURATION" help:"net.core.busy_read, e.g. 400us (machine-wide)."`
	Channels *uint32        `placeholder:"N" help:"Set the device's queue count (ethtool -L), at least 1."`
	NICRing  *uint32        `name:"nic-ring" placeholder:"N" help:"Set the NIC's rx descriptor ring (ethtool -G rx N); not rr's --ring, the AF_XDP socket's."`
	JSON     bool           `name:"json" help:"Print JSON."`
}

// modeFlagNames names napi.Mode's fields by the flags of mode plan and apply.
var modeFlagNames = map[string]string{"dev": "--dev", "queue": "--queue", "poll-cpu": "--poll-cpu",
	"fifo": "--fifo", "gro": "--gro", "suspend": "--suspend", "busy-read": "--busy-read", "defer": "--defer",
	"journal": "--journal"}

// mode resolves the flags into a Mode.
func (f *modeFlags) mode() (napi.Mode, error) {
	m, err := napi.Preset(f.Mode, f.Dev)
	if err != nil {
		return m, err
	}
	m.Queues, m.NetNS = f.Queue, f.NetNS
	var errs []error
	if f.PollCPU != nil {
		if !m.UsesPollCPU() {
			errs = append(errs, fmt.Errorf("--poll-cpu: %s puts nothing on a poll CPU (no NAPI kthread, no IRQ "+
				"pinning): drop it", m.Preset))
		}
		m.PollCPU = *f.PollCPU
	}
	if f.FIFO != nil {
		if !m.UsesFIFO() {
			errs = append(errs, fmt.Errorf("--fifo: %s has no NAPI kthread to schedule: drop it", m.Preset))
		}
		m.FIFO = *f.FIFO
	}
	if f.Defer != nil {
		m.DeferHardIRQs = f.Defer
	}
	if f.GRO != nil {
		m.GROFlushTimeout = f.GRO
	}
	if f.Suspend != nil {
		m.IRQSuspendTimeout = f.Suspend
	}
	if f.BusyRead != nil {
		m.BusyRead = f.BusyRead
	}
	if f.Channels != nil {
		if *f.Channels == 0 {
			errs = append(errs, errors.New("--channels 0 would leave the device without queues: give at least 1"))
		}
		m.Channels = *f.Channels
	}
	if f.NICRing != nil {
		if *f.NICRing == 0 {
			errs = append(errs, errors.New("--nic-ring 0 would leave the queue without descriptors: give at least 1"))
		}
		m.RingRX = *f.NICRing
	}
	errs = append(errs, m.Validate())
	return m, kernel.RenameFields(errors.Join(errs...), modeFlagNames)
}

// plan opens the device's namespace and plans the mode there; the caller closes the system.
func (f *modeFlags) plan() (*napi.System, *napi.Plan, error) {
	m, err := f.mode()
	if err != nil {
		return nil, nil, err
	}
	s, err := napi.Open(m.NetNS)
	if err != nil {
		return nil, nil, err
	}
	t, err := s.Resolve(m)
	if err == nil {
		var p *napi.Plan
		if p, err = napi.Build(m, t); err == nil {
			return s, p, nil
		}
	}
	s.Close()
	if errors.Is(err, napi.ErrNotInitialNetNS) {
		name := netns.NameOf()
		if name == "" {
			name = "NAME"
		}
		return nil, nil, kernel.WithHint(err, fmt.Sprintf("from the initial namespace: napilab mode ... --dev %s "+
			"--netns %s, not ip netns exec %s napilab ...", f.Dev, name, name))
	}
	return nil, nil, netnsHint(kernel.RenameFields(err, modeFlagNames), f.Dev, f.NetNS)
}

type modePlanCmd struct {
	modeFlags
}

func (c *modePlanCmd) Run(std *stdio) error {
	s, p, err := c.plan()
	if err != nil {
		return err
	}
	defer s.Close()
	if c.JSON {
		return jsonOut(std.out, p)
	}
	fmt.Fprint(std.out, p.Format())
	return nil
}

type modeApplyCmd struct {
	modeFlags
	Journal   string `default:"/run/napilab/mode.journal" placeholder:"PATH" help:"Where to journal the changes."`
	AllowSMT  bool   `name:"allow-smt" help:"Let a seed preset switch SMT off (machine-wide; restore switches it back on)."`
	UntilExit bool   `name:"until-exit" help:"Stay running and restore on SIGINT or SIGTERM."`
}

// applyReport is what apply prints as JSON.
type applyReport struct {
	Plan     *napi.Plan          `json:"plan"`
	Journal  string              `json:"journal"`
	Entries  []napi.Entry        `json:"entries"` // with each change's prior state and outcome
	Kthreads []sysknob.Sched     `json:"kthreads,omitempty"`
	Skipped  []string            `json:"skipped,omitempty"`
	App      napi.AppSide        `json:"app"`
	Restored *napi.RestoreReport `json:"restored,omitempty"` // --until-exit
}

func (c *modeApplyCmd) Run(ctx context.Context, std *stdio) error {
	if err := napi.CheckJournalPath(c.Journal); err != nil { // before anything is opened or read
		return kernel.RenameFields(err, modeFlagNames)
	}
	s, p, err := c.plan()
	if err != nil {
		return err
	}
	defer s.Close()
	ao := napi.ApplyOptions{Journal: c.Journal, AllowSMT: c.AllowSMT}
	var held *napi.Held
	var a *napi.Applied
	if c.UntilExit {
		if held, err = s.Hold(ctx, p, napi.HoldOptions{ApplyOptions: ao}); err == nil {
			a = held.Applied()
		}
	} else {
		a, err = s.Apply(ctx, p, ao)
	}
	if err != nil {
		return kernel.RenameFields(err, modeFlagNames)
	}
	rep := applyReport{Plan: p, Journal: a.Journal.Path(), Kthreads: a.Kthreads(), App: p.Mode.App,
		Entries: a.Journal.Entries}
	for _, e := range a.Journal.Entries {
		if strings.HasPrefix(e.Outcome, "skipped") {
			rep.Skipped = append(rep.Skipped, e.Change.Describe()+": "+e.Outcome)
		}
	}
	if !c.JSON {
		fmt.Fprintf(std.out, "applied %s on %s: %d changes, journal %s\n", p.Mode.Preset, p.Target.Device, len(p.Changes),
			rep.Journal)
		for _, k := range rep.Kthreads {
			fmt.Fprintf(std.out, "  NAPI kthread %d: %v %d on CPUs %s\n", k.PID, k.Policy, k.Priority, k.CPUs)
		}
		for _, sk := range rep.Skipped {
			fmt.Fprintf(std.out, "  %s\n", sk)
		}
		fmt.Fprintf(std.out, "  application side: %s\n", p.Mode.App)
		for _, r := range p.Mode.App.Requirements {
			fmt.Fprintf(std.out, "  requirement: %s\n", r)
		}
	}
	if held == nil {
		if c.JSON {
			return jsonOut(std.out, rep)
		}
		fmt.Fprintln(std.out, "it stays in place until: napilab mode restore"+journalFlag(c.Journal))
		return nil
	}
	if !c.JSON {
		fmt.Fprintln(std.out, "holding the mode; SIGINT or SIGTERM restores it")
	}
	<-ctx.Done()
	restored, err := held.Release()
	rep.Restored = restored
	if c.JSON {
		return errors.Join(jsonOut(std.out, rep), err)
	}
	fmt.Fprint(std.out, restored.Format())
	return err
}

func journalFlag(path string) string {
	if path == napi.DefaultJournal {
		return ""
	}
	return " --journal " + path
}

type modeRestoreCmd struct {
	Journal string `default:"/run/napilab/mode.journal" placeholder:"PATH" help:"The journal of the apply to undo."`
	JSON    bool   `name:"json" help:"Print JSON."`
}

func (c *modeRestoreCmd) Run(std *stdio) error {
	if _, err := os.Stat(c.Journal); errors.Is(err, os.ErrNotExist) {
		// Nothing applied, or already restored: restoring is idempotent, so this is success.
		if c.JSON {
			return jsonOut(std.out, napi.RestoreReport{Journal: c.Journal})
		}
		fmt.Fprintf(std.out, "nothing to restore: there is no journal at %s\n", c.Journal)
		return nil
	}
	rep, err := napi.RestoreFile(c.Journal, napi.OpenNetNS, napi.RestoreOptions{})
	if rep == nil {
		return err
	}
	if c.JSON {
		return errors.Join(jsonOut(std.out, rep), err)
	}
	fmt.Fprint(std.out, rep.Format())
	return err
}

type modeListCmd struct {
	JSON bool `name:"json" help:"Print JSON."`
}

func (c *modeListCmd) Run(std *stdio) error {
	var modes []napi.Mode
	for _, name := range napi.PresetNames() {
		m, err := napi.Preset(name, "IFACE")
		if err != nil {
			return err
		}
		modes = append(modes, m)
	}
	if c.JSON {
		return jsonOut(std.out, modes)
	}
	tw := tabwriter.NewWriter(std.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PRESET\tKERNEL SIDE\tAPPLICATION SIDE")
	for _, m := range modes {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Preset, kernelSide(m), m.App)
	}
	return tw.Flush()
}

// kernelSide summarises what a preset sets, for `mode list`; `mode plan` shows every step.
func kernelSide(m napi.Mode) string {
	var parts []string
	switch m.Name {
	case napi.Threaded:
		parts = append(parts, "threaded=enabled")
	case napi.ThreadedBusyPoll:
		parts = append(parts, "threaded=busy-poll")
	default:
		parts = append(parts, "threaded=disabled")
	}
	if v := m.DeferHardIRQs; v != nil {
		parts = append(parts, fmt.Sprintf("defer %d", *v))
	}
	if v := m.GROFlushTimeout; v != nil {
		parts = append(parts, fmt.Sprintf("gro %v", *v))
	}
	if v := m.IRQSuspendTimeout; v != nil {
		parts = append(parts, fmt.Sprintf("suspend %v", *v))
	}
	if v := m.BusyRead; v != nil {
		parts = append(parts, fmt.Sprintf("busy_read %v", *v))
	}
	if v := m.BusyPoll; v != nil {
		parts = append(parts, fmt.Sprintf("busy_poll %v", *v))
	}
	if m.FIFO > 0 {
		parts = append(parts, fmt.Sprintf("kthread FIFO %d pinned", m.FIFO))
	}
	if m.DeviceWide {
		parts = append(parts, "device-wide sysfs, seed host tuning")
	}
	return strings.Join(parts, ", ")
}

// jsonOut prints v as indented JSON.
func jsonOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
