package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/lab/guest"
)

// tailLines is how much of the console an error shows.
const tailLines = 40

// Run boots the lab described by spec and returns the guest's verdict. A nil error means the guest reported an
// exit status (which may be non-zero); a *GuestError means it did not, and carries the console tail. Nothing
// outlives Run: qemu is killed when ctx ends or the timeout passes, and the run's temporary files are removed.
func Run(ctx context.Context, spec Spec) (*Result, error) {
	start := time.Now()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	for _, t := range []hostTool{toolQemu, toolBusybox} {
		if _, err := t.path(); err != nil {
			return nil, err
		}
	}
	cache, err := cacheDir(spec.CacheDir)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	k, err := FetchKernel(ctx, spec.Kernel, cache, spec.Progress)
	if err != nil {
		return nil, err
	}
	res.Kernel = k
	res.Durations.Fetch = time.Since(start)

	tmp, release, err := runDir()
	if err != nil {
		return nil, err
	}
	defer release()

	buildStart := time.Now()
	plan, err := newPlan(&spec)
	if err != nil {
		return nil, err
	}
	initrd := filepath.Join(tmp, "initrd.cpio")
	if err := buildInitrd(&spec, k, plan, cache, initrd); err != nil {
		return nil, err
	}
	vmlinuz, err := k.Open("vmlinuz") // re-checks its SHA-256
	if err != nil {
		return nil, err
	}
	vmlinuz.Close()
	res.Durations.Build = time.Since(buildStart)
	fmt.Fprintf(orDiscard(spec.Progress), "lab: booting %s (%d vCPUs, %d NICs) after %v of preparation\n",
		k.Release, spec.vcpus(), spec.NICs, time.Since(start).Round(time.Millisecond))

	paths := qemuPaths{kernel: k.Path("vmlinuz"), initrd: initrd, results: filepath.Join(tmp, "results")}
	var b *boot
	for attempt := 1; attempt <= 2; attempt++ {
		res.Attempts = attempt
		b, err = runQemu(ctx, &spec, paths, plan.Nonce)
		if err != nil {
			return nil, err
		}
		// The MTTCG text-patching Oops happens before init starts; nothing of the run is lost by a retry.
		if !(b.verdict.earlyOops && !b.verdict.started && !b.timedOut && ctx.Err() == nil) {
			break
		}
		fmt.Fprintf(orDiscard(spec.Progress), "lab: early-boot Oops: int3 (a known TCG race); booting again\n")
	}
	res.Console = b.console
	res.Results, _ = os.ReadFile(paths.results)
	res.Durations.Boot, res.Durations.Run = b.boot, b.run
	res.Durations.Total = time.Since(start)
	v := b.verdict
	res.KernelRelease = v.release
	for i, sm := range v.steps {
		sr := StepResult{ExitCode: sm.rc, Output: b.console[sm.begin:sm.end]}
		if i < len(plan.Steps) {
			sr.Name = plan.Steps[i].Name
		}
		res.Steps = append(res.Steps, sr)
	}
	gerr := &GuestError{Tail: tail(b.console, tailLines)}
	switch {
	case v.exited && v.started:
		res.ExitCode = v.exitCode
		return res, nil
	case v.exited:
		gerr.Err = ErrInit
	case b.timedOut:
		gerr.Err, gerr.Reason = ErrTimeout, fmt.Sprintf("killed after %v", spec.timeout())
	default:
		gerr.Err = ErrNoVerdict
		gerr.Reason = "qemu exited"
		if v.panicked {
			gerr.Reason = "kernel panic: " + v.panicWhy
		}
		if b.qemuErr != nil {
			gerr.Reason = fmt.Sprintf("qemu: %v: %s", b.qemuErr, strings.TrimSpace(b.stderr))
		}
	}
	if why := unpackFailure(b.console, spec.memoryMiB()); why != "" {
		gerr.Reason = why
	}
	if err := ctx.Err(); err != nil && !b.timedOut {
		return res, fmt.Errorf("lab: run cancelled: %w", err)
	}
	return res, gerr
}

// runDir makes the run's temporary directory and holds a lock in it for the run's lifetime. A run killed before
// its cleanup (SIGKILL, a test binary's timeout panic) leaves its directory behind unlocked; the next run removes
// such directories, so the lab leaves nothing behind for long even then.
func runDir() (string, func(), error) {
	stale, _ := filepath.Glob(filepath.Join(os.TempDir(), "napilab-lab-*"))
	for _, d := range stale {
		if f, err := os.Open(filepath.Join(d, "lock")); err == nil {
			if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
				os.RemoveAll(d) // its owner is gone
			}
			f.Close()
		}
	}
	dir, err := os.MkdirTemp("", "napilab-lab-")
	if err != nil {
		return "", nil, fmt.Errorf("lab: %w", err)
	}
	// The lock is taken under another name and then renamed into place: another run sweeping stale directories
	// only ever finds a lock that is already held. Created and locked in place, it could be found in between,
	// taken, and the directory removed under this run (seen as two labs at once failing to find their initrd).
	lock, err := os.Create(filepath.Join(dir, "lock.new"))
	if err == nil {
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX)
	}
	if err == nil {
		err = os.Rename(filepath.Join(dir, "lock.new"), filepath.Join(dir, "lock"))
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("lab: lock run directory: %w", err)
	}
	return dir, func() {
		os.RemoveAll(dir)
		lock.Close()
	}, nil
}

func newPlan(s *Spec) (*guest.Plan, error) {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("lab: make run nonce: %w", err)
	}
	p := &guest.Plan{
		Nonce:     hex.EncodeToString(nonce[:]),
		Env:       s.Env,
		Watchdog:  s.watchdog(),
		Shell:     s.Shell,
		KeepGoing: s.KeepGoing,
	}
	for i, st := range s.Steps {
		args := st.Args
		name := st.Name
		if st.Path != "" {
			g := guest.BinDir + "/" + fmt.Sprint(i) + "/" + filepath.Base(st.Path)
			args = append([]string{g}, st.Args...)
		}
		if name == "" {
			name = filepath.Base(args[0])
		}
		p.Steps = append(p.Steps, guest.Step{Name: name, Args: args, Env: st.Env, Dir: st.Dir})
	}
	return p, p.Validate()
}

// boot is one qemu run as the host saw it.
type boot struct {
	console   []byte
	verdict   verdict
	timedOut  bool
	qemuErr   error // qemu could not start or failed on its own (not a guest outcome)
	stderr    string
	boot, run time.Duration
}

// runQemu runs qemu until it exits or the spec's timeout passes, copying the console to spec.Console and
// noting when the start and verdict markers arrive.
func runQemu(ctx context.Context, s *Spec, p qemuPaths, nonce string) (*boot, error) {
	bin, err := toolQemu.path()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()

	cmd := exec.Command(bin, qemuArgs(s, p)...)
	// Its own process group so that a kill reaches everything qemu started; Pdeathsig covers the host
	// process dying without running its cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	switch in := s.Stdin.(type) {
	case nil:
	case *os.File:
		cmd.Stdin = in // a terminal: qemu sets it to raw mode itself
	default:
		// os/exec would make Wait wait for its copier, which may block reading in long after qemu exited;
		// copy through our own pipe instead. The copier ends at in's next read or EOF.
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		defer pr.Close()
		defer pw.Close()
		cmd.Stdin = pr
		go func() { _, _ = io.Copy(pw, in) }()
	}
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if s.queues() > 1 {
		exited := make(chan struct{})
		defer close(exited)
		err = startInPrivateNetns(cmd, s.NICs, exited)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("lab: start qemu: %w", err)
	}
	started := time.Now()
	mon := &consoleMonitor{start: guest.MarkStart + nonce + ":", exit: guest.MarkExit + nonce + ":", live: s.Console}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(mon, stdout)
		close(copied)
	}()
	waited := make(chan error, 1)
	go func() {
		<-copied // Wait closes the pipe; read everything first
		waited <- cmd.Wait()
	}()
	b := &boot{}
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		b.timedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		werr = <-waited
	}
	mon.mu.Lock()
	defer mon.mu.Unlock()
	b.console = mon.buf.Bytes()
	b.verdict = parseConsole(b.console, nonce)
	b.stderr = stderr.String()
	if !mon.startAt.IsZero() {
		b.boot = mon.startAt.Sub(started)
		if !mon.exitAt.IsZero() {
			b.run = mon.exitAt.Sub(mon.startAt)
		}
	}
	var ee *exec.ExitError
	if werr != nil && !b.timedOut && ctx.Err() == nil && errors.As(werr, &ee) && !b.verdict.exited {
		b.qemuErr = werr // a guest panic still exits 0; a non-zero qemu exit is qemu's own failure
	}
	return b, nil
}

// consoleMonitor keeps the console, copies it to a live writer and timestamps the markers as they arrive.
type consoleMonitor struct {
	start, exit     string
	live            io.Writer
	mu              sync.Mutex
	buf             bytes.Buffer
	scanned         int // bytes of buf already searched for complete lines
	startAt, exitAt time.Time
}

func (m *consoleMonitor) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buf.Write(p)
	if m.live != nil {
		_, _ = m.live.Write(p) // a slow or closed terminal must not stop the run
	}
	b := m.buf.Bytes()
	for {
		nl := bytes.IndexByte(b[m.scanned:], '\n')
		if nl < 0 {
			break
		}
		line := b[m.scanned : m.scanned+nl]
		m.scanned += nl + 1
		if m.startAt.IsZero() && bytes.Contains(line, []byte(m.start)) {
			m.startAt = time.Now()
		} else if m.exitAt.IsZero() && bytes.Contains(line, []byte(m.exit)) {
			m.exitAt = time.Now()
		}
	}
	return len(p), nil
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		_, _ = l.w.Write(p[:k])
	}
	return len(p), nil
}

// startInPrivateNetns starts qemu inside a new network namespace that holds a bridge and one multi-queue tap
// per NIC; qemu inherits the namespace at fork, and it disappears with the taps and the bridge when qemu exits.
// The namespace is made on a locked thread that is never handed back to the Go scheduler: the goroutine stays
// until qemu has exited (Pdeathsig fires when the thread that forked qemu ends) and then exits locked, so the
// runtime discards the thread. The host's own namespaces are never touched.
func startInPrivateNetns(cmd *exec.Cmd, nics int, exited <-chan struct{}) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("create a private network namespace for multi-queue taps: %w (needs root)", err)
			return
		}
		if err := tapBridge(nics); err != nil {
			errc <- err
			return
		}
		err := cmd.Start()
		errc <- err
		if err == nil {
			<-exited
		}
	}()
	return <-errc
}

func tapBridge(nics int) error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "nlbr0"}}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("create bridge for multi-queue taps: %w", err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("set bridge up: %w", err)
	}
	brl, err := netlink.LinkByName(br.Name)
	if err != nil {
		return fmt.Errorf("find bridge: %w", err)
	}
	for i := range nics {
		tap := &netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: tapName(i), MasterIndex: brl.Attrs().Index},
			Mode:      netlink.TUNTAP_MODE_TAP,
			Flags:     netlink.TUNTAP_MULTI_QUEUE_DEFAULTS | netlink.TUNTAP_VNET_HDR,
			Queues:    1,
		}
		if err := netlink.LinkAdd(tap); err != nil {
			return fmt.Errorf("create tap %s: %w", tapName(i), err)
		}
		for _, f := range tap.Fds {
			f.Close() // the tap is persistent; qemu opens its own queues
		}
		if err := netlink.LinkSetUp(tap); err != nil {
			return fmt.Errorf("set tap %s up: %w", tapName(i), err)
		}
	}
	return nil
}
