package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
	"github.com/napilab/napilab/internal/xdp"
)

// The interop tests run xsk_rr as a process in one testbed host and napilab in the other. The xsk_rr process is
// this test binary itself, re-executed with asMainEnv set so that TestMain runs the command instead of the tests:
// the same code as the built command, and available wherever the tests run (the qemu lab has no Go toolchain).
// napilab is built once per test run, or taken from $NAPILAB_BIN.
const (
	asMainEnv   = "XSK_RR_TEST_AS_MAIN"
	napilabEnv  = "NAPILAB_BIN"
	interopPort = "54321"
	// waitLimit bounds every wait so that a broken setup fails instead of hanging; nothing is timed by it.
	waitLimit = 60 * time.Second
	// replyWait is how long the clients that must get every reply wait for late ones (xsk_rr --reply-wait,
	// napilab --timeout): a slow machine must not turn a late reply into a loss, and a run that gets every
	// reply ends at the last one anyway.
	replyWait = "30s"
)

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	if napilabBuild.dir != "" {
		os.RemoveAll(napilabBuild.dir)
	}
	os.Exit(code)
}

var napilabBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// napilab returns the path of a napilab binary: $NAPILAB_BIN, or one `go build` (cached by the build cache)
// per test run.
func napilab(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(napilabEnv); p != "" {
		return p
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		testenv.Skip(t, "no go toolchain to build napilab; set %s to a napilab binary", napilabEnv)
	}
	b := &napilabBuild
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "xsk_rr-interop-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "napilab")
		out, err := exec.Command(goTool, "build", "-o", b.path, "github.com/napilab/napilab/cmd/napilab").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build napilab: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// process is a command running in a testbed host, with its output collected line by line.
type process struct {
	name   string
	cmd    *exec.Cmd
	stdout chan string // every line, closed at EOF
	stderr chan string
	mu     sync.Mutex
	out    []string // stdout lines read so far
	errOut []string
	done   chan struct{}
	err    error // of Wait, once done is closed
}

// start runs argv in host h and stops it (SIGKILL) when the test ends, if it is still running.
func start(t *testing.T, h *testbed.Host, name string, env []string, argv ...string) *process {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	p := &process{name: name, cmd: cmd, stdout: make(chan string, 4096), stderr: make(chan string, 256), done: make(chan struct{})}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(cmd); err != nil {
		t.Fatalf("start %s in %s: %v", name, h.Namespace, err)
	}
	var readers sync.WaitGroup
	collect := func(r io.Reader, lines *[]string, ch chan string) {
		defer readers.Done()
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			*lines = append(*lines, sc.Text())
			p.mu.Unlock()
			select {
			case ch <- sc.Text():
			default: // nobody waits for lines this far ahead; they stay in the slice
			}
		}
	}
	readers.Add(2)
	go collect(outPipe, &p.out, p.stdout)
	go collect(errPipe, &p.errOut, p.stderr)
	go func() {
		readers.Wait() // Wait closes the pipes: read everything first
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitLine waits for a line with the given prefix on ch.
func (p *process) waitLine(t *testing.T, ch chan string, prefix string) string {
	t.Helper()
	limit := time.After(waitLimit)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("%s ended without printing %q:\n%s", p.name, prefix, p.output())
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-limit:
			t.Fatalf("%s printed no %q within %v:\n%s", p.name, prefix, waitLimit, p.output())
		}
	}
}

// wait waits for the process to end and returns its exit status.
func (p *process) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitLimit):
		t.Fatalf("%s still runs after %v:\n%s", p.name, waitLimit, p.output())
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return exit.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("%s: %v", p.name, p.err)
	}
	return 0
}

func (p *process) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
}

func (p *process) lines() (out, errOut []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string{}, p.out...), append([]string{}, p.errOut...)
}

func (p *process) output() string {
	out, errOut := p.lines()
	return "stdout:\n" + strings.Join(out, "\n") + "\nstderr:\n" + strings.Join(errOut, "\n")
}

// compat returns argv and environment to run xsk_rr with args.
func compat(args ...string) (env, argv []string) {
	return []string{asMainEnv + "=1"}, append([]string{os.Args[0]}, args...)
}

// roleArgs are the original's addressing options for an end of the testbed: this end's IPv4 and MAC as
// source, the other end's as destination.
func roleArgs(self, peer *testbed.Host) []string {
	return []string{"-4", "-i", self.Link, "-S", self.IPv4.Addr().String(), "-D", peer.IPv4.Addr().String(),
		"-m", self.MAC.String(), "-M", peer.MAC.String(), "-p", interopPort, "-B", "400"}
}

// report is one interval block of the client's output, as a script reading the original's output parses it.
type report struct {
	min, max, avg, empty int64
	counts, pn           [4]int64
	rate, outstanding    int64
	truth                map[string]int64
}

// parseClientOutput checks the client's stdout line by line against the original's format (each block: a blank
// line, min/max/avg/empty, four count/pN lines, rate, outstanding packets, a blank line) followed by napilab's
// true line, and returns the blocks and the total line.
func parseClientOutput(t *testing.T, lines []string) ([]report, map[string]int64) {
	t.Helper()
	var reps []report
	i := 0
	next := func(want string) []string {
		t.Helper()
		if i >= len(lines) || !strings.HasPrefix(lines[i], want) {
			t.Fatalf("line %d: want %q, got %q in\n%s", i, want, at(lines, i), strings.Join(lines, "\n"))
		}
		i++
		return strings.Fields(lines[i-1])
	}
	num := func(s string) int64 {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("%q in %q is not an integer", s, strings.Join(lines, "\n"))
		}
		return v
	}
	for i < len(lines) && lines[i] == "" {
		var r report
		i++
		f := next("min: ")
		if len(f) != 8 || f[2] != "max:" || f[4] != "avg:" || f[6] != "empty:" {
			t.Fatalf("min line %q", lines[i-1])
		}
		r.min, r.max, r.avg, r.empty = num(f[1]), num(f[3]), num(f[5]), num(f[7])
		for k, pct := range []string{"p5:", "p50:", "p95:", "p99:"} {
			f := next("count: ")
			if len(f) != 4 || f[2] != pct {
				t.Fatalf("count line %q, want %s", lines[i-1], pct)
			}
			r.counts[k], r.pn[k] = num(f[1]), num(f[3])
		}
		r.rate = num(next("rate: ")[1])
		r.outstanding = num(next("outstanding packets: ")[2])
		next("")
		r.truth = fields(t, strings.TrimPrefix(lines[i], "true:"))
		next("true: ")
		reps = append(reps, r)
	}
	total := fields(t, strings.TrimPrefix(at(lines, i), "total:"))
	next("total: ")
	if i != len(lines) {
		t.Fatalf("unexpected lines after the total: %q", lines[i:])
	}
	return reps, total
}

func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(end of output)"
}

// waitForEcho sends 400-byte probes from host a's kernel stack to the flow's port on b until one comes back
// echoed: then the echo server on b is polling its ring. It returns how many probes it sent.
func waitForEcho(t *testing.T, a, b *testbed.Host) int {
	t.Helper()
	conn := testbedtest.ListenUDP(t, a, netip.AddrPortFrom(a.IPv4.Addr(), 0))
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	// veth leaves a kernel sender's UDP checksum partial; the echo keeps checksums as they are, so send none.
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	port, _ := strconv.Atoi(interopPort)
	to := netip.AddrPortFrom(b.IPv4.Addr(), uint16(port))
	probe := bytes.Repeat([]byte{'a'}, 400)
	buf := make([]byte, 1024)
	for sent, limit := 1, time.Now().Add(waitLimit); ; sent++ {
		if _, err := conn.WriteToUDPAddrPort(probe, to); err != nil {
			t.Fatal(err)
		}
		// The read deadline only paces the retries: a probe that found the server not yet polling is gone.
		conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if n, _, err := conn.ReadFromUDPAddrPort(buf); err == nil && n == len(probe) {
			return sent
		}
		if time.Now().After(limit) {
			t.Fatalf("no echo from %s within %v", to, waitLimit)
		}
	}
}

// xdpDetached checks that nothing stays attached to host h's veth once the process that attached it is gone.
func xdpDetached(t *testing.T, h *testbed.Host) {
	t.Helper()
	err := h.Do(func() error {
		a, ok, err := xdp.AttachedProgram(h.Ifindex)
		if err == nil && ok {
			err = fmt.Errorf("program %d (%s) is still attached", a.ProgramID, a.Name)
		}
		return err
	})
	if err != nil {
		t.Fatalf("XDP on %s/%s after xsk_rr exited: %v", h.Namespace, h.Link, err)
	}
}

// TestPrivCompatClientNapilabServer: xsk_rr's client against `napilab rr server` (echo replies, xsk_rr
// payload). The client sends 1000 requests (2 report intervals of 1 s at one every 2 ms: fewer than the 4096
// receive frames and the 1024-request window, so no scheduling stall can lose or mispair one), and its own
// report lines, read as a script would read the original's, show every one answered; the server's JSON agrees.
func TestPrivCompatClientNapilabServer(t *testing.T) {
	testenv.RequirePriv(t)
	nap := napilab(t)
	testenv.Exclusive(t)
	bed := testbedtest.New(t, testbed.Topology{Neighbours: true})
	srv := start(t, bed.B, "napilab rr server", nil, nap, "rr", "server", "--dev", testbed.LinkB, "--port", interopPort,
		"--payload", "400", "--format", "xsk_rr", "--ring", "4096", "--json")
	probes := waitForEcho(t, bed.A, bed.B)

	env, argv := compat(append(roleArgs(bed.A, bed.B), "-P", "2000000", "-l", "1", "-v", "--intervals", "2",
		"--reply-wait", replyWait)...)
	cli := start(t, bed.A, "xsk_rr client", env, argv...)
	if code := cli.wait(t); code != 0 {
		t.Fatalf("xsk_rr client exited %d:\n%s", code, cli.output())
	}
	xdpDetached(t, bed.A)
	out, _ := cli.lines()
	reps, total := parseClientOutput(t, out)
	var replies int64
	for _, r := range reps {
		replies += r.rate // -l 1: rate is the interval's reply count
		// An interval with fewer than 20 replies has a p5 target of 0 samples, and xsk_rr prints a pN of 0 then
		// (in the slow qemu lab an interval may catch a single reply): only intervals with every target >= 1
		// can be checked.
		// Once round trips pass 2 ms (the lab under TCG), the original's overflow bucket holds them, the p5 walk
		// clips that bucket, and the shrunken total makes its "p50" the mean of fewer samples than its "p5":
		// the columns are ordered only while every sample is below the overflow bucket.
		ordered := r.max >= 2_000_000 || r.pn[0] <= r.pn[1]
		// pN values are bucket numbers times 100 ns, floored: "p5" may sit up to one bucket below the exact min.
		if r.counts[0] > 0 && !(r.min < r.pn[0]+100 && ordered && r.pn[3] <= r.max && r.truth["p50"] <= r.truth["p99"]) {
			t.Errorf("implausible report %+v", r)
		}
	}
	// The run ends after two intervals of time: a sender that the machine's load holds back sends fewer than the
	// schedule's 1000 (998 once, with a CPU hog running), and every one it sent must be answered, exactly once.
	sent := total["sent"]
	if len(reps) < 2 || sent < 1 || sent > 1000 || total["answered"] != sent || total["lost"] != 0 || replies != sent {
		t.Fatalf("%d reports with %d replies; total %v: want up to 1000 requests, every one answered\n%s", len(reps),
			replies, total, cli.output())
	}

	srv.signal(t, syscall.SIGINT)
	if code := srv.wait(t); code != 0 {
		t.Fatalf("napilab rr server exited %d:\n%s", code, srv.output())
	}
	sout, _ := srv.lines()
	var doc rr.Document
	if err := json.Unmarshal([]byte(strings.Join(sout, "\n")), &doc); err != nil || doc.Server == nil {
		t.Fatalf("server JSON: %v\n%s", err, srv.output())
	}
	// Probes that came before the server polled its ring were dropped by the kernel (no receive frame yet);
	// everything else, the requests sent and at least the probe that came back, was received and answered.
	st := doc.Server
	if st.Replied != st.Received || st.Received < uint64(sent)+1 || st.Received+st.XSK.RxDropped > uint64(sent)+uint64(probes) ||
		st.Malformed != 0 {
		t.Fatalf("server %+v: want the %d requests and 1 to %d probes received and answered", st, sent, probes)
	}
}

// TestPrivNapilabClientCompatServer: `napilab rr client --format xsk_rr` against xsk_rr's server, which replies
// with its own pre-built frame to -D/-M. The client's JSON shows all 1000 requests answered and verified; the
// server's total line shows each received once and answered.
func TestPrivNapilabClientCompatServer(t *testing.T) {
	testenv.RequirePriv(t)
	nap := napilab(t)
	testenv.Exclusive(t)
	bed := testbedtest.New(t, testbed.Topology{Neighbours: true})
	env, argv := compat(append(roleArgs(bed.B, bed.A), "-h", "-v")...)
	srv := start(t, bed.B, "xsk_rr server", env, argv...)
	srv.waitLine(t, srv.stderr, "xsk_rr: serving "+testbed.LinkB)

	cli := start(t, bed.A, "napilab rr client", nil, nap, "rr", "client", "--dev", testbed.LinkA, "--peer",
		bed.B.IPv4.Addr().String(), "--port", interopPort, "--payload", "400", "--format", "xsk_rr", "--verify",
		"--count", "1000", "--period", "200us", "--warmup", "0", "--interval", "0", "--ring", "4096",
		"--colocated", "1", "--timeout", replyWait, "--json")
	if code := cli.wait(t); code != 0 {
		t.Fatalf("napilab rr client exited %d:\n%s", code, cli.output())
	}
	cout, _ := cli.lines()
	var doc rr.Document
	if err := json.Unmarshal([]byte(strings.Join(cout, "\n")), &doc); err != nil || doc.Client == nil {
		t.Fatalf("client JSON: %v\n%s", err, cli.output())
	}
	c := doc.Client
	if c.Sent != 1000 || c.Answered != 1000 || c.Lost != 0 || c.Malformed != 0 || c.Stray != 0 || c.Measured != 1000 {
		t.Fatalf("client sent %d answered %d lost %d malformed %d stray %d measured %d; want 1000 answered and verified",
			c.Sent, c.Answered, c.Lost, c.Malformed, c.Stray, c.Measured)
	}

	srv.signal(t, syscall.SIGINT)
	if code := srv.wait(t); code != 0 {
		t.Fatalf("xsk_rr server exited %d:\n%s", code, srv.output())
	}
	xdpDetached(t, bed.B)
	sout, _ := srv.lines()
	if len(sout) < 2 || !strings.HasPrefix(sout[0], "max_desc: ") {
		t.Fatalf("server output %q: want max_desc lines first", sout)
	}
	total := fields(t, strings.TrimPrefix(sout[len(sout)-1], "total:"))
	if total["received"] != 1000 || total["replied"] != 1000 || total["bad-payload"] != 0 || total["malformed"] != 0 {
		t.Fatalf("server total %v; want the 1000 requests received and answered", total)
	}
}

// TestPrivCompatSignalStops: SIGINT stops a running xsk_rr client gracefully: it awaits the replies in flight,
// prints the final report and a total line with nothing lost, detaches, and exits 0 (the original exits 1).
func TestPrivCompatSignalStops(t *testing.T) {
	testenv.RequirePriv(t)
	testenv.Exclusive(t)
	bed := testbedtest.New(t, testbed.Topology{Neighbours: true})
	env, argv := compat(append(roleArgs(bed.B, bed.A), "-h", "-n")...)
	srv := start(t, bed.B, "xsk_rr server", env, argv...)
	srv.waitLine(t, srv.stderr, "xsk_rr: serving")
	env, argv = compat(append(roleArgs(bed.A, bed.B), "-P", "2ms", "-l", "1", "-n", "--reply-wait", replyWait)...)
	cli := start(t, bed.A, "xsk_rr client", env, argv...)
	cli.waitLine(t, cli.stdout, "true: ")
	cli.signal(t, syscall.SIGINT)
	if code := cli.wait(t); code != 0 {
		t.Fatalf("xsk_rr client exited %d after SIGINT:\n%s", code, cli.output())
	}
	xdpDetached(t, bed.A)
	out, _ := cli.lines()
	reps, total := parseClientOutput(t, out)
	var replies int64
	for _, r := range reps[:len(reps)-1] {
		replies += r.rate
	}
	if total["sent"] == 0 || total["answered"] != total["sent"] || total["lost"] != 0 || replies > total["answered"] {
		t.Fatalf("after SIGINT: total %v, %d reports: want every request answered\n%s", total, len(reps), cli.output())
	}
	srv.signal(t, syscall.SIGTERM)
	if code := srv.wait(t); code != 0 {
		t.Fatalf("xsk_rr server exited %d after SIGTERM:\n%s", code, srv.output())
	}
	sout, _ := srv.lines()
	if st := fields(t, strings.TrimPrefix(at(sout, len(sout)-1), "total:")); st["received"] != total["sent"] || st["replied"] != total["sent"] {
		t.Fatalf("server total %v; the client sent %d", st, total["sent"])
	}
}

// TestPrivUnreachablePeer: with nobody at -D/-M, an open-loop client ends with the original's "outstanding
// array full" once 1024 requests are unanswered, and a closed-loop client ends after 1 s without a reply (the
// original waits forever); both exit 1 with one sentence and leave nothing attached.
func TestPrivUnreachablePeer(t *testing.T) {
	testenv.RequirePriv(t)
	testenv.Exclusive(t)
	bed := testbedtest.New(t, testbed.Topology{})
	nobody := []string{"-4", "-i", testbed.LinkA, "-S", bed.A.IPv4.Addr().String(), "-D", "198.18.0.99",
		"-m", bed.A.MAC.String(), "-M", "02:00:00:00:00:99", "-p", interopPort}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"open loop", []string{"-P", "100us"}, "xsk_rr: outstanding array full: 1024 requests unanswered"},
		{"closed loop", []string{"-o", "0"}, "xsk_rr: no reply for 1 s and the closed loop waits for one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, argv := compat(append(nobody, tc.args...)...)
			p := start(t, bed.A, "xsk_rr client", env, argv...)
			code := p.wait(t)
			out, errOut := p.lines()
			if code != 1 || len(errOut) != 1 || !strings.HasPrefix(errOut[0], tc.want) || len(out) != 0 && !strings.HasPrefix(out[len(out)-1], "total:") {
				t.Fatalf("status %d; want 1 and one line %q:\n%s", code, tc.want, p.output())
			}
			xdpDetached(t, bed.A)
		})
	}
}
