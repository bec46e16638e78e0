// Command benchrr puts napilab rr beside the request/response tools people use today, on one veth testbed:
// sockperf ping-pong and netperf UDP_RR over UDP sockets, napilab rr over AF_XDP, each pair pinned to the same two
// CPUs (server CPU 0, client CPU 1) and run in interleaved rounds, so slow drift of the machine shows as spread
// rather than as a difference between tools. It prints one table. Run it as root with `make bench-rr`.
//
// The tools measure different loops, and the table says which: sockperf ping-pong paces a closed loop at a rate;
// netperf UDP_RR (Debian's build has no rate control) runs one request at a time as fast as it can; napilab runs
// both an open loop at the rate (latency from the scheduled send) and a closed loop of one.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/napilab/napilab/internal/report"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/testbed"
)

// sample is one run's figures in ns.
type sample struct{ p50, p90, p99, p999, max, rate float64 }

type tool struct {
	name, transport, loop string
	server                func(bin string) []string
	ready                 string // a line the server prints when it listens ("" for none)
	client                func(bin string, o opts) []string
	parse                 func(out []byte) (sample, error)
	runs                  []sample
}

type opts struct {
	rate     int
	duration time.Duration
	payload  int
	peer     string
}

func main() {
	var o opts
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	flag.IntVar(&o.rate, "rate", 12500, "requests per second for the paced tools")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time per run")
	flag.IntVar(&o.payload, "payload", 400, "UDP payload bytes")
	flag.Parse()
	if err := run(*rounds, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-rr:", err)
		os.Exit(1)
	}
}

func run(rounds int, o opts) error {
	ctx := context.Background()
	netperfDir, err := fetchNetperf()
	if err != nil {
		return err
	}
	napilab := filepath.Join(os.TempDir(), fmt.Sprintf("napilab-bench-%d", os.Getpid()))
	if out, err := exec.Command("go", "build", "-o", napilab, "./cmd/napilab").CombinedOutput(); err != nil {
		return fmt.Errorf("build napilab: %v\n%s", err, out)
	}
	defer os.Remove(napilab)
	for _, t := range []string{"sockperf", "taskset"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s is missing: apt-get install sockperf util-linux (make deps does)", t)
		}
	}

	bed, err := testbed.Up(ctx, testbed.Topology{Prefix: "napilab-bench"})
	if err != nil {
		return err
	}
	defer bed.Down()
	o.peer = bed.B.IPv4.Addr().String()
	tools := toolset(napilab, netperfDir)
	fmt.Printf("bench-rr: %d rounds of %s per tool, %d B payloads, paced tools at %d req/s; server on CPU 0, client on CPU 1\n",
		rounds, o.duration, o.payload, o.rate)
	for r := 1; r <= rounds; r++ {
		for _, t := range tools {
			s, err := runPair(bed, t, o)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r, t.name, err)
			}
			t.runs = append(t.runs, s)
			fmt.Printf("  round %d  %-24s p50 %-9s p99 %-9s %.0f req/s\n", r, t.name,
				report.FormatNs(int64(s.p50)), report.FormatNs(int64(s.p99)), s.rate)
		}
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tool\ttransport\tloop\treq/s\tp50\tp90\tp99\tp99.9\tmax")
	for _, t := range tools {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.name, t.transport, t.loop,
			med(t.runs, func(s sample) float64 { return s.rate }, false),
			med(t.runs, func(s sample) float64 { return s.p50 }, true), med(t.runs, func(s sample) float64 { return s.p90 }, true),
			med(t.runs, func(s sample) float64 { return s.p99 }, true), med(t.runs, func(s sample) float64 { return s.p999 }, true),
			med(t.runs, func(s sample) float64 { return s.max }, true))
	}
	tw.Flush()
	fmt.Println("\nmedian of the rounds (min–max); latencies are full round trips. sockperf and netperf time from the actual send;")
	fmt.Println("napilab open loop from the scheduled send (a late sender counts). netperf reports whole microseconds.")
	return nil
}

// med formats the median of a figure over the runs, with the spread.
func med(runs []sample, get func(sample) float64, ns bool) string {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = get(r)
	}
	slices.Sort(v)
	if v[0] < 0 {
		return "–" // the tool does not report this figure
	}
	f := func(x float64) string {
		if ns {
			return report.FormatNs(int64(x))
		}
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	m := v[len(v)/2]
	if len(v) > 1 && v[0] != v[len(v)-1] {
		return fmt.Sprintf("%s (%s–%s)", f(m), f(v[0]), f(v[len(v)-1]))
	}
	return f(m)
}

func toolset(napilab, netperfDir string) []*tool {
	napilabServer := func(string) []string {
		return []string{napilab, "rr", "server", "--dev", testbed.LinkB, "--cpu", "0", "--poll", "none"}
	}
	napilabClient := func(extra ...string) func(string, opts) []string {
		return func(_ string, o opts) []string {
			return append([]string{napilab, "rr", "client", "--dev", testbed.LinkA, "--peer", o.peer, "--cpu", "1",
				"--colocated", "1", "--poll", "none", "--payload", strconv.Itoa(o.payload), "--duration", o.duration.String(),
				"--warmup", "500ms", "--json"}, extra...)
		}
	}
	return []*tool{
		{name: "napilab rr (open loop)", transport: "AF_XDP", loop: "open, paced",
			server: napilabServer, ready: "napilab rr server on",
			client: func(b string, o opts) []string {
				return napilabClient("--rate", strconv.Itoa(o.rate))(b, o)
			}, parse: parseNapilab},
		{name: "sockperf ping-pong", transport: "UDP socket", loop: "closed, paced",
			server: func(string) []string {
				return []string{"taskset", "-c", "0", "sockperf", "server", "-i", "0.0.0.0", "-p", "11111"}
			},
			ready: "sockperf: [SERVER] listen on",
			client: func(_ string, o opts) []string {
				return []string{"taskset", "-c", "1", "sockperf", "ping-pong", "-i", o.peer, "-p", "11111", "--full-rtt",
					"-m", strconv.Itoa(o.payload), "--mps", strconv.Itoa(o.rate),
					"-t", strconv.Itoa(int(o.duration.Seconds()))}
			}, parse: parseSockperf},
		{name: "napilab rr (1 in flight)", transport: "AF_XDP", loop: "closed, 1",
			server: napilabServer, ready: "napilab rr server on",
			client: napilabClient("--outstanding", "1"), parse: parseNapilab},
		{name: "netperf UDP_RR", transport: "UDP socket", loop: "closed, 1",
			server: func(string) []string {
				return []string{"taskset", "-c", "0", filepath.Join(netperfDir, "netserver"), "-D", "-p", "12865"}
			},
			ready: "", // netserver -D prints nothing; the client retries the control connection
			client: func(_ string, o opts) []string {
				return []string{"taskset", "-c", "1", filepath.Join(netperfDir, "netperf"), "-H", o.peer, "-p", "12865",
					"-t", "UDP_RR", "-l", strconv.Itoa(int(o.duration.Seconds())), "--", "-r",
					fmt.Sprintf("%d,%d", o.payload, o.payload),
					"-o", "THROUGHPUT,P50_LATENCY,P90_LATENCY,P99_LATENCY,MAX_LATENCY"}
			}, parse: parseNetperf},
	}
}

// runPair starts the server in namespace B, waits until it listens, runs the client in namespace A and stops the
// server. Nothing else is started while the client measures.
func runPair(bed *testbed.Testbed, t *tool, o opts) (sample, error) {
	srv := exec.Command(t.server("")[0], t.server("")[1:]...)
	out, err := srv.StdoutPipe()
	if err != nil {
		return sample{}, err
	}
	srv.Stderr = srv.Stdout
	if err := bed.B.Start(srv); err != nil {
		return sample{}, err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	lines := bufio.NewScanner(out)
	if t.ready != "" {
		found := false
		for lines.Scan() {
			if strings.Contains(lines.Text(), t.ready) {
				found = true
				break
			}
		}
		if !found {
			return sample{}, fmt.Errorf("server exited before listening")
		}
	}
	go func() {
		for lines.Scan() { // keep draining so the server never blocks on a full pipe
		}
	}()
	argv := t.client("", o)
	var res []byte
	for attempt := 0; ; attempt++ {
		cli := exec.Command(argv[0], argv[1:]...)
		var buf bytes.Buffer
		cli.Stdout, cli.Stderr = &buf, &buf
		if err := bed.A.Start(cli); err != nil {
			return sample{}, err
		}
		err := cli.Wait()
		res = buf.Bytes()
		if err == nil {
			break
		}
		if attempt < 20 && t.ready == "" && bytes.Contains(res, []byte("establish control")) {
			time.Sleep(100 * time.Millisecond) // netserver is not listening yet
			continue
		}
		return sample{}, fmt.Errorf("client: %v\n%s", err, res)
	}
	return t.parse(res)
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
	return sample{float64(l.P50), float64(l.P90), float64(l.P99), float64(l.P999), float64(l.Max), d.Client.ReplyRate}, nil
}

var sockperfLine = regexp.MustCompile(`(percentile ([0-9.]+)|<MAX> observation)\s*=\s*([0-9.]+)`)

func parseSockperf(out []byte) (sample, error) {
	var s sample
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
	return sample{p50: v[1] * 1e3, p90: v[2] * 1e3, p99: v[3] * 1e3, p999: -1, max: v[4] * 1e3, rate: v[0]}, nil
}

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
