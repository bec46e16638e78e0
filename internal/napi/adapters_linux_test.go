package napi

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"

	"github.com/napilab/napilab/internal/ethtool/ethtooltest"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/netdev/netdevtest"
	"github.com/napilab/napilab/internal/sysknob"
	"github.com/napilab/napilab/internal/sysknob/sysknobtest"
)

// These tests run napi over the real adapters (netdev.Client, ethtool.Client, sysknob views) talking to the
// adapters' own fakes: the netdev family of a given kernel (exact request bytes), the ethtool family of a veth,
// and a temporary sysfs/procfs tree. Only the scheduler is faked here, because the fake netdev family hands out
// kthread pids that belong to real processes of this machine.

type adapters struct {
	nd   *netdevtest.Family
	et   *ethtooltest.Family
	tree *sysknobtest.Tree
	s    *System
}

const vethIfindex = 5

func newAdapters(t *testing.T, k netdevtest.Kernel) *adapters {
	nd := netdevtest.New(t, k).
		AddDevice(netdev.Device{Ifindex: vethIfindex, XDPFeatures: netdev.XDPBasic | netdev.XDPRedirect}).
		AddQueue(netdev.Queue{ID: 0, Ifindex: vethIfindex, Type: netdev.QueueRX, NAPIID: 259}).
		AddQueue(netdev.Queue{ID: 0, Ifindex: vethIfindex, Type: netdev.QueueTX}).
		AddNAPI(netdev.NAPI{ID: 259, Ifindex: vethIfindex})
	et := ethtooltest.New(ethtooltest.Veth(vethIfindex, "vb", 1, 2))
	tree := sysknobtest.New(t)
	tree.AddVeth("vb", 1)
	s := &System{Netdev: nd.Client(), Ethtool: et.Client(t), Knobs: NewKnobs(tree.Root, tree.Root),
		Sched: &fakeSched{cpus: sysknob.CPURange(0, 3), threads: map[int]sysknob.Sched{}},
		Links: staticLinks{{"lo", 1}, {"vb", vethIfindex}}, Kernel: k.Release + ".0"}
	nd.ResetRequests()
	return &adapters{nd: nd, et: et, tree: tree, s: s}
}

type staticLinks []Link

func (l staticLinks) Links() ([]Link, error) { return l, nil }

// fakeSched schedules threads in a map: every thread starts SCHED_OTHER on all CPUs.
type fakeSched struct {
	cpus    sysknob.CPUSet
	threads map[int]sysknob.Sched
}

func (f *fakeSched) Sched(pid int) (sysknob.Sched, error) {
	if s, ok := f.threads[pid]; ok {
		return s, nil
	}
	return sysknob.Sched{PID: pid, CPUs: f.cpus}, nil
}

func (f *fakeSched) SetFIFO(pid, prio int) error {
	s, _ := f.Sched(pid)
	s.Policy, s.Priority = sysknob.PolicyFIFO, prio
	f.threads[pid] = s
	return nil
}

func (f *fakeSched) SetAffinity(pid int, cpus sysknob.CPUSet) error {
	s, _ := f.Sched(pid)
	s.CPUs = cpus
	f.threads[pid] = s
	return nil
}

func (f *fakeSched) RestoreSched(s sysknob.Sched) error {
	f.threads[s.PID] = s
	return nil
}

// treeFiles reads every file of the fake sysfs/procfs tree.
func treeFiles(t *testing.T, tree *sysknobtest.Tree) map[string]string {
	files := map[string]string{}
	err := filepath.WalkDir(tree.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		files[strings.TrimPrefix(path, tree.Dir)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// napiSets returns the attribute payloads of the napi-set requests the fake family received.
func napiSets(nd *netdevtest.Family) [][]byte {
	var out [][]byte
	for _, r := range nd.Requests() {
		if r.Command == 14 {
			out = append(out, r.Attrs)
		}
	}
	return out
}

func attrs(t *testing.T, build func(ae *netlink.AttributeEncoder)) []byte {
	ae := netlink.NewAttributeEncoder()
	build(ae)
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func planOn(t *testing.T, s *System, preset string, edit ...func(*Mode)) *Plan {
	t.Helper()
	m, err := Preset(preset, "vb")
	if err != nil {
		t.Fatal(err)
	}
	m.PollCPU = 1
	for _, e := range edit {
		e(&m)
	}
	p, err := resolveAndBuild(s, m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAdaptersBusyPoll: the exact napi-set bytes of busy-poll and of its restore, and the sysctl written and
// put back in the tree.
func TestAdaptersBusyPoll(t *testing.T) {
	a := newAdapters(t, netdevtest.Linux6_18)
	files := treeFiles(t, a.tree)
	path := journalPath(t)
	if _, err := a.s.Apply(t.Context(), planOn(t, a.s, "busy-poll"), ApplyOptions{Journal: path}); err != nil {
		t.Fatal(err)
	}
	if got := a.tree.Read("/proc/sys/net/core/busy_read"); got != "400\n" {
		t.Errorf("busy_read %q, want 400", got)
	}
	want := [][]byte{attrs(t, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(2, 259)   // id
		ae.Uint32(5, 100)   // defer-hard-irqs
		ae.Uint32(6, 15000) // gro-flush-timeout, NLA_UINT sent as 4 bytes
		ae.Uint32(8, 0)     // threaded = disabled
	})}
	if d := cmp.Diff(want, napiSets(a.nd)); d != "" {
		t.Errorf("napi-set requests (-want +got):\n%s", d)
	}
	n, _ := a.nd.NAPI(259)
	if n.DeferHardIRQs != 100 || n.GROFlushTimeout != DefaultGROFlushTimeout {
		t.Errorf("the family holds %+v after apply", n)
	}
	a.nd.ResetRequests()
	if _, err := RestoreFile(path, func(NetNS) (*System, error) { return a.s, nil }, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	want = [][]byte{attrs(t, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(2, 259)
		ae.Uint32(5, 0)
		ae.Uint32(6, 0)
	})}
	if d := cmp.Diff(want, napiSets(a.nd)); d != "" {
		t.Errorf("restore's napi-set requests (-want +got):\n%s", d)
	}
	if d := cmp.Diff(files, treeFiles(t, a.tree)); d != "" {
		t.Errorf("the tree differs after restore (-before +after):\n%s", d)
	}
}

// TestAdaptersSeed: the seed preset's file writes land in sysfs/procfs as the script writes them, and restore
// leaves the tree byte for byte as it was.
func TestAdaptersSeed(t *testing.T) {
	a := newAdapters(t, netdevtest.Linux6_18)
	files := treeFiles(t, a.tree)
	path := journalPath(t)
	if _, err := a.s.Apply(t.Context(), planOn(t, a.s, "seed-busy-poll"), ApplyOptions{Journal: path, AllowSMT: true}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"/sys/class/net/vb/threaded": "0\n", "/sys/class/net/vb/napi_defer_hard_irqs": "100\n",
		"/sys/class/net/vb/gro_flush_timeout": "15000\n", "/proc/sys/net/core/busy_read": "400\n",
		"/proc/sys/kernel/timer_migration": "0\n", "/proc/sys/kernel/sched_rt_runtime_us": "-1\n",
		"/proc/sys/net/core/rps_sock_flow_entries": "0\n", "/sys/devices/system/cpu/smt/control": "off\n",
		"/sys/devices/virtual/workqueue/writeback/cpumask": "e\n",
	} {
		if got := a.tree.Read(file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if sets := napiSets(a.nd); len(sets) != 0 {
		t.Errorf("the seed writes the device-wide files, but napi-set was sent: %x", sets)
	}
	if _, err := RestoreFile(path, func(NetNS) (*System, error) { return a.s, nil }, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(files, treeFiles(t, a.tree)); d != "" {
		t.Errorf("the tree differs after restore (-before +after):\n%s", d)
	}
}

// TestAdaptersThreaded: napi-set threaded=enabled, then the pid napi-get reports gets FIFO and the CPU.
func TestAdaptersThreaded(t *testing.T) {
	a := newAdapters(t, netdevtest.Linux6_18)
	ap, err := a.s.Apply(t.Context(), planOn(t, a.s, "threaded"), ApplyOptions{Journal: journalPath(t)})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := a.nd.NAPI(259)
	if !n.HasPID || n.Threaded != netdev.ThreadedEnabled {
		t.Fatalf("napi %+v is not threaded", n)
	}
	want := []sysknob.Sched{{PID: int(n.PID), Policy: sysknob.PolicyFIFO, Priority: 50, CPUs: sysknob.CPUs(1)}}
	if d := cmp.Diff(want, ap.Kthreads(), cmp.Comparer(sysknob.CPUSet.Equal)); d != "" {
		t.Errorf("kthreads (-want +got):\n%s", d)
	}
	if got, _ := a.s.Sched.Sched(int(n.PID)); got.Policy != sysknob.PolicyFIFO || !got.CPUs.Equal(sysknob.CPUs(1)) {
		t.Errorf("kthread scheduled %+v", got)
	}
}

// TestAdaptersNotRoot: without CAP_NET_ADMIN the napi-set fails; the error says to run as root, matches
// os.ErrPermission, and the sysctl written before it is rolled back.
func TestAdaptersNotRoot(t *testing.T) {
	a := newAdapters(t, netdevtest.Linux6_18)
	a.nd.DenyAdmin()
	files := treeFiles(t, a.tree)
	path := journalPath(t)
	_, err := a.s.Apply(t.Context(), planOn(t, a.s, "busy-poll"), ApplyOptions{Journal: path})
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "run as root") ||
		!strings.Contains(err.Error(), "every change was rolled back") {
		t.Fatalf("error %v, want a permission error with its fix, rolled back", err)
	}
	if d := cmp.Diff(files, treeFiles(t, a.tree)); d != "" {
		t.Errorf("the tree differs after the rollback (-before +after):\n%s", d)
	}
	noJournal(t, path)
}

// TestAdaptersThreadedBusyPoll618: on 6.18 the plan fails with the version gate before any napi-set; on 6.19
// it is applied.
func TestAdaptersThreadedBusyPoll618(t *testing.T) {
	a := newAdapters(t, netdevtest.Linux6_18)
	m, _ := Preset("threaded-busy-poll", "vb")
	tgt, err := a.s.Resolve(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(m, tgt); err == nil || !strings.HasPrefix(err.Error(), "threaded-busy-poll needs Linux 6.19 or newer") {
		t.Fatalf("error %v, want the 6.19 gate", err)
	}
	if sets := napiSets(a.nd); len(sets) != 0 {
		t.Errorf("napi-set sent: %x", sets)
	}
	a = newAdapters(t, netdevtest.Linux6_19)
	if _, err := a.s.Apply(t.Context(), planOn(t, a.s, "threaded-busy-poll"), ApplyOptions{Journal: journalPath(t)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := a.nd.NAPI(259); n.Threaded != netdev.ThreadedBusyPoll || !n.HasPID {
		t.Errorf("napi %+v is not in threaded busy poll", n)
	}
}

// TestAdaptersShowAndDoctor: show reads every layer; doctor on a veth with busy_read set and the default
// 95% RT budget.
func TestAdaptersShowAndDoctor(t *testing.T) {
	a := newAdapters(t, netdevtest.Linux6_18)
	a.tree.Write("/proc/sys/net/core/busy_read", "400\n")
	st, err := a.s.Show("vb")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Devices) != 1 || len(st.Unreadable) != 0 {
		t.Fatalf("state %+v", st)
	}
	d := st.Devices[0]
	if d.Name != "vb" || d.Channels == nil || d.Rings != nil || len(d.NAPIs) != 1 || d.NAPIs[0].ID != 259 ||
		d.Queues[0].NAPI != 259 || *st.Host.BusyReadUS != 400 || st.Host.SMT != "on" || st.Features == nil {
		t.Errorf("state %+v", st)
	}
	text := st.Format()
	for _, want := range []string{"net.core.busy_read", "400 µs", "vb", "rx-0", "259"} {
		if !strings.Contains(text, want) {
			t.Errorf("show output lacks %q:\n%s", want, text)
		}
	}
	if _, err := a.s.Show("eth9"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("show of an unknown device: %v", err)
	}
	findings, err := a.s.Doctor(DoctorOptions{Device: "vb"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Severity{}
	for _, f := range findings {
		got[f.Check] = f.Severity
	}
	want := map[string]Severity{"kernel": Suboptimal, "smt": Suboptimal, "rt-throttling": Suboptimal,
		"busy-poll-napi": OK, "irq-on-app-cpu": OK, "busy-poll-kthread": OK, "rps": OK}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("doctor (-want +got):\n%s\n%s", d, FormatFindings(findings))
	}
}
