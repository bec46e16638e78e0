package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/napilab/napilab/internal/agent"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/remote"
	"github.com/napilab/napilab/internal/sweep"
	"github.com/napilab/napilab/internal/testbed"
)

// demoCmd is napilab sweep over a veth testbed it builds itself: the same engine, agent and result.
type demoCmd struct {
	compareFlags
}

func (d *demoCmd) Run(ctx context.Context, std *stdio) (err error) {
	// Registered first, so it runs last: after the testbed is down and the agent has restored.
	defer func() { err = interrupted(ctx, err) }()
	s, err := d.spec()
	if err != nil {
		return err
	}
	if runtime.NumCPU() < 2 {
		return errors.New("the demo pins the rr server and client to CPUs of their own: it needs at least 2 CPUs")
	}
	if err := d.checkOutputs(); err != nil {
		return err
	}
	fmt.Fprintf(std.out, "napilab demo on a veth testbed, kernel %s, %d CPUs\n", kernel.Release(), runtime.NumCPU())
	describeRun(std.out, s)

	bed, err := testbed.Up(ctx, testbed.Topology{Prefix: "napilab-demo"})
	if err != nil {
		return err
	}
	defer bed.Down()
	fmt.Fprint(std.out, bed.Diagram(), "\n")

	srv, err := connect(ctx, remote.Target{Kind: remote.Local}, agent.RoleServer, bed.B.Link, bed.B.NetNSPath(), dialOptions{})
	if err != nil {
		return err
	}
	defer srv.close(std.err)
	client := &sweep.LocalClient{NSPath: bed.A.NetNSPath(), Dev: bed.A.Link}
	defer client.Close()
	clientInfo, err := agent.Describe(agent.RoleClient, bed.A.Link, bed.A.NetNSPath())
	if err != nil {
		return err
	}
	ends := sweep.Ends{Server: srv.conn, ServerInfo: srv.hello.End, ServerDev: bed.B.Link, ServerNS: bed.B.NetNSPath(),
		Client: client, ClientInfo: clientInfo, ClientDev: bed.A.Link, Peer: bed.B.IPv4.Addr(), SameHost: true}
	err = d.run(ctx, std, s, ends, sweep.Options{Lease: d.Lease, Command: commandLine(), KeepIrqbalance: d.KeepIrqbalance})
	fmt.Fprintln(std.out, "- veth AF_XDP is copy mode: both ends' NAPIs run in softirq inside the sender's sendto, so on this")
	fmt.Fprintln(std.out, "  testbed the modes differ far less than on a NIC with IRQs; `napilab lab` runs them on virtio_net.")
	return err
}
