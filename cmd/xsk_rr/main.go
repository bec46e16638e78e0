// Command xsk_rr is a drop-in for the AF_XDP request/response benchmark posted with the threaded NAPI busy
// poll series: same options, defaults, units and report, so the cover letter's commands run unchanged and
// either end can talk to the original. Run `xsk_rr --help` for the differences.
//
// The datapath it measures: each end has an AF_XDP socket bound in copy mode to queue 0, and an XDP program
// that redirects the flow's UDP frames into it. A frame reaches the socket's RX ring only when a NAPI poll of
// that queue runs: from the device interrupt and its softirq, from a busy-polling recvfrom on the socket (the
// inline kick when the ring is empty, or -t's thread), or from a threaded NAPI kthread that busy-polls (-n
// leaves the polling to it). Transmit is a sendto kick after every frame: in copy mode the kernel builds an
// skb and hands it straight to the driver. The round trip a client reports is mostly how long each end
// waited for such a poll.
//
// A hidden long option, --intervals N, makes a client stop sending after N report intervals (then await the
// replies, print the final report and exit 0), for tests and scripts that want a bounded run without a signal.
// Another, --reply-wait DURATION, replaces the 1 s a client waits for late replies, for tests on slow machines.
//
// The main is thin: options map onto the rr engine's parameters (opts.go), the engine runs the datapath, and
// this file prints what the original prints, plus napilab's true figures (report.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/rr"
)

func main() {
	if err := rr.RestartForSpinning(); err != nil {
		fmt.Fprintf(os.Stderr, "xsk_rr: warning: %v\n", err)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit status: 0 after a clean stop, 1 on any error (as the original's
// error(1, ...)).
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if err == nil && o.help {
		fmt.Fprint(stdout, usage)
		return 0
	}
	var r resolved
	if err == nil {
		r, err = o.check()
	}
	if err == nil {
		for _, w := range o.warnings() {
			fmt.Fprintf(stderr, "xsk_rr: warning: %s\n", w)
		}
		e := o.params(r)
		if err = e.validate(o.server); err == nil {
			err = datapath(&o, e, stdout, stderr)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "xsk_rr: %s\n", kernel.Explain("xsk_rr", err))
		return 1
	}
	return 0
}

// errStalled ends a closed-loop client whose server stopped answering: every request in flight is lost and no
// reply can come to trigger the next send. (The original waits forever.)
func errStalled(wait time.Duration) error {
	return fmt.Errorf("no reply for %g s and the closed loop waits for one: the server stopped answering; check that it runs with -D/-M naming this end", wait.Seconds())
}

// datapath opens the link, runs the role until SIGINT or SIGTERM, and detaches everything on the way out. The
// first signal stops a client gracefully (nothing more is sent, the replies in flight are awaited up to 1 s, a
// final report follows); a second one, or any signal to a server, stops at once.
func datapath(o *options, e engine, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopSending := make(chan struct{})
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		select {
		case <-sig:
		case <-ctx.Done():
			return
		}
		if o.server {
			cancel()
			return
		}
		close(stopSending)
		select {
		case <-sig:
			cancel()
		case <-ctx.Done():
		}
	}()

	e.link.NoStamp = true // the xsk_rr payload has no field for a server's queueing: no end needs the stamps
	link, err := rr.OpenLink(ctx, e.link)
	if err != nil {
		return deviceHint(kernel.RenameFields(err, flagOf), e.link.Dev)
	}
	defer link.Close()
	writeNotes(stderr, link.Info.Notes)
	if o.rxPolling {
		// The original announces the thread, and the thread announces itself.
		fmt.Fprint(stdout, "Do rx polling in separate thread\nDoing rx polling in separate thread\n")
	}
	if o.server {
		return serve(ctx, o, e, link, stdout, stderr)
	}
	return measure(ctx, o, e, link, stopSending, stdout, stderr)
}

func measure(ctx context.Context, o *options, e engine, link *rr.Link, stopSending <-chan struct{}, stdout, stderr io.Writer) error {
	buf := make([]byte, 0, 512) // used by the reporter goroutine only
	opts := rr.ClientOptions{Local: link.Info.Local, Peer: link.Info.Peer, UsableCPUs: runtime.NumCPU(),
		XskRRVersion: rr.XskRRv2, StopSending: stopSending,
		OnInterval: func(iv rr.Interval) {
			if iv.Replies == 0 {
				return // the original reports only when a reply arrives
			}
			buf = appendInterval(buf[:0], iv, o.exactOutput)
			_, _ = stdout.Write(buf) // one write per report: line-buffered even into a pipe
		}}
	cli, err := rr.NewClient(link.Sock, e.load, e.th, opts)
	if err != nil {
		return err
	}
	writeNotes(stderr, cli.Placement().Notes)
	if o.threaded {
		fmt.Fprint(stdout, "send in separate thread\n")
	}
	res, err := cli.Run(ctx)
	if err != nil {
		return err
	}
	if !o.exactOutput {
		_, _ = stdout.Write(appendClientTotal(nil, res))
	}
	if !res.StoppedEarly && o.intervals == 0 {
		return errStalled(e.load.Timeout) // a century-long run ends by itself only when the closed loop starves
	}
	if err := res.Unanswered(); err != nil {
		return kernel.WithHint(err, "check that the server runs with -D/-M naming this end and the same -p")
	}
	return nil
}

func serve(ctx context.Context, o *options, e engine, link *rr.Link, stdout, stderr io.Writer) error {
	md := newMaxDesc(stdout)
	// Like the original's server, this one never reads a request's payload unless -v asks: no checksums, no
	// arrival stamps.
	srv, err := rr.NewServer(link.Sock, e.svc, e.th, rr.ServerOptions{Local: link.Info.Local, Peer: link.Info.Peer,
		OnMaxBatch: md.note, Checksums: rr.TrustChecksums, IgnoreStamps: true})
	if err != nil {
		return err
	}
	go md.run()
	if !o.exactOutput {
		go func() {
			select {
			case <-srv.Ready():
				fmt.Fprintf(stderr, "xsk_rr: serving %s queue 0, UDP port %d (%s XDP, copy mode): replies go to %s %s\n",
					e.link.Dev, e.link.Port, link.Info.XDPMode, link.Info.PeerIP, link.Info.PeerMAC)
			case <-ctx.Done():
			}
		}()
	}
	st, err := srv.Run(ctx)
	md.stop()
	if err != nil {
		return err
	}
	if !o.exactOutput {
		_, _ = stdout.Write(appendServerTotal(nil, st))
	}
	return nil
}

// maxDesc prints "max_desc: N" whenever the server sees a larger backlog of requests, as the original does. The
// server thread only stores the number and nudges the printer, so it never waits on stdout.
type maxDesc struct {
	w    io.Writer
	n    atomic.Uint32
	wake chan struct{}
	done chan struct{}
	quit chan struct{}
}

func newMaxDesc(w io.Writer) *maxDesc {
	return &maxDesc{w: w, wake: make(chan struct{}, 1), done: make(chan struct{}), quit: make(chan struct{})}
}

// note is ServerOptions.OnMaxBatch: called on the server thread, it neither blocks nor allocates.
func (m *maxDesc) note(n uint32) {
	m.n.Store(n)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *maxDesc) run() {
	defer close(m.done)
	var printed uint32
	for {
		select {
		case <-m.wake:
		case <-m.quit:
			m.flush(&printed)
			return
		}
		m.flush(&printed)
	}
}

func (m *maxDesc) flush(printed *uint32) {
	if n := m.n.Load(); n > *printed {
		fmt.Fprintf(m.w, "max_desc: %d\n", n)
		*printed = n
	}
}

// stop prints a maximum not yet printed and waits for the printer to end.
func (m *maxDesc) stop() {
	close(m.quit)
	<-m.done
}

const usage = `usage: xsk_rr -4|-6 -i IFACE -S SRC_IP -D DST_IP -m SRC_MAC -M DST_MAC -p PORT [options]

A drop-in for xsk_rr, the AF_XDP UDP request/response benchmark posted with the threaded NAPI busy poll
series (RFC v2, netdev, 28 Aug 2025). Same options, defaults and units; same report; same packets on the
wire, so either end can be the original. Runs until SIGINT or SIGTERM.

  -4 | -6      IPv4 or IPv6 framing (one is required)
  -i IFACE     interface (default eth0); queue 0 is served, as in the original
  -S IP -D IP  source and destination IP written into the frames
  -m MAC       source MAC          -M MAC   destination MAC
  -p PORT      UDP source and destination port, and the port the XDP program steers (required)
  -B BYTES     UDP payload size (default 200, at most 1024)
  -h           run as the server (not help: use --help); it replies with its own frame to -D/-M
  -P NS        client: open-loop send period in nanoseconds (0: closed loop)
  -T           client: send from a separate thread (needs -P)
  -o N         client, closed loop: N requests sent up front, then one before each reply is awaited, so
               N+1 are in flight (default 1); ignored with -P
  -d N         client: busy-wait N nanoseconds after each reply before reading the next (simulated
               application processing); server: sleep N microseconds between request and reply
  -t           poll from a separate thread that calls recvfrom continuously
  -n           never call recvfrom: something else polls (threaded NAPI busy poll)
  -v           verify every received packet (ethertype, UDP port, length, payload bytes)
  -l SECONDS   report interval (default 1)
  --exact-output  print only what the original prints on stdout (no true/total lines, no "serving" line)
  --help       this text

The datapath is the original's: copy-mode AF_XDP socket on queue 0 with a transmit kick after every send,
a natively attached XDP program steering UDP to -p, 4096-entry fill and RX rings, payload bytes all 'a'.

Client report, every -l seconds while replies arrive, byte for byte as the original prints it:
  min: NS max: NS avg: NS empty: PCT     min/max since start; avg (truncated running mean) and the
                                         share of empty RX ring peeks over the interval
  count: N p5: NS  (and p50, p95, p99)   the original's "pN": the mean of the lowest N% of the
                                         interval's samples in 100 ns buckets, NOT a percentile
  rate: N                                replies in the interval divided by -l
  outstanding packets: N                 requests sent and not yet answered
followed by napilab's line (omitted with --exact-output):
  true: p50: NS p90: NS p99: NS p99.9: NS max: NS mean: NS rate: R sent: N
                                         real percentiles and exact mean of the same round trips (timed
                                         from the actual send, paired as the original pairs them),
                                         replies per second over the interval's real length, requests sent
and, when stopped, after a final report for the partial interval:
  total: sent: N answered: N lost: N rate: R p50: NS p90: NS p99: NS p99.9: NS max: NS late-p99: NS
         loop-away: NS loop-away-max: NS
                                         lost = never answered, after waiting up to 1 s for the replies
                                         in flight; late-p99 = how late sends were against the schedule;
                                         loop-away = idle iterations of the receive loop that took 20 µs or
                                         more (the thread preempted, interrupted or its vCPU descheduled),
                                         in all and the longest
Server output: "max_desc: N" whenever the backlog of waiting requests grows, and when stopped
  total: received: N replied: N malformed: N bad-payload: N tx-full: N max_desc: N busy-p50: NS busy-p99: NS
                                         busy = the server thread's time per request from taking it off the
                                         RX ring to handing the reply to the TX ring (one batch in 16 timed)
With -t both roles print "Do rx polling in separate thread" and "Doing rx polling in separate thread";
with -T the client prints "send in separate thread", as the original does.

Where napilab differs from the original, and why:
  - pN columns: printed exactly as the original computes them, with true percentiles beside them.
  - Pacing: request k is sent at t0 + k*P. The original restarts the period from each actual send, so it
    drifts below the target rate (11.9k/s instead of 12.5k/s at -P 80000 on a 2-vCPU machine).
  - IPv6: the original's XDP program passes every IPv6 frame to the stack, so -6 never receives; here it works.
  - -B is order-insensitive: the original sizes the frame with the -B seen before -4/-6 (a later -B yields
    malformed frames). Above 1024 it is capped, as in the original, with a warning.
  - -P and -d accept unit suffixes (80us, 30us, 1ms) besides the original's bare numbers.
  - Replies are still matched first-in-first-out (the payload carries no sequence number, so this is what the
    wire format allows): one lost or reordered packet shifts every later sample, in both columns. The sender
    and receiver threads synchronise properly, and a full window of 1024 outstanding requests ends the run
    with "outstanding array full" and exit status 1, as the original does.
  - The first report comes one interval after the start, not at the first reply; "outstanding packets" is
    right in the closed loop (the original underflows); reports are written as they happen even into a pipe
    (the original's stdout is block-buffered there).
  - SIGINT or SIGTERM stops sending, waits up to 1 s for the replies in flight, prints a final report and the
    total line, detaches the XDP program and exits 0; a second signal stops at once. The original exits 1
    at once, without a report.
  - A closed loop whose server stops answering ends after 1 s without a reply, with exit status 1; the
    original waits forever. With -d the closed loop waits for replies instead of sending one more request
    per pass while the delay runs (which made the original hit "outstanding array full").
  - max_desc shows the real backlog: the original peeks one descriptor at a time, so it only ever prints
    "max_desc: 1".
  - The server's -v drops and counts a request that fails the check (see its total line) instead of exiting
    with "bad packet content"; the client's -v exits with it, as the original. Without -v the server reads
    only a request's headers (a frame too short for them, or of another payload size, is counted and not
    answered) and, as the original, not its checksums or payload.
  - Refused instead of silently ignored: -t with -n (the original polls from the thread), -T without -P (the
    original runs a closed loop), -T with -h, -l 0 (the original divides by zero), a port or count that does
    not fit its field.
  - -p has no usable default (the original's 0 cannot be steered), so it is required.
  - Errors are one sentence each and name the fix; nothing stays attached to the interface on exit; a
    warning says when spinning threads (-T, -t) outnumber the CPUs, which measures the scheduler instead.
For loss and reorder detection, CPU cost, JSON output and automatic addressing, use
"napilab rr client|server" (--format xsk_rr talks to this tool and to the original).
`

// deviceHint adds to an error about an interface that is not in xsk_rr's network namespace the namespaces
// that have one of that name: xsk_rr runs where its interface is (ip netns exec NAME xsk_rr ...).
func deviceHint(err error, dev string) error {
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	switch names, _ := netns.Holding(dev); len(names) {
	case 0:
		return kernel.WithHint(err, "run xsk_rr in the network namespace of the interface (ip netns exec NAME "+
			"xsk_rr ...; ip netns list shows them)")
	case 1:
		return kernel.WithHint(err, fmt.Sprintf("it is in network namespace %s: run ip netns exec %s xsk_rr ...",
			names[0], names[0]))
	default:
		return kernel.WithHint(err, fmt.Sprintf("network namespaces %s each have one: run xsk_rr in the one you "+
			"mean with ip netns exec NAME xsk_rr ...", strings.Join(names, ", ")))
	}
}

// writeNotes prints what the engine noted, the way the tool prints its own warnings.
func writeNotes(w io.Writer, notes []note.Note) {
	for _, n := range notes {
		fmt.Fprintf(w, "xsk_rr: %s\n", n)
	}
}
