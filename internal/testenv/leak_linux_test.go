package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// leakTB is a testing.TB that keeps cleanups and errors for the test to run and read.
type leakTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	errors   []string
}

func (f *leakTB) Helper()           {}
func (f *leakTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *leakTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

// end runs the cleanups as the testing package does at the end of a test, last first.
func (f *leakTB) end() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func (f *leakTB) report() string { return strings.Join(f.errors, "\n") }

func shortLeakWait(t *testing.T, d time.Duration) {
	old := leakWait
	leakWait = d
	t.Cleanup(func() { leakWait = old })
}

// leakyWorker is a goroutine a test forgets, with a name the report must show.
func leakyWorker(release <-chan struct{}, done chan<- struct{}) {
	<-release
	close(done)
}

// TestCheckLeaksCatchesLeaks: a goroutine and a socket left behind by a test are reported after the wait, each
// with what identifies it: the goroutine's function and stack, the socket's inode, family and type.
func TestCheckLeaksCatchesLeaks(t *testing.T) {
	shortLeakWait(t, 200*time.Millisecond)
	fake := &leakTB{TB: t}
	CheckLeaks(fake)

	release, done := make(chan struct{}), make(chan struct{})
	go leakyWorker(release, done)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	fake.end()
	close(release)
	<-done
	conn.Close()

	got := fake.report()
	t.Log(got)
	for _, want := range []string{"leakyWorker", "1 file descriptor(s)", "socket:[", "(AF_INET, SOCK_DGRAM)",
		"left behind by the test, still there after waiting 200ms"} {
		if !strings.Contains(got, want) {
			t.Errorf("the report does not say %q:\n%s", want, got)
		}
	}
}

// TestCheckLeaksWaitsForStragglers: a goroutine and a descriptor that go away while the check polls (a server
// returning after its context was cancelled) are no leak, however long they take within the bound.
func TestCheckLeaksWaitsForStragglers(t *testing.T) {
	c := leakCheck{goroutines: goleak.IgnoreCurrent(), fds: OpenFDs(t), wait: LeakWait}
	release, done := make(chan struct{}), make(chan struct{})
	go leakyWorker(release, done)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	polls := 0
	c.onPoll = func() {
		if polls++; polls == 1 { // the first look saw both; let them go now
			close(release)
			<-done
			r.Close()
			w.Close()
		}
	}
	fake := &leakTB{TB: t}
	c.run(fake)
	if polls == 0 {
		t.Fatal("the check did not see the goroutine and the pipe that were still there")
	}
	if len(fake.errors) > 0 {
		t.Fatalf("stragglers that finished within the bound were reported:\n%s", fake.report())
	}
}

// TestFDsCheckClosed: a descriptor number closed and reused for something else counts as new; a descriptor
// closed again does not.
func TestFDsCheckClosed(t *testing.T) {
	shortLeakWait(t, 100*time.Millisecond)
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := int(f.Fd())
	before := OpenFDs(t)
	if before[n] != os.DevNull {
		t.Fatalf("fd %d refers to %q, want %s", n, before[n], os.DevNull)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Dup3(int(r.Fd()), n, unix.O_CLOEXEC); err != nil { // fd n is now the pipe, not /dev/null
		t.Fatal(err)
	}
	w.Close()
	r.Close()

	fake := &leakTB{TB: t}
	before.CheckClosed(fake, "opening a pipe")
	got := fake.report()
	t.Log(got)
	want := fmt.Sprintf("fd %d → pipe:[", n)
	if !strings.Contains(got, want) || !strings.Contains(got, "left behind by opening a pipe") {
		t.Fatalf("the report does not say %q for the reused number:\n%s", want, got)
	}

	before = OpenFDs(t)
	g, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	fake = &leakTB{TB: t}
	before.CheckClosed(fake, "opening and closing /dev/null")
	if len(fake.errors) > 0 {
		t.Fatalf("a closed descriptor was reported:\n%s", fake.report())
	}
}

// TestCheckLeaksInATest runs a real test that leaks, in a child process: CheckLeaks must fail it, and must not
// count what a cleanup registered after it closes.
func TestCheckLeaksInATest(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestLeakyChild$", "-test.v")
	cmd.Env = append(os.Environ(), "NAPILAB_TESTENV_LEAKY_CHILD=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err == nil {
		t.Fatal("a test that leaks a goroutine and a socket passed")
	}
	for _, want := range []string{"--- FAIL: TestLeakyChild", "leakyWorker", "1 file descriptor(s)", "AF_INET6"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the child's output does not say %q", want)
		}
	}
}

// TestLeakyChild leaks on purpose when TestCheckLeaksInATest runs it, and does nothing otherwise.
func TestLeakyChild(t *testing.T) {
	if os.Getenv("NAPILAB_TESTENV_LEAKY_CHILD") != "1" {
		t.Skip("run by TestCheckLeaksInATest")
	}
	leakWait = 200 * time.Millisecond
	CheckLeaks(t)
	go leakyWorker(make(chan struct{}), make(chan struct{}))
	if _, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Skip(err) // no IPv6 loopback: the parent sees no AF_INET6 and fails
	}
	closed, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closed.Close() })
}
