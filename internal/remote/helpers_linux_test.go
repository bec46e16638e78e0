package remote

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/testenv"
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
	if privsep.created {
		os.Remove(privsepDir)
	}
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

// needTools skips where the tests cannot run: the qemu lab has no go toolchain and no sshd, so a plain skip
// there; on the host a missing tool is a skip that NAPILAB_REQUIRE_PRIV=1 turns into a failure.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	if testenv.InLab() {
		t.Skip("the qemu lab has no go toolchain and no sshd: internal/remote's process and ssh tests run on the host")
	}
	for _, tool := range tools {
		if _, err := lookTool(tool); err != nil {
			testenv.Skip(t, "%s is not installed (make deps installs openssh-server and openssh-client): %v", tool, err)
		}
	}
}

// lookTool finds a tool on PATH or in /usr/sbin, where sshd lives and which a root PATH may lack.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// napilab builds the binaries the first time a test needs them: with CGO_ENABLED=0, as make build does, so
// that the copy a test uploads is the static executable users get.
func napilab(t *testing.T) binaries {
	t.Helper()
	needTools(t, "go")
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

// logBuffer collects output that tests show only when they fail (or run with -v).
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// showOnFailure logs what l collected when t fails or runs verbosely.
func showOnFailure(t *testing.T, what string, l *logBuffer) {
	t.Cleanup(func() {
		if s := l.String(); s != "" && (t.Failed() || testing.Verbose()) {
			t.Logf("%s:\n%s", what, s)
		}
	})
}

// The privilege-separation directory sshd insists on (it chroots its pre-authentication child there). A
// machine without a running sshd may lack it; the tests create it then, and remove it when they end.
const privsepDir = "/run/sshd"

var privsep struct {
	once    sync.Once
	created bool
	err     error
}

func ensurePrivsep() error {
	privsep.once.Do(func() {
		if _, err := os.Stat(privsepDir); err == nil {
			return
		}
		if privsep.err = os.Mkdir(privsepDir, 0o755); privsep.err == nil {
			privsep.created = true
		}
	})
	return privsep.err
}

// sshd is an sshd of the test's own on 127.0.0.1: its own host key, config, authorized key and port, never the
// machine's sshd or its configuration. Its clients use a throwaway user key and a known_hosts file of the test,
// never ~/.ssh.
type sshd struct {
	dir  string
	port int
	log  *logBuffer
}

// startSSHD starts an sshd whose config adds extra lines, and stops it when t ends.
func startSSHD(t *testing.T, extra ...string) *sshd {
	t.Helper()
	needTools(t, "sshd", "ssh", "ssh-keygen")
	testenv.RequirePriv(t) // sshd runs as root to log root in, and the agent needs root
	if err := ensurePrivsep(); err != nil {
		t.Fatalf("create sshd's privilege separation directory %s: %v", privsepDir, err)
	}
	s := &sshd{dir: t.TempDir(), log: &logBuffer{}}
	showOnFailure(t, "sshd's log", s.log)
	for _, key := range []string{"host_key", "user_key"} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "napilab-test-"+key, "-f",
			s.path(key)).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	userPub, err := os.ReadFile(s.path("user_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.path("authorized_keys"), userPub, 0o600); err != nil {
		t.Fatal(err)
	}
	// A port that was free a moment ago may be taken by the time sshd binds it: then try another.
	for attempt := 0; ; attempt++ {
		err := s.start(t, extra)
		if err == nil {
			break
		}
		if attempt == 4 || !strings.Contains(s.log.String(), "Address already in use") {
			t.Fatal(err)
		}
	}
	hostPub, err := os.ReadFile(s.path("host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	known := fmt.Sprintf("[127.0.0.1]:%d %s", s.port, hostPub)
	if err := os.WriteFile(s.path("known_hosts"), []byte(known), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *sshd) path(name string) string { return filepath.Join(s.dir, name) }

// start runs sshd on a free port and returns once it listens.
func (s *sshd) start(t *testing.T, extra []string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	config := []string{
		"ListenAddress 127.0.0.1",
		"Port " + strconv.Itoa(s.port),
		"HostKey " + s.path("host_key"),
		"PidFile none",
		"AuthorizedKeysFile " + s.path("authorized_keys"),
		"StrictModes no", // the keys live under /tmp, which other users may write to
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"PermitUserRC no",
		"PrintMotd no",
		"PrintLastLog no",
		"UseDNS no",
		"LogLevel VERBOSE",
	}
	config = append(config, extra...)
	cfg := s.path("sshd_config")
	if err := os.WriteFile(cfg, []byte(strings.Join(config, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, _ := lookTool("sshd")
	cmd := exec.Command(bin, "-D", "-e", "-f", cfg) // sshd refuses to re-exec itself from a relative path
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		listening := "Server listening on 127.0.0.1 port " + strconv.Itoa(s.port)
		for sc.Scan() {
			fmt.Fprintln(s.log, sc.Text())
			if strings.Contains(sc.Text(), listening) {
				close(ready)
				listening = "\x00" // once
			}
		}
	}()
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // sshd and its per-connection children
		<-done
		cmd.Wait()
	}
	select {
	case <-ready:
		t.Cleanup(stop)
		return nil
	case <-done:
		stop()
		return fmt.Errorf("sshd exited before it listened (its log is below)")
	case <-time.After(generous):
		stop()
		return fmt.Errorf("sshd did not listen within %v", generous)
	}
}

// options are the client side's: ssh with no configuration file at all (-F none), the throwaway user key, the
// test's known_hosts and strict host key checking; the agent copied from this tree's build into a cache in a
// temp dir.
func (s *sshd) options(t *testing.T, b binaries, stderr *logBuffer) Options {
	return Options{
		SSH: "ssh -F none",
		SSHOptions: []string{
			"IdentityFile=" + s.path("user_key"),
			"IdentitiesOnly=yes",
			"UserKnownHostsFile=" + s.path("known_hosts"),
			"GlobalKnownHostsFile=/dev/null",
			"StrictHostKeyChecking=yes",
			"Port=" + strconv.Itoa(s.port),
		},
		CacheRoot:  filepath.Join(t.TempDir(), "agents"),
		Executable: b.napilab,
		Name:       "server",
		Stderr:     stderr,
	}
}
