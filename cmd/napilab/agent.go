package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/napilab/napilab/internal/agent"
	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/version"
)

type agentCmd struct {
	Stdio    bool             `help:"Speak the agent protocol on standard input and output (how napilab sweep starts it over ssh)."`
	Watchdog agentWatchdogCmd `cmd:"" hidden:"" help:"Restore a journal once its lease is over (started by the agent at apply)."`
}

func (c *agentCmd) Run(ctx context.Context) error {
	if !c.Stdio {
		return errors.New("napilab agent is started by napilab sweep over ssh: it needs --stdio, and speaks a " +
			"protocol, not to people")
	}
	exe, sum, err := agent.Self()
	if err != nil {
		return fmt.Errorf("identify napilab's executable: %w", err)
	}
	proto, err := protocolStdout()
	if err != nil {
		return err
	}
	defer proto.Close()
	// A lost controller may also show as SIGHUP; the stdin's end is the usual way.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGHUP)
	defer stop()
	host, _ := os.Hostname()
	magic := agent.Magic{Agent: agent.Protocol, Version: version.String(), SHA256: sum, Arch: runtime.GOARCH,
		Hostname: host}
	m := agent.NewMachine(agent.MachineOptions{SHA256: sum,
		Watchdog: func(journal string) (*os.Process, error) { return agent.StartWatchdog(exe, journal) }})
	return agent.Serve(ctx, os.Stdin, proto, m, magic)
}

type agentWatchdogCmd struct {
	Journal string `required:"" placeholder:"PATH" help:"The journal to restore when its lease is over."`
}

func (c *agentWatchdogCmd) Run(ctx context.Context) error {
	rep, err := napi.Watch(ctx, c.Journal, napi.WatchOptions{})
	if rep != nil {
		fmt.Print(rep.Format())
	}
	return err
}
