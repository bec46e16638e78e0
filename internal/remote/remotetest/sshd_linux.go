// Package remotetest starts an sshd of a test's own on 127.0.0.1, for tests that drive napilab over ssh: its
// own host key, config, authorized key and port, never the machine's sshd or its configuration; clients use a
// throwaway user key and a known_hosts file of the test, never ~/.ssh.
package remotetest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/testenv"
)

// generous bounds the wait for sshd to listen; it never measures speed.
const generous = 2 * time.Minute

// SSHCommand is the ssh command of clients: no configuration file at all.
const SSHCommand = "ssh -F none"

// ClientOptions are the -o options of a client of s: the throwaway user key, the test's known_hosts, strict host
// key checking, s's port.
func (s *SSHD) ClientOptions() []string {
	return []string{
		"IdentityFile=" + s.Path("user_key"),
		"IdentitiesOnly=yes",
		"UserKnownHostsFile=" + s.Path("known_hosts"),
		"GlobalKnownHostsFile=/dev/null",
		"StrictHostKeyChecking=yes",
		"Port=" + strconv.Itoa(s.Port),
	}
}

// Log is what sshd printed so far.
func (s *SSHD) Log() string { return s.log.String() }

// Cleanup removes what Start created for all tests of the process (sshd's privilege separation directory);
// call it from TestMain after the tests.
func Cleanup() {
	if privsep.created {
		os.Remove(privsepDir)
	}
}

// NeedTools skips where the tests cannot run: the qemu lab has no sshd (nor a go toolchain), so a plain skip
// there; on the host a missing tool is a skip that NAPILAB_REQUIRE_PRIV=1 turns into a failure.
func NeedTools(t *testing.T, tools ...string) {
	t.Helper()
	if testenv.InLab() {
		t.Skip("the qemu lab has no sshd and no go toolchain: the ssh tests run on the host")
	}
	for _, tool := range tools {
		if _, err := LookTool(tool); err != nil {
			testenv.Skip(t, "%s is not installed (make deps installs openssh-server and openssh-client): %v", tool, err)
		}
	}
}

// LookTool finds a tool on PATH or in /usr/sbin, where sshd lives and which a root PATH may lack.
func LookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// LogBuffer collects output (a process's, a log's) that tests show when they fail; safe for concurrent writes.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
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

// SSHD is an sshd of the test's own on 127.0.0.1: its own host key, config, authorized key and port, never the
// machine's sshd or its configuration. Its clients use a throwaway user key and a known_hosts file of the test,
// never ~/.ssh.
type SSHD struct {
	dir  string
	Port int
	log  *LogBuffer
}

// Start starts an sshd whose config adds extra lines, and stops it when t ends. Where there is no sshd (the
// qemu lab) the test skips; on the host a missing sshd fails under NAPILAB_REQUIRE_PRIV=1.
func Start(t *testing.T, extra ...string) *SSHD {
	t.Helper()
	NeedTools(t, "sshd", "ssh", "ssh-keygen")
	testenv.RequirePriv(t) // sshd runs as root to log root in, and the agent needs root
	if err := ensurePrivsep(); err != nil {
		t.Fatalf("create sshd's privilege separation directory %s: %v", privsepDir, err)
	}
	s := &SSHD{dir: t.TempDir(), log: &LogBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sshd's log:\n%s", s.log)
		}
	})
	for _, key := range []string{"host_key", "user_key"} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "napilab-test-"+key, "-f",
			s.Path(key)).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	userPub, err := os.ReadFile(s.Path("user_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Path("authorized_keys"), userPub, 0o600); err != nil {
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
	hostPub, err := os.ReadFile(s.Path("host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	known := fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, hostPub)
	if err := os.WriteFile(s.Path("known_hosts"), []byte(known), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// Path is a file of the sshd's directory: user_key, known_hosts, sshd_config, ...
func (s *SSHD) Path(name string) string { return filepath.Join(s.dir, name) }

// start runs sshd on a free port and returns once it listens.
func (s *SSHD) start(t *testing.T, extra []string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	config := []string{
		"ListenAddress 127.0.0.1",
		"Port " + strconv.Itoa(s.Port),
		"HostKey " + s.Path("host_key"),
		"PidFile none",
		"AuthorizedKeysFile " + s.Path("authorized_keys"),
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
	cfg := s.Path("sshd_config")
	if err := os.WriteFile(cfg, []byte(strings.Join(config, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, _ := LookTool("sshd")
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
		listening := "Server listening on 127.0.0.1 port " + strconv.Itoa(s.Port)
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
