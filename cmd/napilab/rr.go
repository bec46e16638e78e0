package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/report"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/sysknob"
)

type rrCmd struct {
	Server rrServerCmd `cmd:"" help:"Answer AF_XDP UDP requests inline from the RX ring."`
	Client rrClientCmd `cmd:"" help:"Send requests on a schedule (or N in flight) and measure every round trip."`
}

// rrCommon are the flags both ends share, named as everywhere in napilab.
type rrCommon struct {
	Dev     string `required:"" placeholder:"IFACE" help:"Interface to bind the AF_XDP socket to."`
	Netns   string `placeholder:"NAME|PATH" help:"Network namespace of the interface (a name under /run/netns, e.g. a testbed's, or a path)."`
	Queue   int    `default:"0" help:"Device queue to bind."`
	Port    uint16 `default:"54321" help:"UDP port of the flow; the XDP program steers it to the socket."`
	Payload int    `default:"200" help:"UDP payload bytes."`
	Format  string `default:"napilab" enum:"napilab,xsk_rr" help:"Payload: napilab (sequence numbers and timestamps: exact loss/reorder accounting) or xsk_rr (all 'a', interoperates with the original)."`
	Verify  bool   `help:"Check every received payload."`

	Poll           string `default:"inline" enum:"inline,separate,none" help:"What drives NAPI polling when the RX ring is empty: inline (recvfrom kick from the loop), separate (a dedicated thread kicks), none (e.g. threaded NAPI busy poll)."`
	BusyPoll       int    `placeholder:"USEC" help:"SO_BUSY_POLL on the socket: each kick busy-polls the device's NAPI up to this long."`
	PreferBusyPoll bool   `help:"SO_PREFER_BUSY_POLL: keep IRQs masked while the application busy-polls."`
	BusyPollBudget int    `placeholder:"N" help:"SO_BUSY_POLL_BUDGET: packets per busy-poll pass."`

	CPU  []int `sep:"," placeholder:"CPU,..." help:"Pin the spinning threads: receive loop, then sender, then poller."`
	FIFO int   `placeholder:"PRIO" help:"Run the spinning threads SCHED_FIFO at this priority (1-99)."`

	Bind       string `default:"auto" enum:"auto,copy,zero-copy" help:"AF_XDP bind mode."`
	XDPMode    string `name:"xdp-mode" default:"auto" enum:"auto,native,generic" help:"XDP attach mode."`
	NeedWakeup bool   `default:"true" negatable:"" help:"Bind with need_wakeup: kick only when the kernel asks."`
	Ring       int    `default:"2048" help:"Fill and RX ring entries (a power of two)."`

	JSON bool `help:"Print one JSON document (schema napilab.rr/v1) instead of the report."`
}

// link and threads map the shared flags onto the option sets of rr's operations.
func (c *rrCommon) link() rr.LinkOptions {
	l := rr.DefaultLink(c.Dev)
	l.Queue, l.Port = c.Queue, c.Port
	l.BusyPoll = rr.BusyPoll{Usec: c.BusyPoll, Prefer: c.PreferBusyPoll, Budget: c.BusyPollBudget}
	l.Bind, l.XDPMode, l.NeedWakeup, l.Ring = c.Bind, c.XDPMode, c.NeedWakeup, c.Ring
	return l
}

func (c *rrCommon) threads() rr.Threads {
	return rr.Threads{CPUs: c.CPU, FIFO: c.FIFO, Poll: rr.PollDriver(c.Poll), Sender: rr.SenderAuto}
}

// flagErrors names the problems rr's option sets report by the flags that set them: napilab's flags are
// spelled as rr's field names.
func flagErrors(err error) error {
	return kernel.RenameFields(err, rrFlags)
}

var rrFlags = func() map[string]string {
	m := map[string]string{}
	for _, f := range []string{"dev", "queue", "port", "payload", "format", "poll", "busy-poll", "busy-poll-budget",
		"cpu", "fifo", "bind", "xdp-mode", "need-wakeup", "ring", "reply", "delay", "duration", "peer-mac",
		"local-ip", "period", "outstanding", "sender", "catch-up", "count", "warmup", "interval", "timeout",
		"colocated"} {
		m[f] = "--" + f
	}
	return m
}()

// fifoWarning says what RT throttling will do to spinning threads run SCHED_FIFO, or "" when it will not bite.
// Measured on a 2-vCPU machine: with the default 950 ms of every second, FIFO spinners stall for about 50 ms
// each second and the p99 becomes 45-50 ms.
func (c *rrCommon) fifoWarning() string {
	if c.FIFO == 0 {
		return ""
	}
	host, err := sysknob.Host()
	if err != nil {
		return ""
	}
	defer host.Close()
	if warn, _ := host.CheckRTThrottling(); warn != nil {
		return warn.Error() + " (spinning loops then stall for the rest of each period: expect tens of ms)"
	}
	return ""
}

func (c *rrCommon) nsPath() string { return netns.Path(c.Netns) }

type rrServerCmd struct {
	rrCommon
	Reply     string         `default:"echo" enum:"echo,template" help:"echo: turn each request around in place and answer anyone; template: send a pre-built frame to --peer, as xsk_rr does."`
	Delay     time.Duration  `help:"Busy-wait this long between a request and its reply (simulated processing)."`
	Duration  *time.Duration `help:"Stop after this long (default: until SIGINT or SIGTERM)."`
	Recompute bool           `help:"Recompute checksums of every reply (needed when kernel stacks send the requests: veth leaves their UDP checksums partial)."`
	Peer      string         `placeholder:"IP" help:"Template replies: the client's address."`
	PeerMAC   string         `placeholder:"MAC" help:"Template replies: the client's MAC (default: from the neighbour table)."`
	LocalIP   string         `placeholder:"IP" help:"Template replies: this end's address (default: the device's)."`
}

func (s *rrServerCmd) Run(ctx context.Context, std *stdio) (err error) {
	defer func() { err = cancelled(ctx, err) }()
	l, th := s.link(), s.threads()
	svc := rr.Service{Payload: s.Payload, Format: rr.Format(s.Format), Verify: s.Verify,
		Reply: rr.ReplyStyle(s.Reply), Delay: s.Delay}
	if l.PeerIP, l.PeerMAC, l.LocalIP, err = parseAddrs(s.Peer, s.PeerMAC, s.LocalIP); err != nil {
		return err
	}
	errs := []error{l.Validate(), svc.Validate(), th.Validate()}
	if s.Duration != nil {
		errs = append(errs, rr.CheckDuration(*s.Duration))
	}
	if err := flagErrors(errors.Join(errs...)); err != nil {
		return err
	}
	if err := s.checkCPUs(th); err != nil {
		return err
	}
	link, err := rr.OpenLinkIn(ctx, l, s.nsPath())
	if err != nil {
		return s.linkError(err)
	}
	defer link.Close()
	opts := rr.ServerOptions{Local: link.Info.Local, Peer: link.Info.Peer, MTU: link.Info.MTU,
		StampFailures: link.Prog.StampFailures}
	if s.Recompute {
		opts.Checksums = rr.RecomputeChecksums
	}
	srv, err := rr.NewServer(link.Sock, svc, th, opts)
	if err != nil {
		return flagErrors(err)
	}
	if s.Duration != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *s.Duration)
		defer cancel()
	}
	type outcome struct {
		st  rr.ServerStats
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		st, err := srv.Run(ctx)
		done <- outcome{st, err}
	}()
	<-srv.Ready() // the line below tells scripts the server is taking requests: print it only when it is
	if !s.JSON {
		fmt.Fprintf(std.out, "napilab rr server on %s queue %d, port %d, %s replies (%s XDP, %s); stop with Ctrl-C\n",
			l.Dev, l.Queue, l.Port, svc.Reply, link.Info.XDPMode, map[bool]string{true: "zero-copy", false: "copy mode"}[link.Info.ZeroCopy])
		for _, n := range link.Info.Notes {
			fmt.Fprintln(std.out, n)
		}
		if w := s.fifoWarning(); w != "" {
			fmt.Fprintln(std.out, "warning:", w)
		}
	} else {
		fmt.Fprintln(std.err, "napilab rr server ready")
	}
	out := <-done
	st, err := out.st, out.err
	if err != nil {
		return err
	}
	doc := rr.NewDocument(rr.RoleServer, l, th, link.Info)
	doc.Service, doc.Server = &svc, &st
	if s.JSON {
		return jsonOut(std.out, doc)
	}
	report.ServerReport(std.out, &doc)
	return nil
}

type rrClientCmd struct {
	rrCommon
	Peer        string         `required:"" placeholder:"IP" help:"The server's address; its MAC comes from the neighbour table (probed when missing)."`
	PeerMAC     string         `placeholder:"MAC" help:"The server's MAC, when ARP/ND cannot find it."`
	LocalIP     string         `placeholder:"IP" help:"Source address (default: the device's, of the peer's family)."`
	Period      *time.Duration `help:"Open loop: one request every PERIOD (e.g. 80us). Default 80us unless --rate or --outstanding is given. A period longer than --duration is refused: the run would measure at most one request."`
	Rate        string         `placeholder:"REQ/S" help:"Open loop at this rate, e.g. 12.5k, 125000, 1M (instead of --period)."`
	Outstanding *int           `placeholder:"N" help:"Closed loop: keep N requests in flight. With --rate or --period: at most N in flight, a due request waiting for a reply (a paced window, as sockperf ping-pong --mps)."`
	Sender      string         `default:"auto" enum:"auto,thread,inline" help:"Where open-loop requests are sent from: a thread of their own, or the receive loop; auto picks a thread only when the spinning threads fit the CPUs."`
	CatchUp     string         `name:"catch-up" default:"send" enum:"send,skip" help:"A late sender sends every missed request (send) or skips them, counting them (skip)."`
	Delay       time.Duration  `help:"Busy-wait this long after each reply before reading the next (simulated application processing, as xsk_rr -d)."`
	Duration    *time.Duration `help:"Measure this long after the warm-up; sending stops then, whether or not the sender kept up (default 10s, or no limit with --count)."`
	Count       *uint64        `help:"Stop after this many measured requests (with --duration: whichever comes first)."`
	Warmup      time.Duration  `default:"500ms" help:"Send and answer, but do not measure, this long first."`
	Interval    time.Duration  `default:"1s" help:"Print a line every interval (0: only the summary)."`
	Timeout     time.Duration  `default:"1s" help:"Give up on replies this long after the last send (a peer that never answers ends in 100% loss)."`
	Colocated   int            `help:"Spinning threads of other processes on this machine (e.g. a server in the same testbed), for thread placement."`
	CSV         string         `placeholder:"FILE" help:"Write the interval samples as CSV to FILE."`
	XskRRV1     bool           `name:"xsk-rr-v1" hidden:"" help:"Spell the xsk_rr report lines as RFC v1 did."`
}

// workload maps the client's flags onto rr.Workload. A value given is kept as given, so an explicit bad one
// (--period 0, --outstanding 0, --count 0) is refused rather than read as "not set".
func (c *rrClientCmd) workload() (rr.Workload, error) {
	p := rr.DefaultWorkload()
	p.Payload, p.Format, p.Verify = c.Payload, rr.Format(c.Format), c.Verify
	if c.Period != nil && c.Rate != "" {
		return p, errors.New("--period and --rate each set the schedule: give only one")
	}
	if c.Outstanding != nil {
		p.Period, p.Outstanding = 0, *c.Outstanding // a closed loop, unless a schedule is given too
	}
	switch {
	case c.Rate != "":
		var err error
		if p.Period, err = rr.ParseRate(c.Rate); err != nil {
			return p, fmt.Errorf("--%w", err)
		}
	case c.Period != nil:
		if *c.Period == 0 {
			return p, errors.New("--period 0 is no period: give one such as 80us, or --outstanding N for a " +
				"closed loop")
		}
		p.Period = *c.Period
	}
	p.CatchUp, p.Delay = rr.CatchUp(c.CatchUp), c.Delay
	p.Warmup, p.Interval, p.Timeout = c.Warmup, c.Interval, c.Timeout
	switch {
	case c.Count != nil && *c.Count == 0:
		return p, errors.New("--count 0 would stop before the first request: give at least 1")
	case c.Count != nil:
		p.Count, p.Duration = *c.Count, 0
	}
	if c.Duration != nil {
		if err := rr.CheckDuration(*c.Duration); err != nil {
			return p, flagErrors(err)
		}
		p.Duration = *c.Duration
	}
	return p, nil
}

// loadFlags names the load's fields by the flag that set them: a period that came from --rate is --rate's.
func (c *rrClientCmd) loadFlags(err error) error {
	if c.Rate != "" {
		err = kernel.RenameFields(err, map[string]string{"period": "--rate"})
	}
	return flagErrors(err)
}

func (c *rrClientCmd) Run(ctx context.Context, std *stdio) (err error) {
	defer func() { err = cancelled(ctx, err) }()
	// The first SIGINT or SIGTERM stops sending (before the run it stops opening the link, through ctx): the
	// replies in flight are awaited up to the reply timeout, so a request the server answered is never counted
	// lost. A second one stops at once.
	stopSending, runCtx, stopRun := gracefulStop()
	defer stopRun()
	l, th := c.link(), c.threads()
	l.NoStamp = true // arrival stamps are the server's measurement
	var p rr.Workload
	p, err = c.workload()
	if err != nil {
		return err
	}
	if l.PeerIP, l.PeerMAC, l.LocalIP, err = parseAddrs(c.Peer, c.PeerMAC, c.LocalIP); err != nil {
		return err
	}
	th.Sender, th.Colocated = rr.SenderPlacement(c.Sender), c.Colocated
	if err := c.loadFlags(errors.Join(l.Validate(), p.Validate(), th.Validate())); err != nil {
		return err
	}
	if c.CSV != "" {
		if err := checkWritable(c.CSV); err != nil {
			return fmt.Errorf("--csv %s cannot be written (%w): choose a path in a writable directory", c.CSV, err)
		}
	}
	if err := c.checkCPUs(th); err != nil {
		return err
	}
	link, err := rr.OpenLinkIn(ctx, l, c.nsPath())
	if err != nil {
		return c.linkError(err)
	}
	defer link.Close()

	opts := rr.ClientOptions{Local: link.Info.Local, Peer: link.Info.Peer, UsableCPUs: runtime.NumCPU(),
		MTU: link.Info.MTU, StopSending: stopSending}
	if c.XskRRV1 {
		opts.XskRRVersion = rr.XskRRv1
	}
	if !c.JSON && p.Interval > 0 {
		opts.OnInterval = func(iv rr.Interval) { report.IntervalLine(std.out, iv) }
	}
	cli, err := rr.NewClient(link.Sock, p, th, opts)
	if err != nil {
		return flagErrors(err)
	}
	if pl := cli.Placement(); !c.JSON {
		fmt.Fprintf(std.out, "napilab rr client → %s (%s) on %s queue %d: %d spinning threads, sender %s\n",
			link.Info.PeerIP, link.Info.PeerMAC, l.Dev, l.Queue, pl.Spinners, pl.Sender)
		for _, n := range note.Merge(append([]note.Note{}, link.Info.Notes...), pl.Notes...) {
			fmt.Fprintln(std.out, n)
		}
		if w := c.fifoWarning(); w != "" {
			fmt.Fprintln(std.out, "warning:", w)
		}
	}
	res, err := cli.Run(runCtx)
	if err != nil {
		return err
	}
	doc := rr.NewDocument(rr.RoleClient, l, th, link.Info)
	doc.Workload, doc.Client = &p, res
	return c.finish(ctx, std, doc)
}

// finish prints the result and writes the CSV, in that order, so that a CSV that cannot be written never costs
// the summary; the result document is then saved elsewhere and the error says where. It ends with the run's
// verdict: a peer that did not answer is a failure (status 1), an interrupted run ends with status 130.
func (c *rrClientCmd) finish(ctx context.Context, std *stdio, doc rr.Document) error {
	res := doc.Client
	var errs []error
	if c.JSON {
		errs = append(errs, jsonOut(std.out, doc))
	} else {
		report.ClientReport(std.out, &doc)
	}
	if c.CSV != "" {
		if err := writeCSV(c.CSV, res.Intervals); err != nil {
			raw, _ := json.MarshalIndent(doc, "", "  ")
			errs = append(errs, fmt.Errorf("%w; %s", err, rescue(raw)))
		}
	}
	if err := res.Unanswered(); err != nil {
		errs = append(errs, kernel.WithHint(err, "check that napilab rr server runs on "+c.Peer+
			" with the same --port and --format ("+strconv.Itoa(int(c.Port))+", "+c.Format+")"))
	} else if ctx.Err() != nil && len(errs) == 0 {
		errs = append(errs, &exitError{code: 130, err: errors.New("interrupted: sending stopped, the replies in " +
			"flight were awaited, and the report covers every request sent")})
	}
	return errors.Join(errs...)
}

// gracefulStop listens for SIGINT and SIGTERM from now on (as main's context does): the first closes
// stopSending, the second cancels run. Call it before anything a signal should interrupt.
func gracefulStop() (stopSending <-chan struct{}, run context.Context, cancel func()) {
	stop := make(chan struct{})
	run, cancelRun := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		for i := range 2 {
			select {
			case <-sig:
			case <-run.Done():
				return
			}
			if i == 0 {
				close(stop)
			}
		}
		cancelRun()
	}()
	return stop, run, func() { signal.Stop(sig); cancelRun() }
}

// cancelled turns the "context canceled" of a step that SIGINT or SIGTERM interrupted (opening the link, say)
// into errInterrupted; every other outcome stays as it is.
func cancelled(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return errInterrupted
	}
	return err
}

// checkCPUs refuses a --cpu this process cannot run on before anything is attached.
func (c *rrCommon) checkCPUs(th rr.Threads) error {
	if len(th.CPUs) == 0 {
		return nil
	}
	usable, err := rr.UsableCPUs()
	if err != nil {
		return nil // pinning says what is wrong
	}
	return flagErrors(th.CheckCPUs(usable))
}

// linkError names a link's problem by flag and, for a device that is not where it was looked for, says where
// it is.
func (c *rrCommon) linkError(err error) error {
	return netnsHint(flagErrors(err), c.Dev, c.Netns)
}

func parseAddrs(peer, peerMAC, local string) (peerIP netip.Addr, mac net.HardwareAddr, localIP netip.Addr, err error) {
	if peer != "" {
		if peerIP, err = netip.ParseAddr(peer); err != nil {
			return peerIP, nil, localIP, fmt.Errorf("--peer %q is not an IP address", peer)
		}
	}
	if peerMAC != "" {
		if mac, err = net.ParseMAC(peerMAC); err != nil || len(mac) != 6 {
			return peerIP, nil, localIP, fmt.Errorf("--peer-mac %q is not a MAC address like 02:00:00:00:00:01", peerMAC)
		}
	}
	if local != "" {
		if localIP, err = netip.ParseAddr(local); err != nil {
			return peerIP, mac, localIP, fmt.Errorf("--local-ip %q is not an IP address", local)
		}
	}
	return peerIP, mac, localIP, nil
}

func writeCSV(path string, ivs []rr.Interval) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--csv %s: %w", path, err)
	}
	if err := report.IntervalsCSV(f, ivs); err != nil {
		f.Close()
		return fmt.Errorf("--csv %s: %w", path, err)
	}
	return f.Close()
}
