package napi

import (
	"errors"
	"strings"
	"testing"

	"github.com/napilab/napilab/internal/sysknob"
)

func i64(v int64) *int64 { return &v }

// healthyState is a tuned 6.19 machine: SMT off, busy_read 400 µs, eth1 rx-0 bound by an AF_XDP socket,
// served by NAPI 8193 whose IRQ 38 fires on CPU 2 and whose threaded-busy-poll kthread is FIFO 50 on CPU 2.
func healthyState() *State {
	return &State{
		Kernel:   "6.19.2",
		Features: &features6_19,
		Host: HostState{OnlineCPUs: "0-5", SMT: "off", BusyReadUS: i64(400), BusyPollUS: i64(0),
			SchedRTRuntimeUS: i64(-1)},
		Devices: []DeviceState{{Name: "eth1", Ifindex: 3,
			Queues: []QueueState{{Type: "rx", ID: 0, NAPI: 8193, XSK: true}, {Type: "rx", ID: 1, NAPI: 8194},
				{Type: "tx", ID: 0, NAPI: 8193}},
			NAPIs: []NAPIState{
				{ID: 8193, IRQs: []IRQState{{IRQ: 38, Affinity: "2"}}, Threaded: "busy-poll", PID: 700,
					Kthread: &KthreadState{Policy: "SCHED_FIFO", Priority: 50, CPUs: "2"}},
				{ID: 8194, IRQs: []IRQState{{IRQ: 40, Affinity: "0-5"}}, Threaded: "disabled"},
			}}},
	}
}

func noRT() (warn, err error) { return nil, nil }

func TestDiagnose(t *testing.T) {
	app := sysknob.CPURange(3, 5)
	for _, tc := range []struct {
		name  string
		edit  func(*State)
		rt    func() (error, error)
		o     DoctorOptions
		check string
		want  Severity
		text  string // in the message or fix
	}{
		{name: "healthy kthread", check: "busy-poll-kthread", want: OK, o: DoctorOptions{AppCPUs: &app},
			text: "apart from the application"},
		{name: "kthread on the app's CPU", check: "busy-poll-kthread", want: Suboptimal, o: DoctorOptions{AppCPUs: &app},
			edit: func(s *State) { s.Devices[0].NAPIs[0].Kthread.CPUs = "2-3" }, text: "shares with the application"},
		{name: "kthread unpinned", check: "busy-poll-kthread", want: Suboptimal,
			edit: func(s *State) { s.Devices[0].NAPIs[0].Kthread.CPUs = "0-5" }, text: "may run on any CPU"},
		{name: "kthread not FIFO", check: "busy-poll-kthread", want: Suboptimal, o: DoctorOptions{AppCPUs: &app},
			edit: func(s *State) { s.Devices[0].NAPIs[0].Kthread.Policy = "SCHED_OTHER" }, text: "taskset -pc"},
		{name: "kthread, app CPUs unknown", check: "busy-poll-kthread", want: CouldNotCheck, text: "--app-cpus"},
		{name: "IRQ apart", check: "irq-on-app-cpu", want: OK, o: DoctorOptions{AppCPUs: &app}},
		{name: "IRQ on the app's CPU", check: "irq-on-app-cpu", want: Suboptimal, o: DoctorOptions{AppCPUs: &app},
			edit: func(s *State) { s.Devices[0].NAPIs[0].IRQs[0].Affinity = "0-5" },
			text: "IRQ 38 of eth1 rx-0 may fire on CPUs 3-5"},
		{name: "IRQ, app CPUs unknown", check: "irq-on-app-cpu", want: CouldNotCheck, text: "--app-cpus"},
		{name: "IRQ, no socket and no --dev", check: "irq-on-app-cpu", want: CouldNotCheck,
			edit: func(s *State) { s.Devices[0].Queues[0].XSK = false }, text: "pass --dev"},
		{name: "busy poll with a NAPI", check: "busy-poll-napi", want: OK, text: "served by NAPI 8193"},
		{name: "busy poll without a NAPI", check: "busy-poll-napi", want: Suboptimal,
			edit: func(s *State) { s.Devices[0].Queues[0].NAPI = 0 }, text: "attach the XDP program or turn GRO on"},
		{name: "busy poll off", check: "busy-poll-napi", want: OK, edit: func(s *State) { s.Host.BusyReadUS = i64(0) },
			text: "busy polling is off"},
		{name: "busy poll unreadable", check: "busy-poll-napi", want: CouldNotCheck,
			edit: func(s *State) { s.Host.BusyReadUS = nil }},
		{name: "busy poll, queue named", check: "busy-poll-napi", want: Suboptimal,
			o:    DoctorOptions{Device: "eth1", Queues: []int{1}},
			edit: func(s *State) { s.Devices[0].Queues[1].NAPI = 0 }, text: "eth1 rx-1 has no NAPI id"},
		{name: "SMT on", check: "smt", want: Suboptimal, edit: func(s *State) { s.Host.SMT = "on" },
			text: "echo off > /sys/devices/system/cpu/smt/control"},
		{name: "SMT unknown", check: "smt", want: CouldNotCheck, edit: func(s *State) { s.Host.SMT = "" }},
		{name: "no SMT", check: "smt", want: OK, edit: func(s *State) { s.Host.SMT = "notsupported" }},
		{name: "RT throttling", check: "rt-throttling", want: Suboptimal,
			rt:   func() (error, error) { return errors.New("RT throttling is on: loses 5%"), nil },
			text: "echo -1 > /proc/sys/kernel/sched_rt_runtime_us"},
		{name: "RT throttling unreadable", check: "rt-throttling", want: CouldNotCheck,
			rt: func() (error, error) { return nil, errors.New("no sched_rt_runtime_us") }},
		{name: "kernel 6.18", check: "kernel", want: Suboptimal,
			edit: func(s *State) { s.Kernel, s.Features = "6.18.44", &features6_18 }, text: "threaded-busy-poll needs Linux 6.19"},
		{name: "kernel features unreadable", check: "kernel", want: CouldNotCheck, edit: func(s *State) { s.Features = nil }},
		{name: "6.14 copy-mode busy poll", check: "xdp-copy-busy-poll", want: Suboptimal,
			edit: func(s *State) { s.Kernel = "6.14.3" }, text: "b95ed5517354"},
		{name: "RPS on", check: "rps", want: Suboptimal, edit: func(s *State) { s.Devices[0].Queues[0].RPSCPUs = "0-1" },
			text: "echo 0 > /sys/class/net/eth1/queues/rx-0/rps_cpus"},
		{name: "outside the initial namespace", check: "busy-poll-napi", want: CouldNotCheck,
			edit: func(s *State) {
				s.Host.BusyReadUS, s.Host.BusyPollUS = nil, nil
				s.Host.NetSysctls = "napilab runs in network namespace t-b"
			},
			text: "exist only in the initial network namespace, and napilab runs in network namespace t-b: run " +
				"napilab doctor in the initial namespace, naming the device's namespace with --netns"},
		{name: "orphaned mode", check: "applied-mode", want: Suboptimal,
			edit: func(s *State) {
				s.Modes = []ModeState{{AppliedMode: AppliedMode{Journal: "/run/napilab/x.journal", Preset: "busy-poll",
					Device: "veth-b", Held: true}, Orphaned: "its holder, napilab pid 7, exited without restoring it",
					Fix: "napilab mode restore --journal /run/napilab/x.journal"}}
			},
			text: "busy-poll on veth-b is orphaned: its holder, napilab pid 7, exited without restoring it " +
				"napilab mode restore --journal /run/napilab/x.journal"},
		{name: "mode left applied", check: "applied-mode", want: OK,
			edit: func(s *State) {
				s.Modes = []ModeState{{AppliedMode: AppliedMode{Journal: "/run/napilab/mode.journal", Preset: "busy-poll",
					Device: "veth-b"}, Fix: "napilab mode restore --journal /run/napilab/mode.journal"}}
			},
			text: "it stays until mode restore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := healthyState()
			if tc.edit != nil {
				tc.edit(st)
			}
			rt := noRT
			if tc.rt != nil {
				rt = tc.rt
			}
			var found []Finding
			for _, f := range Diagnose(st, rt, tc.o) {
				if f.Check == tc.check {
					found = append(found, f)
				}
			}
			if len(found) == 0 {
				t.Fatalf("no %s finding", tc.check)
			}
			f := found[0]
			if f.Severity != tc.want || !strings.Contains(f.Message+" "+f.Fix, tc.text) {
				t.Errorf("finding %+v, want %s mentioning %q", f, tc.want, tc.text)
			}
			if f.Severity == Suboptimal && f.Fix == "" {
				t.Errorf("suboptimal finding without a fix: %+v", f)
			}
		})
	}
}

func TestFormatFindings(t *testing.T) {
	got := FormatFindings([]Finding{
		{Check: "smt", Severity: Suboptimal, Message: "SMT is on", Fix: "echo off > x"},
		{Check: "rps", Severity: OK, Subject: "eth1 rx-0", Message: "RPS is off"},
	})
	want := "suboptimal      smt: SMT is on\n                  fix: echo off > x\nok              rps [eth1 rx-0]: RPS is off\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestShowOutsideInitialNetNS: show in a namespace without the machine-wide network sysctls says where they are
// instead of printing "?", and lists applied modes with how to restore an orphan.
func TestShowOutsideInitialNetNS(t *testing.T) {
	st := healthyState()
	st.Host.BusyReadUS, st.Host.BusyPollUS = nil, nil
	st.Host.NetSysctls = "napilab runs in network namespace t-b"
	st.Modes = []ModeState{{AppliedMode: AppliedMode{Journal: "/run/napilab/x.journal", Preset: "busy-poll",
		Device: "veth-b", NetNS: NetNS{Path: "/run/netns/t-b", Inode: 4}, Held: true},
		Orphaned: "its holder, napilab pid 7, exited without restoring it",
		Fix:      "napilab mode restore --journal /run/napilab/x.journal"}}
	out := st.Format()
	for _, want := range []string{"the kernel keeps them in the initial network namespace only, and napilab runs " +
		"in network namespace t-b", "busy-poll on veth-b", "ORPHANED, its holder, napilab pid 7, exited",
		"restore it: napilab mode restore --journal /run/napilab/x.journal"} {
		if !strings.Contains(out, want) {
			t.Errorf("show does not say %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "net.core") && strings.Contains(line, "?") {
			t.Errorf("show prints an unknown: %q", line)
		}
	}
}
