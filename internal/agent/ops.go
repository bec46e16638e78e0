package agent

import (
	"context"
	"time"

	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/sysknob"
	"github.com/napilab/napilab/internal/trace"
	"github.com/napilab/napilab/internal/usage"
)

// The operations, each with its arguments and result.
const (
	OpHello       = "hello"        // HelloArgs → HelloResult; first, once: versions, the end's header, the lock
	OpProbe       = "probe"        // ProbeArgs → ProbeResult: which modes this end can put in place
	OpPlan        = "plan"         // PlanArgs → napi.Plan
	OpApply       = "apply"        // ApplyArgs → ApplyResult: a mode in place under a lease
	OpRenew       = "renew"        // RenewArgs → RenewResult
	OpRestore     = "restore"      // {} → RestoreResult
	OpServerOpen  = "server-open"  // ServerOpenArgs → rr.LinkInfo: the AF_XDP server's link, kept across cells
	OpServerStart = "server-start" // ServerStartArgs → {}: answers once the server polls
	OpServerStop  = "server-stop"  // {} → ServerResult
	OpClientOpen  = "client-open"  // ClientOpenArgs → rr.LinkInfo: a client end on this host
	OpClientRun   = "client-run"   // ClientRunArgs → rr.ClientResult: one cell, the channel quiet meanwhile
	OpStats       = "stats"        // {} → StatsResult
	OpStopService = "stop-service" // StopServiceArgs → StopServiceResult: a unit stopped for the session
	OpBye         = "bye"          // {} → RestoreResult: restore, close, and exit
)

// Role says what an end does in a sweep: a server end holds modes and answers; a client end only measures.
type Role string

// The roles of an end.
const (
	RoleServer Role = "server"
	RoleClient Role = "client"
)

// HelloArgs introduce the controller and name the device this session drives.
type HelloArgs struct {
	Protocol   int    `json:"protocol"`
	Version    string `json:"version"`
	Role       Role   `json:"role"`
	Controller string `json:"controller"` // the controller's host, for the lock's holder
	Command    string `json:"command,omitempty"`
	Dev        string `json:"dev"`
	NetNS      string `json:"netns,omitempty"` // a name under /run/netns or a path on the agent's host
}

// EndInfo is the reproducibility header of one end of a sweep: enough to know what ran where.
type EndInfo struct {
	Role     Role   `json:"role"`
	Napilab  string `json:"napilab_version"`
	SHA256   string `json:"sha256,omitempty"`
	Kernel   string `json:"kernel"`
	Hostname string `json:"hostname"`
	Arch     string `json:"arch"`
	CPUModel string `json:"cpu_model"`
	CPUs     int    `json:"cpus"`
	// UsableCPUs lists the CPUs napilab may run on there (online, in its affinity), e.g. "0-1"; empty when
	// unknown. Pinned loops must use one of them.
	UsableCPUs string     `json:"usable_cpus,omitempty"`
	Device     DeviceInfo `json:"device"`
	// Irqbalance says whether irqbalance runs here ("" when it does not): it moves IRQ affinity back behind
	// napilab's back.
	Irqbalance string `json:"irqbalance,omitempty"`
	// CarriesSSH is set when the device carries the ssh session the agent came through.
	CarriesSSH bool        `json:"carries_ssh,omitzero"`
	Notes      []note.Note `json:"notes,omitempty"`
}

// DeviceInfo describes the device of an end.
type DeviceInfo struct {
	Name     string     `json:"name"`
	Ifindex  int        `json:"ifindex"`
	NetNS    string     `json:"netns,omitempty"`
	Driver   string     `json:"driver,omitempty"`
	Version  string     `json:"driver_version,omitempty"`
	Firmware string     `json:"firmware,omitempty"`
	BusInfo  string     `json:"bus_info,omitempty"`
	MAC      string     `json:"mac,omitempty"`
	MTU      int        `json:"mtu"`
	Addrs    []string   `json:"addrs,omitempty"`
	Queues   int        `json:"rx_queues"`
	NAPIs    []NAPIInfo `json:"napis,omitempty"`
	// Features are the NAPI settings the kernel lets napilab change on it (nil when the netdev family is
	// missing: a kernel before 6.5).
	Features *netdev.Features `json:"napi_features,omitempty"`
}

// NAPIInfo is one NAPI of the device as napi-get reports it.
type NAPIInfo struct {
	ID       uint32 `json:"id"`
	IRQ      int    `json:"irq,omitzero"`
	Threaded string `json:"threaded,omitempty"`
	PID      int    `json:"pid,omitzero"`
}

// HelloResult is the end's header, what it restored before anything else, and who held the device if it could
// not be locked.
type HelloResult struct {
	Agent Magic        `json:"agent"`
	End   EndInfo      `json:"end"`
	Stale []napi.Stale `json:"stale,omitempty"`
}

// ProbeArgs lists modes to check.
type ProbeArgs struct {
	Modes []napi.Mode `json:"modes"`
}

// ModeSupport says whether a mode can be put in place on the end, and why not.
type ModeSupport struct {
	Mode      string `json:"mode"`
	Supported bool   `json:"supported"`
	Reason    string `json:"reason,omitempty"`
}

// ProbeResult answers ProbeArgs, mode for mode.
type ProbeResult struct {
	Modes []ModeSupport `json:"modes"`
}

// PlanArgs asks what a mode would change.
type PlanArgs struct {
	Mode napi.Mode `json:"mode"`
}

// ApplyArgs put a mode in place for as long as the lease, renewed, lasts.
type ApplyArgs struct {
	Mode  napi.Mode     `json:"mode"`
	Lease time.Duration `json:"lease_ns"`
}

// ApplyResult is what an apply put in place.
type ApplyResult struct {
	Plan     *napi.Plan      `json:"plan"`
	Journal  string          `json:"journal"`
	Kthreads []sysknob.Sched `json:"kthreads,omitempty"`
	Deadline time.Time       `json:"deadline"`
	Watchdog int             `json:"watchdog_pid,omitzero"`
	// Entries are the journal's: each change with the state its target had before, and its outcome.
	Entries []napi.Entry `json:"entries,omitempty"`
}

// RenewArgs extend the lease.
type RenewArgs struct {
	Lease time.Duration `json:"lease_ns"`
}

// RenewResult is the new deadline.
type RenewResult struct {
	Deadline time.Time `json:"deadline"`
}

// RestoreResult says what a restore did; nil Report when nothing was applied.
type RestoreResult struct {
	Report *napi.RestoreReport `json:"report,omitempty"`
	// Expired is set when the lease had run out and the agent had restored by itself already.
	Expired bool `json:"expired,omitzero"`
}

// ServerOpenArgs open the server's datapath.
type ServerOpenArgs struct {
	Link    rr.LinkOptions `json:"link"`
	Service rr.Service     `json:"service"`
}

// ServerStartArgs start answering, with the threads and busy-poll options of the mode in place.
type ServerStartArgs struct {
	Threads  rr.Threads  `json:"threads"`
	BusyPoll rr.BusyPoll `json:"busy_poll"`
}

// ServerResult is what the server did in one cell: counts and durations, never timestamps, since the two ends'
// clocks are not synchronised.
type ServerResult struct {
	Stats rr.ServerStats `json:"stats"`
	Usage *usage.Usage   `json:"usage,omitempty"` // the server's CPU, its NAPI kthreads' and its IRQs'
	// LeaseLost is set when the mode's lease ran out during the cell and the agent restored it: the cell did
	// not run under the mode it names.
	LeaseLost bool `json:"lease_lost,omitzero"`
	// Trace is who polled the server's NAPIs during the run, and how (package trace); nil when the host cannot
	// trace, and TraceNote says why.
	Trace     *trace.Attestation `json:"trace,omitempty"`
	TraceNote string             `json:"trace_note,omitempty"`
}

// ClientOpenArgs open a client end's datapath, its requests built for the workload's payload.
type ClientOpenArgs struct {
	Link     rr.LinkOptions `json:"link"`
	Workload rr.Workload    `json:"workload"`
	Threads  rr.Threads     `json:"threads"`
}

// ClientRunArgs run one cell.
type ClientRunArgs struct {
	Workload rr.Workload `json:"workload"`
	Threads  rr.Threads  `json:"threads"`
}

// StopServiceArgs stop a systemd unit for the rest of the session (irqbalance), under a lease renewed with the
// mode's; it is started again when the session ends, the lease runs out, or by the watchdog.
type StopServiceArgs struct {
	Unit  string        `json:"unit"`
	Lease time.Duration `json:"lease_ns"`
}

// StopServiceResult says whether the unit was running (and so was stopped).
type StopServiceResult struct {
	WasActive bool   `json:"was_active"`
	Journal   string `json:"journal"`
}

// StatsResult is the session's state.
type StatsResult struct {
	Applied  string    `json:"applied,omitempty"` // the preset in place
	Deadline time.Time `json:"deadline,omitzero"`
	Serving  bool      `json:"serving"`
	Expired  bool      `json:"expired,omitzero"` // a lease ran out since the last apply
}

// empty is the arguments or result of an operation that has none.
type empty struct{}

// Machine is what an agent acts on: the real one (NewMachine) or a fake in tests.
type Machine interface {
	// Hello checks the end, locks its device (a server end), restores stale journals and describes the end.
	Hello(ctx context.Context, a HelloArgs) (HelloResult, error)
	Probe(ctx context.Context, modes []napi.Mode) ([]ModeSupport, error)
	Plan(ctx context.Context, m napi.Mode) (*napi.Plan, error)
	Hold(ctx context.Context, m napi.Mode, lease time.Duration) (Holding, error)
	OpenServer(ctx context.Context, a ServerOpenArgs) (Server, rr.LinkInfo, error)
	OpenClient(ctx context.Context, a ClientOpenArgs) (Client, rr.LinkInfo, error)
	// HoldService stops a systemd unit under a lease (a journaled hold of napi.ServicePlan).
	HoldService(ctx context.Context, unit string, lease time.Duration) (Holding, error)
	// Close releases the lock and whatever the machine keeps open.
	Close() error
}

// Holding is a mode in place under a lease (*napi.Held behind an adapter, or a fake).
type Holding interface {
	Result() ApplyResult
	Renew(time.Duration) error
	Deadline() time.Time
	Release() (*napi.RestoreReport, error)
	Done() <-chan struct{}
	Expired() bool
}

// Server is an AF_XDP server end kept open across cells.
type Server interface {
	// Start serves with th and returns once the server polls; Stop ends the run.
	Start(ctx context.Context, th rr.Threads, bp rr.BusyPoll) error
	Stop() (ServerResult, error)
	Close() error
}

// Client is an AF_XDP client end kept open across cells.
type Client interface {
	Run(ctx context.Context, w rr.Workload, th rr.Threads) (*rr.ClientResult, error)
	Close() error
}
