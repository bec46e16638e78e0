package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/trace"
	"github.com/napilab/napilab/internal/usage"
	"github.com/napilab/napilab/internal/version"
)

// MachineOptions tune the real machine.
type MachineOptions struct {
	// Watchdog starts the process that restores a journal once its lease is over if this one is gone (see
	// napi.Watch); the command line starts `napilab agent --watchdog JOURNAL`.
	Watchdog func(journal string) (*os.Process, error)
	// SHA256 of the running executable, for the end's header.
	SHA256 string
}

// machine is the real Machine: the host the agent runs on.
type machine struct {
	o       MachineOptions
	nsPath  string
	dev     string
	sys     *napi.System
	dir     string
	lock    *napi.Lock
	closers []func() error
}

// NewMachine returns the machine the agent runs on.
func NewMachine(o MachineOptions) Machine { return &machine{o: o} }

func (m *machine) Hello(ctx context.Context, a HelloArgs) (HelloResult, error) {
	if a.Dev == "" {
		return HelloResult{}, kernel.Fieldf("dev", "is missing: name the end's network device")
	}
	m.nsPath, m.dev = netns.Path(a.NetNS), a.Dev
	var res HelloResult
	if a.Role == RoleServer {
		sys, err := napi.Open(a.NetNS)
		if err != nil {
			return HelloResult{}, err
		}
		m.sys = sys
		if m.dir, err = sys.DeviceDirOf(a.Dev); err != nil {
			return HelloResult{}, err
		}
		h := napi.Holder{Controller: a.Controller, Since: time.Now().UTC(), Command: a.Command}
		h.Process, _ = kernel.Self()
		if m.lock, err = napi.TakeLock(m.dir, h); err != nil {
			return HelloResult{}, err
		}
		// Journals of holders that died go back before anything else happens to the device.
		stale, err := napi.RestoreStale(m.dir, napi.WatchOptions{})
		res.Stale = stale
		if err != nil {
			return res, fmt.Errorf("restore what an earlier napilab left on %s: %w", a.Dev, err)
		}
	}
	end, err := Describe(a.Role, a.Dev, m.nsPath)
	if err != nil {
		return res, err
	}
	end.SHA256 = m.o.SHA256
	res.End = end
	return res, nil
}

// Describe is the header of an end on this host: napilab, kernel and CPU, and the device as the kernel reports
// it. The controller's own (client) end is described by the same function as a remote one.
func Describe(role Role, dev, nsPath string) (EndInfo, error) {
	host, _ := os.Hostname()
	e := EndInfo{Role: role, Napilab: version.String(), Kernel: kernel.Release(), Hostname: host, Arch: runtime.GOARCH,
		CPUModel: usage.CPUModel(), CPUs: runtime.NumCPU()}
	if usable, err := rr.UsableCPUs(); err == nil {
		e.UsableCPUs = usable.String()
	}
	d, err := describeDevice(dev, nsPath)
	if err != nil {
		return e, err
	}
	e.Device = d
	if pid := irqbalancePID(); pid > 0 {
		e.Irqbalance = fmt.Sprintf("running (pid %d)", pid)
		e.Notes = append(e.Notes, note.Warnf("irqbalance runs on %s (pid %d): it moves IRQ affinity back behind "+
			"napilab's back, so a mode that pins IRQs may not stay pinned; stop it for the run (systemctl stop "+
			"irqbalance) and start it again after", host, pid))
	}
	if nsPath == "" {
		e.CarriesSSH = carriesSSH(d.Addrs)
	}
	return e, nil
}

// describeDevice reads the device in its namespace: addresses and MTU, the driver and firmware (ethtool's
// drvinfo), its NAPIs.
func describeDevice(dev, nsPath string) (DeviceInfo, error) {
	d := DeviceInfo{Name: dev, NetNS: nsPath}
	err := netns.Do(nsPath, func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return &kernel.FieldError{Field: "dev", Kind: os.ErrNotExist, Msg: fmt.Sprintf("%q does not exist in %s: "+
				"check the device's name and its network namespace", dev, netns.Describe(nsPath))}
		}
		d.Ifindex, d.MTU, d.MAC = ifc.Index, ifc.MTU, ifc.HardwareAddr.String()
		if addrs, err := ifc.Addrs(); err == nil {
			for _, a := range addrs {
				d.Addrs = append(d.Addrs, a.String())
			}
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil
		}
		defer unix.Close(fd)
		if info, err := unix.IoctlGetEthtoolDrvinfo(fd, dev); err == nil {
			d.Driver, d.Version = unix.ByteSliceToString(info.Driver[:]), unix.ByteSliceToString(info.Version[:])
			d.Firmware, d.BusInfo = unix.ByteSliceToString(info.Fw_version[:]), unix.ByteSliceToString(info.Bus_info[:])
		}
		return nil
	})
	if err != nil {
		return d, err
	}
	sys, err := napi.Open(nsPath)
	if err != nil {
		return d, nil // a header without NAPIs is still a header (no netdev family: an old kernel)
	}
	defer sys.Close()
	if qs, err := sys.Netdev.Queues(uint32(d.Ifindex)); err == nil {
		for _, q := range qs {
			if q.Type == netdev.QueueRX {
				d.Queues++
			}
		}
	}
	if f, err := sys.Netdev.Features(); err == nil {
		d.Features = &f
	}
	if ns, err := sys.Netdev.NAPIs(uint32(d.Ifindex)); err == nil {
		for _, n := range ns {
			d.NAPIs = append(d.NAPIs, NAPIInfo{ID: n.ID, IRQ: int(n.IRQ), Threaded: n.Threaded.String(), PID: int(n.PID)})
		}
	}
	return d, nil
}

// irqbalancePID finds a running irqbalance.
func irqbalancePID() int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == "irqbalance" {
			return pid
		}
	}
	return 0
}

// carriesSSH reports whether one of addrs is the local address of the ssh session this process came through
// ($SSH_CONNECTION is "client-ip client-port server-ip server-port").
func carriesSSH(addrs []string) bool {
	f := strings.Fields(os.Getenv("SSH_CONNECTION"))
	if len(f) != 4 {
		return false
	}
	local, err := netip.ParseAddr(f[2])
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Unmap() == local.Unmap() {
			return true
		}
	}
	return false
}

func (m *machine) Probe(_ context.Context, modes []napi.Mode) ([]ModeSupport, error) {
	if m.sys == nil {
		return nil, errors.New("probe needs a server end")
	}
	out := make([]ModeSupport, len(modes))
	for i, md := range modes {
		out[i] = ModeSupport{Mode: md.Preset, Supported: true}
		if _, err := m.plan(md); err != nil {
			out[i].Supported, out[i].Reason = false, err.Error()
		}
	}
	return out, nil
}

func (m *machine) plan(md napi.Mode) (*napi.Plan, error) {
	if md.Device != m.dev || netns.Path(md.NetNS) != m.nsPath {
		return nil, fmt.Errorf("the mode is for %s in %s, but this session locked %s in %s", md.Device,
			netns.Describe(netns.Path(md.NetNS)), m.dev, netns.Describe(m.nsPath))
	}
	t, err := m.sys.Resolve(md)
	if err != nil {
		return nil, err
	}
	return napi.Build(md, t)
}

func (m *machine) Plan(_ context.Context, md napi.Mode) (*napi.Plan, error) {
	if m.sys == nil {
		return nil, errors.New("plan needs a server end")
	}
	return m.plan(md)
}

func (m *machine) Hold(ctx context.Context, md napi.Mode, lease time.Duration) (Holding, error) {
	if m.sys == nil {
		return nil, errors.New("apply needs a server end")
	}
	p, err := m.plan(md)
	if err != nil {
		return nil, err
	}
	h, err := m.sys.Hold(ctx, p, napi.HoldOptions{ApplyOptions: napi.ApplyOptions{Journal: napi.NewJournalPath(m.dir)},
		Lease: lease, Watchdog: m.o.Watchdog})
	if err != nil {
		return nil, err
	}
	return heldResult(h, p), nil
}

func heldResult(h *napi.Held, p *napi.Plan) *held {
	j := h.Applied().Journal
	l, _ := napi.LoadLease(j.Path())
	return &held{Held: h, res: ApplyResult{Plan: p, Journal: j.Path(), Kthreads: h.Applied().Kthreads(),
		Deadline: h.Deadline(), Watchdog: l.Watchdog.PID, Entries: j.Entries}}
}

// HoldService stops unit for the session, journaled in the end's device directory like a mode (so that a stale
// journal of it is restored by the next hello), and under the same kind of lease and watchdog.
func (m *machine) HoldService(ctx context.Context, unit string, lease time.Duration) (Holding, error) {
	sys := m.sys
	if sys == nil { // a client end: its device's namespace, opened for this
		var err error
		if sys, err = napi.Open(m.nsPath); err != nil {
			return nil, err
		}
		m.closeLater(sys.Close)
	}
	t, err := sys.DeviceTarget(m.dev)
	if err != nil {
		return nil, err
	}
	p := napi.ServicePlan(t, unit, "it moves IRQ affinity back behind napilab's back")
	h, err := sys.Hold(ctx, p, napi.HoldOptions{Lease: lease, Watchdog: m.o.Watchdog,
		ApplyOptions: napi.ApplyOptions{Journal: napi.NewJournalPath(napi.DeviceDir(t))}})
	if err != nil {
		return nil, err
	}
	return heldResult(h, p), nil
}

func (m *machine) closeLater(f func() error) { m.closers = append(m.closers, f) }

// held adapts *napi.Held to Holding.
type held struct {
	*napi.Held
	res ApplyResult
}

func (h *held) Result() ApplyResult { return h.res }

func (m *machine) OpenServer(ctx context.Context, a ServerOpenArgs) (Server, rr.LinkInfo, error) {
	if a.Link.Dev != m.dev {
		return nil, rr.LinkInfo{}, fmt.Errorf("server-open on %s, but this session locked %s", a.Link.Dev, m.dev)
	}
	l, err := rr.OpenLinkIn(ctx, a.Link, m.nsPath)
	if err != nil {
		return nil, rr.LinkInfo{}, err
	}
	srv, err := rr.NewServer(l.Sock, a.Service, rr.DefaultThreads(), rr.ServerOptions{Local: l.Info.Local,
		StampFailures: l.Prog.StampFailures})
	if err != nil {
		l.Close()
		return nil, rr.LinkInfo{}, err
	}
	s := &server{link: l, srv: srv, dev: a.Link.Dev, nsPath: m.nsPath}
	// The tracers load once, for the whole session; they attach only while a cell runs.
	if s.obs, err = trace.NewObserver(trace.AllOptions()); err != nil {
		s.traceNote = fmt.Sprintf("who polled the NAPIs was not traced: %v", err)
	}
	return s, l.Info, nil
}

// server runs the rr server in this process, one run per cell, observing who polls its NAPIs meanwhile.
type server struct {
	link      *rr.Link
	srv       *rr.Server
	dev       string
	nsPath    string
	obs       *trace.Observer
	traceNote string
	observing bool

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan runResult
}

type runResult struct {
	st  rr.ServerStats
	err error
}

func (s *server) Start(ctx context.Context, th rr.Threads, bp rr.BusyPoll) error {
	if err := s.srv.SetThreads(th); err != nil {
		return err
	}
	if err := rr.SetBusyPoll(s.link.Sock, bp); err != nil {
		return err
	}
	s.observe()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan runResult, 1)
	go func() {
		st, err := s.srv.Run(ctx)
		done <- runResult{st, err}
	}()
	<-s.srv.Ready()
	s.mu.Lock()
	s.cancel, s.done = cancel, done
	s.mu.Unlock()
	select {
	case r := <-done: // the run ended before it served: its thread could not start
		cancel()
		if s.observing {
			s.observing = false
			_, _ = s.obs.Stop()
		}
		s.mu.Lock()
		s.cancel, s.done = nil, nil
		s.mu.Unlock()
		if r.err == nil {
			r.err = errors.New("the server stopped before it served")
		}
		return r.err
	default:
		return nil
	}
}

func (s *server) Stop() (ServerResult, error) {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel, s.done = nil, nil
	s.mu.Unlock()
	if cancel == nil {
		return ServerResult{}, errors.New("the server is not running")
	}
	cancel()
	r := <-done
	res := ServerResult{Stats: r.st, TraceNote: s.traceNote}
	if s.observing {
		s.observing = false
		obs, err := s.obs.Stop()
		if err == nil {
			att := obs.Attest()
			res.Trace = &att
		} else {
			res.TraceNote = fmt.Sprintf("who polled the NAPIs was not traced: %v", err)
		}
	}
	return res, r.err
}

// observe starts the observation of a cell: the device is resolved now, after the mode is in place, so its
// NAPI ids and kthreads are the cell's.
func (s *server) observe() {
	if s.obs == nil {
		return
	}
	dev, err := trace.ResolveDevice(s.nsPath, s.dev)
	if err == nil {
		t := dev.Target()
		t.Threads = dev.Kthreads()
		err = s.obs.Start(t)
	}
	if err != nil {
		s.traceNote = fmt.Sprintf("who polled the NAPIs was not traced: %v", err)
		return
	}
	s.observing = true
}

// Close stops a run still in progress, unloads the tracers and closes the link.
func (s *server) Close() error {
	_, _ = s.Stop() // "not running" is the usual answer
	if s.obs != nil {
		s.obs.Close()
	}
	return s.link.Close()
}

func (m *machine) OpenClient(ctx context.Context, a ClientOpenArgs) (Client, rr.LinkInfo, error) {
	return OpenClient(ctx, a, m.nsPath)
}

// OpenClient opens a client end in this process, in the network namespace at nsPath ("" for napilab's own):
// what a client agent does, and what the controller does for its own end.
func OpenClient(ctx context.Context, a ClientOpenArgs, nsPath string) (Client, rr.LinkInfo, error) {
	a.Link.NoStamp = true // arrival stamps are the server's measurement; a client never reads them
	l, err := rr.OpenLinkIn(ctx, a.Link, nsPath)
	if err != nil {
		return nil, rr.LinkInfo{}, err
	}
	cli, err := rr.NewClient(l.Sock, a.Workload, a.Threads, rr.ClientOptions{Local: l.Info.Local, Peer: l.Info.Peer,
		UsableCPUs: runtime.NumCPU()})
	if err != nil {
		l.Close()
		return nil, rr.LinkInfo{}, err
	}
	return &client{link: l, cli: cli}, l.Info, nil
}

type client struct {
	link *rr.Link
	cli  *rr.Client
}

func (c *client) Run(ctx context.Context, w rr.Workload, th rr.Threads) (*rr.ClientResult, error) {
	if err := c.cli.Set(w, th); err != nil {
		return nil, err
	}
	return c.cli.Run(ctx)
}

func (c *client) Close() error { return c.link.Close() }

func (m *machine) Close() error {
	var errs []error
	for _, f := range m.closers {
		errs = append(errs, f())
	}
	m.closers = nil
	if m.lock != nil {
		errs = append(errs, m.lock.Release())
		m.lock = nil
	}
	if m.sys != nil {
		errs = append(errs, m.sys.Close())
		m.sys = nil
	}
	return errors.Join(errs...)
}
