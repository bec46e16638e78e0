// Command benchrr puts napilab rr beside the request/response tools people use today, on one veth testbed:
// sockperf ping-pong and netperf UDP_RR over UDP sockets, napilab rr and napilab's xsk_rr drop-in (both roles)
// over AF_XDP, each pair pinned to the same two CPUs (server CPU 0, client CPU 1) and run in interleaved rounds
// (A B C, C B A, …), so slow drift of the machine shows as spread rather than as a difference between tools. It
// prints one table: the median of the rounds with the spread (min–max), and the machine's load around them. Run
// it as root with `make bench-rr`.
//
// The tools measure different loops, and the table says which: sockperf ping-pong paces a closed loop at a rate;
// netperf UDP_RR (Debian's build has no rate control) runs one request at a time as fast as it can; napilab runs
// an open loop at the rate (latency from the scheduled send), the paced closed loop sockperf runs (one in flight,
// at the rate) and a closed loop of one; each napilab paced row is followed by its replies timed from the actual
// send, the statistic of the other tools; xsk_rr runs its open loop at the rate with the sender inside the
// receive loop (no -T: three spinning threads on two CPUs would measure the scheduler), timed from the actual
// send.
//
// --original PATH adds the original C xsk_rr (RFC v2, built by the user; napilab never ships it) as the server of
// the drop-in's client, as the client of the drop-in's server and at both ends: each client against both
// servers, and a summary of the servers' differences taken round by round. The original prints only its own "pN" (means of the lowest N %, not
// percentiles) and its truncated running mean, so its client's row has those and no percentiles; every xsk_rr
// client's row shows them, so the original's figures are compared with the same statistic.
//
// Before each round, unless --noise 0, napilab noise spins on the two CPUs for that long and the round's line
// says how much of each CPU the machine took meanwhile (gaps of 10 µs or more in a thread that never yields):
// the floor under every spinning tool's tail in that round, and the summary gives its median over the rounds.
//
// --turnaround also traces each AF_XDP server while its client measures (napilab trace turnaround): its own share
// of the round trips, from a request's arrival in its socket to its reply's sendto, which compares servers
// without their clients, the wire or the other CPU. Its eBPF programs run on every system call meanwhile, so a
// run with it is not compared with a run without.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/napilab/napilab/internal/report"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/trace"
	"github.com/napilab/napilab/internal/usage"
)

// sample is one run's figures in ns; -1 is a figure the tool does not report.
type sample struct {
	p50, p90, p99, p999, max, rate float64
	pn50, avg                      float64       // an xsk_rr client's own "p50" and avg, medians over its intervals
	fromSend                       *sample       // napilab's open loop: the same replies timed from the actual send
	gaps                           *rr.LoopGaps  // napilab: its receive loop's time away from the ring
	steal                          time.Duration // napilab: the CPUs' steal time over its window (-1: unknown)
}

type tool struct {
	name, transport, loop string
	server                func(e env) []string
	ready                 string        // a line the server prints when it serves ("" for none)
	settle                time.Duration // with no ready line: how long the server needs before it serves
	client                func(e env) []string
	stop                  bool    // the client runs until SIGINT, sent after the warm-up and the duration
	fromSendRow           string  // napilab's open loop: the name of a second row, its runs timed from the send
	ends                  xskEnds // which xsk_rr is at each end; zero for the other tools
	parse                 func(out []byte) (sample, error)
	runs                  []sample
	turns                 []turnaround // with --turnaround, the server's, run by run
}

// turnaround is a run's server turnaround (napilab trace turnaround): from a request's arrival in the server's
// socket to its reply's sendto, in ns; -1 for a percentile beyond the tracer's histogram.
type turnaround struct{ p50, p99 float64 }

// xskEnds names the xsk_rr builds of a run: the drop-in or the original, as server and as client.
type xskEnds struct{ server, client string }

const (
	dropIn   = "drop-in"
	original = "original"
)

type opts struct {
	rate       int
	duration   time.Duration
	payload    int
	original   string        // the original xsk_rr binary, or ""
	turnaround bool          // trace each AF_XDP server's turnaround while its client measures
	noise      time.Duration // napilab noise on both CPUs before each round; 0: none
}

// env is what the command lines need to know.
type env struct {
	o                opts
	napilab, xskRR   string
	netperf          string
	bed              *testbed.Testbed
	peer, clientAddr string
}

const warmup = 500 * time.Millisecond

func main() {
	var o opts
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	flag.IntVar(&o.rate, "rate", 12500, "requests per second for the paced tools")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per run")
	flag.IntVar(&o.payload, "payload", 400, "UDP payload bytes")
	flag.StringVar(&o.original, "original", "", "the original C xsk_rr binary, to run beside the drop-in (optional)")
	only := flag.String("tools", "", "comma-separated substrings: run only the tools whose names contain one")
	flag.BoolVar(&o.turnaround, "turnaround", false, "trace each AF_XDP server's turnaround (napilab trace turnaround) "+
		"while its client measures; its eBPF programs run on every system call, the tools' own included")
	flag.DurationVar(&o.noise, "noise", 2*time.Second, "before each round, measure the machine's noise on both CPUs "+
		"(napilab noise) for this long; 0 skips it")
	flag.Parse()
	if err := run(*rounds, o, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench-rr:", err)
		os.Exit(1)
	}
}

func run(rounds int, o opts, only string) error {
	if rounds < 1 || o.rate < 1 || o.duration < time.Second || o.payload < rr.MinPayload || o.payload > 1024 {
		return fmt.Errorf("want at least 1 round, a rate of at least 1, a duration of at least 1s and a payload of %d "+
			"to 1024 bytes (xsk_rr's limit)", rr.MinPayload)
	}
	if o.noise != 0 && (o.noise < rr.NoiseMinDuration || o.noise > rr.NoiseMaxDuration) {
		return fmt.Errorf("--noise %v is out of range: give %v to %v, or 0 to skip it", o.noise, rr.NoiseMinDuration,
			rr.NoiseMaxDuration)
	}
	if o.original != "" {
		if _, err := os.Stat(o.original); err != nil {
			return fmt.Errorf("--original: %w", err)
		}
	}
	ctx := context.Background()
	e := env{o: o}
	var err error
	if e.netperf, err = fetchNetperf(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "napilab-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if out, err := exec.Command("go", "build", "-o", dir, "./cmd/napilab", "./cmd/xsk_rr").CombinedOutput(); err != nil {
		return fmt.Errorf("build napilab and xsk_rr: %v\n%s", err, out)
	}
	e.napilab, e.xskRR = filepath.Join(dir, "napilab"), filepath.Join(dir, "xsk_rr")
	for _, t := range []string{"sockperf", "taskset", "ip"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s is missing: apt-get install sockperf util-linux iproute2 (make deps does)", t)
		}
	}

	// Named namespaces: the original xsk_rr reads its device's carrier from /sys, which only `ip netns exec`
	// mounts for the namespace.
	if e.bed, err = testbed.Up(ctx, testbed.Topology{Prefix: "napilab-bench", Lifetime: testbed.Owned}); err != nil {
		return err
	}
	defer e.bed.Down()
	e.peer, e.clientAddr = e.bed.B.IPv4.Addr().String(), e.bed.A.IPv4.Addr().String()
	var tools []*tool
	for _, t := range toolset(e) {
		if only == "" || slices.ContainsFunc(strings.Split(only, ","), func(s string) bool {
			return s != "" && strings.Contains(t.name, s)
		}) {
			tools = append(tools, t)
		}
	}
	fmt.Printf("bench-rr: %d rounds of %s per tool (after %s of warm-up), %d B payloads, paced tools at %d req/s; "+
		"server on CPU 0, client on CPU 1; %s\n", rounds, o.duration, warmup, o.payload, o.rate, loadNow())
	var loads []float64
	var noise []rr.NoiseResult
	for r := 1; r <= rounds; r++ {
		if o.noise > 0 {
			out, err := exec.Command(e.napilab, "noise", "--cpus", "0,1", "--duration", o.noise.String(), "--json").Output()
			if err != nil {
				return fmt.Errorf("round %d, napilab noise: %w", r, commandError(err))
			}
			n, err := parseNoise(out)
			if err != nil {
				return fmt.Errorf("round %d, napilab noise: %w", r, err)
			}
			noise = append(noise, n)
			fmt.Printf("  round %d  machine noise: %s\n", r, noiseRound(n))
		}
		// Every other round runs the tools in reverse (A B C, C B A, …): a drift of the machine over the run then
		// weighs on every tool alike instead of favouring the ones that run first.
		order := slices.Clone(tools)
		if r%2 == 0 {
			slices.Reverse(order)
		}
		for _, t := range order {
			s, turn, other, err := runPair(e, t)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r, t.name, err)
			}
			t.runs = append(t.runs, s)
			if turn != nil {
				t.turns = append(t.turns, *turn)
			}
			loads = append(loads, loadAvg())
			away := ""
			if g := s.gaps; g != nil {
				away = fmt.Sprintf("; loop away %s, longest %s", report.FormatNs(int64(g.Total)),
					report.FormatNs(int64(g.Longest)))
				if s.steal >= 0 {
					away += "; steal " + report.FormatNs(int64(s.steal))
				}
			}
			fmt.Printf("  round %d  %-40s p50 %-9s p99 %-9s p99.9 %-9s %6.0f req/s  (other processes: %v of CPU; "+
				"load %.2f%s)\n", r, t.name, fns(s.p50), fns(s.p99), fns(s.p999), s.rate, other, loads[len(loads)-1], away)
		}
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tool\ttransport\tloop\treq/s\tp50\tp90\tp99\tp99.9\tmax\txsk_rr \"p50\"\txsk_rr avg")
	for _, t := range tools {
		row(tw, t.name, t.transport, t.loop, t.runs)
		if t.fromSendRow != "" {
			var runs []sample
			for _, s := range t.runs {
				runs = append(runs, *s.fromSend)
			}
			row(tw, t.fromSendRow, t.transport, t.loop, runs)
		}
	}
	tw.Flush()
	if lines := serverPairs(tools); len(lines) > 0 {
		fmt.Println("\nThe two servers under the same client, round by round (drop-in minus original; negative: the drop-in's")
		fmt.Println("round trips were shorter). Median of the rounds (min–max), and the rounds where the drop-in's was no longer:")
		for _, l := range lines {
			fmt.Println("  " + l)
		}
	}
	if lines, least := loopGapLines(tools); len(lines) > 0 {
		fmt.Printf("\nnapilab's receive loop away from its ring (idle iterations of %s or more: the thread preempted,\n",
			report.FormatNs(int64(least)))
		fmt.Println("interrupted or its vCPU descheduled; requests due and replies waiting meanwhile wait it out). Median of the")
		fmt.Println("rounds (min–max), per run:")
		for _, l := range lines {
			fmt.Println("  " + l)
		}
	}
	if lines := noiseLines(noise); len(lines) > 0 {
		fmt.Printf("\nThe machine's noise before each round (napilab noise, %s on both CPUs at once: a thread that never\n",
			o.noise)
		fmt.Println("yields, away from its loop in gaps of 10 µs or more; a request arriving meanwhile waits). Median of the")
		fmt.Println("rounds (min–max):")
		for _, l := range lines {
			fmt.Println("  " + l)
		}
	}
	if lines := turnarounds(tools); len(lines) > 0 {
		fmt.Println("\nEach AF_XDP server's own turnaround (napilab trace turnaround: a request's arrival in its socket to its")
		fmt.Println("reply's sendto; the tracer's programs ran on every system call meanwhile). Median of the rounds (min–max):")
		for _, l := range lines {
			fmt.Println("  " + l)
		}
	}
	slices.Sort(loads)
	fmt.Printf("\nmedian of the rounds (min–max); latencies are full round trips; – where a tool does not report "+
		"the figure. Load average %.2f–%.2f during the runs, %s.\n", loads[0], loads[len(loads)-1], time.Now().Format(time.DateOnly))
	fmt.Println("sockperf, netperf and xsk_rr time from the actual send; napilab's open loop from the scheduled send (a late")
	fmt.Println("sender counts), and its runs again from the actual send on the row below. netperf reports whole microseconds. xsk_rr rows cover the client's whole run, its first")
	fmt.Println("interval included (it has no warm-up); its \"p50\" and avg are the original's statistics (a mean of the lowest")
	fmt.Println("50 %, a truncated running mean), medians over the 1 s intervals after the first.")
	return nil
}

// serverPairs compares the drop-in server with the original under each client that ran against both: per
// round, the difference of the client's "p50" and of its avg, since the rounds drift more than the servers
// differ and a difference taken within a round cancels what the round shares.
func serverPairs(tools []*tool) []string {
	var lines []string
	for _, client := range []string{dropIn, original} {
		var a, b *tool
		for _, t := range tools {
			switch t.ends {
			case xskEnds{dropIn, client}:
				a = t
			case xskEnds{original, client}:
				b = t
			}
		}
		if a == nil || b == nil || len(a.runs) != len(b.runs) || len(a.runs) == 0 {
			continue
		}
		diff := func(get func(sample) float64) string {
			d := make([]float64, len(a.runs))
			noLonger := 0
			for i := range a.runs {
				if d[i] = get(a.runs[i]) - get(b.runs[i]); d[i] <= 0 {
					noLonger++
				}
			}
			slices.Sort(d)
			return fmt.Sprintf("%s (%s to %s), %d of %d", report.FormatNs(int64(d[len(d)/2])),
				report.FormatNs(int64(d[0])), report.FormatNs(int64(d[len(d)-1])), noLonger, len(d))
		}
		lines = append(lines, fmt.Sprintf("%s client: \"p50\" %s; avg %s", client,
			diff(func(s sample) float64 { return s.pn50 }), diff(func(s sample) float64 { return s.avg })))
	}
	return lines
}

// row writes one line of the table: the median of each figure over the runs, with the spread.
func row(tw io.Writer, name, transport, loop string, runs []sample) {
	col := func(get func(sample) float64, ns bool) string { return med(runs, get, ns) }
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, transport, loop,
		col(func(s sample) float64 { return s.rate }, false), col(func(s sample) float64 { return s.p50 }, true),
		col(func(s sample) float64 { return s.p90 }, true), col(func(s sample) float64 { return s.p99 }, true),
		col(func(s sample) float64 { return s.p999 }, true), col(func(s sample) float64 { return s.max }, true),
		col(func(s sample) float64 { return s.pn50 }, true), col(func(s sample) float64 { return s.avg }, true))
}

func fns(v float64) string {
	if v < 0 {
		return "–"
	}
	return report.FormatNs(int64(v))
}

// med formats the median of a figure over the runs, with the spread.
func med(runs []sample, get func(sample) float64, ns bool) string {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = get(r)
	}
	if slices.Min(v) < 0 {
		return "–" // the tool does not report this figure
	}
	return spread(v, func(x float64) string {
		if ns {
			return report.FormatNs(int64(x))
		}
		return strconv.FormatFloat(x, 'f', 0, 64)
	})
}

// spread formats the median of v with its range, or the one value when they are all the same; it sorts v.
func spread(v []float64, f func(float64) string) string {
	slices.Sort(v)
	m := v[len(v)/2]
	if v[0] != v[len(v)-1] {
		return fmt.Sprintf("%s (%s–%s)", f(m), f(v[0]), f(v[len(v)-1]))
	}
	return f(m)
}

func toolset(e env) []*tool {
	o := e.o
	napilabServer := func(env) []string {
		return []string{e.napilab, "rr", "server", "--dev", testbed.LinkB, "--cpu", "0", "--poll", "none"}
	}
	napilabClient := func(extra ...string) func(env) []string {
		return func(env) []string {
			return append([]string{e.napilab, "rr", "client", "--dev", testbed.LinkA, "--peer", e.peer, "--cpu", "1",
				"--colocated", "1", "--poll", "none", "--payload", strconv.Itoa(o.payload), "--duration", o.duration.String(),
				"--warmup", warmup.String(), "--json"}, extra...)
		}
	}
	// xsk_rr as the cover letter runs it, without -T; -v on both ends, as the original's measurements here used.
	xflags := []string{"-o", "0", "-B", strconv.Itoa(o.payload), "-4", "-p", "54321", "-v", "-l", "1"}
	xServer := func(bin string) func(env) []string {
		return func(env) []string {
			return append(append([]string{"ip", "netns", "exec", e.bed.B.Namespace, "taskset", "-c", "0", bin}, xflags...),
				"-i", testbed.LinkB, "-h", "-S", e.peer, "-D", e.clientAddr, "-m", e.bed.B.MAC.String(), "-M", e.bed.A.MAC.String())
		}
	}
	xClient := func(bin string) func(env) []string {
		return func(env) []string {
			return append(append([]string{"ip", "netns", "exec", e.bed.A.Namespace, "taskset", "-c", "1", bin}, xflags...),
				"-i", testbed.LinkA, "-S", e.clientAddr, "-D", e.peer, "-m", e.bed.A.MAC.String(), "-M", e.bed.B.MAC.String(),
				"-P", strconv.Itoa(int(time.Second)/o.rate))
		}
	}
	tools := []*tool{
		{name: "napilab rr (open loop)", transport: "AF_XDP", loop: "open, paced",
			fromSendRow: "  the same, from the actual send", server: napilabServer, ready: "napilab rr server on",
			client: napilabClient("--rate", strconv.Itoa(o.rate)), parse: parseNapilab},
		{name: "xsk_rr drop-in", transport: "AF_XDP", loop: "open, paced, inline", ends: xskEnds{dropIn, dropIn},
			server: xServer(e.xskRR), ready: "xsk_rr: serving", client: xClient(e.xskRR), stop: true, parse: parseXskRR},
	}
	if o.original != "" {
		// The same client against both servers, each pair in adjacent runs: the server comparison below.
		tools = append(tools,
			&tool{name: "original xsk_rr server ← drop-in client", transport: "AF_XDP", loop: "open, paced, inline",
				ends: xskEnds{original, dropIn}, server: xServer(o.original), settle: time.Second,
				client: xClient(e.xskRR), stop: true, parse: parseXskRR},
			&tool{name: "drop-in server ← original xsk_rr client", transport: "AF_XDP", loop: "open, paced, inline",
				ends: xskEnds{dropIn, original}, server: xServer(e.xskRR), ready: "xsk_rr: serving",
				client: xClient(o.original), stop: true, parse: parseXskRR},
			&tool{name: "original xsk_rr (both ends)", transport: "AF_XDP", loop: "open, paced, inline",
				ends: xskEnds{original, original}, server: xServer(o.original), settle: time.Second,
				client: xClient(o.original), stop: true, parse: parseXskRR})
	}
	return append(tools,
		&tool{name: "sockperf ping-pong", transport: "UDP socket", loop: "closed, paced",
			server: func(env) []string {
				return []string{"taskset", "-c", "0", "sockperf", "server", "-i", "0.0.0.0", "-p", "11111"}
			},
			ready: "sockperf: [SERVER] listen on",
			client: func(env) []string {
				return []string{"taskset", "-c", "1", "sockperf", "ping-pong", "-i", e.peer, "-p", "11111", "--full-rtt",
					"-m", strconv.Itoa(o.payload), "--mps", strconv.Itoa(o.rate),
					"-t", strconv.Itoa(int(o.duration.Seconds()))}
			}, parse: parseSockperf},
		&tool{name: "napilab rr (paced, 1 in flight)", transport: "AF_XDP", loop: "closed, paced",
			fromSendRow: "  the same, from the actual send", server: napilabServer, ready: "napilab rr server on",
			client: napilabClient("--rate", strconv.Itoa(o.rate), "--outstanding", "1"), parse: parseNapilab},
		&tool{name: "napilab rr (1 in flight)", transport: "AF_XDP", loop: "closed, 1",
			server: napilabServer, ready: "napilab rr server on",
			client: napilabClient("--outstanding", "1"), parse: parseNapilab},
		&tool{name: "netperf UDP_RR", transport: "UDP socket", loop: "closed, 1",
			server: func(env) []string {
				return []string{"taskset", "-c", "0", filepath.Join(e.netperf, "netserver"), "-D", "-p", "12865"}
			},
			ready: "", // netserver -D prints nothing; the client retries the control connection
			client: func(env) []string {
				return []string{"taskset", "-c", "1", filepath.Join(e.netperf, "netperf"), "-H", e.peer, "-p", "12865",
					"-t", "UDP_RR", "-l", strconv.Itoa(int(o.duration.Seconds())), "--", "-r",
					fmt.Sprintf("%d,%d", o.payload, o.payload),
					"-o", "THROUGHPUT,P50_LATENCY,P90_LATENCY,P99_LATENCY,MAX_LATENCY"}
			}, parse: parseNetperf})
}

// runPair starts the server in namespace B, waits until it serves, runs the client in namespace A and stops the
// server. Nothing else is started while the client measures. It also returns how much CPU time the rest of the
// machine took while the client ran: other work on two CPUs where two loops spin lands on a spinner's CPU.
func runPair(e env, t *tool) (s sample, turn *turnaround, other time.Duration, err error) {
	var srv *server
	for attempt := 0; ; attempt++ {
		if srv, err = startServer(e, t); err == nil {
			break
		}
		// The kernel lets go of a closed AF_XDP socket's queue from a work item, after the process is gone: a
		// server started right after the previous tool's can find the queue still taken. napilab waits that out
		// itself; the original xsk_rr exits, so it is started again.
		if srv == nil || attempt == 20 || !strings.Contains(srv.out.String(), "Device or resource busy") {
			return sample{}, nil, 0, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer func() {
		srv.stop()
		if err != nil {
			err = fmt.Errorf("%w\nthe server's last words:\n%s", err, srv.out)
		}
	}()
	argv := t.client(e)
	var res []byte
	var traced <-chan tracedTurnaround
	if e.o.turnaround && t.transport == "AF_XDP" {
		traced = traceTurnaround(e, t, srv.cmd.Process.Pid)
	}
	busy0, srv0 := busyJiffies(), procJiffies(srv.cmd.Process.Pid)
	for attempt := 0; ; attempt++ {
		cli := exec.Command(argv[0], argv[1:]...)
		var buf bytes.Buffer
		cli.Stdout, cli.Stderr = &buf, &buf
		if err := start(e.bed.A, cli); err != nil {
			return sample{}, nil, 0, err
		}
		if t.stop {
			stopAfter := time.AfterFunc(warmup+e.o.duration, func() { _ = cli.Process.Signal(syscall.SIGINT) })
			defer stopAfter.Stop()
		}
		err := cli.Wait()
		res = buf.Bytes()
		mine := time.Duration(procJiffies(srv.cmd.Process.Pid)-srv0)*tick + cli.ProcessState.UserTime() +
			cli.ProcessState.SystemTime()
		other = max(time.Duration(busyJiffies()-busy0)*tick-mine, 0).Round(10 * time.Millisecond)
		if err == nil {
			break
		}
		if attempt < 20 && t.ready == "" && t.settle == 0 && bytes.Contains(res, []byte("establish control")) {
			time.Sleep(100 * time.Millisecond) // netserver is not listening yet
			continue
		}
		if t.stop && len(res) > 0 {
			break // the original xsk_rr exits with status 1 on SIGINT; its reports are what counts
		}
		return sample{}, nil, 0, fmt.Errorf("client: %v\n%s", err, res)
	}
	if traced != nil {
		r := <-traced
		if r.err != nil {
			return sample{}, nil, 0, r.err
		}
		turn = &r.turnaround
	}
	s, err = t.parse(res)
	return s, turn, other, err
}

type tracedTurnaround struct {
	turnaround
	err error
}

// traceTurnaround runs napilab trace turnaround on the server with pid for as long as its client will run, and
// delivers what it found. It starts with the client, so that loading its programs (a burst of CPU on one of the
// two spinning CPUs) falls in the client's warm-up rather than in what it measures.
func traceTurnaround(e env, t *tool, pid int) <-chan tracedTurnaround {
	done := make(chan tracedTurnaround, 1)
	argv := []string{e.napilab, "trace", "turnaround", "--pid", strconv.Itoa(pid), "--netns", e.bed.B.NetNSPath(),
		"--dev", testbed.LinkB, "--duration", (warmup + e.o.duration).String(), "--json"}
	if t.ends.server != original {
		argv = append(argv, "--thread", "rr-server") // every other AF_XDP server here is napilab's
	}
	go func() {
		out, err := exec.Command(argv[0], argv[1:]...).Output()
		if err != nil {
			done <- tracedTurnaround{err: fmt.Errorf("trace turnaround: %w\n%s", err, out)}
			return
		}
		turn, err := parseTurnaround(out)
		done <- tracedTurnaround{turn, err}
	}()
	return done
}

// parseTurnaround reads napilab trace turnaround --json.
func parseTurnaround(out []byte) (turnaround, error) {
	var r trace.TurnaroundTrace
	if err := json.Unmarshal(out, &r); err != nil {
		return turnaround{}, fmt.Errorf("trace turnaround printed no result: %v\n%s", err, out)
	}
	if r.Count == 0 {
		return turnaround{}, errors.New("trace turnaround saw no reply: the server answered nothing with a kick")
	}
	return turnaround{float64(r.P50), float64(r.P99)}, nil
}

// loopGapLines gives, for each tool whose runs report rr.LoopGaps, the longest gap and the time away in all; and
// the least iteration counted as a gap.
func loopGapLines(tools []*tool) (lines []string, least time.Duration) {
	for _, t := range tools {
		if len(t.runs) == 0 || slices.ContainsFunc(t.runs, func(s sample) bool { return s.gaps == nil }) {
			continue
		}
		for _, s := range t.runs {
			least = max(least, s.gaps.Min)
		}
		line := fmt.Sprintf("%s: longest %s, in all %s", t.name,
			med(t.runs, func(s sample) float64 { return float64(s.gaps.Longest) }, true),
			med(t.runs, func(s sample) float64 { return float64(s.gaps.Total) }, true))
		if steal := med(t.runs, func(s sample) float64 { return float64(s.steal) }, true); steal != "–" {
			line += "; the hypervisor's steal meanwhile " + steal
		}
		lines = append(lines, line)
	}
	return lines, least
}

// commandError adds what a command that failed said on stderr to its error.
func commandError(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return err
}

// parseNoise reads napilab noise --json.
func parseNoise(out []byte) (rr.NoiseResult, error) {
	var n rr.NoiseResult
	if err := json.Unmarshal(out, &n); err != nil {
		return n, fmt.Errorf("parse its JSON: %w", err)
	}
	if len(n.CPUs) == 0 {
		return n, errors.New("it measured no CPU")
	}
	return n, nil
}

// noiseRound is a round's noise on one line: per CPU, the share away, the gaps and the longest; then the time
// all were away at once.
func noiseRound(n rr.NoiseResult) string {
	var parts []string
	for _, c := range n.CPUs {
		parts = append(parts, fmt.Sprintf("CPU %d away %.2f %% in %d gaps, longest %s", c.CPU, 100*c.Away(),
			c.Gaps.Count, report.FormatNs(int64(c.Gaps.Longest))))
	}
	if len(n.CPUs) > 1 {
		parts = append(parts, "together "+report.FormatNs(int64(n.Together.Total)))
	}
	return strings.Join(parts, "; ")
}

// noiseLines gives, per CPU, the median over the rounds of its share away, its gaps and its longest gap; and of
// the time all were away at once.
func noiseLines(rounds []rr.NoiseResult) []string {
	byCPU := map[int][]rr.CPUNoise{}
	var cpus []int
	var together []float64
	for _, r := range rounds {
		if len(r.CPUs) > 1 {
			together = append(together, float64(r.Together.Total))
		}
		for _, c := range r.CPUs {
			if _, ok := byCPU[c.CPU]; !ok {
				cpus = append(cpus, c.CPU)
			}
			byCPU[c.CPU] = append(byCPU[c.CPU], c)
		}
	}
	slices.Sort(cpus)
	var lines []string
	for _, cpu := range cpus {
		runs := byCPU[cpu]
		col := func(get func(rr.CPUNoise) float64, f func(float64) string) string {
			v := make([]float64, len(runs))
			for i, c := range runs {
				v[i] = get(c)
			}
			return spread(v, f)
		}
		pct := func(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) + " %" }
		count := func(x float64) string { return strconv.FormatFloat(x, 'f', 0, 64) }
		ns := func(x float64) string { return report.FormatNs(int64(x)) }
		lines = append(lines, fmt.Sprintf("CPU %d: away %s, gaps %s, the longest %s", cpu,
			col(func(c rr.CPUNoise) float64 { return 100 * c.Away() }, pct),
			col(func(c rr.CPUNoise) float64 { return float64(c.Gaps.Count) }, count),
			col(func(c rr.CPUNoise) float64 { return float64(c.Gaps.Longest) }, ns)))
	}
	if len(together) > 0 {
		lines = append(lines, "all CPUs at once: "+spread(together, func(x float64) string {
			return report.FormatNs(int64(x))
		}))
	}
	return lines
}

// turnarounds formats the servers' turnarounds, one line per tool that has them.
func turnarounds(tools []*tool) []string {
	var lines []string
	for _, t := range tools {
		if len(t.turns) == 0 {
			continue
		}
		col := func(get func(turnaround) float64) string {
			v := make([]float64, len(t.turns))
			for i, x := range t.turns {
				if v[i] = get(x); v[i] < 0 {
					v[i] = math.Inf(1) // beyond the tracer's histogram
				}
			}
			return spread(v, func(x float64) string {
				if math.IsInf(x, 1) {
					return "beyond " + report.FormatNs(int64(trace.TurnaroundSpan))
				}
				return report.FormatNs(int64(x))
			})
		}
		lines = append(lines, fmt.Sprintf("%s: p50 %s, p99 %s", t.name, col(func(x turnaround) float64 { return x.p50 }),
			col(func(x turnaround) float64 { return x.p99 })))
	}
	return lines
}

// tailLines keeps the last max lines written to it; safe for one writer and readers after it is done.
type tailLines struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *tailLines) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.max {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, l)
}

func (t *tailLines) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return "(nothing)"
	}
	return strings.Join(t.lines, "\n")
}

// start starts cmd in h's namespace; a command that enters the namespace itself (ip netns exec) starts here.
func start(h *testbed.Host, cmd *exec.Cmd) error {
	if filepath.Base(cmd.Path) == "ip" {
		return cmd.Start()
	}
	return h.Start(cmd)
}

// server is a running server process and what it has said.
type server struct {
	cmd    *exec.Cmd
	out    *tailLines    // the last lines of its output, for error messages
	exited chan struct{} // closed when it has exited and its output is read
}

// startServer starts t's server in namespace B and returns once it serves: when it has printed its ready line,
// or after its settle time. A server that exits first is an error.
func startServer(e env, t *tool) (*server, error) {
	argv := t.server(e)
	srv := &server{cmd: exec.Command(argv[0], argv[1:]...), out: &tailLines{max: 20}, exited: make(chan struct{})}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	srv.cmd.Stdout, srv.cmd.Stderr = w, w
	err = start(e.bed.B, srv.cmd)
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	ready := make(chan struct{})
	go func() {
		defer close(srv.exited)
		said := false
		lines := bufio.NewScanner(r)
		for lines.Scan() { // read to the end, so the server never blocks on a full pipe
			srv.out.add(lines.Text())
			if !said && t.ready != "" && strings.Contains(lines.Text(), t.ready) {
				said = true
				close(ready)
			}
		}
		r.Close()
		_ = srv.cmd.Wait()
	}()
	if t.ready == "" {
		select {
		case <-time.After(t.settle):
			return srv, nil
		case <-srv.exited:
			return srv, fmt.Errorf("server exited before serving:\n%s", srv.out)
		}
	}
	select {
	case <-ready:
		return srv, nil
	case <-srv.exited:
		return srv, fmt.Errorf("server exited before serving:\n%s", srv.out)
	case <-time.After(time.Minute):
		srv.stop()
		return srv, fmt.Errorf("server did not print %q within a minute:\n%s", t.ready, srv.out)
	}
}

// stop asks the server to stop (SIGINT: the original xsk_rr detaches its XDP program on it) and kills it if it
// does not within a second.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// stolen is the steal time of all CPUs over a run's accounting window: time the hypervisor kept a runnable vCPU
// off its physical CPU, which every process inside, spinners included, loses without seeing it. /proc/stat counts
// it in 10 ms ticks, so a run's figure is coarse: 0 or 20 ms says little alone, a median over rounds more.
func stolen(u *usage.Usage) time.Duration {
	var pct float64
	for _, c := range u.CPUs {
		pct += c.Steal
	}
	return time.Duration(pct / 100 * float64(u.Wall)).Round(100 * time.Microsecond)
}

func parseNapilab(out []byte) (sample, error) {
	var d rr.Document
	if err := json.Unmarshal(out, &d); err != nil || d.Client == nil {
		return sample{}, fmt.Errorf("napilab output is not a result document: %v\n%s", err, out)
	}
	l := d.Client.Latency
	if d.Client.Lost > 0 {
		return sample{}, fmt.Errorf("napilab lost %d of %d requests", d.Client.Lost, d.Client.Sent)
	}
	if d.Client.GCCycles > 0 {
		return sample{}, fmt.Errorf("%d GC cycles ran during the measurement", d.Client.GCCycles)
	}
	f := d.Client.LatencyFromSend
	s := sample{float64(l.P50), float64(l.P90), float64(l.P99), float64(l.P999), float64(l.Max), d.Client.ReplyRate,
		-1, -1, &sample{float64(f.P50), float64(f.P90), float64(f.P99), float64(f.P999), float64(f.Max),
			d.Client.ReplyRate, -1, -1, nil, nil, -1}, nil, -1}
	if g := d.Client.LoopGaps; g.Min > 0 {
		s.gaps = &g
	}
	if u := d.Client.Usage; u != nil && len(u.CPUs) > 0 {
		s.steal = stolen(u)
	}
	return s, nil
}

var (
	xskTotal = regexp.MustCompile(`total: sent: (\d+) answered: (\d+) lost: (\d+) rate: ([0-9.]+) p50: (\d+) ` +
		`p90: (\d+) p99: (\d+) p99.9: (\d+) max: (\d+)`)
	xskAvg  = regexp.MustCompile(`avg: (\d+) empty`)
	xskPN50 = regexp.MustCompile(`count: \d+ p50: (\d+)`)
	xskRate = regexp.MustCompile(`(?m)^rate: (\d+)`)
)

// parseXskRR reads an xsk_rr client's output: the drop-in's total line (true percentiles over the run) when it
// printed one, and every xsk_rr's interval reports ("p50", avg, rate), of which it takes the medians after the
// first interval.
func parseXskRR(out []byte) (sample, error) {
	s := sample{p50: -1, p90: -1, p99: -1, p999: -1, max: -1}
	ints := func(re *regexp.Regexp) []float64 {
		var v []float64
		for _, m := range re.FindAllSubmatch(out, -1) {
			x, _ := strconv.ParseFloat(string(m[1]), 64)
			v = append(v, x)
		}
		if len(v) > 1 {
			v = v[1:]
		}
		return v
	}
	median := func(v []float64) float64 {
		if len(v) == 0 {
			return -1
		}
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	s.avg, s.pn50, s.rate = median(ints(xskAvg)), median(ints(xskPN50)), median(ints(xskRate))
	if m := xskTotal.FindSubmatch(out); m != nil {
		f := make([]float64, len(m))
		for i := 1; i < len(m); i++ {
			f[i], _ = strconv.ParseFloat(string(m[i]), 64)
		}
		if f[3] > 0 {
			return s, fmt.Errorf("xsk_rr lost %.0f of %.0f requests", f[3], f[1])
		}
		s.rate, s.p50, s.p90, s.p99, s.p999, s.max = f[4], f[5], f[6], f[7], f[8], f[9]
	}
	if s.avg < 0 {
		return s, fmt.Errorf("no report in xsk_rr's output:\n%s", out)
	}
	return s, nil
}

var sockperfLine = regexp.MustCompile(`(percentile ([0-9.]+)|<MAX> observation)\s*=\s*([0-9.]+)`)

func parseSockperf(out []byte) (sample, error) {
	s := sample{pn50: -1, avg: -1}
	for _, m := range sockperfLine.FindAllSubmatch(out, -1) {
		us, _ := strconv.ParseFloat(string(m[3]), 64)
		ns := us * 1e3
		switch string(m[2]) {
		case "50.000":
			s.p50 = ns
		case "90.000":
			s.p90 = ns
		case "99.000":
			s.p99 = ns
		case "99.900":
			s.p999 = ns
		case "":
			s.max = ns
		}
	}
	if m := regexp.MustCompile(`\[Valid Duration\] RunTime=([0-9.]+) sec; SentMessages=\d+; ReceivedMessages=(\d+)`).FindSubmatch(out); m != nil {
		secs, _ := strconv.ParseFloat(string(m[1]), 64)
		n, _ := strconv.ParseFloat(string(m[2]), 64)
		s.rate = n / secs
	}
	if s.p50 == 0 {
		return s, fmt.Errorf("no percentiles in sockperf's output:\n%s", out)
	}
	return s, nil
}

func parseNetperf(out []byte) (sample, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	f := strings.Split(lines[len(lines)-1], ",")
	if len(f) != 5 {
		return sample{}, fmt.Errorf("unexpected netperf output:\n%s", out)
	}
	v := make([]float64, 5)
	for i := range f {
		x, err := strconv.ParseFloat(strings.TrimSpace(f[i]), 64)
		if err != nil {
			return sample{}, fmt.Errorf("netperf field %q: %v", f[i], err)
		}
		v[i] = x
	}
	// Throughput is transactions/s; latencies are whole microseconds; netperf has no p99.9.
	return sample{p50: v[1] * 1e3, p90: v[2] * 1e3, p99: v[3] * 1e3, p999: -1, max: v[4] * 1e3, rate: v[0], pn50: -1,
		avg: -1}, nil
}

// loadNow is the machine's load average, for the record of a run: other work on a 2-vCPU machine moves every
// tail.
func loadNow() string { return fmt.Sprintf("load average %.2f at the start", loadAvg()) }

func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// busyJiffies is the machine's busy CPU time so far, in clock ticks (all CPUs, idle and iowait excluded).
func busyJiffies() uint64 {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	var busy uint64
	for i, s := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy
}

// procJiffies is a process's user and system time so far, in clock ticks; 0 when it is gone.
func procJiffies(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseUint(f[11], 10, 64)
	k, _ := strconv.ParseUint(f[12], 10, 64)
	return u + k
}

// tick is the kernel's clock tick as /proc reports CPU time (USER_HZ, 100 on Linux).
const tick = 10 * time.Millisecond

// fetchNetperf returns a directory holding netperf and netserver. Debian ships netperf in non-free only; it is
// downloaded with a private apt configuration (the host's sources are not touched) and unpacked, not installed.
func fetchNetperf() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "napilab", "netperf")
	bin := filepath.Join(dir, "root", "usr", "bin")
	if _, err := os.Stat(filepath.Join(bin, "netperf")); err == nil {
		return bin, nil
	}
	for _, sub := range []string{"lists/partial", "archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return "", err
		}
	}
	src := "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: non-free\n" +
		"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
	if err := os.WriteFile(filepath.Join(dir, "non-free.sources"), []byte(src), 0o644); err != nil {
		return "", err
	}
	aptOpts := []string{"-o", "Dir::Etc::sourcelist=/dev/null", "-o", "Dir::Etc::sourceparts=" + dir,
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"), "-o", "Dir::Cache::archives=" + filepath.Join(dir, "archives"),
		"-o", "Dir::Etc::preferencesparts=/dev/null", "-o", "APT::Sandbox::User=root", "-qq"}
	for _, args := range [][]string{append(append([]string{}, aptOpts...), "update"), append(append([]string{}, aptOpts...), "download", "netperf")} {
		cmd := exec.Command("apt-get", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("fetch netperf from Debian non-free (apt-get %s): %v\n%s", args[len(args)-1], err, out)
		}
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "netperf_*.deb"))
	if len(debs) == 0 {
		return "", errors.New("apt-get download netperf produced no package")
	}
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], filepath.Join(dir, "root")).CombinedOutput(); err != nil {
		return "", fmt.Errorf("unpack netperf: %v\n%s", err, out)
	}
	return bin, nil
}
