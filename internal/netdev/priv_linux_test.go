package netdev

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
)

// Privileged tests run on the real kernel in an Ephemeral testbed (package testbed):
//
//	netns A [ veth-a ] <---- veth ----> [ veth-b ] netns B      (XDP_PASS on veth-b gives it a NAPI instance)
//
// The namespaces are held only by file descriptors, so they and their devices disappear when the test ends or
// the process dies: nothing is left behind and no name can collide. No traffic is sent.

// vethNS is the testbed and a client dialled into host B's namespace.
type vethNS struct {
	bed    *testbed.Testbed
	client *Client
}

func newVethNS(t *testing.T) *vethNS {
	t.Helper()
	bed := testbedtest.New(t, testbed.Topology{})
	return &vethNS{bed: bed, client: dialIn(t, bed.B)}
}

// dialIn dials a client in h's namespace, from any thread.
func dialIn(t *testing.T, h *testbed.Host) *Client {
	t.Helper()
	c, err := Dial(&Options{NetNS: h.NetNS()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialHere dials a client in the test process's own network namespace, for read-only queries.
func dialHere(t *testing.T) *Client {
	t.Helper()
	c, err := Dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// vb is the ifindex of veth-b in host B's namespace.
func (v *vethNS) vb() uint32 { return uint32(v.bed.B.Ifindex) }

// attachXDP attaches an XDP_PASS program to veth-b; veth creates its NAPI instances only while XDP (or GRO) is
// on. The bpf_link is created inside host B's namespace (ifindexes are per namespace) and detaches when closed
// or when the process exits.
func (v *vethNS) attachXDP(t *testing.T) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "napilab_pass", Type: ebpf.XDP, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load XDP_PASS program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	var xdp link.Link
	err = v.bed.B.Do(func() (err error) {
		xdp, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: v.bed.B.Ifindex})
		return err
	})
	if err != nil {
		t.Fatalf("attach XDP to %s: %v", v.bed.B.Link, err)
	}
	t.Cleanup(func() { xdp.Close() })
}

// inNetNS runs fn on a throwaway thread inside the namespace nsfd: the thread is never reused (fn changes its
// capabilities), so no other goroutine ever runs with whatever fn changed.
func inNetNS(nsfd int, fn func() error) error {
	return netns.OnThread(false, func() error {
		if err := netns.Enter(nsfd, "the test namespace"); err != nil {
			return err
		}
		return fn()
	})
}

// napiOf attaches XDP to veth-b and returns its only NAPI instance.
func (v *vethNS) napiOf(t *testing.T) NAPI {
	t.Helper()
	v.attachXDP(t)
	ns, err := v.client.NAPIs(v.vb())
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 {
		t.Fatalf("veth-b has %d NAPI instances after XDP attach, want 1: %+v", len(ns), ns)
	}
	return ns[0]
}

func (v *vethNS) set(t *testing.T, id uint32, cfg NAPIConfig) NAPI {
	t.Helper()
	if err := v.client.SetNAPI(id, cfg); err != nil {
		t.Fatalf("SetNAPI(%d, %v): %v", id, cfg, err)
	}
	n, err := v.client.NAPI(id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPrivQueries(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	v := newVethNS(t)
	c := v.client

	// Each client sees its own namespace: lo and one veth end.
	for _, h := range []*testbed.Host{v.bed.A, v.bed.B} {
		hc := dialIn(t, h)
		devs, err := hc.Devices()
		if err != nil {
			t.Fatal(err)
		}
		var veth *Device
		for i, d := range devs {
			if d.Ifindex == uint32(h.Ifindex) {
				veth = &devs[i]
			}
		}
		if len(devs) != 2 || veth == nil {
			t.Fatalf("namespace %s lists %+v; want lo and %s (ifindex %d)", h.Namespace, devs, h.Link, h.Ifindex)
		}
		d, err := hc.Device(uint32(h.Ifindex))
		if err != nil {
			t.Fatal(err)
		}
		if d != *veth || !d.XDPFeatures.Has(XDPBasic|XDPRedirect) {
			t.Errorf("%s: dev-get %+v, dump %+v; want equal, with basic|redirect XDP", h.Link, d, *veth)
		}
	}

	qs, err := c.Queues(v.vb())
	if err != nil {
		t.Fatal(err)
	}
	var rx0 *Queue
	for i, q := range qs {
		if q.Ifindex != v.vb() {
			t.Errorf("queue dump filtered on veth-b returned %+v", q)
		}
		if q.Type == QueueRX && q.ID == 0 {
			rx0 = &qs[i]
		}
	}
	if rx0 == nil || rx0.NAPIID != 0 || len(qs) != 2 {
		t.Fatalf("veth-b queues before XDP: %+v; want rx 0 without a NAPI and tx 0", qs)
	}
	if ns, err := c.NAPIs(v.vb()); err != nil || len(ns) != 0 {
		t.Fatalf("veth-b NAPIs before XDP: %+v, %v; want none (gotcha 7)", ns, err)
	}

	n := v.napiOf(t)
	if n.Ifindex != v.vb() || n.ID == 0 || n.HasPID || n.Threaded != ThreadedDisabled {
		t.Errorf("veth-b NAPI after XDP: %+v; want an idle softirq NAPI of veth-b", n)
	}
	if got, err := c.NAPI(n.ID); err != nil || got != n {
		t.Errorf("napi-get %d = %+v, %v; the dump said %+v", n.ID, got, err, n)
	}
	q, err := c.Queue(v.vb(), QueueRX, 0)
	if err != nil {
		t.Fatal(err)
	}
	// veth does not tie its queues to its NAPI instances on 6.18 (no netif_queue_set_napi), so the queue may
	// name no NAPI; if it names one, it must be veth-b's.
	if (q.NAPIID != 0 && q.NAPIID != n.ID) || q.XSK || q.Ifindex != v.vb() {
		t.Errorf("veth-b rx 0 after XDP: %+v; want veth-b's queue, NAPI %d or none, and no AF_XDP socket", q, n.ID)
	}
	all, err := c.NAPIs(0)
	if err != nil || len(all) != 1 || all[0] != n {
		t.Errorf("napi dump of host B's namespace: %+v, %v; want only %+v", all, err, n)
	}
	if ns, err := dialIn(t, v.bed.A).NAPIs(0); err != nil || len(ns) != 0 {
		t.Errorf("host A's namespace lists NAPIs %+v, %v; XDP is on veth-b only", ns, err)
	}
}

func TestPrivNotFound(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	v := newVethNS(t)
	c := v.client
	for name, call := range map[string]func() error{
		"napi-get of id 1 (ids start above NR_CPUS)": func() error { _, err := c.NAPI(1); return err },
		"napi-set of id 1":                           func() error { return c.SetNAPI(1, NAPIConfig{DeferHardIRQs: new(uint32(1))}) },
		"dev-get of an unused ifindex":               func() error { _, err := c.Device(9999); return err },
		"queue dump of an unused ifindex":            func() error { _, err := c.Queues(9999); return err },
		"napi dump of an unused ifindex":             func() error { _, err := c.NAPIs(9999); return err },
		"rx queue beyond veth-b's count":             func() error { _, err := c.Queue(v.vb(), QueueRX, 50); return err },
	} {
		if err := call(); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "in this network namespace") {
			t.Errorf("%s: %v; want os.ErrNotExist with a sentence naming what is missing", name, err)
		}
	}
}

func TestPrivSetNAPI(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	v := newVethNS(t)
	orig := v.napiOf(t)

	want := orig
	want.DeferHardIRQs, want.GROFlushTimeout, want.IRQSuspendTimeout = 100, 20*time.Microsecond, 20*time.Millisecond
	got := v.set(t, orig.ID, NAPIConfig{DeferHardIRQs: new(uint32(100)), GROFlushTimeout: new(20 * time.Microsecond),
		IRQSuspendTimeout: new(20 * time.Millisecond)})
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("after napi-set (-want +got):\n%s", d)
	}

	// Values beyond 32 bits travel as 8-byte NLA_UINT both ways.
	want.GROFlushTimeout, want.IRQSuspendTimeout = 5*time.Second, 3*time.Hour
	got = v.set(t, orig.ID, NAPIConfig{GROFlushTimeout: new(5 * time.Second), IRQSuspendTimeout: new(3 * time.Hour)})
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("after 8-byte napi-set (-want +got):\n%s", d)
	}

	got = v.set(t, orig.ID, NAPIConfig{DeferHardIRQs: &orig.DeferHardIRQs, GROFlushTimeout: &orig.GROFlushTimeout,
		IRQSuspendTimeout: &orig.IRQSuspendTimeout})
	if got != orig {
		t.Errorf("restore: %+v; want %+v", got, orig)
	}
}

func TestPrivThreaded(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	v := newVethNS(t)
	n := v.napiOf(t)

	on := v.set(t, n.ID, NAPIConfig{Threaded: new(ThreadedEnabled)})
	if on.Threaded != ThreadedEnabled || !on.HasPID || on.PID == 0 {
		t.Fatalf("threaded=enabled: %+v; want a kthread pid", on)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", on.PID))
	if err != nil {
		t.Fatalf("the NAPI kthread: %v", err)
	}
	// In full, even beyond TASK_COMM_LEN: /proc/PID/comm shows a kthread's full name (get_kthread_comm, 5.17),
	// which a 4-digit NAPI id (ids start above NR_CPUS, 8192 in the lab's Debian kernel) makes 16 characters long.
	want := fmt.Sprintf("napi/%s-%d", v.bed.B.Link, n.ID)
	if strings.TrimSpace(string(comm)) != want {
		t.Errorf("kthread %d is %q, want %q", on.PID, strings.TrimSpace(string(comm)), want)
	}

	off := v.set(t, n.ID, NAPIConfig{Threaded: new(ThreadedDisabled)})
	if off.Threaded != ThreadedDisabled || off.HasPID {
		t.Errorf("threaded=disabled: %+v; want no kthread", off)
	}
}

// On 6.18 threaded busy poll must fail cleanly and change nothing; in the lab's current kernel it must work.
func TestPrivThreadedBusyPoll(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	v := newVethNS(t)
	n := v.napiOf(t)
	if f, err := v.client.Features(); err != nil {
		t.Fatal(err)
	} else if f.ThreadedBusyPoll {
		testenv.Exclusive(t) // the kthread will spin a CPU until disabled
	}

	err := v.client.SetNAPI(n.ID, NAPIConfig{DeferHardIRQs: new(uint32(7)), Threaded: new(ThreadedBusyPoll)})
	if testenv.ExpectUnsupported(t, err, 6, 19) {
		var unsup *kernel.UnsupportedError
		if !errors.As(err, &unsup) || unsup.MinKernel != "6.19" || !strings.Contains(err.Error(), "needs Linux 6.19") ||
			!strings.Contains(err.Error(), "integer out of range") {
			t.Errorf("got %v; want threaded NAPI busy poll needing Linux 6.19, with the kernel's reason", err)
		}
		after, err := v.client.NAPI(n.ID)
		if err != nil {
			t.Fatal(err)
		}
		if after != n {
			t.Errorf("a refused napi-set changed the NAPI: %+v -> %+v", n, after)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.client.SetNAPI(n.ID, NAPIConfig{Threaded: new(ThreadedDisabled)}) })
	busy, err := v.client.NAPI(n.ID)
	if err != nil || busy.Threaded != ThreadedBusyPoll || !busy.HasPID || busy.DeferHardIRQs != 7 {
		t.Fatalf("after threaded=busy-poll: %+v, %v; want busy-poll with a kthread", busy, err)
	}
	if off := v.set(t, n.ID, NAPIConfig{Threaded: new(ThreadedDisabled)}); off.HasPID {
		t.Errorf("threaded=disabled after busy-poll: %+v; want no kthread", off)
	}
}

// The probe must agree with the kernel's version gates and with what napi-set actually accepts.
func TestPrivFeatures(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	c := dialHere(t)
	f, err := c.Features()
	if err != nil {
		t.Fatal(err)
	}
	ver, err := kernel.Running()
	if err != nil {
		t.Fatal(err)
	}
	want := Features{NAPISet: ver.AtLeast(6, 13), IRQSuspendTimeout: ver.AtLeast(6, 13),
		PerNAPIThreaded: ver.AtLeast(6, 17), ThreadedBusyPoll: ver.AtLeast(6, 19)}
	if f != want {
		t.Errorf("on %s Features() = %+v, want %+v", kernel.Release(), f, want)
	}
	t.Logf("kernel %s: %+v", kernel.Release(), f)
}

// The wire numbers and types in spec.go must be what the running kernel's policies say.
func TestPrivPolicyMatchesSpec(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	c := dialHere(t)
	ver, _ := kernel.Running()
	u32 := attrPolicy{Type: nlAttrTypeU32}
	uintT := attrPolicy{Type: nlAttrTypeUint}
	type check struct {
		cmd   uint8
		kind  uint16
		attrs map[uint16]attrPolicy
	}
	checks := []check{
		{cmdDevGet, ctrlAttrPolicyDo, map[uint16]attrPolicy{attrDevIfindex: u32}},
		{cmdQueueGet, ctrlAttrPolicyDo, map[uint16]attrPolicy{attrQueueID: u32, attrQueueIfindex: u32, attrQueueType: u32}},
		{cmdQueueGet, ctrlAttrPolicyDump, map[uint16]attrPolicy{attrQueueIfindex: u32}},
		{cmdNAPIGet, ctrlAttrPolicyDo, map[uint16]attrPolicy{attrNAPIID: u32}},
		{cmdNAPIGet, ctrlAttrPolicyDump, map[uint16]attrPolicy{attrNAPIIfindex: u32}},
		{cmdQStatsGet, ctrlAttrPolicyDump, map[uint16]attrPolicy{attrQStatsIfindex: u32, attrQStatsScope: uintT}},
	}
	if ver.AtLeast(6, 13) {
		set := map[uint16]attrPolicy{attrNAPIID: u32, attrNAPIDeferHardIRQs: u32,
			attrNAPIGROFlushTimeout: uintT, attrNAPIIRQSuspendTimeout: uintT}
		if ver.AtLeast(6, 17) {
			set[attrNAPIThreaded] = u32
		}
		checks = append(checks, check{cmdNAPISet, ctrlAttrPolicyDo, set})
	}
	for _, ck := range checks {
		req, err := policyRequest(c.family.ID, ck.cmd)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := c.executeFamily(genlIDCtrl, ctrlCmdGetPolicy, netlink.Request|netlink.Dump, req)
		if err != nil {
			t.Fatalf("policy of command %d: %v", ck.cmd, err)
		}
		pol, err := parsePolicy(msgs, uint32(ck.cmd), ck.kind)
		if err != nil {
			t.Fatalf("command %d: %v", ck.cmd, err)
		}
		// Newer kernels may accept more attributes; every one napilab sends must be there with its type.
		got := map[uint16]attrPolicy{}
		for typ := range ck.attrs {
			if p, ok := pol[typ]; ok {
				got[typ] = attrPolicy{Type: p.Type}
			}
		}
		if d := cmp.Diff(ck.attrs, got); d != "" {
			t.Errorf("command %d kind %d: attributes (-spec.go +kernel):\n%s", ck.cmd, ck.kind, d)
		}
	}
	// The limits the request encoder enforces are the kernel's.
	msgs, err := c.executeFamily(genlIDCtrl, ctrlCmdGetPolicy, netlink.Request|netlink.Dump,
		mustPolicyRequest(t, c.family.ID, cmdNAPISet))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := parsePolicy(msgs, cmdNAPISet, ctrlAttrPolicyDo)
	if err != nil {
		t.Fatal(err)
	}
	if p := pol[attrNAPIDeferHardIRQs]; p.Max != math.MaxInt32 {
		t.Errorf("defer-hard-irqs max %d, the encoder enforces %d", p.Max, math.MaxInt32)
	}
}

func mustPolicyRequest(t *testing.T, family uint16, cmd uint8) []byte {
	t.Helper()
	b, err := policyRequest(family, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Read-only: the statistics of this machine's own devices, cross-checked against dev-get and queue-get.
func TestPrivQStats(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	c := dialHere(t)
	devs, err := c.QStats(0, ScopeDevice)
	if err != nil {
		t.Fatal(err)
	}
	queues, err := c.QStats(0, ScopeQueue)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range devs {
		if _, err := c.Device(s.Ifindex); err != nil || s.Scope != ScopeDevice {
			t.Errorf("device-scope stats %+v: %v", s, err)
		}
		if !s.Reported.Has(RxPackets) && !s.Reported.Has(TxPackets) {
			t.Errorf("device %d reports neither rx nor tx packets: %v", s.Ifindex, s.Reported)
		}
	}
	for _, s := range queues {
		if _, err := c.Queue(s.Ifindex, s.QueueType, s.QueueID); err != nil || s.Scope != ScopeQueue {
			t.Errorf("queue-scope stats %+v: %v", s, err)
		}
	}
	if len(queues) > 0 && len(devs) == 0 {
		t.Error("queue statistics without device statistics")
	}
	t.Logf("%d devices and %d queues report statistics", len(devs), len(queues))
}

// A caller without CAP_NET_ADMIN gets os.ErrPermission and the fix. Capabilities belong to threads, so one
// throwaway thread drops CAP_NET_ADMIN and opens its own socket in the test namespace.
func TestPrivPermissionDenied(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.RequirePriv(t)
	v := newVethNS(t)
	n := v.napiOf(t)
	err := inNetNS(v.bed.B.NetNS(), func() error {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			return err
		}
		data[unix.CAP_NET_ADMIN/32].Effective &^= 1 << (unix.CAP_NET_ADMIN % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fmt.Errorf("drop CAP_NET_ADMIN: %w", err)
		}
		c, err := Dial(nil) // the socket is opened here, in the namespace and without the capability
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.NAPI(n.ID); err != nil {
			return fmt.Errorf("napi-get should need no privilege: %w", err)
		}
		return c.SetNAPI(n.ID, NAPIConfig{DeferHardIRQs: new(uint32(3))})
	})
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "napi-set needs CAP_NET_ADMIN: run as root") {
		t.Fatalf("got %v; want permission denied with the fix", err)
	}
	if after, err := v.client.NAPI(n.ID); err != nil || after != n {
		t.Errorf("a denied napi-set changed the NAPI: %+v -> %+v (%v)", n, after, err)
	}
}
