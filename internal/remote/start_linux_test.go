package remote

import (
	"context"
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/napilab/napilab/internal/agent"
	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/remote/remotetest"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
)

// startAgent starts an agent that t stops when it ends, if the test did not: its input closed, so that it
// restores, and killed only if it does not end by itself.
func startAgent(ctx context.Context, t *testing.T, tg Target, o Options) (*Agent, error) {
	t.Helper()
	a, err := Start(ctx, tg, o)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		a.Close()
		ended := make(chan struct{})
		go func() {
			a.Wait()
			close(ended)
		}()
		select {
		case <-ended:
		case <-time.After(generous):
			a.Kill()
			<-ended
		}
	})
	return a, nil
}

// session dials an agent and says hello as a client end on lo (a client end locks nothing and needs no
// device of its own), the least a session does.
func session(t *testing.T, a *Agent, version string) (*agent.Conn, agent.HelloResult) {
	t.Helper()
	c, err := agent.Dial(t.Context(), a, agent.DialOptions{Version: version, Where: a.Where()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Hello(t.Context(), agent.HelloArgs{Version: version, Role: agent.RoleClient, Controller: "test",
		Dev: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	return c, h
}

// bye ends a session in order and reaps the agent: it must exit with status 0.
func bye(t *testing.T, a *Agent, c *agent.Conn) {
	t.Helper()
	if _, err := c.Bye(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := a.Wait()
	if err != nil || !st.Success() {
		t.Fatalf("the agent ended with %v, %v", st, err)
	}
}

// TestLocalAgent: a local end runs napilab as `agent --stdio`, and a session over its pipes works end to end.
func TestLocalAgent(t *testing.T) {
	checkLeaks(t)
	b := napilab(t)
	var stderr remotetest.LogBuffer
	showOnFailure(t, "the agent's error output", &stderr)
	a, err := startAgent(t.Context(), t, Target{Kind: Local}, Options{Executable: b.napilab, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{b.napilab, "agent", "--stdio"}, a.cmd.Args); d != "" {
		t.Fatalf("command line (-want +got):\n%s", d)
	}
	if pgid, err := syscall.Getpgid(a.Pid()); err != nil || pgid != a.Pid() {
		t.Fatalf("the agent's process group is %d (%v), want its own (%d)", pgid, err, a.Pid())
	}
	c, h := session(t, a, b.version)
	if h.Agent.SHA256 != sha(t, b.napilab) || h.End.Device.Name != "lo" {
		t.Fatalf("hello = %+v", h)
	}
	bye(t, a, c)
}

// TestLocalAgentKill: Kill ends the agent at once, Wait says it was killed, and a second Wait and a Kill after
// it change nothing.
func TestLocalAgentKill(t *testing.T) {
	checkLeaks(t)
	b := napilab(t)
	a, err := startAgent(t.Context(), t, Target{Kind: NetNS, NetNS: "unused"}, Options{Executable: b.napilab,
		Stderr: &remotetest.LogBuffer{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Dial(t.Context(), a, agent.DialOptions{Version: b.version, Where: a.Where()}); err != nil {
		t.Fatal(err)
	}
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		st, err := a.Wait()
		if err != nil || st.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("Wait = %v, %v; want killed by SIGKILL", st, err)
		}
	}
	if err := a.Kill(); err != nil {
		t.Fatalf("Kill after Wait = %v", err)
	}
	a.Close()
}

// TestLocalAgentMissing: an agent path that does not exist fails at Start, saying which.
func TestLocalAgentMissing(t *testing.T) {
	checkLeaks(t)
	_, err := startAgent(t.Context(), t, Target{Kind: Local}, Options{AgentPath: "/nonexistent/napilab"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/napilab") {
		t.Fatalf("Start = %v", err)
	}
}

func sha(t *testing.T, path string) string {
	t.Helper()
	_, sum, err := Options{Executable: path}.self()
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestSSHCopiesOnceThenReuses: over a real sshd, the first start copies napilab into the cache (content
// addressed, private, and what then runs: the agent's own sha256 says so); the second finds it and copies
// nothing.
func TestSSHCopiesOnceThenReuses(t *testing.T) {
	b, _, o, tg := sshTest(t)
	sum := sha(t, b.napilab)
	want := filepath.Join(o.CacheRoot, sum, "napilab")
	t.Logf("check: %q", sshArgs(o.sshCommand(), o.SSHOptions, tg, preflightScript(want)))
	t.Logf("copy: %q", sshArgs(o.sshCommand(), o.SSHOptions, tg, uploadScript(filepath.Dir(want), sum)))

	var took [2]time.Duration
	for run := range 2 {
		start := time.Now()
		a, err := startAgent(t.Context(), t, tg, o)
		if err != nil {
			t.Fatal(err)
		}
		c, h := session(t, a, b.version)
		took[run] = time.Since(start)
		t.Logf("run %d: %q", run+1, a.cmd.Args)
		t.Logf("run %d: check and copy %v (%d bytes), then agent start, dial and hello %v", run+1,
			a.Deployment.Took, a.Deployment.Bytes, took[run]-a.Deployment.Took)
		d := a.Deployment
		if d.Path != want || d.SHA256 != sum || d.Uploaded != (run == 0) {
			t.Fatalf("run %d: deployment %+v, want %s uploaded=%v", run+1, d, want, run == 0)
		}
		if h.Agent.SHA256 != sum {
			t.Fatalf("run %d: the agent runs an executable with sha256 %s, not the copy %s", run+1, h.Agent.SHA256, sum)
		}
		bye(t, a, c)
	}
	t.Logf("agent start to hello: %v copying, %v cached", took[0], took[1])
	st, err := os.Stat(want)
	if err != nil || st.Mode().Perm() != 0o700 || st.Size() != fileSize(t, b.napilab) {
		t.Fatalf("the cached copy: %v, %v", st, err)
	}
	if sha(t, want) != sum {
		t.Fatal("the cached copy differs from napilab")
	}
	if entries, _ := os.ReadDir(filepath.Dir(want)); len(entries) != 1 {
		t.Fatalf("the cache holds %v, want the copy alone", entries)
	}
}

// sshTest is what the ssh tests share: leak checks, the binaries, an sshd of the test's own (its config plus
// extra lines), the client's options with the agents' error output shown on failure, and root on 127.0.0.1 as
// the target (the port is among the options).
func sshTest(t *testing.T, extra ...string) (binaries, *remotetest.SSHD, Options, Target) {
	t.Helper()
	checkLeaks(t)
	b := napilab(t)
	s := remotetest.Start(t, extra...)
	stderr := &remotetest.LogBuffer{}
	showOnFailure(t, "the agents' error output", stderr)
	return b, s, options(t, s, b, stderr), Target{Kind: SSH, User: "root", Host: "127.0.0.1"}
}

func fileSize(t *testing.T, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestSSHNoisyShell: text a login shell prints is reported, quoted, with the fix. The sshd's ForceCommand
// wrapper stands for a root account whose .bashrc (or a profile script) echoes a banner on every session: a test
// must not edit the machine's root .bashrc, and sshd runs the wrapper exactly where the login shell would print,
// before the command.
func TestSSHNoisyShell(t *testing.T) {
	for _, c := range []struct {
		name, when string
		atStart    bool // the check of the host already sees it
	}{
		{"every session", "true", true},
		{"the agent's session", `case "$SSH_ORIGINAL_COMMAND" in *"agent --stdio"*) true;; *) false;; esac`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			wrapper := filepath.Join(t.TempDir(), "noisy-login")
			script := "#!/bin/sh\nif " + c.when + "; then echo 'Welcome to lab1 (a noisy .bashrc)'; fi\n" +
				"exec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n"
			if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			b, _, o, tg := sshTest(t, "ForceCommand "+wrapper)
			a, err := startAgent(t.Context(), t, tg, o)
			if c.atStart {
				checkNoisy(t, err)
				if _, err := os.Stat(o.CacheRoot); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("the cache exists after a refusal: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = agent.Dial(t.Context(), a, agent.DialOptions{Version: b.version, Where: a.Where()})
			checkNoisy(t, err)
			if _, err := a.Wait(); err != nil { // Dial closed the session: the agent ends
				t.Fatal(err)
			}
		})
	}
}

func checkNoisy(t *testing.T, err error) {
	t.Helper()
	const want = `127.0.0.1: the remote shell printed "Welcome to lab1 (a noisy .bashrc)"`
	if err == nil || !strings.Contains(err.Error(), want) ||
		!strings.Contains(err.Error(), ".bashrc") {
		t.Fatalf("err = %v, want the remote shell's output quoted", err)
	}
}

// TestSSHAgentPathMismatch: a preinstalled agent of another version is refused with both versions named, and
// nothing is copied; an agent path that is not there is refused before anything starts.
func TestSSHAgentPathMismatch(t *testing.T) {
	b, _, o, tg := sshTest(t)
	o.AgentPath = b.old
	a, err := startAgent(t.Context(), t, tg, o)
	if err != nil {
		t.Fatal(err)
	}
	if d := a.Deployment; d.Uploaded || d.Path != b.old {
		t.Fatalf("deployment %+v", d)
	}
	_, err = agent.Dial(t.Context(), a, agent.DialOptions{Version: b.version, Where: a.Where()})
	if !errors.Is(err, agent.ErrVersion) || !strings.Contains(err.Error(), oldVersion) ||
		!strings.Contains(err.Error(), b.version) {
		t.Fatalf("Dial = %v, want a refusal naming %s and %s", err, oldVersion, b.version)
	}
	if _, err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(o.CacheRoot); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the cache exists with an agent path: %v", err)
	}

	o.AgentPath = filepath.Join(filepath.Dir(b.old), "missing")
	_, err = startAgent(t.Context(), t, tg, o)
	if err == nil || !strings.Contains(err.Error(), "is not an executable file there") {
		t.Fatalf("Start with a missing agent path = %v", err)
	}
}

// TestSSHRefusesDynamic: an executable linked against the C library is not copied; the error says how to build.
func TestSSHRefusesDynamic(t *testing.T) {
	_, _, o, tg := sshTest(t)
	o.Executable = filepath.Join(t.TempDir(), "napilab")
	writeELF(t, o.Executable, elf.PT_INTERP, "/lib64/ld-linux-x86-64.so.2\x00")
	_, err := startAgent(t.Context(), t, tg, o)
	if err == nil || !strings.Contains(err.Error(), "build napilab with CGO_ENABLED=0, e.g. make build") {
		t.Fatalf("Start = %v", err)
	}
	if entries, _ := os.ReadDir(o.CacheRoot); len(entries) != 0 {
		t.Fatalf("the cache holds %v", entries)
	}
}

// TestSSHUnreachable: ssh's own failure is reported with its last word and what to try.
func TestSSHUnreachable(t *testing.T) {
	_, s, o, tg := sshTest(t)
	o.SSHOptions[0] = "IdentityFile=" + s.Path("host_key") // a key sshd does not accept for root
	_, err := startAgent(t.Context(), t, tg, o)
	if err == nil || !strings.Contains(err.Error(), "exit status 255: root@127.0.0.1: Permission denied") ||
		!strings.Contains(err.Error(), "`ssh -l root 127.0.0.1 true` works without a prompt") {
		t.Fatalf("Start = %v", err)
	}
	if log := o.Stderr.(*remotetest.LogBuffer).String(); !strings.Contains(log, "\nserver: root@127.0.0.1: Permission denied") &&
		!strings.HasPrefix(log, "server: root@127.0.0.1: Permission denied") {
		t.Fatalf("ssh's error output did not reach stderr line by line with the end's name:\n%s", log)
	}
	ctx, cancel := context.WithCancel(t.Context()) // e.g. Ctrl-C while the host is checked
	cancel()
	if _, err := startAgent(ctx, t, tg, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start after the end of its context = %v", err)
	}
}

// TestSSHKillRestores: SIGKILL of the ssh that carries a session, mid-run, leaves the server's device as it
// was: sshd closes the agent's input, and the agent restores the mode it held (with a lease far longer than
// the test) before it exits. `napilab show` of the server's namespace reads the same before and after.
func TestSSHKillRestores(t *testing.T) {
	b, s, o, _ := sshTest(t)
	testenv.Exclusive(t) // the mode changes machine-wide knobs: keep other packages' privileged tests out
	bed := testbedtest.New(t, testbed.Topology{NAPI: true})
	sys, err := napi.OpenNetNS(napi.NetNS{Path: bed.B.NetNSPath()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Close() })
	before := show(t, sys)

	o.SSHOptions = o.SSHOptions[:len(o.SSHOptions)-1] // the port goes in the target, as users write it
	tg, err := ParseTarget("ssh://root@127.0.0.1:" + strconv.Itoa(s.Port))
	if err != nil {
		t.Fatal(err)
	}
	a, err := startAgent(t.Context(), t, tg, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("agent: %q", a.cmd.Args)
	c, err := agent.Dial(t.Context(), a, agent.DialOptions{Version: b.version, Where: a.Where()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := c.Hello(ctx, agent.HelloArgs{Version: b.version, Role: agent.RoleServer, Controller: "test",
		Dev: bed.B.Link, NetNS: bed.B.NetNSPath()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ServerOpen(ctx, agent.ServerOpenArgs{Link: rr.DefaultLink(bed.B.Link),
		Service: rr.DefaultService()}); err != nil {
		t.Fatal(err)
	}
	m, err := napi.Preset("threaded", bed.B.Link)
	if err != nil {
		t.Fatal(err)
	}
	m.NetNS, m.PollCPU, m.Host.SMTOff = bed.B.NetNSPath(), napi.AutoCPU, false
	res, err := c.Apply(ctx, m, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // only if the agent failed to: the journal is gone after a restore
		if _, err := os.Stat(res.Journal); err == nil {
			napi.RestoreFile(res.Journal, napi.OpenNetNS, napi.RestoreOptions{})
		}
	})
	if cmp.Equal(before, show(t, sys)) {
		t.Fatal("show reads the same with the mode in place: the test could not see a restore")
	}
	lease, err := napi.LoadLease(res.Journal)
	if err != nil {
		t.Fatal(err)
	}

	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	st, err := a.Wait()
	if err != nil || st.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("ssh ended with %v, %v; want SIGKILL", st, err)
	}
	c.Close()
	waitGone(t, "the agent", lease.Holder.PID, lease.Holder.Alive)
	if res.Watchdog != 0 {
		waitGone(t, "the watchdog", lease.Watchdog.PID, lease.Watchdog.Alive)
	}
	// The agent restored before it exited: everything it set reads as before, now.
	if d := cmp.Diff(withoutXSK(before), withoutXSK(show(t, sys))); d != "" {
		t.Fatalf("show differs after the agent's ssh was killed (-before +after):\n%s", d)
	}
	if _, err := os.Stat(res.Journal); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the journal is still there after the restore: %v", err)
	}
	// The AF_XDP socket died with the agent, but the kernel unbinds its buffer pool from the queue in deferred
	// work (xp_release_deferred): the queue's xsk flag clears a moment later, with nothing to wait on but it.
	deadline := time.Now().Add(generous)
	for {
		d := cmp.Diff(before, show(t, sys))
		if d == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue still has an AF_XDP socket %v after the agent exited (-before +after):\n%s",
				generous, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withoutXSK is st without the queues' AF_XDP flags.
func withoutXSK(st *napi.State) *napi.State {
	c := *st
	c.Devices = append([]napi.DeviceState(nil), st.Devices...)
	for i := range c.Devices {
		qs := append([]napi.QueueState(nil), c.Devices[i].Queues...)
		for j := range qs {
			qs[j].XSK = false
		}
		c.Devices[i].Queues = qs
	}
	return &c
}

// show reads the whole state of the server's namespace, as `napilab show --json` does.
func show(t *testing.T, sys *napi.System) *napi.State {
	t.Helper()
	st, err := sys.Show("")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Unreadable) > 0 {
		t.Fatalf("show could not read: %q", st.Unreadable)
	}
	return st
}
