package sysknob_test

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/sysknob"
	"github.com/napilab/napilab/internal/sysknob/sysknobtest"
	"github.com/napilab/napilab/internal/testenv"
)

// Names of the veth pair the privileged tests create inside their own namespace; distinctive, so that the
// host is unlikely to have a device of the same name.
const vethA, vethB = "napisk-a", "napisk-b"

// vethNamespace creates an anonymous network namespace holding a veth pair with queues rx and tx queues per
// end, and returns a descriptor of it. The namespace lives only as long as descriptors refer to it: the kernel
// removes it, veth included, when the test closes the last one, even if the test fails half-way.
func vethNamespace(t *testing.T, queues int) int {
	t.Helper()
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends inside the new namespace and dies with us
		ns, err := netns.New()
		if err != nil {
			done <- result{-1, err}
			return
		}
		h, err := netlink.NewHandleAt(ns)
		if err == nil {
			la := netlink.NewLinkAttrs()
			la.Name, la.NumTxQueues, la.NumRxQueues = vethA, queues, queues
			err = h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: vethB, PeerTxQLen: -1,
				PeerNumTxQueues: uint32(queues), PeerNumRxQueues: uint32(queues)})
			h.Close()
		}
		if err != nil {
			ns.Close()
			done <- result{-1, err}
			return
		}
		done <- result{int(ns), nil}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("create namespace with a veth pair: %v", r.err)
	}
	t.Cleanup(func() { unix.Close(r.fd) })
	return r.fd
}

// withoutCaps runs fn on a thread whose effective capabilities lack caps. Capabilities belong to threads, so
// the thread is never handed back to Go: it dies when fn returns.
func withoutCaps(t *testing.T, fn func(), caps ...int) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		for _, c := range caps {
			data[c/32].Effective &^= 1 << (uint(c) % 32)
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("drop capabilities: %v", err)
	}
}

func hostRoot(t *testing.T) *sysknob.Root {
	t.Helper()
	r, err := sysknob.Host()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// realRead returns a function reading k's current text through the view itself.
func realRead[T any](t *testing.T, k sysknob.Knob[T]) func() string {
	return func() string {
		t.Helper()
		s, err := k.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return s.Text
	}
}

// sysfsMounts counts the sysfs mounts this thread's mount namespace has.
func sysfsMounts(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), " - sysfs ")
}

// TestPrivNetNSView proves the namespace view reaches a device the host cannot see: it reads, writes and restores
// the NAPI knobs of a veth inside a fresh namespace, without adding a mount to the host's table.
func TestPrivNetNSView(t *testing.T) {
	testenv.RequirePriv(t)
	nsfd := vethNamespace(t, 4)
	host := hostRoot(t)
	mounts := sysfsMounts(t)
	view, err := sysknob.NetNS(nsfd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { view.Close() })
	if !strings.HasPrefix(view.String(), "network namespace net:[") {
		t.Errorf("view name %q", view)
	}
	if got := sysfsMounts(t); got != mounts {
		t.Errorf("the host's mount table went from %d to %d sysfs mounts; the view's sysfs must be detached", mounts, got)
	}

	_, err = host.GROFlushTimeout(vethA).Get()
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "there is no device "+vethA+" in /sys/class/net of the host") {
		t.Errorf("host view of the namespace's veth: %v", err)
	}

	k := view.NAPIDeferHardIRQs(vethA)
	applyRestore(t, k, 100, "100\n", realRead(t, k))
	g := view.GROFlushTimeout(vethA)
	applyRestore(t, g, 15*time.Microsecond, "15000\n", realRead(t, g))
	rps := view.RPSCPUs(vethB, 3)
	applyRestore(t, rps, sysknob.CPUs(0), "1\n", realRead(t, rps))

	// On 6.18 a veth without XDP or GRO has no NAPI instance, and the kernel refuses to thread none.
	if err := view.Threaded(vethA).Set(true); !errors.Is(err, kernel.ErrNotSupported) ||
		!strings.HasSuffix(err.Error(), "; the device has no NAPI instance to thread (a veth has one only while XDP or GRO is on)") {
		t.Errorf("threaded on a NAPI-less veth = %v, want kernel.ErrNotSupported with the reason", err)
	}
}

// TestPrivBusyReadIsMachineWide shows that net.core.busy_read cannot be set per namespace: the namespace view
// reports it missing with a sentence saying why, and the host's value does not move.
func TestPrivBusyReadIsMachineWide(t *testing.T) {
	testenv.RequirePriv(t)
	nsfd := vethNamespace(t, 1)
	host := hostRoot(t)
	before, err := host.BusyRead().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := host.Restore(before); err != nil {
			t.Error(err)
		}
	})
	view, err := sysknob.NetNS(nsfd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { view.Close() })

	err = view.BusyRead().Set(400 * time.Microsecond)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "net.core.busy_read does not exist in network namespace") ||
		!strings.Contains(err.Error(), "machine-wide") {
		t.Errorf("busy_read in the namespace = %v, want os.ErrNotExist explaining it is machine-wide", err)
	}
	after, err := host.BusyRead().Snapshot()
	if err != nil || after.Text != before.Text {
		t.Errorf("host busy_read went from %q to %q (%v)", before.Text, after.Text, err)
	}
}

// TestPrivPermission drops CAP_NET_ADMIN on one thread: sysfs refuses the write and the error says what to do.
func TestPrivPermission(t *testing.T) {
	testenv.RequirePriv(t)
	view, err := sysknob.NetNS(vethNamespace(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { view.Close() })
	withoutCaps(t, func() { err = view.GROFlushTimeout(vethA).Set(time.Microsecond) }, unix.CAP_NET_ADMIN)
	if !errors.Is(err, os.ErrPermission) || !strings.HasSuffix(err.Error(), "; run as root") ||
		!strings.Contains(err.Error(), `write "1000" to gro_flush_timeout of `+vethA) {
		t.Errorf("write without CAP_NET_ADMIN = %v", err)
	}
	if d, err := view.GROFlushTimeout(vethA).Get(); err != nil || d != 0 {
		t.Errorf("gro_flush_timeout = %v, %v after a refused write, want 0", d, err)
	}
}

// TestFakePermission makes a fake knob read-only and drops CAP_DAC_OVERRIDE, so the write fails with EACCES as it
// would for a non-root user.
func TestFakePermission(t *testing.T) {
	tree := sysknobtest.New(t)
	if err := os.Chmod(tree.Path("/proc/sys/net/core/busy_poll"), 0o444); err != nil {
		t.Fatal(err)
	}
	var err error
	withoutCaps(t, func() { err = tree.Root.BusyPoll().Set(50 * time.Microsecond) }, unix.CAP_DAC_OVERRIDE)
	if !errors.Is(err, os.ErrPermission) || !strings.HasSuffix(err.Error(), "; run as root") {
		t.Errorf("write to a read-only knob = %v", err)
	}
}

// TestPrivRejectedWriteKeepsValue asks for an RT runtime longer than the period, which the kernel refuses with
// EINVAL; the message must carry the value, and the host knob must not change.
func TestPrivRejectedWriteKeepsValue(t *testing.T) {
	testenv.RequirePriv(t)
	host := hostRoot(t)
	k := host.SchedRTRuntime()
	before, err := k.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := host.Restore(before); err != nil {
			t.Error(err)
		}
	})
	period, err := host.SchedRTPeriod().Get()
	if err != nil {
		t.Fatal(err)
	}
	err = k.Set(2 * period)
	want := fmt.Sprintf(`write "%d" to kernel.sched_rt_runtime_us (/proc/sys/kernel/sched_rt_runtime_us): invalid argument`,
		2*period/time.Microsecond)
	if !errors.Is(err, unix.EINVAL) || err.Error() != want {
		t.Errorf("runtime above period: %v\nwant: %s", err, want)
	}
	if after, _ := k.Snapshot(); after.Text != before.Text {
		t.Errorf("sched_rt_runtime_us went from %q to %q", before.Text, after.Text)
	}
}

// startSleeper starts a child process that blocks until the returned stop function runs, which waits for it.
func startSleeper(t *testing.T) (pid int, stop func()) {
	t.Helper()
	h := testenv.StartHelper(t, []string{envSleeper + "=1"})
	cmd := h.Cmd
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			h.In.Close()
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	return cmd.Process.Pid, stop
}

// TestPrivSchedFIFOAndAffinity does to a sleeping child what the seed's setup does to the NAPI kthread (chrt -f
// 50, taskset -pc), reads it back, restores it, and checks the sentence once the child is gone.
func TestPrivSchedFIFOAndAffinity(t *testing.T) {
	testenv.RequirePriv(t)
	host := hostRoot(t)
	pid, stop := startSleeper(t)
	before, err := host.Sched(pid)
	if err != nil {
		t.Fatal(err)
	}
	online, err := host.OnlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if before.Policy != sysknob.PolicyOther || before.Priority != 0 || !before.CPUs.Equal(online) {
		t.Fatalf("child starts as %+v, want SCHED_OTHER on every online CPU (%v)", before, online)
	}
	last := sysknob.CPUs(online.Max())
	if err := host.SetFIFO(pid, 50); err != nil {
		t.Fatal(err)
	}
	if err := host.SetAffinity(pid, last); err != nil {
		t.Fatal(err)
	}
	got, err := host.Sched(pid)
	if err != nil || got.Policy != sysknob.PolicyFIFO || got.Priority != 50 || !got.CPUs.Equal(last) {
		t.Fatalf("after chrt -f 50 + taskset %v: %+v, %v", last, got, err)
	}

	err = host.SetAffinity(pid, sysknob.CPUs(online.Max()+1))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("CPU %d is not online (online CPUs: %s)", online.Max()+1, online)) {
		t.Errorf("affinity to an offline CPU = %v", err)
	}
	for _, prio := range []int{0, 100} {
		if err := host.SetFIFO(pid, prio); err == nil || !strings.Contains(err.Error(), "want 1 to 99") {
			t.Errorf("SetFIFO(%d) = %v", prio, err)
		}
	}

	if err := host.RestoreSched(before); err != nil {
		t.Fatal(err)
	}
	if after, err := host.Sched(pid); err != nil || after.Policy != before.Policy || after.Priority != 0 ||
		after.Nice != before.Nice || !after.CPUs.Equal(before.CPUs) {
		t.Errorf("after restore: %+v, %v; want %+v", after, err, before)
	}

	stop()
	_, err = host.Sched(pid)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), fmt.Sprintf("thread %d is gone", pid)) {
		t.Errorf("Sched of an exited child = %v", err)
	}
	if err := host.SetFIFO(pid, 50); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SetFIFO of an exited child = %v", err)
	}
}

// TestSchedChecksBeforeCalling runs against the fake tree: the checks that need no syscall refuse bad input,
// and Sched of this very process reads the fake's Cpus_allowed_list.
func TestSchedChecksBeforeCalling(t *testing.T) {
	tree := sysknobtest.New(t)
	r := tree.Root
	self := os.Getpid()
	s, err := r.Sched(self)
	if err != nil || s.PID != self || !s.CPUs.Equal(sysknob.CPURange(0, 3)) {
		t.Errorf("Sched(self) = %+v, %v; want the fake's CPUs 0-3", s, err)
	}
	if err := r.SetAffinity(self, sysknob.CPUs(1, 7)); err == nil ||
		!strings.Contains(err.Error(), "CPU 7 is not online (online CPUs: 0-3)") {
		t.Errorf("SetAffinity beyond the fake's CPUs = %v", err)
	}
	if err := r.SetAffinity(self, sysknob.CPUSet{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("SetAffinity to nothing = %v", err)
	}
	if _, err := r.Sched(0); err == nil {
		t.Error("Sched(0) must be refused")
	}
	const nopid = 1<<22 + 12345 // above pid_max's ceiling: never a live thread
	if _, err := r.Sched(nopid); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "is gone") {
		t.Errorf("Sched of a missing thread = %v", err)
	}
	if err := r.RestoreSched(sysknob.Sched{PID: self, Policy: sysknob.PolicyDeadline}); err == nil ||
		!strings.Contains(err.Error(), "SCHED_DEADLINE") {
		t.Errorf("RestoreSched of a deadline thread = %v", err)
	}
}

// TestHostReads parses this machine's real files and checks that snapshotting and restoring them changes
// nothing (an unchanged knob is never written, so this needs no privileges).
func TestHostReads(t *testing.T) {
	host := hostRoot(t)
	online, err := host.OnlineCPUs()
	if err != nil || online.IsEmpty() {
		t.Fatalf("OnlineCPUs = %v, %v", online, err)
	}
	in, err := host.Interrupts()
	if err != nil {
		t.Fatal(err)
	}
	if len(in.CPUs) != online.Len() {
		t.Errorf("/proc/interrupts has %d CPU columns, %d CPUs are online", len(in.CPUs), online.Len())
	}
	if _, err := host.Workqueues(); err != nil {
		t.Error(err)
	}
	if _, err := host.CheckRTThrottling(); err != nil {
		t.Error(err)
	}
	snaps := []func() (sysknob.Snapshot, error){
		host.BusyRead().Snapshot, host.BusyPoll().Snapshot, host.RPSSockFlowEntries().Snapshot,
		host.TimerMigration().Snapshot, host.SchedRTRuntime().Snapshot, host.SchedRTPeriod().Snapshot,
		host.UnboundWorkqueueCPUMask().Snapshot, host.NAPIDeferHardIRQs("lo").Snapshot,
		host.GROFlushTimeout("lo").Snapshot, host.RPSCPUs("lo", 0).Snapshot,
	}
	for _, snap := range snaps {
		s, err := snap()
		if err != nil {
			t.Error(err)
			continue
		}
		if err := host.Restore(s); err != nil {
			t.Errorf("restore unchanged %s: %v", s.Knob, err)
		}
	}
	if _, err := host.SMTControl().Get(); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SMT control: %v", err)
	}
}
