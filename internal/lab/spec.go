package lab

import (
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/lab/guest"
)

// Defaults used when a Spec leaves a field zero.
const (
	DefaultVCPUs     = 2
	DefaultMemoryMiB = 1024
	DefaultTimeout   = 10 * time.Minute
	DefaultFlavour   = "cloud-amd64"
	DefaultMirror    = "http://deb.debian.org/debian"
	DefaultAccel     = "tcg,thread=single" // multi-threaded TCG hits a rare early-boot "Oops: int3" on 7.3
)

// DefaultSuites are tried in order when KernelSpec.Suite is empty: trixie-backports keeps several versions (a
// stable pin target); sid replaces its kernel daily but always has one.
var DefaultSuites = []string{"trixie-backports", "sid"}

// DefaultModules are loaded in every guest (their dependencies, e.g. failover and net_failover, come along).
// The guest has no modprobe, so nothing is autoloaded: xfrm_user is there because without it every NETLINK_XFRM
// socket fails with EPROTONOSUPPORT, and vishvananda/netlink's NewHandleAt opens one by default; bridge and
// sch_netem because the testbed's bridged topology and its impairments (netem on the bridge ports) are what the
// loss and reordering suites run on, and a lab run of the whole tree must not need flags to pass.
var DefaultModules = []string{"virtio_net", "veth", "xfrm_user", "bridge", "sch_netem"}

// KernelSpec says which Debian kernel to boot.
type KernelSpec struct {
	Suite   string // Debian suite; empty tries DefaultSuites in order
	Version string // kernel release ("7.3.4+deb13-cloud-amd64") or upstream version ("7.3.4"); empty = newest
	Flavour string // "cloud-amd64" (default, small) or "amd64"
	Mirror  string // Debian mirror URL; default DefaultMirror
	Offline bool   // never contact the archive; use the cache only
}

// Step is one program the guest runs.
type Step struct {
	Name string   // for reports; defaults to the program's base name
	Path string   // host file copied into the guest and run; empty means Args[0] is a guest command (busybox)
	Args []string // arguments; when Path is empty, Args[0] is the command
	Env  []string // KEY=VALUE for this step only
	Dir  string   // guest working directory (absolute); empty is /
}

// File is an extra host file placed into the guest.
type File struct {
	Host  string // host path
	Guest string // absolute guest path
	Mode  uint32 // permission bits; 0 keeps the host file's
}

// Spec describes one lab run. The zero value plus one Step is a valid run: two vCPUs, 1 GiB, no NICs.
type Spec struct {
	Kernel    KernelSpec
	VCPUs     int
	MemoryMiB int
	NICs      int  // virtio-net NICs on qemu's internal hub (0..4)
	Queues    int  // queue pairs per NIC; above 1 the NICs use taps in a private network namespace (needs root)
	ZeroCopy  bool // make the NICs capable of AF_XDP zero copy (VIRTIO_F_ACCESS_PLATFORM)

	Timeout  time.Duration // hard limit for the whole VM, boot included; qemu is killed then
	Watchdog time.Duration // guest-side budget for the steps; 0 derives it from Timeout; negative disables it

	Steps     []Step
	KeepGoing bool // run later steps after one fails
	Shell     bool // interactive shell on the serial console instead of steps
	Env       []string
	Files     []File
	Modules   []string // modules to load besides DefaultModules (names like "sch_netem"); built-ins are skipped

	Init     string // host binary used as the guest's /init; empty = the running executable (see guest.MaybeRunInit)
	CacheDir string // default $XDG_CACHE_HOME/napilab/lab
	Accel    string // qemu -accel value; default DefaultAccel

	Console  io.Writer // receives the serial console as it arrives (optional)
	Stdin    io.Reader // feeds the serial console (Shell); nil means no input
	Progress io.Writer // one line per phase (optional)
}

var (
	reSuite   = regexp.MustCompile(`^[a-z][a-z0-9-]{1,40}$`)
	reVersion = regexp.MustCompile(`^[0-9][0-9A-Za-z.+~-]{0,80}$`)
	reModule  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	reEnvKey  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate reports the first problem with s as one sentence: what is wrong and how to fix it.
func (s *Spec) Validate() error {
	k := s.Kernel
	if k.Suite != "" && !reSuite.MatchString(k.Suite) {
		return fmt.Errorf("lab: kernel suite %q is not a Debian suite name; use e.g. trixie-backports or sid", k.Suite)
	}
	if k.Version != "" && !reVersion.MatchString(k.Version) {
		return fmt.Errorf("lab: kernel version %q is malformed; use a release like 7.3.4+deb13-cloud-amd64 or 7.3.4", k.Version)
	}
	if f := k.Flavour; f != "" && f != "cloud-amd64" && f != "amd64" {
		return fmt.Errorf("lab: kernel flavour %q is not supported; use cloud-amd64 or amd64", f)
	}
	if m := k.Mirror; m != "" && !strings.HasPrefix(m, "http://") && !strings.HasPrefix(m, "https://") {
		return fmt.Errorf("lab: mirror %q is not an http(s) URL; use e.g. %s", m, DefaultMirror)
	}
	if s.VCPUs < 0 || s.VCPUs > 8 {
		return fmt.Errorf("lab: %d vCPUs is out of range; use 1 to 8", s.VCPUs)
	}
	if s.MemoryMiB != 0 && (s.MemoryMiB < 256 || s.MemoryMiB > 16384) {
		return fmt.Errorf("lab: %d MiB of guest memory is out of range; use 256 to 16384", s.MemoryMiB)
	}
	if s.NICs < 0 || s.NICs > 4 {
		return fmt.Errorf("lab: %d NICs is out of range; use 0 to 4", s.NICs)
	}
	if s.Queues < 0 || s.Queues > 8 {
		return fmt.Errorf("lab: %d queues per NIC is out of range; use 1 to 8", s.Queues)
	}
	if s.Queues > 1 && s.NICs == 0 {
		return fmt.Errorf("lab: %d queues asked for but no NICs; add NICs or drop the queue count", s.Queues)
	}
	if s.Timeout < 0 || (s.Timeout > 0 && s.Timeout < 10*time.Second) {
		return fmt.Errorf("lab: timeout %v is too short to boot a kernel under TCG; use at least 10s", s.Timeout)
	}
	if s.Watchdog > 0 && s.Watchdog >= s.timeout() {
		return fmt.Errorf("lab: guest watchdog %v must be shorter than the timeout %v so the guest can report stacks before the host kills it", s.Watchdog, s.timeout())
	}
	if s.Shell && len(s.Steps) > 0 {
		return fmt.Errorf("lab: a shell run takes no steps; drop the steps or the shell")
	}
	if !s.Shell && len(s.Steps) == 0 {
		return fmt.Errorf("lab: nothing to run; add a step (a program and its arguments)")
	}
	for i, st := range s.Steps {
		if st.Path == "" && (len(st.Args) == 0 || st.Args[0] == "") {
			return fmt.Errorf("lab: step %d has no program; set Path to a host binary or Args[0] to a guest command", i)
		}
		if st.Dir != "" && (!path.IsAbs(st.Dir) || path.Clean(st.Dir) != st.Dir) {
			return fmt.Errorf("lab: step %d: working directory %q is not a clean absolute guest path", i, st.Dir)
		}
		if err := checkEnv(st.Env); err != nil {
			return fmt.Errorf("lab: step %d: %w", i, err)
		}
	}
	if err := checkEnv(s.Env); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	for _, f := range s.Files {
		if f.Host == "" || !path.IsAbs(f.Guest) || path.Clean(f.Guest) != f.Guest || f.Guest == "/" {
			return fmt.Errorf("lab: file %q -> %q: need a host path and a clean absolute guest path", f.Host, f.Guest)
		}
		if f.Guest == guest.InitPath || strings.HasPrefix(f.Guest, "/napilab/") || f.Guest == "/napilab" {
			return fmt.Errorf("lab: guest path %q is reserved for the lab's init; choose another path", f.Guest)
		}
	}
	for _, m := range s.Modules {
		if !reModule.MatchString(m) {
			return fmt.Errorf("lab: module name %q is malformed; use a name like sch_netem", m)
		}
	}
	if a := s.Accel; a != "" && strings.ContainsAny(a, " \t\n") {
		return fmt.Errorf("lab: accelerator %q contains spaces; use a qemu -accel value such as %s", a, DefaultAccel)
	}
	return nil
}

func checkEnv(env []string) error {
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !reEnvKey.MatchString(k) || strings.ContainsRune(kv, 0) {
			return fmt.Errorf("environment entry %q is not KEY=VALUE; use a name of letters, digits and _", kv)
		}
	}
	return nil
}

func (s *Spec) vcpus() int     { return orDefault(s.VCPUs, DefaultVCPUs) }
func (s *Spec) memoryMiB() int { return orDefault(s.MemoryMiB, DefaultMemoryMiB) }
func (s *Spec) queues() int    { return orDefault(s.Queues, 1) }

func (s *Spec) timeout() time.Duration {
	if s.Timeout == 0 {
		return DefaultTimeout
	}
	return s.Timeout
}

// watchdog leaves the guest time to boot before the steps start and, after it fires, to print its stack dump and
// let the step print its goroutines (SIGQUIT) before the host kills qemu: a quarter of the timeout, at least 15 s
// and at most 60 s, but never more than half of it.
func (s *Spec) watchdog() time.Duration {
	switch {
	case s.Watchdog < 0:
		return 0
	case s.Watchdog > 0:
		return s.Watchdog
	}
	t := s.timeout()
	return t - min(max(t/4, 15*time.Second), time.Minute, t/2)
}

func (s *Spec) accel() string {
	if s.Accel == "" {
		return DefaultAccel
	}
	return s.Accel
}

func (k KernelSpec) flavour() string {
	if k.Flavour == "" {
		return DefaultFlavour
	}
	return k.Flavour
}

func (k KernelSpec) mirror() string {
	if k.Mirror == "" {
		return DefaultMirror
	}
	return k.Mirror
}

func (k KernelSpec) suites() []string {
	if k.Suite == "" {
		return DefaultSuites
	}
	return []string{k.Suite}
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}
