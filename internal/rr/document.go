package rr

import (
	"os"
	"runtime"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/usage"
	"github.com/napilab/napilab/internal/version"
)

// Schema names the layout of Document. It changes only when a field changes meaning or disappears; new fields
// may be added under the same name.
const Schema = "napilab.rr/v2"

// Document is the one JSON document a run writes with --json: the fully resolved configuration, the machine it
// ran on and every figure, so a result can be reproduced and compared from the file alone.
type Document struct {
	Schema   string    `json:"schema"`
	Napilab  string    `json:"napilab_version"`
	Kernel   string    `json:"kernel"`
	CPUModel string    `json:"cpu_model"`
	CPUs     int       `json:"cpus"`
	Hostname string    `json:"hostname"`
	Started  time.Time `json:"started"`

	Role     Role        `json:"role"`
	Options  LinkOptions `json:"link_options"`
	Workload *Workload   `json:"workload,omitempty"` // a client's
	Service  *Service    `json:"service,omitempty"`  // a server's
	Threads  Threads     `json:"threads"`
	Link     LinkInfo    `json:"link"` // what opening the link resolved
	// Mode is the NAPI polling mode the system was in, when napilab set it (demo, sweep).
	Mode any `json:"mode,omitempty"`

	Client *ClientResult `json:"client,omitempty"`
	Server *ServerStats  `json:"server,omitempty"`
}

// NewDocument describes a run about to start on this machine; the caller sets Workload or Service.
func NewDocument(role Role, o LinkOptions, th Threads, link LinkInfo) Document {
	host, _ := os.Hostname()
	return Document{Schema: Schema, Napilab: version.String(), Kernel: kernel.Release(), CPUModel: usage.CPUModel(),
		CPUs: runtime.NumCPU(), Hostname: host, Started: time.Now().UTC(), Role: role, Options: o, Threads: th,
		Link: link}
}
