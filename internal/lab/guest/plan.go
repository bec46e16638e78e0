// Package guest is the lab's PID 1: the program the qemu guest kernel starts from the initramfs.
//
// Linux unpacks the initramfs into a tmpfs and execs /init with the console as stdin/stdout/stderr. Nothing is
// mounted and no module is loaded, so init mounts proc, sysfs, devtmpfs, tracefs, debugfs and bpffs, loads the
// NIC drivers with finit_module (the cloud kernel builds virtio_net and veth as modules, compressed with xz; the
// kernel decompresses them itself), brings up lo, and then runs the host's steps in order. If init ever exits the
// kernel panics, so init always ends by powering the machine off, and it prints its verdict first: the host trusts
// only a marker line carrying the run's nonce, which init reads from the plan and deletes before any step runs.
//
// A guest watchdog bounds the steps. When it fires, init dumps the kernel stacks of blocked (D state) tasks and
// NAPI kthreads and triggers sysrq-w before giving up with exit code 124, so a kernel hang leaves evidence on the
// console instead of only a host-side timeout.
//
// The napilab binary (and any test binary that wants to boot the lab) is its own init: it calls MaybeRunInit
// before doing anything else, which takes over only when the process is PID 1 started as /init.
package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Paths inside the guest.
const (
	InitPath = "/init"
	PlanPath = "/napilab/plan.json"
	BinDir   = "/napilab/bin" // the host's step binaries are copied to BinDir/<step index>/<name>
)

// Environment every step sees, besides the plan's own variables.
const (
	EnvLab     = "NAPILAB_LAB"         // "1"
	EnvNICs    = "NAPILAB_LAB_NICS"    // the virtio NICs as name=mac pairs separated by spaces, in MAC order
	EnvResults = "NAPILAB_LAB_RESULTS" // a character device whose bytes reach the host unchanged (virtio-serial)
)

// ResultsPortName names the virtio-serial port that carries bulk results to the host.
const ResultsPortName = "napilab.results"

// Marker prefixes. A marker is "<prefix><nonce>:<fields>" alone on a console line.
const (
	MarkStart = "NAPILAB_LAB_START="
	MarkStep  = "NAPILAB_LAB_STEP="
	MarkExit  = "NAPILAB_LAB_EXIT="
)

// ExitInitFailed is reported when init itself could not prepare the guest; no step ran.
const ExitInitFailed = 125

// ExitWatchdog is the exit code a step gets when the guest watchdog stops it (timeout(1) uses the same number).
const ExitWatchdog = 124

// Plan is what the host asks init to do. It travels as JSON in the per-run initramfs.
type Plan struct {
	Nonce     string        `json:"nonce"`
	Modules   []string      `json:"modules"`    // guest paths of .ko(.xz) files, in load order
	Env       []string      `json:"env"`        // KEY=VALUE for every step
	Steps     []Step        `json:"steps"`      // run in order; the run's exit code is the first non-zero one
	Watchdog  time.Duration `json:"watchdog"`   // budget for all steps together; 0 disables the guest watchdog
	Shell     bool          `json:"shell"`      // run an interactive shell on the serial console instead of steps
	KeepGoing bool          `json:"keep_going"` // run later steps after one fails
}

// Step is one program run by init.
type Step struct {
	Name string   `json:"name"`
	Args []string `json:"args"` // Args[0] is an absolute guest path or a name looked up in PATH
	Env  []string `json:"env"`  // KEY=VALUE added for this step only
	Dir  string   `json:"dir"`  // working directory; empty is /
}

// Validate checks what init relies on; the host checks a richer spec before it builds a plan.
func (p *Plan) Validate() error {
	if !validNonce(p.Nonce) {
		return fmt.Errorf("plan nonce %q is not 8 to 64 hex digits", p.Nonce)
	}
	if !p.Shell && len(p.Steps) == 0 {
		return errors.New("plan has no steps and no shell")
	}
	for i, s := range p.Steps {
		if len(s.Args) == 0 || s.Args[0] == "" {
			return fmt.Errorf("plan step %d has no command", i)
		}
	}
	if p.Watchdog < 0 {
		return fmt.Errorf("plan watchdog %v is negative", p.Watchdog)
	}
	return nil
}

// Marshal encodes the plan for the initramfs.
func (p *Plan) Marshal() ([]byte, error) { return json.Marshal(p) }

// UnmarshalPlan decodes and validates a plan.
func UnmarshalPlan(b []byte) (*Plan, error) {
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decode lab plan: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

func validNonce(s string) bool {
	if len(s) < 8 || len(s) > 64 {
		return false
	}
	return strings.Trim(s, "0123456789abcdef") == ""
}

// StartLine is printed once init is ready to run steps: the kernel release and the guest's uptime.
func StartLine(nonce, release string, uptime time.Duration) string {
	return fmt.Sprintf("%s%s:%s:%d", MarkStart, nonce, release, uptime.Milliseconds())
}

// StepLine reports step i's exit code.
func StepLine(nonce string, i, rc int) string {
	return fmt.Sprintf("%s%s:%d:%d", MarkStep, nonce, i, rc)
}

// ExitLine is the run's verdict, the last thing init prints.
func ExitLine(nonce string, rc int) string { return fmt.Sprintf("%s%s:%d", MarkExit, nonce, rc) }
