package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/report"
	"github.com/napilab/napilab/internal/sweep"
)

// compareFlags choose what a comparison measures and where its results go; sweep and demo share them.
type compareFlags struct {
	Modes          []string      `sep:"," default:"interrupts,busy-poll,busy-poll-separate,threaded,threaded-busy-poll" help:"Polling modes to compare (columns); napilab mode list shows them."`
	Load           []string      `sep:"," default:"12.5k,25k,12.5k+30us" help:"Loads (rows): RATE[+DELAY], the request rate and the client's processing time per reply; 'seed' for the cover letter's five rows (most saturate a 2-CPU machine)."`
	Duration       time.Duration `default:"2s" help:"Measured time per cell."`
	Warmup         time.Duration `default:"300ms" help:"Unmeasured warm-up per cell."`
	Reps           int           `default:"1" help:"Repetitions; the modes are interleaved, and cells show median and spread."`
	Payload        int           `default:"400" help:"UDP payload bytes (the cover letter used 400)."`
	Timeout        time.Duration `default:"1s" help:"How long the client waits for replies after its last request; later replies count as lost."`
	ServerCPU      int           `name:"server-cpu" default:"0" help:"CPU of the rr server's loop (on the server host)."`
	ClientCPU      int           `name:"client-cpu" default:"1" help:"CPU of the rr client's loop (on the client host)."`
	PollCPU        int           `name:"poll-cpu" default:"-1" help:"CPU of the NAPI kthread in threaded modes (-1: the server's)."`
	Ring           int           `default:"4096" help:"Receive ring entries of both ends' AF_XDP sockets (a power of two)."`
	Channels       uint32        `placeholder:"N" help:"Also set the server device's queue count in every mode (ethtool -L; resets the link)."`
	RingRX         uint32        `name:"ring-rx" placeholder:"N" help:"Also set the server device's rx descriptor ring in every mode (ethtool -G; resets the link)."`
	Force          bool          `help:"Let --channels/--ring-rx reset the device that carries the ssh session to the server."`
	KeepIrqbalance bool          `name:"keep-irqbalance" help:"Leave irqbalance running on the ends (it is stopped for the run and started again after, because it moves IRQ affinity)."`
	Lease          time.Duration `help:"How long the server keeps a mode without hearing from this controller before it restores by itself; renewed before every cell (default: three cells, at least 30s)."`
	JSON           string        `placeholder:"FILE" help:"Write the result document (napilab.sweep/v2: both ends' headers, every cell) to FILE."`
	CSV            string        `placeholder:"FILE" help:"Write one CSV row per cell to FILE."`
	Report         string        `placeholder:"FILE" help:"Write the report page (plots, tables and the data, one offline HTML file) to FILE."`
}

// spec turns the flags into a sweep spec, problems named by flag.
func (f *compareFlags) spec() (sweep.Spec, error) {
	s := sweep.DefaultSpec()
	s.Modes, s.Duration, s.Warmup, s.Reps, s.Payload = f.Modes, f.Duration, f.Warmup, f.Reps, f.Payload
	s.Timeout, s.ServerCPU, s.ClientCPU, s.PollCPU, s.Ring = f.Timeout, f.ServerCPU, f.ClientCPU, f.PollCPU, f.Ring
	s.Channels, s.RingRX = f.Channels, f.RingRX
	s.Rows = nil
	loads := f.Load
	if len(loads) == 1 && loads[0] == "seed" {
		loads = sweep.SeedRows
	}
	var errs []error
	for _, l := range loads {
		row, err := sweep.ParseRow(l)
		if err != nil {
			errs = append(errs, fmt.Errorf("--load: %w", err))
			continue
		}
		s.Rows = append(s.Rows, row)
	}
	if f.Lease < 0 {
		errs = append(errs, fmt.Errorf("--lease %v is negative", f.Lease))
	}
	errs = append(errs, s.Validate())
	return s, kernel.RenameFields(errors.Join(errs...), flagNames)
}

// flagNames maps the field names of napilab's specs to the flags of sweep and demo.
var flagNames = map[string]string{"modes": "--modes", "load": "--load", "reps": "--reps", "duration": "--duration",
	"warmup": "--warmup", "timeout": "--timeout", "payload": "--payload", "server-cpu": "--server-cpu",
	"client-cpu": "--client-cpu", "poll-cpu": "--poll-cpu", "ring": "--ring", "peer": "--peer",
	"dev": "--server-dev", "channels": "--channels", "ring-rx": "--ring-rx"}

// checkOutputs makes sure every output file can be written before anything starts: a measurement must never be
// lost to a typo in a path found only after the run.
func (f *compareFlags) checkOutputs() error {
	var errs []error
	for _, o := range []struct{ flag, path string }{{"--json", f.JSON}, {"--csv", f.CSV}, {"--report", f.Report}} {
		if o.path == "" {
			continue
		}
		if err := checkWritable(o.path); err != nil {
			errs = append(errs, fmt.Errorf("%s %s cannot be written (%w): choose a path in a writable directory",
				o.flag, o.path, err))
		}
	}
	return errors.Join(errs...)
}

// checkWritable creates (and removes) a file beside path, and checks that path itself is not a directory and,
// if it exists, can be opened for writing.
func checkWritable(path string) error {
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return errors.New("it is a directory")
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".napilab-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// errInterrupted ends a comparison that SIGINT or SIGTERM stopped: everything it changed was put back, and what
// it measured was kept.
var errInterrupted = &exitError{code: 130, err: errors.New("interrupted; everything napilab changed is restored")}

// interrupted turns a failure that SIGINT or SIGTERM caused (a "context canceled" from whatever step was
// running) into errInterrupted, once everything was put back; other failures and exit statuses stay.
func interrupted(ctx context.Context, err error) error {
	var ee *exitError
	if err == nil || ctx.Err() == nil || errors.As(err, &ee) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return errInterrupted
	}
	return errors.Join(err, errInterrupted)
}

// run runs the sweep between ends, shows its progress, prints the tables, and writes the outputs. What was
// measured is written even when the sweep stops early.
func (f *compareFlags) run(ctx context.Context, std *stdio, s sweep.Spec, ends sweep.Ends, o sweep.Options) error {
	o.Progress = progressPrinter(std.out)
	res, err := sweep.Run(ctx, s, ends, o)
	if res == nil {
		return kernel.RenameFields(err, flagNames)
	}
	if len(res.Cells) > 0 {
		printTables(std.out, res)
	}
	werr := f.writeOutputs(std.out, res)
	switch {
	case err != nil && ctx.Err() != nil:
		return errors.Join(werr, errInterrupted)
	case err != nil:
		return errors.Join(kernel.RenameFields(err, flagNames), werr)
	}
	return werr
}

// progressPrinter shows cell n of N, its mode and load and the time left: on a terminal as one line rewritten
// in place, elsewhere one line per finished cell.
func progressPrinter(w io.Writer) func(sweep.Progress) {
	f, ok := w.(*os.File)
	tty := ok && term.IsTerminal(int(f.Fd()))
	return func(p sweep.Progress) {
		if p.Done == nil {
			if tty {
				fmt.Fprintf(w, "\r\033[K[%d/%d] %s at %s (rep %d), about %s left", p.Cell, p.Cells, p.Mode, p.Row,
					p.Rep+1, p.Remaining.Round(time.Second))
			}
			return
		}
		if tty {
			fmt.Fprint(w, "\r\033[K")
		}
		c := p.Done
		if c.Skipped != "" {
			if c.Row == p.Row && c.Rep == 0 {
				fmt.Fprintf(w, "[%d/%d] %-19s %-11s skipped: %s\n", p.Cell, p.Cells, c.Mode, c.Row, c.Skipped)
			}
			return
		}
		r := c.Client
		fmt.Fprintf(w, "[%d/%d] %-19s %-11s p50 %-9s p99 %-9s p99.9 %-9s lost %d of %d, %s CPU/request\n", p.Cell,
			p.Cells, c.Mode, c.Row, report.FormatNs(r.Latency.P50), report.FormatNs(r.Latency.P99),
			report.FormatNs(r.Latency.P999), r.Lost, r.Sent, report.FormatNs(int64(r.CPUPerRequest)))
	}
}

func printTables(w io.Writer, res *sweep.Result) {
	fmt.Fprintln(w, "\nLatency in ns from each request's scheduled send time to its reply (true percentiles), loss,")
	fmt.Fprintln(w, "and CPU time per request (all napilab threads and kernel threads polling for them):")
	fmt.Fprintln(w)
	report.Table(w, res, report.SeedStats)
	fmt.Fprintln(w, "\nThe original xsk_rr's \"pN\" columns for the same runs (means of the lowest N%, as the cover letter's table):")
	fmt.Fprintln(w)
	report.Table(w, res, []report.Stat{report.XskRRP50, report.XskRRP99})
	fmt.Fprintln(w, "\nReading these numbers:")
	report.Notes(w, res)
}

// writeOutputs writes the result document, the CSV and the page. When the result document cannot be written
// where asked (the disk filled up during the run), it goes to a file in the temporary directory instead, and
// the error says where: a finished measurement is never thrown away.
func (f *compareFlags) writeOutputs(w io.Writer, res *sweep.Result) error {
	raw, err := report.Encode(res)
	if err != nil {
		return err
	}
	var errs []error
	if f.JSON != "" {
		if err := os.WriteFile(f.JSON, raw, 0o644); err != nil {
			errs = append(errs, fmt.Errorf("--json: %w; %s", err, rescue(raw)))
		}
	}
	if f.CSV != "" {
		if err := writeCSVFile(f.CSV, res); err != nil {
			errs = append(errs, fmt.Errorf("--csv: %w", err))
		}
	}
	if f.Report != "" {
		name := "napilab sweep" // the page of a saved result names its file: the same page, whichever way it is made
		if f.JSON != "" {
			name = filepath.Base(f.JSON)
		}
		run, err := report.Read(name, raw)
		if err == nil {
			err = writeReports(w, []*report.Run{run}, f.Report, "", "")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("--report: %w", err))
		}
	}
	if len(errs) > 0 && f.JSON == "" {
		errs = append(errs, errors.New(rescue(raw)))
	}
	return errors.Join(errs...)
}

func writeCSVFile(path string, res *sweep.Result) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := report.CSV(out, res); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// rescue saves a result document that could not be written where asked.
func rescue(raw []byte) string {
	f, err := os.CreateTemp("", "napilab-result-*.json")
	if err == nil {
		_, err = f.Write(raw)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Sprintf("the result could not be saved anywhere either (%v)", err)
	}
	return "the result is saved in " + f.Name()
}

// commandLine is this process's command line, for the result's header.
func commandLine() []string {
	args := append([]string{"napilab"}, os.Args[1:]...)
	return args
}

// exitError carries the exit status a failure should end the process with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
