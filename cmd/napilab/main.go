// Command napilab answers one question end to end: which NAPI polling mode gives this traffic the lowest, most
// stable tail latency, at what CPU cost, and how is it set up. Run `napilab --help` for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/rr"
)

// cli lists the subcommands; each lives in its own file.
type cli struct {
	Demo    demoCmd    `cmd:"" help:"The main job: compare the polling modes on a veth testbed and print the cover letter's table."`
	RR      rrCmd      `cmd:"" name:"rr" help:"AF_XDP request/response latency benchmark: server and client."`
	Version versionCmd `cmd:"" help:"Print the napilab version, Go toolchain and kernel."`
	Lab     labCmd     `cmd:"" help:"Run programs on a current kernel with virtio NICs under qemu (no reboot, no host changes)."`
	Testbed testbedCmd `cmd:"" help:"Two network namespaces joined by a veth pair, for running napilab (or anything) on one machine."`
	Mode    modeCmd    `cmd:"" help:"Plan, apply and restore a NAPI polling mode on a device queue (journaled, crash-safe)."`
	Show    showCmd    `cmd:"" help:"Show devices, queues, NAPIs, IRQs, kthreads and busy-poll knobs."`
	Doctor  doctorCmd  `cmd:"" help:"Check a machine for what costs a low-latency poller, with a fix for each finding."`
	Sweep   sweepCmd   `cmd:"" help:"Compare the polling modes between two hosts (or namespaces), the server's NIC put back after each mode."`
	Agent   agentCmd   `cmd:"" help:"The remote half of a two-host sweep, started by napilab sweep over ssh."`
	Trace   traceCmd   `cmd:"" help:"eBPF proof of who polls each NAPI; kick syscall and xsk_recvmsg time; preemptions and IRQs."`
	Report  reportCmd  `cmd:"" help:"Turn saved results into one self-contained HTML page of plots and tables (and PNG, .hgrm)."`
	Noise   noiseCmd   `cmd:"" help:"What takes a CPU from a thread that never yields (the hypervisor, other tasks, interrupts): the floor under any spinning benchmark's tail."`
}

const description = `napilab compares Linux NAPI polling modes (interrupts, socket busy poll, threaded NAPI,
threaded NAPI busy poll, IRQ suspension) for AF_XDP request/response traffic: latency percentiles beside CPU cost,
with every system change recorded and restored.`

func main() {
	// Before anything: the spinning loops of rr, sweep, agent and demo run with asynchronous preemption off.
	if err := rr.RestartForSpinning(); err != nil {
		fmt.Fprintf(os.Stderr, "napilab: warning: %v\n", err)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// stdio is where a command writes: run's stdout and stderr, bound into every command's Run.
type stdio struct{ out, err io.Writer }

// exitStatus is an error that ends napilab with its own exit status, e.g. a lab guest program's.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// kongExit is what kong's exit hook (after --help) throws, to be caught in run instead of ending the process.
type kongExit int

// run is the whole command; it returns the exit status: 0 on success, 1 when the command failed, 2 when the
// command line could not be parsed (an unknown command or flag, a missing argument, a malformed value).
// SIGINT and SIGTERM cancel the context the commands run under, so they stop and restore what they changed.
func run(args []string, stdout, stderr io.Writer) (status int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var c cli
	parser, err := newParser(&c, stdout, stderr, kong.BindTo(ctx, (*context.Context)(nil)),
		kong.Bind(&stdio{out: stdout, err: stderr}))
	if err != nil {
		fmt.Fprintf(stderr, "napilab: %v\n", err) // a mistake in cli's tags
		return 1
	}
	defer func() {
		if r := recover(); r != nil {
			code, ok := r.(kongExit)
			if !ok {
				panic(r)
			}
			status = int(code)
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		parser.Errorf("%s", err)
		return 2
	}
	if err := kctx.Run(); err != nil {
		if code, ok := err.(exitStatus); ok {
			return int(code)
		}
		fmt.Fprintln(stderr, "napilab: "+kernel.Explain("napilab", err))
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
	return 0
}

// newParser builds napilab's command line parser over c, writing help and errors to stdout and stderr. Kong's
// exit after --help panics with kongExit, which run recovers.
func newParser(c *cli, stdout, stderr io.Writer, opts ...kong.Option) (*kong.Kong, error) {
	return kong.New(c, append([]kong.Option{
		kong.Name("napilab"),
		kong.Description(description),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(kongExit(code)) }),
	}, opts...)...)
}
