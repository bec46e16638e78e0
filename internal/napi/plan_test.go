package napi

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/sysknob"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, d)
	}
}

// planFor resolves and builds a preset on the fake machine.
func planFor(t *testing.T, f *fakeOS, preset, dev string, edit ...func(*Mode)) (*Plan, error) {
	t.Helper()
	m, err := Preset(preset, dev)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range edit {
		e(&m)
	}
	return resolveAndBuild(f.system(), m)
}

// resolveAndBuild plans m on s.
func resolveAndBuild(s *System, m Mode) (*Plan, error) {
	tgt, err := s.Resolve(m)
	if err != nil {
		return nil, err
	}
	return Build(m, tgt)
}

// TestPresetPlans pins every preset's plan, as `napilab mode plan` prints it, on a NIC-like device of a 6.19
// kernel (every mode is supported there) and the busy-poll presets on a veth of 6.18.
func TestPresetPlans(t *testing.T) {
	for _, name := range PresetNames() {
		t.Run(name, func(t *testing.T) {
			p, err := planFor(t, newFakeOS(features6_19), name, "eth1")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "plans/"+name+".sh", p.Format())
		})
	}
	for _, name := range []string{"busy-poll", "seed-busy-poll", "threaded"} {
		t.Run("veth-"+name, func(t *testing.T) {
			p, err := planFor(t, newFakeOS(features6_18), name, "vb", func(m *Mode) { m.PollCPU = 1 })
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "plans/veth-"+name+".sh", p.Format())
		})
	}
}

// TestSeedPresetsMatchTheScript checks the seed presets value by value against the cover letter's script, so a
// golden file rewritten by mistake cannot drift from it.
func TestSeedPresetsMatchTheScript(t *testing.T) {
	want := map[string]map[string]string{ // knob or napi attribute → value, per configuration of the script
		"seed-interrupts": {"eth1/threaded": "0", "net.core.busy_read": "0", "eth1/napi_defer_hard_irqs": "0",
			"eth1/gro_flush_timeout": "15000"},
		"seed-busy-poll": {"eth1/threaded": "0", "net.core.busy_read": "400", "eth1/napi_defer_hard_irqs": "100",
			"eth1/gro_flush_timeout": "15000"},
		"seed-threaded-busy-poll": {"eth1/threaded": "0", "net.core.busy_read": "0", "net.core.busy_poll": "0",
			"eth1/napi_defer_hard_irqs": "100", "eth1/gro_flush_timeout": "15000", "threaded": "busy-poll",
			"kthread": "SCHED_FIFO 50 on CPU 2"},
	}
	common := map[string]string{"kernel.timer_migration": "0", "smt/control": "off",
		"net.core.rps_sock_flow_entries": "0", "eth1/queues/rx-0/rps_cpus": "", "irq/38/smp_affinity_list": "2",
		"kernel.sched_rt_runtime_us": "-1", "workqueue/writeback/cpumask": "1-3",
		"workqueue/blkcg_punt_bio/cpumask": "1-3", "channels": "combined 1", "rings": "1024",
		"coalescing": "adaptive-rx off adaptive-tx off rx-usecs 0 tx-usecs 0"}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			p, err := planFor(t, newFakeOS(features6_19), name, "eth1")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, c := range p.Changes {
				switch c.Kind {
				case KindKnob:
					got[c.Knob.String()] = c.Value
				case KindChannels:
					got["channels"] = channelsText(*c.Channels, " ")
				case KindRings:
					got["rings"] = fmt.Sprint(c.Rings.RX)
				case KindCoalesce:
					got["coalescing"] = coalesceText(*c.Coalesce, " ")
				case KindNAPI:
					if c.Settings.Threaded != "" {
						got["threaded"] = c.Settings.Threaded
					}
					if c.Settings.DeferHardIRQs != nil || c.Settings.GROFlushTimeout != nil {
						t.Errorf("the seed writes defer and gro device-wide, but the plan has %s", c.Describe())
					}
				case KindKthread:
					got["kthread"] = strings.SplitN(c.Describe(), ": ", 2)[1]
				}
			}
			all := map[string]string{}
			for k, v := range common {
				all[k] = v
			}
			for k, v := range w {
				all[k] = v
			}
			if d := cmp.Diff(all, got); d != "" {
				t.Errorf("%s differs from the seed script (-script +plan):\n%s", name, d)
			}
		})
	}
}

// TestPlanRefusesBeforeAnythingChanges covers the gates and bad input that Build and Resolve catch.
func TestPlanRefusesBeforeAnythingChanges(t *testing.T) {
	for _, tc := range []struct {
		name, preset, dev string
		features          func(*fakeOS)
		edit              func(*Mode)
		want              string
		is                error
	}{
		{name: "threaded busy poll on 6.18", preset: "threaded-busy-poll", dev: "eth1",
			features: func(f *fakeOS) { f.features = features6_18 },
			want:     "threaded-busy-poll needs Linux 6.19 or newer", is: kernel.ErrNotSupported},
		{name: "irq-suspend before 6.13", preset: "irq-suspend", dev: "eth1",
			features: func(f *fakeOS) { f.features.IRQSuspendTimeout, f.features.NAPISet = false, false },
			want:     "irq-suspend needs Linux 6.13 or newer", is: kernel.ErrNotSupported},
		{name: "unknown device", preset: "busy-poll", dev: "eth9",
			want: `dev "eth9" does not exist in network namespace /run/netns/lab`, is: os.ErrNotExist},
		{name: "queue without NAPI", preset: "busy-poll", dev: "vb",
			features: func(f *fakeOS) { delete(f.napis, 259) },
			want:     "vb rx queue 0 has no NAPI instance, so there is nothing to poll; a veth gets one only while XDP is attached or GRO is on",
			is:       os.ErrNotExist},
		{name: "unlinked queue, several NAPIs", preset: "busy-poll", dev: "vb",
			features: func(f *fakeOS) { f.napis[260] = &netdev.NAPI{ID: 260, Ifindex: 5} },
			want:     "vb has 2 NAPIs but does not report which one serves rx queue 0 (veth does not): give the device a single rx queue"},
		{name: "no such queue", preset: "busy-poll", dev: "eth1", edit: func(m *Mode) { m.Queues = []int{7} },
			want: "eth1 has no rx queue 7 (its rx queues: 0, 1): choose one with --queue"},
		{name: "CPU out of range", preset: "threaded", dev: "eth1", edit: func(m *Mode) { m.PollCPU = 9 },
			want: "poll-cpu 9 is not online on this machine: choose one of 0-3"},
		{name: "priority out of range", preset: "threaded", dev: "eth1", edit: func(m *Mode) { m.FIFO = 120 },
			want: "fifo priority 120 is out of range: use 1 to 99"},
		{name: "two queues for one spinning kthread", preset: "threaded-busy-poll", dev: "eth1",
			edit: func(m *Mode) { m.Queues = []int{0, 1} }, want: "takes one queue at a time"},
		{name: "ring above the maximum", preset: "busy-poll", dev: "eth1", edit: func(m *Mode) { m.RingRX = 8192 },
			want: "eth1 allows an rx ring of at most 4096 entries, not 8192: pass a smaller size"},
		{name: "suspend outside irq-suspend", preset: "busy-poll", dev: "eth1",
			edit: func(m *Mode) { m.IRQSuspendTimeout = ptr(time.Millisecond) }, want: "only acts in mode irq-suspend"},
		{name: "no device", preset: "busy-poll", dev: "", want: "dev is missing: name the interface"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeOS(features6_19)
			if tc.features != nil {
				tc.features(f)
			}
			before := f.state()
			var edits []func(*Mode)
			if tc.edit != nil {
				edits = append(edits, tc.edit)
			}
			_, err := planFor(t, f, tc.preset, tc.dev, edits...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not match %v", err, tc.is)
			}
			if f.state() != before || f.takeLog() != "" {
				t.Error("planning changed the machine")
			}
		})
	}
}

// TestPlanFallsBackToSysfs: before 6.13 there is no napi-set, before 6.17 no per-NAPI threaded; the plan writes
// the device-wide files instead and says so.
func TestPlanFallsBackToSysfs(t *testing.T) {
	f := newFakeOS(features6_19)
	f.features.PerNAPIThreaded, f.features.ThreadedBusyPoll = false, false
	p, err := planFor(t, f, "threaded", "eth1")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, c := range p.Changes {
		kinds = append(kinds, c.Describe())
	}
	want := []string{"napi 8193: record its settings", "napi 8194: record its settings", "eth1/threaded = 1",
		"net.core.busy_read = 0 µs", "net.core.busy_poll = 0 µs",
		"napi 8193 (rx-0): defer-hard-irqs=0 gro-flush-timeout=15µs", "kthread of napi 8193: SCHED_FIFO 50 on CPU 3"}
	if d := cmp.Diff(want, kinds); d != "" {
		t.Errorf("6.13 threaded plan (-want +got):\n%s", d)
	}
	if !strings.Contains(notesText(p.Notes), "no per-NAPI threaded setting") {
		t.Errorf("notes %q do not explain the device-wide fallback", p.Notes)
	}

	f = newFakeOS(netdev.Features{})
	p, err = planFor(t, f, "busy-poll", "eth1")
	if err != nil {
		t.Fatal(err)
	}
	kinds = nil
	for _, c := range p.Changes {
		kinds = append(kinds, c.Describe())
	}
	want = []string{"eth1/threaded = 0", "net.core.busy_read = 400 µs", "eth1/napi_defer_hard_irqs = 100",
		"eth1/gro_flush_timeout = 15000 ns"}
	if d := cmp.Diff(want, kinds); d != "" {
		t.Errorf("6.12 busy-poll plan (-want +got):\n%s", d)
	}
}

// TestUnlinkedVethQueue: veth never names its queue's NAPI in queue-get; its only NAPI is taken, and the plan
// says so.
func TestUnlinkedVethQueue(t *testing.T) {
	p, err := planFor(t, newFakeOS(features6_18), "threaded", "vb")
	if err != nil {
		t.Fatal(err)
	}
	if p.Changes[2].NAPI != 259 || !strings.Contains(notesText(p.Notes), "its only NAPI, 259, serves it") {
		t.Errorf("plan %s", p.Format())
	}
}

// TestAutoCPU: the default poll CPU is the last online one.
func TestAutoCPU(t *testing.T) {
	f := newFakeOS(features6_19)
	f.online = sysknob.CPUs(0, 1, 5)
	p, err := planFor(t, f, "threaded", "eth1")
	if err != nil {
		t.Fatal(err)
	}
	if p.PollCPU != 5 {
		t.Errorf("poll CPU %d, want 5", p.PollCPU)
	}
}

func notesText(notes []note.Note) string {
	var b strings.Builder
	for _, n := range notes {
		b.WriteString(n.Text + "\n")
	}
	return b.String()
}

// TestPlanJSONRoundTrip: a plan crosses the agent protocol as JSON; every preset's plan decodes, strictly, to
// the plan that was encoded.
func TestPlanJSONRoundTrip(t *testing.T) {
	for _, name := range PresetNames() {
		f := newFakeOS(features6_19)
		p := mustPlan(t, f, name, "eth1")
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var back Plan
		if err := dec.Decode(&back); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, b)
		}
		if diff := cmp.Diff(p, &back, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("%s: the plan changed in JSON (-sent +received):\n%s", name, diff)
		}
	}
}
