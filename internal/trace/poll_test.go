package trace

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/sysknob"
)

// recorded loads an observation recorded on the veth testbed by the privileged test of that name (see record).
func recorded(t *testing.T, test string) *Observation {
	t.Helper()
	b, err := os.ReadFile("testdata/observations/" + test + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var o Observation
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	return &o
}

func TestAttestRecordedThreaded(t *testing.T) {
	o := recorded(t, "TestPrivThreadedPolledByKthread")
	a := o.Attest()
	p := o.Polls[0]
	want := "threaded in effect: NAPI 1155 polled by napi/veth-b-115 (pid 25133) on CPU 0 (100% of polls, 100% of packets)"
	if a.Verdict != want {
		t.Errorf("verdict %q\nwant    %q", a.Verdict, want)
	}
	if a.Kind != KindKthread || a.KindShare != 1 || a.Poller != p.Comm || a.PollerTID != p.TID || a.Polls != p.Polls ||
		a.Packets != p.Packets || a.EmptyShare != 0 {
		t.Errorf("attestation %+v of %+v", a, p)
	}
	if got := a.PacketsPerPoll; got != float64(p.Packets)/float64(p.Polls) {
		t.Errorf("packets per poll %v", got)
	}
	th, _ := o.Thread(p.TID)
	if a.Preemptions != th.Involuntary || a.PollerOffCPU != th.OffCPU || a.PollerOffCPU == 0 {
		t.Errorf("poller scheduling %d preemptions, %v off CPU; the thread record says %+v", a.Preemptions,
			a.PollerOffCPU, th)
	}
	for _, mode := range []string{"threaded", "threaded-busy-poll", "seed-threaded-busy-poll"} {
		if msg := Check(mode, a); msg != "" {
			t.Errorf("Check(%s) = %q", mode, msg)
		}
	}
	for _, mode := range []string{"interrupts", "busy-poll", "busy-poll-separate", "irq-suspend"} {
		if msg := Check(mode, a); !strings.HasPrefix(msg, mode+" expects ") || !strings.HasSuffix(msg, want) {
			t.Errorf("Check(%s) = %q, want the disagreement with the verdict", mode, msg)
		}
	}
	r := o.NAPIs()
	if len(r) != 1 || r[0].ID != 1155 || len(r[0].Pollers) != 1 || r[0].PerPoll != p.PerPoll ||
		r[0].PollsPerSec != float64(p.Polls)/o.Duration.Seconds() || r[0].Verdict != want {
		t.Errorf("NAPI report %+v", r)
	}
}

func TestAttestRecordedSoftirq(t *testing.T) {
	for _, test := range []string{"TestPrivInterruptsPolledInSoftirq", "TestPrivAttestationCatchesChangeBehindBack"} {
		a := recorded(t, test).Attest()
		if a.Kind != KindSoftirq || a.Poller != "rr-recv" || a.Preemptions != 0 ||
			!strings.HasPrefix(a.Verdict, "softirq in effect: NAPI ") ||
			!strings.Contains(a.Verdict, "polled in softirq on CPU 1, mostly on the time of rr-recv") {
			t.Errorf("%s: %+v", test, a)
		}
		if msg := Check("interrupts", a); msg != "" {
			t.Errorf("%s: Check(interrupts) = %q", test, msg)
		}
		if msg := Check("threaded", a); !strings.HasPrefix(msg, "threaded expects the NAPI's kthread to poll it, but softirq in effect") {
			t.Errorf("%s: Check(threaded) = %q", test, msg)
		}
	}
}

// busyStream is a busy-polling cell as a real NIC shows it: the server thread polls in a loop, mostly finding
// nothing, and softirq (after the device's IRQ or the gro timer) takes some packets.
func busyStream(appPackets, softirqPackets uint64) *Observation {
	app := PollStat{NAPIID: 8193, TID: 400, PID: 390, CPU: 0, Comm: "rr-server", Polls: 100000, Packets: appPackets}
	app.PerPoll.Counts[0] = app.Polls - appPackets
	app.PerPoll.Counts[1] = appPackets
	sirq := PollStat{NAPIID: 8193, TID: 0, PID: 0, CPU: 0, Comm: "swapper/0", Softirq: true, Polls: softirqPackets,
		Packets: softirqPackets}
	sirq.PerPoll.Counts[1] = softirqPackets
	other := PollStat{NAPIID: 8194, TID: 7, Comm: "napi/eth1-8194", Kthread: true, Polls: 1 << 20, Packets: 1 << 20}
	return &Observation{Target: Target{NAPIs: []uint32{8193}}, Duration: time.Second,
		Polls:   []PollStat{app, sirq, other},
		Threads: []ThreadSched{{TID: 400, Comm: "rr-server", Poller: true, Involuntary: 12, OffCPU: time.Millisecond}},
		IRQs:    []IRQCount{{IRQ: 36, CPU: 0, Count: 40}, {IRQ: 36, CPU: 1, Count: 2}}, IRQSource: IRQSourceBPF}
}

func TestAttestBusyPoll(t *testing.T) {
	o := busyStream(900, 100)
	a := o.Attest()
	want := "busy polling in effect: NAPI 8193 polled by rr-server (tid 400) on CPU 0 (100% of polls, 90% of packets)"
	if a.Verdict != want {
		t.Errorf("verdict %q\nwant    %q", a.Verdict, want)
	}
	if a.Kind != KindBusyPoll || a.KindShare != 0.9 || a.Poller != "rr-server" || a.Polls != 100100 ||
		a.Preemptions != 12 || a.PollerOffCPU != time.Millisecond || a.IRQs != 42 {
		t.Errorf("attestation %+v", a)
	}
	if got := a.IRQsPer(1000); got != 0.042 {
		t.Errorf("IRQs per request %v, want 0.042", got)
	}
	if msg := Check("busy-poll", a); msg != "" {
		t.Errorf("Check(busy-poll) = %q", msg)
	}
	// The NAPI of another device (polled by its own kthread, more than ours) is not in the target: it counts
	// nowhere.
	if r := o.NAPIs(); len(r) != 1 || len(r[0].Pollers) != 2 || r[0].Pollers[0].Comm != "rr-server" ||
		r[0].Pollers[1].Kind != KindSoftirq || r[0].EmptyPolls != 100000-900 {
		t.Errorf("NAPI report %+v", r)
	}
}

// TestAttestBusyPollerFindsNothing: the case the issue names on veth: the application busy-polls all the time,
// but a timer's softirq delivers the packets. By polls the busy poller dominates; by packets softirq does, and
// the attestation says softirq, so busy-poll disagrees.
func TestAttestBusyPollerFindsNothing(t *testing.T) {
	a := busyStream(0, 1000).Attest()
	if a.Kind != KindSoftirq || a.KindShare != 1 {
		t.Fatalf("attestation %+v; want softirq, which took every packet", a)
	}
	if msg := Check("busy-poll", a); !strings.Contains(msg, "softirq in effect") || !strings.Contains(msg, "1% of polls, 100% of packets") {
		t.Errorf("Check(busy-poll) = %q", msg)
	}
}

func TestAttestNothingPolled(t *testing.T) {
	o := &Observation{Target: Target{NAPIs: []uint32{259, 260}}, Duration: 2 * time.Second}
	a := o.Attest()
	if a.Kind != "" || a.Polls != 0 || !strings.HasPrefix(a.Verdict, "NAPIs 259, 260 was not polled in 2s") {
		t.Errorf("attestation %+v", a)
	}
	if msg := Check("interrupts", a); !strings.Contains(msg, "was not polled") {
		t.Errorf("Check on nothing polled = %q, want a disagreement", msg)
	}
	if msg := Check("some-new-mode", a); msg != "" {
		t.Errorf("Check of an unknown mode = %q, want nothing", msg)
	}
	if r := o.NAPIs(); len(r) != 2 || r[0].Pollers == nil || r[1].Polls != 0 {
		t.Errorf("reports %+v", r)
	}
}

// TestPollersAcrossCPUs: one thread's polls on two CPUs are one poller on both; its softirq polls and its busy
// polls are two pollers; ties are broken by tid.
func TestPollersAcrossCPUs(t *testing.T) {
	polls := []PollStat{
		{NAPIID: 1, TID: 9, CPU: 1, Comm: "a", Softirq: true, Polls: 5, Packets: 5},
		{NAPIID: 1, TID: 9, CPU: 0, Comm: "a", Softirq: true, Polls: 5, Packets: 5},
		{NAPIID: 1, TID: 9, CPU: 0, Comm: "a", Polls: 10, Packets: 0},
		{NAPIID: 1, TID: 3, CPU: 1, Comm: "b", Softirq: true, Polls: 10, Packets: 10},
	}
	r := (&Observation{Target: Target{NAPIs: []uint32{1}}, Duration: time.Second, Polls: polls}).NAPIs()[0]
	want := []Poller{
		{Comm: "b", TID: 3, Kind: KindSoftirq, CPUs: []int{1}, Polls: 10, Packets: 10, PollShare: 1.0 / 3, PacketShare: 0.5},
		{Comm: "a", TID: 9, Kind: KindBusyPoll, CPUs: []int{0}, Polls: 10, PollShare: 1.0 / 3},
		{Comm: "a", TID: 9, Kind: KindSoftirq, CPUs: []int{0, 1}, Polls: 10, Packets: 10, PollShare: 1.0 / 3, PacketShare: 0.5},
	}
	if !reflect.DeepEqual(r.Pollers, want) {
		t.Errorf("pollers\n%+v\nwant\n%+v", r.Pollers, want)
	}
	if !strings.HasPrefix(r.Verdict, "softirq in effect: NAPI 1 polled in softirq on CPUs 0,1") {
		t.Errorf("verdict %q", r.Verdict)
	}
}

func TestKinds(t *testing.T) {
	for _, tc := range []struct {
		p    PollStat
		want Kind
	}{
		{PollStat{Softirq: true, Kthread: true, Comm: "ksoftirqd/1"}, KindSoftirq},
		{PollStat{Softirq: true, Kthread: true, Comm: "napi/eth0-8193"}, KindSoftirq},
		{PollStat{Kthread: true, Comm: "napi/eth0-8193"}, KindKthread},
		{PollStat{Comm: "napi/fake"}, KindBusyPoll}, // a user thread that calls itself napi/...
		{PollStat{Kthread: true, Comm: "iou-sqp-12"}, KindBusyPoll},
		{PollStat{Comm: "rr-server"}, KindBusyPoll},
	} {
		if got := tc.p.Kind(); got != tc.want {
			t.Errorf("%+v: kind %s, want %s", tc.p, got, tc.want)
		}
	}
}

// TestExpectedKindCoversModes: every polling mode napi offers, and every preset, has an expected poller.
func TestExpectedKindCoversModes(t *testing.T) {
	for _, name := range napi.PresetNames() {
		if _, ok := ExpectedKind(name); !ok {
			t.Errorf("no expected poller for napi preset %s", name)
		}
	}
	if k, _ := ExpectedKind(string(napi.Interrupts)); k != KindSoftirq {
		t.Errorf("interrupts expects %s", k)
	}
}

func TestIRQDeltas(t *testing.T) {
	parse := func(text string) sysknob.Interrupts {
		s, err := sysknob.ParseInterrupts(text)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := parse("           CPU0       CPU1\n 36:        100         50   PCI-MSIX-0000:00:03.0 1-edge  virtio0-input.0\n" +
		" 37:          5          0   PCI-MSIX-0000:00:03.0 2-edge  virtio0-output.0\nLOC:      10000      20000   Local timer interrupts\n")
	after := parse("           CPU0       CPU1\n 36:        130         50   PCI-MSIX-0000:00:03.0 1-edge  virtio0-input.0\n" +
		" 37:          9          1   PCI-MSIX-0000:00:03.0 2-edge  virtio0-output.0\nLOC:      10500      20300   Local timer interrupts\n")
	got := irqDeltas(before, after, []int{36, 37, 99})
	want := []IRQCount{{IRQ: 36, CPU: 0, Count: 30}, {IRQ: 37, CPU: 0, Count: 4}, {IRQ: 37, CPU: 1, Count: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deltas %+v, want %+v", got, want)
	}
}

func TestObservationJSON(t *testing.T) {
	o := busyStream(900, 100)
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var back Observation
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, o) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	a := o.Attest()
	b, err = json.Marshal(a)
	if err != nil || !strings.Contains(string(b), `"kind":"busy-poll"`) || !strings.Contains(string(b), `"poller_preemptions":12`) {
		t.Errorf("attestation JSON %s, %v", b, err)
	}
}

func TestTargetValidate(t *testing.T) {
	for _, bad := range []Target{{NAPIs: []uint32{0}}, {Threads: []int{-1}}, {IRQs: []int{-2}}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if err := (Target{NAPIs: []uint32{259}, Threads: []int{1}, IRQs: []int{0}}).Validate(); err != nil {
		t.Error(err)
	}
}
