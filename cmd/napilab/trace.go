package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/trace"
)

type traceCmd struct {
	NAPI       traceNAPICmd       `cmd:"" name:"napi" help:"Who polls each NAPI of a device: softirq, its kthread, or a busy-polling thread; packets per poll; a verdict."`
	Syscalls   traceSyscallsCmd   `cmd:"" help:"Syscall time of a process's AF_XDP kicks (recvfrom, sendto, poll), per thread, as log2 histograms."`
	XSKRecvmsg traceXSKRecvmsgCmd `cmd:"" name:"xsk-recvmsg" help:"Time in the kernel's xsk_recvmsg (fentry/fexit), printed as the cover letter's bpftrace histogram."`
	Sched      traceSchedCmd      `cmd:"" help:"Context switches, off-CPU time and wake-up latency of threads (and a device's NAPI kthreads and pollers); IRQ counts."`
	Turnaround traceTurnaroundCmd `cmd:"" help:"A server's turnaround: from a request's arrival in its AF_XDP socket to its reply's sendto, per request, in 100 ns buckets."`
}

// traceFlags are the flags every trace command has.
type traceFlags struct {
	Duration time.Duration `default:"5s" help:"How long to trace; 0 traces until interrupted (Ctrl-C)."`
	JSON     bool          `name:"json" help:"Print JSON."`
	Overhead bool          `help:"Measure what the tracers cost per event (turns on the kernel's BPF statistics while tracing, which slows every BPF program a little)."`
}

func (f traceFlags) validate() error {
	if f.Duration < 0 {
		return fmt.Errorf("trace: --duration %v is negative: give a duration, or 0 to trace until interrupted", f.Duration)
	}
	return nil
}

// traceReport is a trace result that prints itself as text.
type traceReport interface{ Format(io.Writer) error }

// finish lets the tracers count for the duration, or until ctx ends (what was counted is reported either way),
// then prints what read returns.
func (f traceFlags) finish(ctx context.Context, std *stdio, read func() (traceReport, error)) error {
	if f.Duration == 0 {
		fmt.Fprintln(std.err, "napilab: tracing until interrupted (Ctrl-C)")
		<-ctx.Done()
	} else {
		t := time.NewTimer(f.Duration)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	r, err := read()
	if err != nil {
		return err
	}
	if f.JSON {
		return jsonOut(std.out, r)
	}
	return r.Format(std.out)
}

// observe runs an observation of t with the tracers o and reports it with r.
func (f traceFlags) observe(ctx context.Context, std *stdio, o trace.Options, t trace.Target,
	r func(*trace.Observation) traceReport) error {
	o.Stats = f.Overhead
	ob, err := trace.NewObserver(o)
	if err != nil {
		return err
	}
	defer ob.Close()
	if err := ob.Start(t); err != nil {
		return err
	}
	return f.finish(ctx, std, func() (traceReport, error) {
		obs, err := ob.Stop()
		if err != nil {
			return nil, err
		}
		return r(obs), nil
	})
}

type traceNAPICmd struct {
	traceFlags `embed:""`
	Dev        string `required:"" placeholder:"IFACE" help:"The device whose NAPIs to trace."`
	NetNS      string `name:"netns" placeholder:"NAME" help:"Network namespace of the device: a name under /run/netns or a path."`
}

func (c *traceNAPICmd) Run(ctx context.Context, std *stdio) error {
	if err := c.validate(); err != nil {
		return err
	}
	dev, err := trace.ResolveDevice(netns.Path(c.NetNS), c.Dev)
	if err != nil {
		return kernel.RenameFields(err, map[string]string{"dev": "--dev"})
	}
	t := dev.Target()
	t.IRQs = nil
	return c.observe(ctx, std, trace.Options{NAPI: true, Sched: true}, t,
		func(o *trace.Observation) traceReport { return trace.NewNAPITrace(dev, o) })
}

type traceSyscallsCmd struct {
	traceFlags `embed:""`
	PID        int `name:"pid" required:"" help:"The process whose threads' kick syscalls to time (e.g. napilab rr server)."`
}

func (c *traceSyscallsCmd) Run(ctx context.Context, std *stdio) error {
	if err := c.validate(); err != nil {
		return err
	}
	tr, err := trace.NewSyscallTracer(c.PID, c.Overhead)
	if err != nil {
		return err
	}
	defer tr.Close()
	return c.finish(ctx, std, func() (traceReport, error) { return tr.Read() })
}

type traceTurnaroundCmd struct {
	traceFlags `embed:""`
	PID        int    `name:"pid" required:"" help:"The server process (napilab rr server, xsk_rr -h, or any AF_XDP server that kicks TX with sendto or sendmsg)."`
	Thread     string `placeholder:"NAME" help:"Only the server's threads of this name (napilab's: rr-server); default: any thread of the process."`
	Dev        string `required:"" placeholder:"IFACE" help:"The device the server's XDP program is attached to: its XSKMAP says which requests are the server's."`
	NetNS      string `name:"netns" placeholder:"NAME" help:"Network namespace of --dev: a name under /run/netns or a path."`
	Queue      uint32 `default:"0" help:"The server's queue (its XSKMAP slot)."`
}

func (c *traceTurnaroundCmd) Run(ctx context.Context, std *stdio) error {
	if err := c.validate(); err != nil {
		return err
	}
	tr, err := trace.NewTurnaroundTracer(trace.TurnaroundTarget{PID: c.PID, Thread: c.Thread, Dev: c.Dev,
		NetNS: c.NetNS, Queue: c.Queue}, c.Overhead)
	if err != nil {
		return kernel.RenameFields(err, map[string]string{"dev": "--dev", "pid": "--pid", "thread": "--thread"})
	}
	defer tr.Close()
	return c.finish(ctx, std, func() (traceReport, error) { return tr.Read() })
}

type traceXSKRecvmsgCmd struct {
	traceFlags `embed:""`
	PID        int `name:"pid" help:"Only this process (default: every process, as the cover letter's script)."`
}

func (c *traceXSKRecvmsgCmd) Run(ctx context.Context, std *stdio) error {
	if err := c.validate(); err != nil {
		return err
	}
	tr, err := trace.NewXSKRecvTracer(c.PID, c.Overhead)
	if err != nil {
		return err
	}
	defer tr.Close()
	return c.finish(ctx, std, func() (traceReport, error) { return tr.Read() })
}

type traceSchedCmd struct {
	traceFlags `embed:""`
	TIDs       []int  `name:"tid" sep:"," placeholder:"TID,..." help:"Threads to watch."`
	PID        int    `name:"pid" help:"Watch every thread of this process."`
	Dev        string `placeholder:"IFACE" help:"Also watch this device's NAPI kthreads and whichever thread polls its NAPIs, and count its IRQs."`
	NetNS      string `name:"netns" placeholder:"NAME" help:"Network namespace of --dev: a name under /run/netns or a path."`
	IRQs       []int  `name:"irq" sep:"," placeholder:"IRQ,..." help:"IRQs to count."`
}

func (c *traceSchedCmd) Run(ctx context.Context, std *stdio) error {
	if err := c.validate(); err != nil {
		return err
	}
	t := trace.Target{Threads: c.TIDs, IRQs: c.IRQs}
	if c.PID != 0 {
		tids, err := processThreads(c.PID)
		if err != nil {
			return err
		}
		t.Threads = append(t.Threads, tids...)
	}
	if c.Dev != "" {
		dev, err := trace.ResolveDevice(netns.Path(c.NetNS), c.Dev)
		if err != nil {
			return kernel.RenameFields(err, map[string]string{"dev": "--dev"})
		}
		dt := dev.Target()
		t.NAPIs, t.IRQs = dt.NAPIs, append(t.IRQs, dt.IRQs...)
		t.Threads = append(t.Threads, dev.Kthreads()...)
	} else if c.NetNS != "" {
		return errors.New("trace sched: --netns names the namespace of --dev: give --dev too")
	}
	if len(t.Threads) == 0 && len(t.NAPIs) == 0 && len(t.IRQs) == 0 {
		return errors.New("trace sched: nothing to watch: give --tid, --pid, --dev or --irq")
	}
	return c.observe(ctx, std, trace.Options{NAPI: len(t.NAPIs) > 0, Sched: true, IRQ: len(t.IRQs) > 0}, t,
		func(o *trace.Observation) traceReport { return trace.NewSchedTrace(o) })
}

// processThreads lists the thread ids of process pid.
func processThreads(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil, fmt.Errorf("trace sched: --pid %d: %w (is the process running?)", pid, err)
	}
	var tids []int
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
