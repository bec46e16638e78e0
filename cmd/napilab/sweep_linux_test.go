package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/napi/napitest"
	"github.com/napilab/napilab/internal/remote/remotetest"
	"github.com/napilab/napilab/internal/sweep"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
)

// generous bounds every wait for something that must happen; nothing is timed by it.
const generous = 5 * time.Minute

// deviceState is napitest.DeviceState.
func deviceState(t *testing.T, ns, dev string) string { return napitest.DeviceState(t, ns, dev) }

// waitState waits until the device's state is want (or, with differ, is not want).
func waitState(t *testing.T, ns, dev, want string, differ bool, what string) {
	t.Helper()
	deadline := time.Now().Add(generous)
	for {
		got := deviceState(t, ns, dev)
		if (got == want) != differ {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the device did not get there within %v\nwant%s %s\ngot       %s", what, generous,
				map[bool]string{true: " not", false: ""}[differ], want, got)
		}
		time.Sleep(20 * time.Millisecond) // polling an outcome, not timing it
	}
}

// controller is a napilab sweep process.
type controller struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s + "\n")
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startSweep starts napilab sweep between the testbed's hosts, the server end an agent process for netns:B.
func startSweep(t *testing.T, bed *testbed.Testbed, extra ...string) *controller {
	t.Helper()
	args := append([]string{"sweep", "--server", "netns:" + bed.B.NetNSPath(), "--server-dev", bed.B.Link,
		"--client-netns", bed.A.NetNSPath(), "--client-dev", bed.A.Link, "--peer", bed.B.IPv4.Addr().String()},
		extra...)
	cmd := exec.Command(testenv.Napilab(t), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &controller{cmd: cmd, out: &lockedBuffer{}, done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.out.add(sc.Text())
		}
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		<-c.done
		c.done <- nil
		killAgents(cmd.Process.Pid)
	})
	return c
}

// wait returns the controller's exit error.
func (c *controller) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-time.After(generous):
		t.Fatalf("napilab sweep did not end:\n%s", c.out)
		return nil
	}
}

// agentsOf lists the agent processes napilab pid started (its children running `agent --stdio`).
func agentsOf(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		cmdline, cerr := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || cerr != nil || !strings.Contains(string(cmdline), "agent\x00--stdio") {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// killAgents removes agents a test left behind (their controller killed on purpose): they would restore on
// their own, but a test ends clean.
func killAgents(pid int) {
	for _, a := range agentsOf(pid) {
		syscall.Kill(a, syscall.SIGKILL)
	}
}

func sweepTestbed(t *testing.T) (*testbed.Testbed, string) {
	t.Helper()
	testenv.RequirePriv(t)
	testenv.Exclusive(t)
	// GRO gives the veth a NAPI of its own, which lives whether or not an XDP program is attached: the mode's
	// settings on it outlive the sweep's AF_XDP link, so a missing restore shows.
	bed := testbedtest.New(t, testbed.Topology{NAPI: true})
	return bed, deviceState(t, bed.B.NetNSPath(), bed.B.Link)
}

// TestPrivSweepCommand: napilab sweep with an agent for netns:B measures every cell, writes one versioned
// result with both ends' headers, and leaves the server's device as it was.
func TestPrivSweepCommand(t *testing.T) {
	bed, before := sweepTestbed(t)
	out := filepath.Join(t.TempDir(), "out.json")
	// Fewer requests per cell than the receive rings hold (2k/s for 350 ms): a server that the machine's load
	// keeps off its CPU for a while answers late, within the generous timeout, but loses nothing.
	c := startSweep(t, bed, "--modes", "interrupts,threaded", "--load", "2k", "--duration", "300ms",
		"--warmup", "50ms", "--timeout", "30s", "--json", out)
	if err := c.wait(t); err != nil {
		t.Fatalf("napilab sweep: %v\n%s", err, c.out)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res sweep.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.Schema != sweep.Schema || len(res.Cells) != 2 || res.Header.Server.Device.Name != bed.B.Link ||
		res.Header.Client.Device.Name != bed.A.Link || len(res.Header.Command) == 0 {
		t.Fatalf("result: schema %q, %d cells, header %+v", res.Schema, len(res.Cells), res.Header)
	}
	for _, cell := range res.Cells {
		if cell.Client == nil || cell.Client.Answered != cell.Client.Sent || cell.Client.Sent == 0 {
			t.Fatalf("cell %s: %+v", cell.Mode, cell.Client)
		}
	}
	if !strings.Contains(c.out.String(), "[2/2] threaded") {
		t.Errorf("no progress line for the last cell:\n%s", c.out)
	}
	waitState(t, bed.B.NetNSPath(), bed.B.Link, before, false, "after the sweep")
}

// longCells keeps a sweep in its first cell for long: the tests interrupt it there.
var longCells = []string{"--modes", "threaded", "--load", "12.5k", "--duration", "10m", "--warmup", "0s"}

// TestPrivSweepControllerKilled: SIGKILL of the controller in the middle of a cell closes the agent's input;
// the agent restores the server's device.
func TestPrivSweepControllerKilled(t *testing.T) {
	bed, before := sweepTestbed(t)
	c := startSweep(t, bed, longCells...)
	waitState(t, bed.B.NetNSPath(), bed.B.Link, before, true, "threaded applied")
	c.cmd.Process.Kill()
	waitState(t, bed.B.NetNSPath(), bed.B.Link, before, false, "after SIGKILL of the controller")
}

// TestPrivSweepControllerStopped: a stopped controller (as good as a silent partition: the pipe stays open)
// stops renewing the lease, and the agent restores when it runs out.
func TestPrivSweepControllerStopped(t *testing.T) {
	bed, before := sweepTestbed(t)
	c := startSweep(t, bed, append(longCells, "--duration", "1s", "--timeout", "1s", "--lease", "5s")...)
	waitState(t, bed.B.NetNSPath(), bed.B.Link, before, true, "threaded applied")
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, bed.B.NetNSPath(), bed.B.Link, before, false, "after the lease of a stopped controller")
}

// TestPrivSweepAgentKilled: SIGKILL of the agent itself leaves the watchdog, which restores once the lease is
// over.
func TestPrivSweepAgentKilled(t *testing.T) {
	bed, before := sweepTestbed(t)
	c := startSweep(t, bed, append(longCells, "--duration", "1s", "--timeout", "1s", "--lease", "5s")...)
	waitState(t, bed.B.NetNSPath(), bed.B.Link, before, true, "threaded applied")
	// Stop the controller first, so it cannot end the session (and restore through the agent) when its agent
	// dies: only the watchdog is left to restore.
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	agents := agentsOf(c.cmd.Process.Pid)
	if len(agents) != 1 {
		t.Fatalf("agents of the controller: %v", agents)
	}
	if err := syscall.Kill(agents[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitState(t, bed.B.NetNSPath(), bed.B.Link, before, false, "after SIGKILL of the agent")
}

// TestPrivSweepInterrupted: SIGINT ends a sweep in order: the mode is restored through the agent, the cells
// measured so far are written, and the exit status is 130 with a sentence saying so.
func TestPrivSweepInterrupted(t *testing.T) {
	bed, before := sweepTestbed(t)
	out := filepath.Join(t.TempDir(), "out.json")
	c := startSweep(t, bed, "--modes", "interrupts,threaded", "--load", "12.5k", "--duration", "300ms",
		"--warmup", "0s", "--reps", "50", "--json", out)
	deadline := time.Now().Add(generous)
	for !strings.Contains(c.out.String(), "[2/100]") {
		if time.Now().After(deadline) {
			t.Fatalf("no cell finished:\n%s", c.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	err := c.wait(t)
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(c.out.String(), "interrupted; everything napilab changed is restored") {
		t.Fatalf("exit %v, output:\n%s", err, c.out)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the cells measured before the interruption were not written: %v", err)
	}
	var res sweep.Result
	if err := json.Unmarshal(raw, &res); err != nil || len(res.Cells) < 2 || res.Incomplete == "" {
		t.Fatalf("result: %d cells, incomplete %q, %v", len(res.Cells), res.Incomplete, err)
	}
	waitState(t, bed.B.NetNSPath(), bed.B.Link, before, false, "after SIGINT")
}

func errorsAs(err error, target **exec.ExitError) bool {
	ee, ok := err.(*exec.ExitError)
	if ok {
		*target = ee
	}
	return ok
}

// TestPrivSweepBadInput: wrong devices, namespaces, peers and values stop with one sentence before anything
// is touched.
func TestPrivSweepBadInput(t *testing.T) {
	bed, before := sweepTestbed(t)
	peer := bed.B.IPv4.Addr().String()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--server-dev", "nosuchdev"}, `--server-dev "nosuchdev" does not exist in network namespace`},
		{[]string{"--peer", "198.18.0.77"}, "--peer 198.18.0.77 is not an address of"},
		{[]string{"--server-cpu", "64"}, "--server-cpu 64 is not a CPU napilab can run on at"},
		{[]string{"--payload", "5"}, "--payload of 5 bytes cannot hold the napilab header: use at least 40 bytes"},
		{[]string{"--load", "fast"}, `--load: load "fast"`},
		{[]string{"--json", "/nonexistent/dir/out.json"}, "--json /nonexistent/dir/out.json cannot be written"},
		{[]string{"--server", "nfs://x"}, `--server: "nfs://x": napilab reaches other hosts only over ssh`},
		{[]string{"--lease", "1s"}, "does not outlast two cells"},
	} {
		args := append([]string{"sweep", "--server", "netns:" + bed.B.NetNSPath(), "--server-dev", bed.B.Link,
			"--client-netns", bed.A.NetNSPath(), "--client-dev", bed.A.Link, "--peer", peer, "--modes", "threaded"},
			tc.args...)
		out, err := exec.Command(testenv.Napilab(t), args...).CombinedOutput()
		var ee *exec.ExitError
		if !errorsAs(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%q: exit %v, output:\n%s\nwant %q", tc.args, err, out, tc.want)
		}
		if strings.Contains(string(out), "panic") {
			t.Errorf("%q panicked:\n%s", tc.args, out)
		}
	}
	if after := deviceState(t, bed.B.NetNSPath(), bed.B.Link); after != before {
		t.Fatalf("bad input changed the device:\nbefore %s\nafter  %s", before, after)
	}
}

func TestMain(m *testing.M) {
	code := testenv.RunMain(m)
	remotetest.Cleanup()
	os.Exit(code)
}

// sshSweep is napilab sweep to the testbed's B host over a real sshd on 127.0.0.1: the two-host use on one
// machine, the agent copied into a cache of the test's own.
func sshSweep(t *testing.T, bed *testbed.Testbed, extra ...string) *controller {
	t.Helper()
	s := remotetest.Start(t)
	args := []string{"--server", fmt.Sprintf("ssh://root@127.0.0.1:%d", s.Port), "--server-netns", bed.B.NetNSPath(),
		"--ssh", remotetest.SSHCommand, "--agent-cache", filepath.Join(t.TempDir(), "agents")}
	for _, o := range s.ClientOptions() {
		args = append(args, "--ssh-option", o)
	}
	return startSweep(t, bed, append(args, extra...)...)
}

// TestPrivSweepOverSSH is the "done when": a sweep with its server end reached over ssh writes one
// result, and the server's device is as it was.
func TestPrivSweepOverSSH(t *testing.T) {
	bed, before := sweepTestbed(t)
	out := filepath.Join(t.TempDir(), "out.json")
	// 1.3k requests per cell, fewer than the receive rings hold: see TestPrivSweepCommand.
	c := sshSweep(t, bed, "--modes", "interrupts,threaded", "--load", "1k", "--duration", "1s", "--timeout",
		"30s", "--json", out)
	if err := c.wait(t); err != nil {
		t.Fatalf("napilab sweep over ssh: %v\n%s", err, c.out)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res sweep.Result
	if err := json.Unmarshal(raw, &res); err != nil || len(res.Cells) != 2 || res.Header.Server.SHA256 == "" {
		t.Fatalf("result: %d cells, server %+v, %v", len(res.Cells), res.Header.Server, err)
	}
	for _, cell := range res.Cells {
		if cell.Client == nil || cell.Client.Answered != cell.Client.Sent || cell.Client.Sent == 0 {
			t.Fatalf("cell %s: %+v", cell.Mode, cell.Client)
		}
	}
	waitState(t, bed.B.NetNSPath(), bed.B.Link, before, false, "after the sweep over ssh")
}

// TestPrivSweepOverSSHKilled: SIGKILL of napilab sweep mid-cell ends its ssh, the remote agent sees its input
// end and restores the server's device.
func TestPrivSweepOverSSHKilled(t *testing.T) {
	bed, before := sweepTestbed(t)
	c := sshSweep(t, bed, longCells...)
	waitState(t, bed.B.NetNSPath(), bed.B.Link, before, true, "threaded applied over ssh")
	c.cmd.Process.Kill()
	waitState(t, bed.B.NetNSPath(), bed.B.Link, before, false, "after SIGKILL of napilab sweep")
}
