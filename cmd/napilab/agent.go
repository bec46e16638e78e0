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
	Stdio    bool   `help:"Speak the agent protocol on standard input and output (how napilab sweep starts it over ssh)."`
	Watchdog string `hidden:"" placeholder:"JOURNAL" help:"Restore JOURNAL once its lease is over (the agent starts this at apply)."`
}

func (c *agentCmd) Run(ctx context.Context, std *stdio) error {
	if c.Watchdog != "" {
		return watchdog(ctx, std, c.Watchdog)
	}
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

// watchdog restores journal once its lease is over, unless its holder restores first.
func watchdog(ctx context.Context, std *stdio, journal string) error {
	rep, err := napi.Watch(ctx, journal, napi.WatchOptions{})
	if rep != nil {
		fmt.Fprint(std.out, rep.Format())
	}
	return err
}
