package guest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MaybeRunInit turns the process into the lab's init when it is PID 1 started as /init, and otherwise returns at
// once. Call it first in main (or TestMain) of any binary the lab boots as its init. It never returns in the guest.
func MaybeRunInit() {
	if os.Getpid() != 1 || len(os.Args) == 0 || os.Args[0] != InitPath {
		return
	}
	rc := runInit()
	unix.Sync()
	// Power-off ends qemu; restart is the fallback because the lab runs qemu with -no-reboot.
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	os.Exit(rc) // unreachable unless both failed; the kernel then panics and the host sees no exit marker
}

func say(format string, args ...any) {
	// One write per line so a line is never split by the init's own output.
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

func runInit() int {
	os.Setenv("PATH", "/bin:/sbin:/usr/bin:/usr/sbin")
	if err := mountAll(); err != nil {
		say("napilab-init: %v", err)
		return ExitInitFailed
	}
	raw, err := os.ReadFile(PlanPath)
	if err != nil {
		say("napilab-init: read plan: %v", err)
		return ExitInitFailed
	}
	// The nonce must not be readable by the steps, or their output could forge the verdict.
	_ = os.Remove(PlanPath)
	plan, err := UnmarshalPlan(raw)
	if err != nil {
		say("napilab-init: %v", err)
		return ExitInitFailed
	}
	rc := prepareAndRun(plan)
	say("%s", ExitLine(plan.Nonce, rc))
	return rc
}

func prepareAndRun(plan *Plan) int {
	if _, err := os.Stat("/bin/busybox"); err == nil {
		if out, err := exec.Command("/bin/busybox", "--install", "-s", "/bin").CombinedOutput(); err != nil {
			say("napilab-init: busybox --install: %v: %s", err, out)
		}
	}
	for _, m := range plan.Modules {
		if err := loadModule(m); err != nil {
			say("napilab-init: %v", err)
			return ExitInitFailed
		}
	}
	if err := linkUp("lo"); err != nil {
		say("napilab-init: %v", err)
		return ExitInitFailed
	}
	env := append(os.Environ(), EnvLab+"=1", "HOME=/root", "TMPDIR=/tmp", EnvNICs+"="+virtioNICs())
	if port := resultsPort(); port != "" {
		env = append(env, EnvResults+"="+port)
	}
	env = append(env, plan.Env...)

	var uts unix.Utsname
	_ = unix.Uname(&uts)
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	say("%s", StartLine(plan.Nonce, unix.ByteSliceToString(uts.Release[:]), time.Duration(ts.Nano())))

	var deadline <-chan time.Time
	if plan.Watchdog > 0 {
		t := time.NewTimer(plan.Watchdog)
		defer t.Stop()
		deadline = t.C
	}
	if plan.Shell {
		return runShell(env, deadline, plan.Watchdog)
	}
	rc := 0
	for i, s := range plan.Steps {
		src := runStep(s, env, deadline, plan.Watchdog)
		say("%s", StepLine(plan.Nonce, i, src))
		if src != 0 && rc == 0 {
			rc = src
		}
		if src == ExitWatchdog || (src != 0 && !plan.KeepGoing) {
			break
		}
	}
	return rc
}

// mountAll mounts what tests expect of a booted system. proc, sysfs and devtmpfs are required; the tracing and BPF
// filesystems are best effort because a kernel may lack them and only some tests need them.
func mountAll() error {
	required := []struct{ fs, dir string }{{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}}
	for _, m := range required {
		if err := mount(m.fs, m.dir); err != nil {
			return err
		}
	}
	optional := []struct{ fs, dir string }{
		{"tmpfs", "/tmp"}, {"tmpfs", "/run"}, {"devpts", "/dev/pts"}, {"bpf", "/sys/fs/bpf"},
		{"tracefs", "/sys/kernel/tracing"}, {"debugfs", "/sys/kernel/debug"}, {"cgroup2", "/sys/fs/cgroup"},
	}
	for _, m := range optional {
		if err := mount(m.fs, m.dir); err != nil {
			say("napilab-init: %v (continuing)", err)
		}
	}
	// iproute2 and vishvananda/netns keep named namespaces here.
	return os.MkdirAll("/run/netns", 0o755)
}

func mount(fs, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fs, dir, err)
	}
	if err := unix.Mount(fs, dir, fs, unix.MS_NOSUID, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fs, dir, err)
	}
	return nil
}

// loadModule loads one module file. Compressed modules are handed to the kernel as they are: the cloud kernels
// are built with MODULE_DECOMPRESS, and finit_module with MODULE_INIT_COMPRESSED_FILE decompresses in the kernel.
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load module: %w", err)
	}
	defer f.Close()
	flags := 0
	if ext := filepath.Ext(path); ext == ".xz" || ext == ".zst" || ext == ".gz" {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	err = unix.FinitModule(int(f.Fd()), "", flags)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", path, err)
	}
	return nil
}

func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// virtioNICs lists the virtio_net interfaces as name=mac, sorted by MAC: the host numbers the MACs in the order
// of its NIC list, so tests find "the first NIC" by position without trusting probe order.
func virtioNICs() string {
	names, _ := filepath.Glob("/sys/class/net/*")
	type nic struct{ name, mac string }
	var nics []nic
	for _, dir := range names {
		drv, err := os.Readlink(filepath.Join(dir, "device", "driver"))
		if err != nil || filepath.Base(drv) != "virtio_net" {
			continue
		}
		mac, _ := os.ReadFile(filepath.Join(dir, "address"))
		nics = append(nics, nic{filepath.Base(dir), strings.TrimSpace(string(mac))})
	}
	sort.Slice(nics, func(i, j int) bool { return nics[i].mac < nics[j].mac })
	parts := make([]string, len(nics))
	for i, n := range nics {
		parts[i] = n.name + "=" + n.mac
	}
	return strings.Join(parts, " ")
}

func resultsPort() string {
	names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err == nil && strings.TrimSpace(string(b)) == ResultsPortName {
			return "/dev/" + filepath.Base(filepath.Dir(n))
		}
	}
	return ""
}

func runStep(s Step, env []string, deadline <-chan time.Time, budget time.Duration) int {
	cmd := exec.Command(s.Args[0], s.Args[1:]...)
	cmd.Env = append(append([]string(nil), env...), s.Env...)
	if s.Dir != "" {
		// A package without testdata has no directory in the initramfs; its tests still expect to run there.
		if err := os.MkdirAll(s.Dir, 0o755); err != nil {
			say("napilab-init: step %q: %v", s.Name, err)
			return 127
		}
		cmd.Dir = s.Dir
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	// Its own process group, so the watchdog can stop everything the step started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		say("napilab-init: step %q: %v", s.Name, err)
		return 127
	}
	return wait(cmd, deadline, budget)
}

func runShell(env []string, deadline <-chan time.Time, budget time.Duration) int {
	tty, err := os.OpenFile("/dev/ttyS0", os.O_RDWR, 0)
	if err != nil {
		say("napilab-init: open serial console: %v", err)
		return ExitInitFailed
	}
	defer tty.Close()
	say("napilab lab shell: type exit (or press Ctrl-D) to power the guest off")
	cmd := exec.Command("/bin/sh", "-l")
	cmd.Env = append(env, "PS1=lab:\\w# ", "TERM=vt100")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	// The serial port as controlling terminal gives the shell job control and Ctrl-C. Init leads the session
	// that owns it and the shell runs as its foreground job, rather than as a session leader of its own: when a
	// session leader exits the kernel hangs its terminal up and throws away output the UART has not sent yet
	// (the last lines a user typed a command for). Init outlives the shell and waits for the output to drain.
	fd := int(tty.Fd())
	if _, err := unix.Setsid(); err != nil && !errors.Is(err, unix.EPERM) { // EPERM: it already leads one
		say("napilab-init: setsid: %v", err)
		return ExitInitFailed
	}
	if err := unix.IoctlSetInt(fd, unix.TIOCSCTTY, 0); err != nil {
		say("napilab-init: make the serial console init's terminal: %v", err)
		return ExitInitFailed
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Foreground: true, Ctty: fd}
	if err := cmd.Start(); err != nil {
		say("napilab-init: shell: %v", err)
		return 127
	}
	rc := wait(cmd, deadline, budget)
	_ = unix.IoctlSetInt(fd, unix.TCSBRK, 1) // tcdrain: a non-zero argument waits for the output to be sent
	return rc
}

func wait(cmd *exec.Cmd, deadline <-chan time.Time, budget time.Duration) int {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(err)
	case <-deadline:
	}
	say("napilab-init: watchdog: steps still running after %v; dumping blocked tasks", budget)
	dumpStuck(cmd.Process.Pid)
	// A hang in user space shows only futex waits in the kernel stacks. SIGQUIT makes a Go program print every
	// goroutine's stack and exit, which says what it waited for; SIGKILL follows for anything else.
	say("napilab-init: watchdog: SIGQUIT to the step's processes (a Go program prints its goroutines)")
	_ = unix.Kill(-cmd.Process.Pid, unix.SIGQUIT)
	select {
	case <-done:
		return ExitWatchdog
	case <-time.After(quitGrace):
	}
	_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
	// A task stuck in the kernel (D state) ignores SIGKILL; do not wait for it forever.
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		say("napilab-init: watchdog: step did not die after SIGKILL")
	}
	return ExitWatchdog
}

// quitGrace is how long a step has to print its stacks after SIGQUIT before it is killed: a test binary's few
// dozen goroutines take well under a second through the emulated serial port.
const quitGrace = 5 * time.Second

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 127
}

// dumpStuck prints the kernel stack of every task that is blocked (D), is a NAPI kthread, or belongs to the
// step's process group, then asks the kernel for its own blocked-task report (sysrq-w) at full console verbosity.
func dumpStuck(pgid int) {
	tasks, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*")
	for _, t := range tasks {
		stat, err := os.ReadFile(filepath.Join(t, "stat"))
		if err != nil {
			continue
		}
		comm, state, group, ok := parseStat(stat)
		if !ok || !(state == "D" || strings.HasPrefix(comm, "napi/") || group == pgid) {
			continue
		}
		wchan, _ := os.ReadFile(filepath.Join(t, "wchan"))
		stack, _ := os.ReadFile(filepath.Join(t, "stack"))
		say("napilab-init: task %s comm=%s state=%s wchan=%s\n%s", t, comm, state, wchan, bytes.TrimRight(stack, "\n"))
	}
	_ = os.WriteFile("/proc/sys/kernel/printk", []byte("8"), 0)
	_ = os.WriteFile("/proc/sysrq-trigger", []byte("w"), 0)
}
