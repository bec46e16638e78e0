package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/agent"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/remote"
	"github.com/napilab/napilab/internal/sweep"
	"github.com/napilab/napilab/internal/version"
)

type sweepCmd struct {
	compareFlags
	Server      string   `default:"local" placeholder:"local|netns:NAME|ssh://[USER@]HOST[:PORT]" help:"Where the rr server and the polling modes go: this host, a network namespace of this host, or another host over ssh."`
	ServerDev   string   `name:"server-dev" required:"" placeholder:"IFACE" help:"The server's network interface (on the server host)."`
	ServerNetns string   `name:"server-netns" placeholder:"NAME|PATH" help:"Network namespace of the server's interface on the server host."`
	Client      string   `default:"local" placeholder:"local|ssh://[USER@]HOST[:PORT]" help:"Where the rr client runs: this process (default), or another host over ssh."`
	ClientDev   string   `name:"client-dev" required:"" placeholder:"IFACE" help:"The client's network interface (on the client host)."`
	ClientNetns string   `name:"client-netns" placeholder:"NAME|PATH" help:"Network namespace of the client's interface."`
	Peer        string   `required:"" placeholder:"IP" help:"The server's address as the client reaches it (the next hop's MAC comes from the route to it)."`
	SSH         string   `name:"ssh" placeholder:"CMD" help:"The ssh command (as rsync -e), e.g. 'ssh -F ./ssh_config'; default ssh."`
	SSHOption   []string `name:"ssh-option" placeholder:"OPT" help:"Add -o OPT to every ssh command (repeatable)."`
	AgentPath   string   `name:"agent-path" placeholder:"PATH" help:"Run a napilab already installed at PATH on the remote host instead of copying this one there (its version must match)."`
	AgentCache  string   `name:"agent-cache" hidden:"" placeholder:"DIR" help:"Where remote hosts keep the copies of napilab (default /var/cache/napilab/agents); for tests."`
}

func (c *sweepCmd) Run(ctx context.Context, std *stdio) (err error) {
	// Registered first, so it runs last: after every end said goodbye and restored.
	defer func() { err = interrupted(ctx, err) }()
	s, err := c.spec()
	if err != nil {
		return err
	}
	peer, err := netip.ParseAddr(c.Peer)
	if err != nil {
		return fmt.Errorf("--peer %q is not an IP address", c.Peer)
	}
	if err := c.checkOutputs(); err != nil {
		return err
	}
	server, err := remote.ParseTarget(c.Server)
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	if server.Kind == remote.NetNS {
		if c.ServerNetns != "" && c.ServerNetns != server.NetNS {
			return fmt.Errorf("--server %s and --server-netns %s name two namespaces: give one", c.Server, c.ServerNetns)
		}
		c.ServerNetns = server.NetNS
	}
	client, err := remote.ParseTarget(c.Client)
	if err != nil {
		return fmt.Errorf("--client: %w", err)
	}
	if client.Kind == remote.NetNS {
		return fmt.Errorf("--client %s: the client runs in this process or on another host; name its namespace "+
			"with --client-netns", c.Client)
	}
	dial := dialOptions{ssh: c.SSH, sshOptions: c.SSHOption, agentPath: c.AgentPath, agentCache: c.AgentCache}
	if err := kernel.RenameFields(dial.remote().Validate(), remoteFlags); err != nil {
		return err
	}
	ends := sweep.Ends{ServerDev: c.ServerDev, ServerNS: c.ServerNetns, ClientDev: c.ClientDev, Peer: peer}

	srv, err := connect(ctx, server, agent.RoleServer, c.ServerDev, c.ServerNetns, dial)
	if err != nil {
		return err
	}
	defer srv.close(std.err)
	ends.Server, ends.ServerInfo = srv.conn, srv.hello.End
	for _, st := range srv.hello.Stale {
		fmt.Fprintf(std.out, "restored what an earlier napilab (pid %d) left on %s: %s\n", st.Holder.PID, c.ServerDev, st.Preset)
	}

	if client.Kind == remote.Local {
		lc := &sweep.LocalClient{NSPath: netns.Path(c.ClientNetns), Dev: c.ClientDev}
		defer lc.Close()
		if ends.ClientInfo, err = agent.Describe(agent.RoleClient, c.ClientDev, lc.NSPath); err != nil {
			return kernel.RenameFields(err, map[string]string{"dev": "--client-dev"})
		}
		ends.Client = lc
	} else {
		cl, err := connect(ctx, client, agent.RoleClient, c.ClientDev, c.ClientNetns, dial)
		if err != nil {
			return err
		}
		defer cl.close(std.err)
		ends.Client, ends.ClientInfo = cl.conn, cl.hello.End
	}
	ends.SameHost = server.Kind != remote.SSH && client.Kind == remote.Local ||
		ends.ServerInfo.Hostname == ends.ClientInfo.Hostname
	fmt.Fprintf(std.out, "napilab sweep: %s (%s, %s, kernel %s) ← %s (%s, %s, kernel %s)\n", c.ServerDev,
		ends.ServerInfo.Hostname, driverOf(ends.ServerInfo), ends.ServerInfo.Kernel, c.ClientDev,
		ends.ClientInfo.Hostname, driverOf(ends.ClientInfo), ends.ClientInfo.Kernel)
	describeRun(std.out, s)
	return c.run(ctx, std, s, ends, sweep.Options{Lease: c.Lease, Command: commandLine(), Force: c.Force, KeepIrqbalance: c.KeepIrqbalance})
}

func driverOf(e agent.EndInfo) string {
	if e.Device.Driver == "" {
		return "driver unknown"
	}
	return e.Device.Driver
}

// describeRun says what is about to run, and about how long it takes.
func describeRun(w io.Writer, s sweep.Spec) {
	cells := len(s.Modes) * len(s.Rows) * s.Reps
	fmt.Fprintf(w, "%d polling modes × %d loads × %d repetition(s), %s per cell (at most %s in all); server loop on "+
		"CPU %d, client loop on CPU %d; each mode is applied to the server's queue and restored after\n\n",
		len(s.Modes), len(s.Rows), s.Reps, s.Duration,
		((s.Duration + s.Warmup + s.Timeout) * time.Duration(cells)).Round(time.Second), s.ServerCPU, s.ClientCPU)
}

type dialOptions struct {
	ssh        string
	sshOptions []string
	agentPath  string
	agentCache string
}

func (o dialOptions) remote() remote.Options {
	return remote.Options{SSH: o.ssh, SSHOptions: o.sshOptions, AgentPath: o.agentPath, CacheRoot: o.agentCache}
}

// remoteFlags names remote.Options' fields by the flags that set them.
var remoteFlags = map[string]string{"ssh command": "--ssh", "ssh option": "--ssh-option",
	"agent path": "--agent-path", "cache root": "--agent-cache"}

// session is an agent end: the process the agent runs in, and the protocol session with it.
type session struct {
	proc  *remote.Agent
	conn  *agent.Conn
	hello agent.HelloResult
}

// connect starts the agent of an end and says hello: the end is locked and described afterwards.
func connect(ctx context.Context, t remote.Target, role agent.Role, dev, ns string, o dialOptions) (*session, error) {
	where := t.Where()
	p, err := remote.Start(ctx, t, o.remote())
	if err != nil {
		return nil, kernel.RenameFields(err, remoteFlags)
	}
	conn, err := agent.Dial(ctx, p, agent.DialOptions{Version: version.String(), Where: where})
	if err != nil {
		p.Close()
		p.Wait()
		return nil, err
	}
	host, _ := os.Hostname()
	h, err := conn.Hello(ctx, agent.HelloArgs{Version: version.String(), Role: role, Controller: host,
		Command: strings.Join(commandLine(), " "), Dev: dev, NetNS: ns})
	if err != nil {
		conn.Close()
		p.Close()
		p.Wait()
		field := "--server-dev"
		if role == agent.RoleClient {
			field = "--client-dev"
		}
		err = kernel.RenameFields(err, map[string]string{"dev": field})
		if t.Kind != remote.SSH {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return &session{proc: p, conn: conn, hello: h}, nil
}

// close says bye (the agent restores and exits) and waits for the agent's process; a controller that is being
// interrupted still gets a minute for it.
func (s *session) close(stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.conn.Bye(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "napilab: %v\n", err)
	}
	s.proc.Close()
	_, _ = s.proc.Wait()
}
