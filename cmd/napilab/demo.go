package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/report"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/sweep"
	"github.com/napilab/napilab/internal/testbed"
)

type demoCmd struct {
	Modes    []string      `sep:"," default:"interrupts,busy-poll,busy-poll-separate,threaded,threaded-busy-poll" help:"Polling modes to compare (columns)."`
	Load     []string      `sep:"," default:"12.5k,25k,12.5k+30us" help:"Loads (rows): RATE[+DELAY], the request rate and the client's processing time per reply; 'seed' for the cover letter's five rows (most saturate a 2-CPU machine)."`
	Duration time.Duration `default:"2s" help:"Measured time per cell."`
	Warmup   time.Duration `default:"300ms" help:"Unmeasured warm-up per cell."`
	Reps     int           `default:"1" help:"Repetitions; the modes are interleaved, and cells show median and spread."`
	Payload  int           `default:"400" help:"UDP payload bytes (the cover letter used 400)."`
	JSON     string        `placeholder:"FILE" help:"Also write every cell's full result as JSON to FILE."`
	CSV      string        `placeholder:"FILE" help:"Also write one CSV row per cell to FILE."`
}

func (d *demoCmd) Run(ctx context.Context, std *stdio) error {
	spec := sweep.DefaultSpec()
	spec.Modes, spec.Duration, spec.Warmup, spec.Reps, spec.Payload = d.Modes, d.Duration, d.Warmup, d.Reps, d.Payload
	spec.Rows = nil
	loads := d.Load
	if len(loads) == 1 && loads[0] == "seed" {
		loads = sweep.SeedRows
	}
	for _, l := range loads {
		row, err := sweep.ParseRow(l)
		if err != nil {
			return err
		}
		spec.Rows = append(spec.Rows, row)
	}
	if runtime.NumCPU() < 2 {
		return errors.New("the demo pins the rr server and client to CPUs of their own: it needs at least 2 CPUs")
	}
	if err := spec.Validate(); err != nil {
		return err
	}
	cells := len(spec.Modes) * len(spec.Rows) * spec.Reps
	fmt.Fprintf(std.out, "napilab demo: %d polling modes × %d loads × %d repetition(s) on a veth testbed, %s per cell (about %s)\n",
		len(spec.Modes), len(spec.Rows), spec.Reps, spec.Duration, ((spec.Duration + spec.Warmup + 300*time.Millisecond) * time.Duration(cells)).Round(time.Second))
	fmt.Fprintf(std.out, "kernel %s, %d CPUs: rr server on CPU %d, client on CPU %d; each mode is applied to the server's queue and restored after\n\n",
		kernel.Release(), runtime.NumCPU(), spec.ServerCPU, spec.ClientCPU)

	bed, err := testbed.Up(ctx, testbed.Topology{Prefix: "napilab-demo"})
	if err != nil {
		return err
	}
	defer bed.Down()
	fmt.Fprint(std.out, bed.Diagram(), "\n")

	env := sweep.Env{ServerDev: bed.B.Link, ServerNS: bed.B.NetNSPath(), ClientDev: bed.A.Link,
		ClientNS: bed.A.NetNSPath(), Peer: bed.B.IPv4.Addr()}
	res, err := sweep.Run(ctx, spec, env, func(c sweep.Cell) {
		if c.Skipped != "" {
			if c.Row == spec.Rows[0] {
				fmt.Fprintf(std.out, "  %-19s skipped: %s\n", c.Mode, c.Skipped)
			}
			return
		}
		r := c.Client
		fmt.Fprintf(std.out, "  %-19s %-11s p50 %-9s p99 %-9s p99.9 %-9s lost %d of %d, %s CPU/request\n", c.Mode, c.Row,
			rr.FormatNs(r.Latency.P50), rr.FormatNs(r.Latency.P99), rr.FormatNs(r.Latency.P999), r.Lost, r.Sent,
			rr.FormatNs(int64(r.CPUPerRequest)))
	})
	if res != nil && len(res.Cells) > 0 {
		fmt.Fprintln(std.out, "\nLatency in ns from each request's scheduled send time to its reply (true percentiles), loss,")
		fmt.Fprintln(std.out, "and CPU time per request (all napilab threads and kernel threads polling for them):")
		fmt.Fprintln(std.out)
		report.Table(std.out, res, report.SeedStats)
		fmt.Fprintln(std.out, "\nThe original xsk_rr's \"pN\" columns for the same runs (means of the lowest N%, as the cover letter's table):")
		fmt.Fprintln(std.out)
		report.Table(std.out, res, []report.Stat{report.XskRRP50, report.XskRRP99})
		fmt.Fprintln(std.out, "\nReading these numbers:")
		report.Notes(std.out, res)
		fmt.Fprintln(std.out, "- veth AF_XDP is copy mode: both ends' NAPIs run in softirq inside the sender's sendto, so on this")
		fmt.Fprintln(std.out, "  testbed the modes differ far less than on a NIC with IRQs; `napilab lab` runs them on virtio_net.")
		if werr := writeOutputs(d.JSON, d.CSV, res); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	return err
}

func writeOutputs(jsonPath, csvPath string, res *sweep.Result) error {
	if jsonPath != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err == nil {
			err = os.WriteFile(jsonPath, append(b, '\n'), 0o644)
		}
		if err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	if csvPath != "" {
		f, err := os.Create(csvPath)
		if err != nil {
			return fmt.Errorf("--csv: %w", err)
		}
		defer f.Close()
		if err := report.CSV(f, res); err != nil {
			return fmt.Errorf("--csv: %w", err)
		}
	}
	return nil
}
