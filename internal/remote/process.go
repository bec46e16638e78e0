package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// waitDelay bounds how long Wait waits, once a child has exited, for its error output to end: a process it
// left behind may still hold the pipe.
const waitDelay = 5 * time.Second

// Agent is a running agent process for one end: `napilab agent --stdio` itself (local and netns ends) or the
// ssh that runs it on another host. It is the io.ReadWriteCloser agent.Dial speaks over: Write reaches the
// agent's standard input, Read its protocol output. Close ends the input, which is the agent's signal to
// restore what it holds and exit; Wait then reaps the process.
type Agent struct {
	Target     Target
	Deployment Deployment // ssh ends: where the agent runs from, and whether it was copied there

	cmd    *exec.Cmd
	stdin  *os.File // the write end of the agent's standard input
	stdout *os.File // the read end of its standard output
	stderr *lineWriter

	closeOnce sync.Once
	closeErr  error

	waitOnce sync.Once
	waited   chan struct{}
	state    *os.ProcessState
	waitErr  error

	mu     sync.Mutex
	reaped bool // guards the process group's ID against reuse after Wait
}

// startProcess starts argv with its standard input and output as pipes to the caller and its error output
// forwarded line by line to stderr, prefixed with name. The child gets a process group of its own: the
// terminal's Ctrl-C goes to the foreground group, the controller's, alone, and the controller ends its sessions
// in order (an agent whose input closes restores anyway).
func startProcess(argv []string, name string, stderr io.Writer) (*Agent, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	a := &Agent{stdin: inW, stdout: outR, stderr: newLineWriter(name, stderr), waited: make(chan struct{})}
	a.cmd = command(context.Background(), argv, a.stderr)
	a.cmd.Stdin, a.cmd.Stdout = inR, outW
	err = a.cmd.Start()
	inR.Close() // the child's ends: the parent keeps none, so that the child's exit shows as EOF
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	return a, nil
}

// command is argv in a process group of its own, its error output going to stderr; the end of ctx kills the
// whole group.
func command(ctx context.Context, argv []string, stderr io.Writer) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	return cmd
}

// Read reads the agent's protocol output.
func (a *Agent) Read(p []byte) (int, error) { return a.stdout.Read(p) }

// Write writes to the agent's standard input.
func (a *Agent) Write(p []byte) (int, error) { return a.stdin.Write(p) }

// Close closes the agent's standard input, which tells it to restore and exit, and stops reading its output,
// which ends a Read in progress. It is idempotent; Wait reaps the process.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() { a.closeErr = errors.Join(a.stdin.Close(), a.stdout.Close()) })
	return a.closeErr
}

// Pid is the process ID of the agent, or of the ssh that runs it.
func (a *Agent) Pid() int { return a.cmd.Process.Pid }

// Where names the end for messages and for agent.DialOptions.Where.
func (a *Agent) Where() string { return a.Target.Where() }

// Wait waits for the process to exit and returns how it did: an exit status or a signal is its state, not an
// error; the error is for a wait that failed. Every call returns the first one's answer.
func (a *Agent) Wait() (*os.ProcessState, error) {
	a.waitOnce.Do(func() {
		err := a.cmd.Wait()
		a.mu.Lock()
		a.reaped = true
		a.mu.Unlock()
		a.stderr.Flush()
		var exit *exec.ExitError
		switch {
		case err == nil, errors.As(err, &exit), errors.Is(err, exec.ErrWaitDelay):
			// ErrWaitDelay: the process exited, and something it left behind held its error output open.
		default:
			a.waitErr = err
		}
		a.state = a.cmd.ProcessState
		close(a.waited)
	})
	<-a.waited
	return a.state, a.waitErr
}

// Kill ends the process and its process group at once (SIGKILL): ssh and any ProxyCommand it started, or the
// local agent. The agent itself restores when its input closes, and its watchdog, which lives in a session of
// its own, when the lease runs out. Kill after Wait does nothing.
func (a *Agent) Kill() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reaped {
		return nil
	}
	err := syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// StderrTail is the last line the process wrote on its error output, e.g. ssh's reason for failing.
func (a *Agent) StderrTail() string { return a.stderr.Last() }

// lineWriter forwards a child's error output line by line, each line prefixed with the end's name and written
// with one Write, so that the lines of several ends interleave whole on the controller's standard error.
type lineWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
	buf    []byte
	last   string
}

// maxStderrLine cuts a line that never ends, so that the buffer stays bounded.
const maxStderrLine = 16 << 10

func newLineWriter(name string, w io.Writer) *lineWriter {
	return &lineWriter{w: w, prefix: []byte(name + ": ")}
}

// Write never fails: a controller that cannot print must still not block the child.
func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	start := 0
	for {
		i := bytes.IndexByte(l.buf[start:], '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[start : start+i])
		start += i + 1
	}
	for len(l.buf)-start >= maxStderrLine {
		l.emit(l.buf[start : start+maxStderrLine])
		start += maxStderrLine
	}
	l.buf = l.buf[:copy(l.buf, l.buf[start:])]
	return len(p), nil
}

func (l *lineWriter) emit(line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if t := bytes.TrimSpace(line); len(t) > 0 {
		l.last = string(t)
	}
	out := make([]byte, 0, len(l.prefix)+len(line)+1)
	out = append(append(append(out, l.prefix...), line...), '\n')
	_, _ = l.w.Write(out)
}

// Flush writes a last line that did not end.
func (l *lineWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = l.buf[:0]
	}
}

// Last returns the last non-empty line written.
func (l *lineWriter) Last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}
