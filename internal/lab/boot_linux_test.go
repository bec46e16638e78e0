package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/lab/guest"
	"github.com/napilab/napilab/internal/testenv"
)

// These tests boot the lab for real. They are privileged-class: they need qemu, busybox-static and a kernel from
// the Debian archive (or the cache), and CI (NAPILAB_REQUIRE_PRIV=1) fails rather than skips without them. The
// kernel is fetched once and shared.

// TestMain lets this test binary be the lab's guest init (PID 1 started as /init) and a guest-side helper
// program (NAPILAB_LAB_HELPER), so the boot tests need no binary besides the one under test.
func TestMain(m *testing.M) {
	guest.MaybeRunInit()
	if h := os.Getenv("NAPILAB_LAB_HELPER"); h != "" {
		os.Exit(runHelper(h))
	}
	os.Exit(m.Run())
}

var labKernel struct {
	once sync.Once
	k    *Kernel
	err  error
}

func requireLab(t *testing.T) {
	t.Helper()
	skipInLab(t)
	testenv.RequirePriv(t)
	for _, tool := range []hostTool{toolQemu, toolBusybox, toolAptGet, toolDpkgDeb} {
		if _, err := tool.path(); err != nil {
			testenv.Skip(t, "%v", err)
		}
	}
	labKernel.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		labKernel.k, labKernel.err = FetchKernel(ctx, KernelSpec{}, "", nil)
	})
	if labKernel.err != nil {
		testenv.Skip(t, "no lab kernel: %v", labKernel.err)
	}
	// qemu under TCG spins both host CPUs; keep other CPU-heavy tests away.
	testenv.Exclusive(t)
}

// labSpec pins the shared kernel so every boot in the test binary uses the same one.
func labSpec(t *testing.T, steps ...Step) Spec {
	return Spec{
		Kernel:   KernelSpec{Version: labKernel.k.Release, Flavour: DefaultFlavour},
		Timeout:  2 * time.Minute,
		Steps:    steps,
		Progress: testWriter{t},
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// helperStep runs this test binary inside the guest in helper mode (see runHelper).
func helperStep(t *testing.T, args ...string) Step {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Step{Name: "helper", Path: exe, Args: args, Env: []string{"NAPILAB_LAB_HELPER=1"}}
}

// runHelper is the guest side of the boot tests: each argument is one check; the exit code says which failed.
func runHelper(_ string) int {
	for i, check := range os.Args[1:] {
		if err := helperCheck(check); err != nil {
			fmt.Printf("helper check %s: %v\n", check, err)
			return 10 + i
		}
		fmt.Printf("helper check %s: ok\n", check)
	}
	return 0
}

func helperCheck(check string) error {
	switch check {
	case "env":
		if os.Getenv(guest.EnvLab) != "1" || os.Getenv("FROM_SPEC") != "yes" {
			return fmt.Errorf("%s=%q FROM_SPEC=%q", guest.EnvLab, os.Getenv(guest.EnvLab), os.Getenv("FROM_SPEC"))
		}
		if _, err := os.Stat(guest.PlanPath); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("the plan (and its nonce) is visible to steps: %v", err)
		}
	case "hang":
		if err := exec.Command("sleep", "600").Start(); err != nil {
			return err
		}
		hangInGo()
	case "kernel":
		// The point of the lab: a kernel with threaded NAPI busy poll.
		v, err := kernel.Running()
		if err != nil || !v.AtLeast(6, 19) {
			return fmt.Errorf("guest kernel %s (%v) is older than 6.19", kernel.Release(), err)
		}
	case "nics":
		nics := strings.Fields(os.Getenv(guest.EnvNICs))
		if len(nics) != 2 || !strings.HasSuffix(nics[0], "="+nicMAC(0)) || !strings.HasSuffix(nics[1], "="+nicMAC(1)) {
			return fmt.Errorf("%s=%q, want two NICs with MACs %s and %s", guest.EnvNICs, os.Getenv(guest.EnvNICs), nicMAC(0), nicMAC(1))
		}
	case "modules":
		for _, m := range append(slices.Clone(DefaultModules), "sch_prio") {
			if _, err := os.Stat("/sys/module/" + m); err != nil {
				return fmt.Errorf("module %s not loaded: %w", m, err)
			}
		}
	case "mounts":
		b, err := os.ReadFile("/proc/mounts")
		if err != nil {
			return err
		}
		for _, fs := range []string{" /sys/fs/bpf bpf ", " /sys/kernel/tracing tracefs ", " /proc proc "} {
			if !strings.Contains(string(b), fs) {
				return fmt.Errorf("%q not mounted", strings.TrimSpace(fs))
			}
		}
	case "results":
		port := os.Getenv(guest.EnvResults)
		if port == "" {
			return fmt.Errorf("%s is unset", guest.EnvResults)
		}
		return os.WriteFile(port, []byte("results-from-guest\n"), 0)
	case "queues":
		for _, nic := range strings.Fields(os.Getenv(guest.EnvNICs)) {
			name, _, _ := strings.Cut(nic, "=")
			if _, err := os.Stat("/sys/class/net/" + name + "/queues/rx-1"); err != nil {
				return fmt.Errorf("%s has one rx queue: %w", name, err)
			}
		}
	default:
		return fmt.Errorf("unknown check")
	}
	return nil
}

// qemuChildren lists qemu processes whose parent is this test process: after Run returns there must be none.
func qemuChildren() []string {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// comm is in parentheses and may contain anything; ppid is the second field after it.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == os.Getpid() && strings.HasPrefix(s[open+1:end], "qemu") {
			out = append(out, p)
		}
	}
	return out
}

func assertNothingLeft(t *testing.T) {
	t.Helper()
	if left := qemuChildren(); len(left) > 0 {
		t.Errorf("qemu still running after Run returned: %v", left)
	}
}

// TestLabBoot runs several steps in one boot: this test binary as a guest helper (copied in, checking the
// guest's environment, kernel, NICs, modules and mounts, and writing to the results port), a busybox command
// exiting 3 that also prints a forged verdict, a dynamically linked host binary, and a last step that must not
// run because KeepGoing is off. The verdict is the first non-zero exit code, 3, and each step's code is kept.
func TestLabBoot(t *testing.T) {
	requireLab(t)
	spec := labSpec(t,
		helperStep(t, "env", "kernel", "nics", "modules", "mounts", "results"),
		Step{Path: "/usr/bin/env", Args: []string{"sh", "-c", "exit 0"}}, // dynamic ELF: libc comes along
		Step{Args: []string{"sh", "-c", "echo " + guest.ExitLine(strings.Repeat("0", 32), 0) + "; exit 3"}},
		Step{Args: []string{"sh", "-c", "echo must-not-run"}},
	)
	spec.NICs, spec.ZeroCopy = 2, true
	spec.Env = []string{"FROM_SPEC=yes"}
	spec.Modules = []string{"sch_prio"}
	res, err := Run(context.Background(), spec)
	assertNothingLeft(t)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 {
		t.Errorf("exit code %d, want 3 (the forged marker must not count); console:\n%s", res.ExitCode, res.Console)
	}
	var codes []int
	for _, s := range res.Steps {
		codes = append(codes, s.ExitCode)
	}
	if fmt.Sprint(codes) != "[0 0 3]" {
		t.Errorf("step exit codes %v, want [0 0 3] (the fourth step must not run); console:\n%s", codes, res.Console)
	}
	if len(res.Steps) > 0 && !strings.Contains(string(res.Steps[0].Output), "helper check results: ok") {
		t.Errorf("helper output not in step 0's output:\n%s", res.Steps[0].Output)
	}
	if strings.Contains(string(res.Console), "must-not-run") {
		t.Error("a step after a failure ran without KeepGoing")
	}
	if string(res.Results) != "results-from-guest\n" {
		t.Errorf("results channel carried %q", res.Results)
	}
	if res.KernelRelease != labKernel.k.Release {
		t.Errorf("guest kernel %q, want %q", res.KernelRelease, labKernel.k.Release)
	}
	t.Logf("kernel %s: fetch %v, build %v, boot %v, run %v, total %v (attempts %d)", res.KernelRelease,
		res.Durations.Fetch, res.Durations.Build, res.Durations.Boot, res.Durations.Run, res.Durations.Total, res.Attempts)
}

// TestLabPanic crashes the guest kernel (sysrq-c). qemu then exits 0 without a verdict, which must be a failure.
func TestLabPanic(t *testing.T) {
	requireLab(t)
	res, err := Run(context.Background(), labSpec(t, Step{Args: []string{"sh", "-c", "echo c > /proc/sysrq-trigger; sleep 60"}}))
	assertNothingLeft(t)
	var ge *GuestError
	if !errors.As(err, &ge) || !errors.Is(err, ErrNoVerdict) {
		t.Fatalf("Run = %v, want a GuestError wrapping ErrNoVerdict", err)
	}
	if ge.Reason != "kernel panic: not syncing: sysrq triggered crash" || !strings.Contains(ge.Tail, "sysrq") {
		t.Errorf("reason %q, tail:\n%s", ge.Reason, ge.Tail)
	}
	if res == nil || res.KernelRelease == "" {
		t.Errorf("the partial result should still say which kernel booted: %+v", res)
	}
}

// TestLabGuestWatchdog hangs a step (a Go program that waits forever, with a child that does too); the guest
// watchdog stops it, dumps the blocked tasks' kernel stacks, makes the Go program print its goroutines (SIGQUIT),
// and reports 124.
func TestLabGuestWatchdog(t *testing.T) {
	requireLab(t)
	spec := labSpec(t, helperStep(t, "hang"))
	spec.Watchdog = 3 * time.Second
	res, err := Run(context.Background(), spec)
	assertNothingLeft(t)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != guest.ExitWatchdog {
		t.Errorf("exit code %d, want %d", res.ExitCode, guest.ExitWatchdog)
	}
	con := string(res.Console)
	if !strings.Contains(con, "watchdog: steps still running") || !strings.Contains(con, "comm=sleep") {
		t.Errorf("no watchdog report with the hung task in the console:\n%s", con)
	}
	if !strings.Contains(con, "SIGQUIT") || !strings.Contains(con, ".hangInGo(") {
		t.Errorf("the hung Go program's goroutines are not in the console:\n%s", con)
	}
}

// hangInGo blocks its goroutine for good, in a frame the goroutine dump names.
func hangInGo() {
	time.Sleep(time.Hour)
}

// TestLabHostTimeout hangs the guest with its watchdog off: the host kills qemu at the timeout, returns ErrTimeout
// with the console tail, and leaves no qemu process and no temporary directory behind.
func TestLabHostTimeout(t *testing.T) {
	requireLab(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	spec := labSpec(t, Step{Args: []string{"sh", "-c", "echo hanging-now; sleep 600"}})
	spec.Timeout, spec.Watchdog = 20*time.Second, -1
	_, err := Run(context.Background(), spec)
	assertNothingLeft(t)
	var ge *GuestError
	if !errors.As(err, &ge) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("Run = %v, want a GuestError wrapping ErrTimeout", err)
	}
	if ge.Tail == "" || !strings.Contains(err.Error(), "console tail") {
		t.Errorf("timeout error without a console tail: %v", err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("temporary files left behind: %v", ents)
	}
}

// TestLabConcurrent runs two labs at once: separate temp dirs, nonces and internal hubs, both verdicts 0.
func TestLabConcurrent(t *testing.T) {
	requireLab(t)
	var wg sync.WaitGroup
	res := make([]*Result, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec := labSpec(t, Step{Args: []string{"sh", "-c", fmt.Sprintf("echo run-%d", i)}})
			spec.NICs = 2
			res[i], errs[i] = Run(context.Background(), spec)
		}()
	}
	wg.Wait()
	assertNothingLeft(t)
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		if res[i].ExitCode != 0 || !strings.Contains(string(res[i].Console), fmt.Sprintf("run-%d", i)) ||
			strings.Contains(string(res[i].Console), fmt.Sprintf("run-%d", 1-i)) {
			t.Errorf("run %d: exit %d, console:\n%s", i, res[i].ExitCode, res[i].Console)
		}
	}
}

// TestLabMultiQueue gives each NIC two queue pairs through taps in a private network namespace.
func TestLabMultiQueue(t *testing.T) {
	requireLab(t)
	spec := labSpec(t, helperStep(t, "nics", "queues"))
	spec.NICs, spec.Queues, spec.ZeroCopy = 2, 2, true
	res, err := Run(context.Background(), spec)
	assertNothingLeft(t)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Errorf("exit code %d; console:\n%s", res.ExitCode, res.Console)
	}
}

// TestLabUnknownModule fails before booting, naming the module.
func TestLabUnknownModule(t *testing.T) {
	requireLab(t)
	spec := labSpec(t, Step{Args: []string{"true"}})
	spec.Modules = []string{"no_such_module"}
	_, err := Run(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "module no_such_module is neither built into") {
		t.Fatalf("Run = %v, want an error naming the module", err)
	}
}

// TestLabShell drives `lab shell` through its stdin: once init has opened the serial console and says so, the
// test types a command and exit; the shell's exit code becomes the verdict.
func TestLabShell(t *testing.T) {
	requireLab(t)
	in, typist := io.Pipe()
	defer typist.Close()
	spec := labSpec(t)
	spec.Shell, spec.Stdin, spec.Watchdog = true, in, -1
	spec.Console = &onText{text: "napilab lab shell:", then: func() {
		go io.WriteString(typist, "echo shell-says-$((6*7)); exit 7\n")
	}}
	res, err := Run(context.Background(), spec)
	assertNothingLeft(t)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 7 || !strings.Contains(string(res.Console), "shell-says-42") {
		t.Errorf("exit code %d; console:\n%s", res.ExitCode, res.Console)
	}
}

// onText calls then once, when text first appears in what is written to it.
type onText struct {
	text string
	then func()
	seen bytes.Buffer
	done bool
}

func (o *onText) Write(p []byte) (int, error) {
	if !o.done {
		o.seen.Write(p)
		if strings.Contains(o.seen.String(), o.text) {
			o.done = true
			o.then()
		}
	}
	return len(p), nil
}

// TestLabGoTests compiles a package's tests with GoTestSteps and runs them in the guest in their package
// directory: the fuzz seed corpus under testdata must be found there (its entries run as subtests). The static
// napilab binary GoTestSteps adds must run in the guest, where tests find it through NAPILAB_BIN.
func TestLabGoTests(t *testing.T) {
	requireLab(t)
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain on PATH")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	steps, files, err := GoTestSteps(context.Background(), root, t.TempDir(),
		[]string{"./internal/lab/guest"}, []string{"-test.v", "-test.run=FuzzParseStat|TestMarkerLines"})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 1 || len(files) == 0 || !slices.Contains(steps[0].Env, EnvNapilabBin+"="+GuestNapilab) ||
		!slices.ContainsFunc(files, func(f File) bool { return f.Guest == GuestNapilab }) {
		t.Fatalf("steps %+v files %+v; want one step that sees %s and the napilab binary among the files", steps, files, EnvNapilabBin)
	}
	steps = append(steps, Step{Args: []string{"sh", "-c", GuestNapilab + " version | grep -q '^napilab '"}})
	spec := labSpec(t, steps...)
	spec.Files = files
	res, err := Run(context.Background(), spec)
	assertNothingLeft(t)
	if err != nil {
		t.Fatal(err)
	}
	con := string(res.Console)
	if res.ExitCode != 0 || len(res.Steps) != 2 || !strings.Contains(con, "--- PASS: FuzzParseStat/kthread") || !strings.Contains(con, "--- PASS: TestMarkerLines") {
		t.Errorf("exit %d; console:\n%s", res.ExitCode, con)
	}
}

// TestRunDirSweepsDeadRuns: a run directory whose owner died (its lock file is there but unlocked) is removed by
// the next run; one whose owner is alive is left alone.
func TestRunDirSweepsDeadRuns(t *testing.T) {
	skipInLab(t)
	t.Setenv("TMPDIR", t.TempDir())
	dead, err := os.MkdirTemp("", "napilab-lab-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, "lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	alive, releaseAlive, err := runDir()
	if err != nil {
		t.Fatal(err)
	}
	defer releaseAlive()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("dead run's directory survived: %v", err)
	}
	third, releaseThird, err := runDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(alive); err != nil {
		t.Errorf("live run's directory was removed: %v", err)
	}
	releaseThird()
	if _, err := os.Stat(third); !os.IsNotExist(err) {
		t.Errorf("release left %s behind: %v", third, err)
	}
}

// BenchmarkLabBoot measures one warm lab run of a trivial step (cached kernel and base archive): the cost every
// lab test pays. It reports the host-side boot (qemu start to init ready) and the whole run.
func BenchmarkLabBoot(b *testing.B) {
	if testenv.InLab() {
		b.Skip("the lab does not nest")
	}
	testenv.RequirePriv(b)
	k, err := FetchKernel(context.Background(), KernelSpec{}, "", nil)
	if err != nil {
		testenv.Skip(b, "no lab kernel: %v", err)
	}
	testenv.Exclusive(b)
	var boot, total time.Duration
	for b.Loop() {
		res, err := Run(context.Background(), Spec{Kernel: KernelSpec{Version: k.Release}, NICs: 2, ZeroCopy: true,
			Steps: []Step{{Args: []string{"true"}}}})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("run: %v %+v", err, res)
		}
		boot += res.Durations.Boot
		total += res.Durations.Total
	}
	b.ReportMetric(boot.Seconds()/float64(b.N), "boot-s/op")
	b.ReportMetric(total.Seconds()/float64(b.N), "run-s/op")
}

// TestRunDirConcurrent: runs that start together never sweep each other's directory. Each of two goroutines
// makes run directories over and over while the other sweeps; every directory is still there, and writable,
// until its own run releases it.
func TestRunDirConcurrent(t *testing.T) {
	skipInLab(t)
	t.Setenv("TMPDIR", t.TempDir())
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				dir, release, err := runDir()
				if err != nil {
					errs <- err
					return
				}
				err = os.WriteFile(filepath.Join(dir, "initrd.cpio"), []byte("x"), 0o600)
				release()
				if err != nil {
					errs <- fmt.Errorf("a live run's directory was swept: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "napilab-lab-*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
