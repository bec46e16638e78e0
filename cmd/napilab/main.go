// Command napilab answers one question end to end: which NAPI polling mode gives this traffic the lowest, most
// stable tail latency, at what CPU cost, and how is it set up. Run `napilab --help` for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/napilab/napilab/internal/kernel"
)

// cli lists the subcommands; each lives in its own file.
type cli struct {
	Demo    demoCmd    `cmd:"" help:"The main job: compare the polling modes on a veth testbed and print the cover letter's table."`
	RR      rrCmd      `cmd:"" name:"rr" help:"AF_XDP request/response latency benchmark: server and client."`
	Report  reportCmd  `cmd:"" help:"Turn saved results into one self-contained HTML page of plots and tables (and PNG, .hgrm)."`
	Version versionCmd `cmd:"" help:"Print the napilab version, Go toolchain and kernel."`
	Lab     labCmd     `cmd:"" help:"Run programs on a current kernel with virtio NICs under qemu (no reboot, no host changes)."`
	Testbed testbedCmd `cmd:"" help:"Two network namespaces joined by a veth pair, for running napilab (or anything) on one machine."`
	Mode    modeCmd    `cmd:"" help:"Plan, apply and restore a NAPI polling mode on a device queue (journaled, crash-safe)."`
	Show    showCmd    `cmd:"" help:"Show devices, queues, NAPIs, IRQs, kthreads and busy-poll knobs."`
	Doctor  doctorCmd  `cmd:"" help:"Check a machine for what costs a low-latency poller, with a fix for each finding."`
	Sweep   sweepCmd   `cmd:"" help:"Compare the polling modes between two hosts (or namespaces), the server's NIC put back after each mode."`
	Agent   agentCmd   `cmd:"" help:"The remote half of a two-host sweep, started by napilab sweep over ssh."`
	Trace   traceCmd   `cmd:"" help:"eBPF proof of who polls each NAPI; kick syscall and xsk_recvmsg time; preemptions and IRQs."`
}

const description = `napilab compares Linux NAPI polling modes (interrupts, socket busy poll, threaded NAPI,
threaded NAPI busy poll, IRQ suspension) for AF_XDP request/response traffic: latency percentiles beside CPU cost,
with every system change recorded and restored.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var c cli
	parser := kong.Must(&c,
		kong.Name("napilab"),
		kong.Description(description),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.BindTo(ctx, (*context.Context)(nil)),
	)
	kctx, err := parser.Parse(os.Args[1:])
	if err != nil {
		parser.Errorf("%s", err)
		os.Exit(2)
	}
	if err := kctx.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "napilab: "+kernel.Explain("napilab", err))
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}
