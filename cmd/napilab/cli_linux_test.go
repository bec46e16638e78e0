package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testenv"
)

// cliRun runs napilab with args to its end (within the generous bound) and returns its output and exit status.
func cliRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), generous)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Napilab(t), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("napilab %s did not end within %v:\n%s%s", strings.Join(args, " "), generous, &out, &errOut)
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// cliProc is a napilab process running in the background, its output collected line by line.
type cliProc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	seen  *sync.Cond
	done  chan struct{}
	err   error
}

func cliStart(t *testing.T, args ...string) *cliProc {
	t.Helper()
	p := &cliProc{cmd: exec.Command(testenv.Napilab(t), args...), done: make(chan struct{})}
	p.seen = sync.NewCond(&p.mu)
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.seen.Broadcast()
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.done)
		p.mu.Lock()
		p.seen.Broadcast()
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitLine waits until the process printed a line containing s.
func (p *cliProc) waitLine(t *testing.T, s string) {
	t.Helper()
	timer := time.AfterFunc(generous, func() { p.mu.Lock(); p.seen.Broadcast(); p.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(generous)
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for _, l := range p.lines {
			if strings.Contains(l, s) {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("napilab ended before printing %q:\n%s", s, strings.Join(p.lines, "\n"))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("napilab did not print %q within %v:\n%s", s, generous, strings.Join(p.lines, "\n"))
		}
		p.seen.Wait()
	}
}

// wait waits for the process to end and returns its exit status and output.
func (p *cliProc) wait(t *testing.T) (int, string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(generous):
		t.Fatalf("napilab did not end within %v", generous)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := strings.Join(p.lines, "\n")
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return exit.ExitCode(), out
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0, out
}

func (p *cliProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// xdpAttached reports whether an XDP program is attached to h's link.
func xdpAttached(t *testing.T, h *testbed.Host) bool {
	t.Helper()
	var attached bool
	err := h.Do(func() error {
		l, err := netlink.LinkByName(h.Link)
		if err != nil {
			return err
		}
		attached = l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return attached
}
