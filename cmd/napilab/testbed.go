package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/testbed"
)

type testbedCmd struct {
	Up   testbedUpCmd   `cmd:"" help:"Create a testbed: two network namespaces joined by a veth pair. It stays until 'down'."`
	Down testbedDownCmd `cmd:"" help:"Remove a testbed napilab created, or all of them."`
	Exec testbedExecCmd `cmd:"" help:"Run a command in host a or b of a testbed, as 'ip netns exec' does: napilab testbed exec NAME a -- CMD [ARGS]."`
	Show testbedShowCmd `cmd:"" help:"List the testbeds napilab created, checked against the kernel."`
}

// testbedStoreFlag lets tests point the commands at a scratch state directory.
type testbedStoreFlag struct {
	StateDir string `name:"state-dir" hidden:"" default:"/run/napilab/testbed" type:"path"`
}

func (f testbedStoreFlag) store() testbed.Store { return testbed.Store{Dir: f.StateDir} }

type testbedUpCmd struct {
	testbedStoreFlag `embed:""`
	Name             string       `help:"Testbed name; its namespaces are NAME-a and NAME-b (default: napilab-<pid>-1)."`
	Queues           int          `help:"Rx and tx queues on each veth end." default:"1"`
	NAPI             bool         `name:"napi" help:"Turn GRO on and TSO off on both ends, so ordinary socket traffic passes the veth NAPI without an XDP program."`
	MTU              int          `name:"mtu" help:"MTU of both ends (1280-65535)." default:"1500"`
	IPv4             netip.Prefix `name:"ipv4" help:"IPv4 subnet: host a gets its first address, b the second (default 198.18.0.0/24, the RFC 2544 benchmarking range)." placeholder:"PREFIX"`
	IPv6             netip.Prefix `name:"ipv6" help:"IPv6 subnet, addresses usable at once (no DAD) (default fd6e:6170:696c::/64)." placeholder:"PREFIX"`
	Neighbours       bool         `help:"Add permanent ARP and NDP entries for the peer, so no packet waits for address resolution."`
}

// topology maps the flags onto the testbed they describe.
func (c *testbedUpCmd) topology() (testbed.Topology, error) {
	// Topology reads 0 as "default"; on the command line a 0 is a mistake.
	if c.Queues < 1 {
		return testbed.Topology{}, fmt.Errorf("testbed up: --queues %d: use 1 to %d", c.Queues, testbed.MaxQueues)
	}
	if c.MTU < 1 {
		return testbed.Topology{}, fmt.Errorf("testbed up: --mtu %d: use 1280 to 65535", c.MTU)
	}
	return testbed.Topology{Name: c.Name, Queues: c.Queues, NAPI: c.NAPI, MTU: c.MTU, IPv4: c.IPv4, IPv6: c.IPv6,
		Neighbours: c.Neighbours, Lifetime: testbed.Persistent, StateDir: c.store().Dir}, nil
}

func (c *testbedUpCmd) Run(ctx context.Context, std *stdio) error {
	topo, err := c.topology()
	if err != nil {
		return err
	}
	store := c.store()
	reaped, err := store.Reap()
	for _, name := range reaped {
		fmt.Fprintf(std.err, "napilab: removed testbed %s: the process that owned it is gone\n", name)
	}
	if err != nil && !errors.Is(err, os.ErrPermission) {
		fmt.Fprintf(std.err, "napilab: warning: %v\n", err)
	}
	tb, err := testbed.Up(ctx, topo)
	if err != nil {
		return err
	}
	defer tb.Close()
	fmt.Fprint(std.out, tb.Diagram())
	fmt.Fprintf(std.out, "\nEnter a host:   napilab testbed exec %s a -- sh\nRemove it:      napilab testbed down %s\n", tb.Name, tb.Name)
	return nil
}

type testbedDownCmd struct {
	testbedStoreFlag `embed:""`
	Name             string `arg:"" optional:"" help:"Testbed to remove."`
	All              bool   `help:"Remove every testbed napilab recorded."`
}

func (c *testbedDownCmd) Run(std *stdio) error {
	store := c.store()
	switch {
	case c.Name != "" && c.All:
		return errors.New("testbed down: give a name or --all, not both")
	case c.Name != "":
		if err := down(std.out, store, c.Name); err != nil {
			return err
		}
		fmt.Fprintf(std.out, "removed testbed %s\n", c.Name)
		return nil
	case !c.All:
		return errors.New("testbed down: name the testbed to remove, or pass --all; `napilab testbed show` lists them")
	}
	recs, listErr := store.List()
	var errs []error
	for _, r := range recs {
		if err := down(std.out, store, r.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(std.out, "removed testbed %s\n", r.Name)
	}
	if len(recs) == 0 && listErr == nil {
		fmt.Fprintln(std.out, "no testbeds to remove")
	}
	return errors.Join(append(errs, listErr)...)
}

// down removes a testbed, after restoring the polling modes applied to its devices: removing a device does not
// put back what a mode changed machine-wide (busy_read, RT throttling, ...), its journal does. A mode whose
// holder is still running is that holder's to restore: down refuses and names it.
func down(w io.Writer, store testbed.Store, name string) error {
	rec, err := store.Get(name)
	if err != nil {
		return store.Down(name) // Down says what is wrong with it, or removes what there is
	}
	modes, err := napi.ListApplied(napi.DefaultRegistry)
	if err != nil {
		return fmt.Errorf("testbed %s stays: the polling modes applied to it could not be listed (%w)", name, err)
	}
	for _, m := range modes {
		if !inTestbed(m.NetNS, rec) {
			continue
		}
		if m.Held && m.HolderAlive {
			return fmt.Errorf("testbed %s stays: %s; stop that napilab first (it restores what it changed on "+
				"exit), then run napilab testbed down %s", name, m, name)
		}
		rep, err := napi.RestoreFile(m.Journal, napi.OpenNetNS, napi.RestoreOptions{})
		if rep != nil {
			fmt.Fprint(w, rep.Format())
		}
		if err != nil {
			return fmt.Errorf("testbed %s stays: restoring %s on %s first failed (%w); run %s, then napilab "+
				"testbed down %s", name, m.Preset, m.Device, err, m.Fix, name)
		}
	}
	return store.Down(name)
}

// inTestbed reports whether a namespace a journal names is one of the testbed's.
func inTestbed(ns napi.NetNS, r testbed.Record) bool {
	for _, h := range []testbed.HostRecord{r.A, r.B} {
		if ns.Path == netns.Path(h.Namespace) && (h.Inode == 0 || ns.Inode == 0 || ns.Inode == h.Inode) {
			return true
		}
	}
	return false
}

type testbedExecCmd struct {
	testbedStoreFlag `embed:""`
	Name             string   `arg:"" help:"Testbed name."`
	Host             string   `arg:"" enum:"a,b" help:"Host to run in: a or b."`
	Command          []string `arg:"" passthrough:"" help:"Command and arguments, after --."`
}

func (c *testbedExecCmd) Run(std *stdio) error {
	if len(c.Command) > 0 && c.Command[0] == "--" {
		c.Command = c.Command[1:]
	}
	if len(c.Command) == 0 {
		return errors.New("testbed exec: give the command to run after --, e.g. napilab testbed exec " + c.Name + " a -- sh")
	}
	path, err := exec.LookPath(c.Command[0])
	if err != nil {
		return fmt.Errorf("testbed exec: %w", err)
	}
	tb, err := c.store().Open(c.Name)
	if err != nil {
		return err
	}
	defer tb.Close()
	h := tb.A
	if c.Host == "b" {
		h = tb.B
	}
	// Exec replaces napilab with the command, so its exit status and signals are the command's own.
	return h.Exec(path, c.Command, os.Environ())
}

type testbedShowCmd struct {
	testbedStoreFlag `embed:""`
	Name             string `arg:"" optional:"" help:"Show only this testbed."`
	JSON             bool   `name:"json" help:"Print JSON instead of diagrams."`
}

// testbedView is what show prints about one testbed.
type testbedView struct {
	Name       string           `json:"name"`
	Status     string           `json:"status"` // up, broken, incomplete or unchecked
	Problem    string           `json:"problem,omitempty"`
	Lifetime   testbed.Lifetime `json:"lifetime"`
	Created    time.Time        `json:"created"`
	OwnerPID   int              `json:"owner_pid"`
	OwnerAlive bool             `json:"owner_alive"`
	Queues     int              `json:"queues"`
	MTU        int              `json:"mtu"`
	NAPI       bool             `json:"napi"`
	Neighbours bool             `json:"neighbours"`
	A          hostView         `json:"a"`
	B          hostView         `json:"b"`

	diagram string
}

type hostView struct {
	Namespace string       `json:"namespace"`
	Link      string       `json:"link"`
	Ifindex   int          `json:"ifindex"`
	MAC       string       `json:"mac"`
	IPv4      netip.Prefix `json:"ipv4"`
	IPv6      netip.Prefix `json:"ipv6"`
	RxQueues  int          `json:"rx_queues,omitempty"`
	TxQueues  int          `json:"tx_queues,omitempty"`
}

func (c *testbedShowCmd) Run(std *stdio) error {
	store := c.store()
	var recs []testbed.Record
	var listErr error
	if c.Name != "" {
		r, err := store.Get(c.Name)
		if err != nil {
			return err
		}
		recs = []testbed.Record{r}
	} else {
		recs, listErr = store.List()
	}
	views := make([]testbedView, 0, len(recs))
	for _, r := range recs {
		views = append(views, viewTestbed(store, r))
	}
	if c.JSON {
		enc := json.NewEncoder(std.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(views); err != nil {
			return err
		}
		return listErr
	}
	if len(views) == 0 && listErr == nil {
		fmt.Fprintln(std.out, "no testbeds; `napilab testbed up` makes one")
	}
	for i, v := range views {
		if i > 0 {
			fmt.Fprintln(std.out)
		}
		owner := "exited"
		if v.OwnerAlive {
			owner = "running"
		}
		if v.diagram != "" {
			fmt.Fprint(std.out, v.diagram)
		} else {
			fmt.Fprintf(std.out, "testbed %s (%s): %s: %s\n", v.Name, v.Lifetime, v.Status, v.Problem)
		}
		fmt.Fprintf(std.out, "created %s by pid %d (%s)\n", v.Created.Local().Format(time.DateTime), v.OwnerPID, owner)
		if v.Status == "broken" || v.Status == "incomplete" {
			fmt.Fprintf(std.out, "remove it with `napilab testbed down %s`\n", v.Name)
		}
	}
	return listErr
}

// viewTestbed describes a recorded testbed, checked against the kernel when possible.
func viewTestbed(store testbed.Store, r testbed.Record) testbedView {
	t := r.Topology
	v := testbedView{Name: r.Name, Status: "up", Lifetime: t.Lifetime, Created: r.Created, OwnerPID: r.Owner.PID,
		OwnerAlive: r.Alive(), Queues: t.Queues, MTU: t.MTU, NAPI: t.NAPI, Neighbours: t.Neighbours,
		A: hostView{Namespace: r.A.Namespace, Link: r.A.Link, Ifindex: r.A.Ifindex, MAC: r.A.MAC, IPv4: r.A.IPv4, IPv6: r.A.IPv6},
		B: hostView{Namespace: r.B.Namespace, Link: r.B.Link, Ifindex: r.B.Ifindex, MAC: r.B.MAC, IPv4: r.B.IPv4, IPv6: r.B.IPv6}}
	if !r.Complete {
		v.Status, v.Problem = "incomplete", fmt.Sprintf("pid %d did not finish building it", r.Owner.PID)
		return v
	}
	tb, err := store.Open(r.Name)
	switch {
	case errors.Is(err, os.ErrPermission):
		v.Status, v.Problem = "unchecked", "checking it against the kernel needs root"
		return v
	case err != nil:
		v.Status, v.Problem = "broken", strings.TrimPrefix(err.Error(), "testbed "+fmt.Sprintf("%q", r.Name)+": ")
		return v
	}
	defer tb.Close()
	for _, p := range []struct {
		h   *testbed.Host
		dst *hostView
	}{{tb.A, &v.A}, {tb.B, &v.B}} {
		*p.dst = hostView{Namespace: p.h.Namespace, Link: p.h.Link, Ifindex: p.h.Ifindex, MAC: p.h.MAC.String(),
			IPv4: p.h.IPv4, IPv6: p.h.IPv6, RxQueues: p.h.RxQueues, TxQueues: p.h.TxQueues}
	}
	v.diagram = tb.Diagram()
	return v
}
