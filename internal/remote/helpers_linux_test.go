package remote

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/remote/remotetest"
)

// generous bounds waits for what must happen; it never measures speed.
const generous = 2 * time.Minute

// oldVersion is the version of the second napilab the tests build, for a mismatched agent path.
const oldVersion = "v9.9.9-test"

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	remotetest.Cleanup()
	os.Exit(code)
}

// binaries are the napilab executables the tests run as agents, built once per package run.
type binaries struct {
	napilab string // this tree's napilab, static
	version string // its version.String(), as `napilab version` prints it
	old     string // the same tree built as oldVersion
}

var built struct {
	once sync.Once
	dir  string
	bins binaries
	err  error
}

// napilab builds the binaries the first time a test needs them: with CGO_ENABLED=0, as make build does, so
// that the copy a test uploads is the static executable users get.
func napilab(t *testing.T) binaries {
	t.Helper()
	remotetest.NeedTools(t, "go")
	built.once.Do(func() { built.bins, built.err = build() })
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bins
}

func build() (binaries, error) {
	var b binaries
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return b, fmt.Errorf("go env GOMOD: %w", err)
	}
	if built.dir, err = os.MkdirTemp("", "napilab-remote-test-"); err != nil {
		return b, err
	}
	b.napilab = filepath.Join(built.dir, "napilab")
	b.old = filepath.Join(built.dir, "old", "napilab")
	for _, c := range [][]string{{"-o", b.napilab}, {"-o", b.old, "-ldflags",
		"-X github.com/napilab/napilab/internal/version.Version=" + oldVersion}} {
		cmd := exec.Command("go", append(append([]string{"build"}, c...), "./cmd/napilab")...)
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("%s: %v\n%s", cmd, err, out)
		}
	}
	out, err := exec.Command(b.napilab, "version").Output()
	if err != nil {
		return b, fmt.Errorf("napilab version: %w", err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	b.version = strings.TrimPrefix(first, "napilab ")
	return b, nil
}

// checkLeaks fails t if, once it and its cleanups are done, goroutines are left over or a child process of
// this test binary was not reaped. Call it first, so that its cleanup runs last.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		// Goroutines that are ending say so nowhere: look again for a while before calling one a leak.
		deadline := time.Now().Add(generous)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines left over:\n%s", n-before, buf[:runtime.Stack(buf, true)])
		}
		if kids := children(); len(kids) > 0 {
			t.Errorf("child processes left over (not reaped): %s", strings.Join(kids, "; "))
		}
	})
}

// children lists this process's children, zombies included, as "pid state command".
func children() []string {
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(self) {
			continue
		}
		out = append(out, fmt.Sprintf("%d %s %s", pid, f[0], string(stat[bytes.IndexByte(stat, '(')+1:i])))
	}
	return out
}

// waitGone waits until the process pid has exited (or is a zombie its parent has not reaped), through a pidfd,
// which becomes readable when the process exits. alive tells the process from a later one with its PID.
func waitGone(t *testing.T, what string, pid int, alive func() bool) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err == unix.ESRCH {
		return
	}
	if err != nil {
		t.Fatalf("pidfd_open %s (pid %d): %v", what, pid, err)
	}
	defer unix.Close(fd)
	if !alive() { // the PID may have been reused between the caller's look and pidfd_open
		return
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(generous.Milliseconds()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("poll the pidfd of %s: %v", what, err)
		}
		if n == 0 {
			t.Fatalf("%s (pid %d) is still running after %v", what, pid, generous)
		}
		return
	}
}

// showOnFailure logs what l collected when t fails or runs verbosely.
func showOnFailure(t *testing.T, what string, l *remotetest.LogBuffer) {
	t.Cleanup(func() {
		if s := l.String(); s != "" && (t.Failed() || testing.Verbose()) {
			t.Logf("%s:\n%s", what, s)
		}
	})
}

// options are the client side's: ssh with no configuration file at all (-F none), the throwaway user key, the
// test's known_hosts and strict host key checking; the agent copied from this tree's build into a cache in a
// temp dir.
func options(t *testing.T, s *remotetest.SSHD, b binaries, stderr *remotetest.LogBuffer) Options {
	return Options{
		SSH:        remotetest.SSHCommand,
		SSHOptions: s.ClientOptions(),
		CacheRoot:  filepath.Join(t.TempDir(), "agents"),
		Executable: b.napilab,
		Name:       "server",
		Stderr:     stderr,
	}
}
