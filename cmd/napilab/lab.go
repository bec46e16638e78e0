package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/napilab/napilab/internal/lab"
	"github.com/napilab/napilab/internal/lab/guest"
)

// The napilab binary is also the lab guest's init: when qemu's kernel starts it as PID 1 (/init) it runs the
// guest side and powers off, before main parses any flag.
func init() { guest.MaybeRunInit() }

type labCmd struct {
	Run     labRunCmd     `cmd:"" help:"Boot a current kernel under qemu and run a program in it: napilab lab run -- BINARY [ARGS]."`
	Shell   labShellCmd   `cmd:"" help:"Boot a current kernel under qemu with an interactive shell on its console."`
	Kernels labKernelsCmd `cmd:"" help:"List cached lab kernels and the newest one the archive offers."`
	Test    labTestCmd    `cmd:"" help:"Compile Go packages' tests and run them all in one lab boot (NAPILAB_LAB=1)."`
	Fetch   labFetchCmd   `cmd:"" help:"Download and cache a lab kernel (e.g. to warm a CI machine)."`
}

type labKernelFlags struct {
	Kernel  string `help:"Kernel release (7.3.4+deb13-cloud-amd64) or upstream version (7.3.4); default: the newest." placeholder:"VERSION"`
	Suite   string `help:"Debian suite to take the kernel from (default: trixie-backports, then sid)."`
	Flavour string `help:"Kernel flavour." enum:"cloud-amd64,amd64" default:"cloud-amd64"`
	Mirror  string `help:"Debian mirror URL." default:"http://deb.debian.org/debian"`
	Offline bool   `help:"Use cached kernels only; never contact the archive."`
	Cache   string `help:"Cache directory (default: $XDG_CACHE_HOME/napilab/lab)." type:"path"`
}

func (f *labKernelFlags) spec() lab.KernelSpec {
	return lab.KernelSpec{Suite: f.Suite, Version: f.Kernel, Flavour: f.Flavour, Mirror: f.Mirror, Offline: f.Offline}
}

type labVMFlags struct {
	VCPUs    int      `name:"vcpus" help:"Guest vCPUs." default:"2"`
	Memory   int      `help:"Guest memory in MiB." default:"1024"`
	NICs     int      `name:"nics" help:"virtio-net NICs, wired to each other inside qemu." default:"2"`
	Queues   int      `help:"Queue pairs per NIC; above 1 uses taps in a private network namespace (root)." default:"1"`
	ZeroCopy bool     `help:"Make the NICs AF_XDP zero-copy capable (VIRTIO_F_ACCESS_PLATFORM)." default:"true" negatable:""`
	Env      []string `help:"Environment variable for the guest program (KEY=VALUE, repeatable)." sep:"none" placeholder:"KEY=VALUE"`
	Module   []string `help:"Extra kernel module to load, e.g. sch_netem (repeatable)." sep:"none"`
	File     []string `help:"Host file to copy into the guest (HOST:GUEST, repeatable)." sep:"none" placeholder:"HOST:GUEST"`
	Accel    string   `help:"qemu -accel value." default:"tcg,thread=single"`
}

func (f *labVMFlags) apply(s *lab.Spec) error {
	s.VCPUs, s.MemoryMiB, s.NICs, s.Queues, s.ZeroCopy = f.VCPUs, f.Memory, f.NICs, f.Queues, f.ZeroCopy
	s.Env, s.Modules, s.Accel = f.Env, f.Module, f.Accel
	for _, hg := range f.File {
		host, g, ok := strings.Cut(hg, ":")
		if !ok {
			return fmt.Errorf("lab: --file %q is not HOST:GUEST; write e.g. --file ./conf.json:/etc/conf.json", hg)
		}
		s.Files = append(s.Files, lab.File{Host: host, Guest: g})
	}
	return nil
}

type labRunCmd struct {
	labKernelFlags `embed:""`
	labVMFlags     `embed:""`
	Timeout        time.Duration `help:"Hard limit for the whole VM, boot included." default:"10m"`
	Watchdog       time.Duration `help:"Guest-side limit for the program, after which blocked-task stacks are dumped (0: derived from --timeout)."`
	Quiet          bool          `short:"q" help:"Do not stream the guest console; print it only on failure."`
	Results        string        `help:"Write what the program sent to $NAPILAB_LAB_RESULTS to this file." type:"path"`
	Command        []string      `arg:"" name:"program" passthrough:"" help:"A host binary (a path: copied into the guest with its shared libraries) or a guest command (a name, e.g. sh), then its arguments."`
}

func (c *labRunCmd) Run(ctx context.Context, std *stdio) error {
	if len(c.Command) > 0 && c.Command[0] == "--" {
		c.Command = c.Command[1:]
	}
	if len(c.Command) == 0 {
		return errors.New("lab run: no program given; write napilab lab run -- BINARY [ARGS]")
	}
	step := lab.Step{Args: c.Command}
	if strings.ContainsRune(c.Command[0], '/') {
		if fi, err := os.Stat(c.Command[0]); err != nil || fi.IsDir() {
			return fmt.Errorf("lab run: %s is not a file on this host; give a binary's path, or a bare name for a guest command", c.Command[0])
		}
		step = lab.Step{Path: c.Command[0], Args: c.Command[1:]}
	}
	spec := lab.Spec{Kernel: c.spec(), CacheDir: c.Cache, Timeout: c.Timeout, Watchdog: c.Watchdog,
		Steps: []lab.Step{step}, Progress: std.err}
	if err := c.apply(&spec); err != nil {
		return err
	}
	if !c.Quiet {
		spec.Console = std.out
	}
	res, err := lab.Run(ctx, spec)
	if err != nil {
		var ge *lab.GuestError
		if errors.As(err, &ge) && !c.Quiet {
			return errors.New(strings.SplitN(err.Error(), ";", 2)[0] + "; the console is above") // already shown live
		}
		return err
	}
	if c.Results != "" {
		if err := os.WriteFile(c.Results, res.Results, 0o644); err != nil {
			return fmt.Errorf("lab run: write results: %w", err)
		}
	}
	d := res.Durations
	fmt.Fprintf(std.err, "lab: kernel %s: exit code %d (fetch %v, build %v, boot %v, run %v, total %v)\n", res.KernelRelease,
		res.ExitCode, d.Fetch.Round(time.Millisecond), d.Build.Round(time.Millisecond), d.Boot.Round(time.Millisecond),
		d.Run.Round(time.Millisecond), d.Total.Round(time.Millisecond))
	if res.ExitCode != 0 {
		return exitStatus(res.ExitCode) // the guest program's exit code is the command's
	}
	return nil
}

type labShellCmd struct {
	labKernelFlags `embed:""`
	labVMFlags     `embed:""`
	Timeout        time.Duration `help:"Hard limit for the session." default:"4h"`
}

func (c *labShellCmd) Run(ctx context.Context, std *stdio) error {
	spec := lab.Spec{Kernel: c.spec(), CacheDir: c.Cache, Timeout: c.Timeout, Watchdog: -1, Shell: true,
		Stdin: os.Stdin, Console: std.out, Progress: std.err}
	if err := c.apply(&spec); err != nil {
		return err
	}
	// qemu puts a terminal into raw mode and restores it on a clean exit; restore it ourselves in case qemu is
	// killed at the timeout.
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		if st, err := term.GetState(fd); err == nil {
			defer term.Restore(fd, st)
		}
	}
	res, err := lab.Run(ctx, spec)
	if err != nil {
		var ge *lab.GuestError
		if errors.As(err, &ge) {
			return errors.New(strings.SplitN(err.Error(), ";", 2)[0])
		}
		return err
	}
	if res.ExitCode != 0 {
		return exitStatus(res.ExitCode)
	}
	return nil
}

type labKernelsCmd struct {
	labKernelFlags `embed:""`
}

func (c *labKernelsCmd) Run(ctx context.Context, std *stdio) error {
	ks, err := lab.CachedKernels(c.Cache)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(std.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CACHED KERNEL\tSUITE\tPACKAGE\tFETCHED\tDIRECTORY")
	for _, k := range ks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Release, k.Suite, k.PackageVersion, k.FetchedAt.Format(time.DateOnly), k.Dir)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(ks) == 0 {
		fmt.Fprintln(std.out, "(none cached)")
	}
	if c.Offline {
		return nil
	}
	rel, suite, err := lab.ResolveKernel(ctx, c.spec(), c.Cache, std.err)
	if err != nil {
		return err
	}
	fmt.Fprintf(std.out, "newest available: %s (%s)\n", rel, suite)
	return nil
}

type labFetchCmd struct {
	labKernelFlags `embed:""`
}

func (c *labFetchCmd) Run(ctx context.Context, std *stdio) error {
	if err := lab.CheckHostTools(); err != nil {
		return err
	}
	k, err := lab.FetchKernel(ctx, c.spec(), c.Cache, std.err)
	if err != nil {
		return err
	}
	fmt.Fprintf(std.out, "%s %s\n", k.Release, k.Dir)
	return nil
}

type labTestCmd struct {
	labKernelFlags `embed:""`
	labVMFlags     `embed:""`
	Timeout        time.Duration `help:"Hard limit for the whole VM, boot included." default:"20m"`
	Match          string        `name:"run" help:"Run only tests matching this regular expression (go test -run)."`
	Verbose        bool          `short:"v" help:"Verbose test output (go test -v)."`
	PkgTimeout     time.Duration `help:"Per-package limit (go test -timeout): a hung package panics with its goroutines and the next one runs." default:"5m"`
	RequirePriv    bool          `help:"Set NAPILAB_REQUIRE_PRIV=1 in the guest so a skipped privileged test fails." default:"true" negatable:""`
	Packages       []string      `arg:"" optional:"" help:"Package patterns, as for go test (default ./...)."`
}

func (c *labTestCmd) Run(ctx context.Context, std *stdio) error {
	out, err := os.MkdirTemp("", "napilab-labtest-")
	if err != nil {
		return fmt.Errorf("lab test: %w", err)
	}
	defer os.RemoveAll(out)
	args := []string{"-test.timeout=" + c.PkgTimeout.String()}
	if c.Verbose {
		args = append(args, "-test.v")
	}
	if c.Match != "" {
		args = append(args, "-test.run="+c.Match)
	}
	fmt.Fprintln(std.err, "lab: compiling test binaries")
	steps, files, err := lab.GoTestSteps(ctx, ".", out, c.Packages, args)
	if err != nil {
		return err
	}
	spec := lab.Spec{Kernel: c.spec(), CacheDir: c.Cache, Timeout: c.Timeout, Steps: steps, KeepGoing: true,
		Console: std.out, Progress: std.err}
	if err := c.apply(&spec); err != nil {
		return err
	}
	spec.Files = append(spec.Files, files...)
	if c.RequirePriv {
		spec.Env = append(spec.Env, "NAPILAB_REQUIRE_PRIV=1")
	}
	res, err := lab.Run(ctx, spec)
	if err != nil {
		return err
	}
	failed := 0
	for i, st := range steps {
		verdict := "not run"
		if i < len(res.Steps) {
			verdict = "ok"
			if rc := res.Steps[i].ExitCode; rc != 0 {
				verdict = fmt.Sprintf("FAIL (exit %d)", rc)
			}
		}
		if verdict != "ok" {
			failed++
		}
		fmt.Fprintf(std.out, "%-8s %s\n", verdict, st.Name)
	}
	fmt.Fprintf(std.out, "lab: kernel %s: %d passed, %d failed\n", res.KernelRelease, len(steps)-failed, failed)
	if failed > 0 {
		return fmt.Errorf("lab test: %d of %d packages failed on kernel %s", failed, len(steps), res.KernelRelease)
	}
	return nil
}

// Help tells what the guest program finds: kong prints it below the flags of `napilab lab run --help`.
func (labRunCmd) Help() string {
	return `The guest is a Debian cloud kernel booted under qemu (TCG) with the napilab binary as its init.
The program runs as root in the initial namespaces with proc, sysfs, devtmpfs, bpffs, tracefs and
debugfs mounted, lo up, virtio_net and veth loaded, and busybox applets on PATH. It sees:

  NAPILAB_LAB=1             it runs in the lab
  NAPILAB_LAB_NICS          the virtio NICs as "name=mac" pairs in --nics order (the NICs are wired
                            to each other by a hub inside qemu; they start down and unaddressed)
  NAPILAB_LAB_RESULTS       a device whose bytes reach the host unchanged (see --results)

A binary given by path is copied in with its shared libraries; a bare name (sh, ip, ...) runs the
guest's own command. napilab exits with the program's exit code.`
}
