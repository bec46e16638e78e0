package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"github.com/napilab/napilab/internal/agent"
)

// agentProcess is an agent's process and its standard input and output.
type agentProcess struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out io.ReadCloser
}

func (p *agentProcess) Read(b []byte) (int, error)  { return p.out.Read(b) }
func (p *agentProcess) Write(b []byte) (int, error) { return p.in.Write(b) }

// Close closes the agent's input — its signal to restore and exit — and waits for it.
func (p *agentProcess) Close() error {
	p.in.Close()
	err := p.cmd.Wait()
	p.out.Close()
	return err
}

// startAgent starts this executable as the agent of a local end, in a process group of its own so that a
// terminal's Ctrl-C reaches only the controller, which then ends the session in order.
func startAgent(ctx context.Context, t target, _ dialOptions) (*agentProcess, error) {
	if !t.local {
		return nil, fmt.Errorf("%s: ssh ends are not wired up in this build", t.ssh)
	}
	exe, _, err := agent.Self()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "agent", "--stdio")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the agent: %w", err)
	}
	return &agentProcess{cmd: cmd, in: in, out: out}, nil
}
