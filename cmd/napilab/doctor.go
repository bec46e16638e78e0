package main

import (
	"fmt"

	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/sysknob"
)

type doctorCmd struct {
	Dev     string `placeholder:"IFACE" help:"The application's device (default: every queue with an AF_XDP socket bound)."`
	Queue   []int  `placeholder:"N" help:"The application's rx queue(s) on --dev (default: all)."`
	AppCPUs string `name:"app-cpus" placeholder:"LIST" help:"CPUs the application runs on, e.g. 3-5: checks that IRQs and the busy-poll kthread stay off them."`
	NetNS   string `name:"netns" placeholder:"NAME" help:"Network namespace of the device: a name under /run/netns or a path."`
	JSON    bool   `name:"json" help:"Print JSON."`
}

func (c *doctorCmd) Run(std *stdio) error {
	o := napi.DoctorOptions{Device: c.Dev, Queues: c.Queue}
	if c.AppCPUs != "" {
		cpus, err := sysknob.ParseCPUList(c.AppCPUs)
		if err != nil {
			return fmt.Errorf("--app-cpus %q: %w", c.AppCPUs, err)
		}
		o.AppCPUs = &cpus
	}
	if len(c.Queue) > 0 && c.Dev == "" {
		return fmt.Errorf("--queue needs --dev: name the device the queues belong to")
	}
	s, err := napi.Open(c.NetNS)
	if err != nil {
		return err
	}
	defer s.Close()
	findings, err := s.Doctor(o)
	if err != nil {
		return netnsHint(err, c.Dev, c.NetNS)
	}
	if c.JSON {
		return jsonOut(std.out, findings)
	}
	fmt.Fprint(std.out, napi.FormatFindings(findings))
	return nil
}
