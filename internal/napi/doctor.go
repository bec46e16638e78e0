package napi

import (
	"fmt"
	"slices"
	"strings"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/sysknob"
)

// Severity ranks a doctor finding. "Could not check" is kept apart from "suboptimal": a check that could not
// run says nothing about the setting.
type Severity string

// Severities.
const (
	OK            Severity = "ok"
	Suboptimal    Severity = "suboptimal"
	CouldNotCheck Severity = "could-not-check"
)

// Finding is one thing a low-latency user should hear, with its fix.
type Finding struct {
	Check    string   `json:"check"`
	Severity Severity `json:"severity"`
	Subject  string   `json:"subject,omitempty"`
	Message  string   `json:"message"`
	Fix      string   `json:"fix,omitempty"`
}

// Advice is a check's warning: what is suboptimal, and the fix.
type Advice struct {
	Problem string
	Fix     string
}

func (a *Advice) Error() string { return a.Problem + "; fix: " + a.Fix }

func advise(fix, format string, args ...any) *Advice {
	return &Advice{Problem: fmt.Sprintf(format, args...), Fix: fix}
}

// DoctorOptions says what the application uses, so the checks can look at the right queue and CPUs.
type DoctorOptions struct {
	Device  string          // the application's device; empty: every queue with an AF_XDP socket bound
	Queues  []int           // its rx queues; empty: all of the device's
	AppCPUs *sysknob.CPUSet // the CPUs the application runs on; nil: unknown
}

// Doctor reads the state and runs every check.
func (s *System) Doctor(o DoctorOptions) ([]Finding, error) {
	st, err := s.Show(o.Device)
	if err != nil {
		return nil, err
	}
	return Diagnose(st, s.Knobs.CheckRTThrottling, o), nil
}

// check is one doctor check on one subject, shaped like tailscale's (warn, err error): warn says the setting is
// suboptimal (an *Advice with its fix), err that it could not be checked; both nil means fine, and ok says what
// was found.
type check struct {
	name, subject string
	ok            string
	warn, err     error
}

// Diagnose runs the checks on a State. rtThrottling is the RT throttling check (sysknob's CheckRTThrottling).
func Diagnose(st *State, rtThrottling func() (warn, err error), o DoctorOptions) []Finding {
	queues := appQueues(st, o)
	var checks []check
	checks = append(checks, kernelChecks(st)...)
	checks = append(checks, smtCheck(st))
	warn, err := rtThrottling()
	checks = append(checks, check{name: "rt-throttling", ok: "RT throttling leaves SCHED_FIFO pollers their whole CPU",
		warn: rtAdvice(warn), err: err})
	checks = append(checks, busyPollChecks(st, queues, o)...)
	checks = append(checks, irqChecks(queues, o)...)
	checks = append(checks, kthreadChecks(st, o)...)
	checks = append(checks, rpsChecks(queues)...)
	checks = append(checks, modeChecks(st)...)
	out := make([]Finding, 0, len(checks))
	for _, c := range checks {
		f := Finding{Check: c.name, Subject: c.subject, Severity: OK, Message: c.ok}
		switch a, isAdvice := c.warn.(*Advice); {
		case c.err != nil:
			f.Severity, f.Message = CouldNotCheck, c.err.Error()
		case isAdvice:
			f.Severity, f.Message, f.Fix = Suboptimal, a.Problem, a.Fix
		case c.warn != nil:
			f.Severity, f.Message = Suboptimal, c.warn.Error()
		}
		out = append(out, f)
	}
	return out
}

func rtAdvice(warn error) error {
	if warn == nil {
		return nil
	}
	// sysknob's sentence ends with its own "; write -1 to ..." fix; the finding states the fix once, below.
	problem, _, _ := strings.Cut(warn.Error(), "; write -1")
	return &Advice{Problem: problem, Fix: "echo -1 > /proc/sys/kernel/sched_rt_runtime_us (the seed-* " +
		"presets do it, and napilab mode restore puts it back)"}
}

// appQueue is a queue the application uses, with its NAPI.
type appQueue struct {
	dev  string
	q    QueueState
	napi *NAPIState
}

func (a appQueue) String() string { return fmt.Sprintf("%s rx-%d", a.dev, a.q.ID) }

// appQueues picks the queues the application uses: those named in o, or else every rx queue with an AF_XDP
// socket bound.
func appQueues(st *State, o DoctorOptions) []appQueue {
	var out []appQueue
	for _, d := range st.Devices {
		if o.Device != "" && d.Name != o.Device {
			continue
		}
		for _, q := range d.Queues {
			if q.Type != "rx" || (o.Device == "" && !q.XSK) || (len(o.Queues) > 0 && !slices.Contains(o.Queues, int(q.ID))) {
				continue
			}
			if q.NAPI == 0 && len(d.NAPIs) == 1 && rxQueues(d) == 1 {
				q.NAPI = d.NAPIs[0].ID // veth never links its queue to its only NAPI in queue-get
			}
			a := appQueue{dev: d.Name, q: q}
			for i := range d.NAPIs {
				if d.NAPIs[i].ID == q.NAPI {
					a.napi = &d.NAPIs[i]
				}
			}
			out = append(out, a)
		}
	}
	return out
}

func rxQueues(d DeviceState) int {
	n := 0
	for _, q := range d.Queues {
		if q.Type == "rx" {
			n++
		}
	}
	return n
}

func errUnknownQueues() error {
	return fmt.Errorf("no AF_XDP socket is bound and no --dev was given, so the application's queue is " +
		"unknown: pass --dev (and --queue)")
}

func kernelChecks(st *State) []check {
	c := check{name: "kernel", subject: st.Kernel}
	v, err := kernel.ParseRelease(st.Kernel)
	if err != nil {
		c.err = err
		return []check{c}
	}
	if st.Features == nil {
		c.err = fmt.Errorf("the kernel's napi-set features could not be read")
		return []check{c}
	}
	var missing []string
	f := *st.Features
	for _, g := range []struct {
		mode  ModeName
		have  bool
		since string
	}{{IRQSuspend, f.IRQSuspendTimeout, "6.13"}, {ThreadedBusyPoll, f.ThreadedBusyPoll, "6.19"}} {
		if !g.have {
			missing = append(missing, fmt.Sprintf("%s needs Linux %s", g.mode, g.since))
		}
	}
	if !f.PerNAPIThreaded {
		missing = append(missing, "threaded is only device-wide before Linux 6.17")
	}
	if len(missing) > 0 {
		c.warn = advise("run those modes in the qemu lab (napilab lab run) or on a newer kernel",
			"this kernel lacks modes: %s", strings.Join(missing, "; "))
	} else {
		c.ok = "this kernel runs every mode"
	}
	checks := []check{c}
	if v.AtLeast(6, 13) && !v.AtLeast(6, 15) {
		checks = append(checks, check{name: "xdp-copy-busy-poll", subject: st.Kernel, warn: advise(
			"use 6.15 or newer, or check SO_INCOMING_NAPI_ID on the socket",
			"AF_XDP copy-mode sockets get no NAPI id on 6.13 and 6.14 without b95ed5517354, so busy polling them "+
				"does nothing")})
	}
	return checks
}

func smtCheck(st *State) check {
	c := check{name: "smt"}
	switch sysknob.SMT(st.Host.SMT) {
	case sysknob.SMTOn:
		c.warn = advise("echo off > /sys/devices/system/cpu/smt/control (or napilab mode apply seed-... "+
			"--allow-smt)", "SMT is on: a sibling hyperthread shares the poll CPU's core and its caches")
	case sysknob.SMTOff, sysknob.SMTForceOff:
		c.ok = "SMT is off"
	case sysknob.SMTNotSupported, sysknob.SMTNotImplemented:
		c.ok = "this machine has no SMT to switch off"
	default:
		c.err = fmt.Errorf("SMT state is unknown (no /sys/devices/system/cpu/smt/control)")
	}
	return c
}

func busyPollChecks(st *State, queues []appQueue, o DoctorOptions) []check {
	h := st.Host
	if h.NetSysctls != "" {
		return []check{{name: "busy-poll-napi", err: fmt.Errorf("net.core.busy_read and busy_poll exist only in "+
			"the initial network namespace, and %s: run napilab doctor in the initial namespace, naming the "+
			"device's namespace with --netns", h.NetSysctls)}}
	}
	if h.BusyReadUS == nil || h.BusyPollUS == nil {
		return []check{{name: "busy-poll-napi", err: fmt.Errorf("net.core.busy_read/busy_poll could not be read")}}
	}
	if *h.BusyReadUS == 0 && *h.BusyPollUS == 0 {
		return []check{{name: "busy-poll-napi", ok: "busy polling is off (busy_read and busy_poll are 0)"}}
	}
	setting := fmt.Sprintf("busy_read is %d µs and busy_poll %d µs", *h.BusyReadUS, *h.BusyPollUS)
	if len(queues) == 0 {
		err := errUnknownQueues()
		if o.Device != "" {
			err = fmt.Errorf("%s has none of the rx queues named", o.Device)
		}
		return []check{{name: "busy-poll-napi", err: fmt.Errorf("%s, but %w", setting, err)}}
	}
	var out []check
	for _, q := range queues {
		c := check{name: "busy-poll-napi", subject: q.String()}
		if q.q.NAPI == 0 {
			c.warn = advise("give the queue a NAPI: on a veth attach the XDP program or turn GRO on (with TSO off "+
				"on the peer); on a NIC, check the driver", "%s, but %s has no NAPI id: a socket on it busy-polls "+
				"nothing", setting, q)
		} else {
			c.ok = fmt.Sprintf("%s; %s is served by NAPI %d", setting, q, q.q.NAPI)
		}
		out = append(out, c)
	}
	return out
}

func irqChecks(queues []appQueue, o DoctorOptions) []check {
	if len(queues) == 0 {
		return []check{{name: "irq-on-app-cpu", err: errUnknownQueues()}}
	}
	var out []check
	for _, q := range queues {
		c := check{name: "irq-on-app-cpu", subject: q.String()}
		switch {
		case q.napi == nil:
			c.ok = "the queue has no NAPI, so no IRQ schedules one"
		case len(q.napi.IRQs) == 0:
			c.ok = "the queue has no IRQ of its own (e.g. veth)"
		case o.AppCPUs == nil:
			c.err = fmt.Errorf("the application's CPUs are unknown: pass --app-cpus")
		default:
			for _, irq := range q.napi.IRQs {
				aff, err := sysknob.ParseCPUList(irq.Affinity)
				if err != nil || irq.Affinity == "" {
					c.err = fmt.Errorf("the affinity of IRQ %d could not be read", irq.IRQ)
					break
				}
				if shared := aff.Minus(aff.Minus(*o.AppCPUs)); !shared.IsEmpty() {
					c.warn = advise(fmt.Sprintf("echo <a CPU outside %s> > /proc/irq/%d/smp_affinity_list "+
						"(napilab mode apply seed-... pins it to the poll CPU)", o.AppCPUs, irq.IRQ),
						"IRQ %d of %s may fire on %s, where the application runs", irq.IRQ, q, cpusPhrase(shared))
					break
				}
			}
			if c.warn == nil && c.err == nil {
				c.ok = "the queue's IRQs fire away from the application's CPUs"
			}
		}
		out = append(out, c)
	}
	return out
}

func kthreadChecks(st *State, o DoctorOptions) []check {
	var out []check
	online, _ := sysknob.ParseCPUList(st.Host.OnlineCPUs)
	for _, d := range st.Devices {
		for _, n := range d.NAPIs {
			if n.Threaded != netdev.ThreadedBusyPoll.String() {
				continue
			}
			c := check{name: "busy-poll-kthread", subject: fmt.Sprintf("%s napi %d", d.Name, n.ID)}
			out = append(out, c)
			cp := &out[len(out)-1]
			if n.Kthread == nil {
				cp.err = fmt.Errorf("its kthread's scheduling could not be read")
				continue
			}
			cpus, _ := sysknob.ParseCPUList(n.Kthread.CPUs)
			fix := fmt.Sprintf("taskset -pc <poll CPU> %d; chrt -f -p 50 %d (or napilab mode apply "+
				"threaded-busy-poll --poll-cpu C)", n.PID, n.PID)
			switch {
			case o.AppCPUs != nil && !cpus.Minus(cpus.Minus(*o.AppCPUs)).IsEmpty():
				cp.warn = advise(fix, "the busy-polling kthread %d may run on %s, which it shares with the "+
					"application: both spin, and each takes the CPU from the other", n.PID,
					cpusPhrase(cpus.Minus(cpus.Minus(*o.AppCPUs))))
			case cpus.Len() > 1 && (online.IsEmpty() || cpus.Len() >= online.Len()):
				cp.warn = advise(fix, "the busy-polling kthread %d may run on any CPU (%s): pin it to a CPU of its "+
					"own", n.PID, cpus)
			case n.Kthread.Policy != sysknob.PolicyFIFO.String():
				cp.warn = advise(fix, "the busy-polling kthread %d runs %s: ordinary threads preempt it",
					n.PID, n.Kthread.Policy)
			case o.AppCPUs == nil:
				cp.err = fmt.Errorf("the kthread runs on %s, but the application's CPUs are unknown: pass "+
					"--app-cpus", cpusPhrase(cpus))
			default:
				cp.ok = fmt.Sprintf("kthread %d runs %s %d on %s, apart from the application", n.PID,
					n.Kthread.Policy, n.Kthread.Priority, cpusPhrase(cpus))
			}
		}
	}
	if len(out) == 0 {
		out = append(out, check{name: "busy-poll-kthread", ok: "no NAPI is in threaded busy poll"})
	}
	return out
}

func rpsChecks(queues []appQueue) []check {
	var out []check
	for _, q := range queues {
		c := check{name: "rps", subject: q.String(), ok: "RPS is off"}
		if q.q.RPSCPUs != "" {
			c.warn = advise(fmt.Sprintf("echo 0 > /sys/class/net/%s/queues/rx-%d/rps_cpus", q.dev, q.q.ID),
				"RPS hands %s's packets to CPUs %s, away from the CPU that polled them", q, q.q.RPSCPUs)
		}
		out = append(out, c)
	}
	return out
}

// cpusPhrase says "CPU 2" or "CPUs 3-5".
func cpusPhrase(s sysknob.CPUSet) string {
	if s.Len() == 1 {
		return "CPU " + s.String()
	}
	return "CPUs " + s.String()
}

// FormatFindings renders findings for people: one line each, the fix indented below.
func FormatFindings(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		subject := ""
		if f.Subject != "" {
			subject = " [" + f.Subject + "]"
		}
		fmt.Fprintf(&b, "%-15s %s%s: %s\n", f.Severity, f.Check, subject, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(&b, "%-15s   fix: %s\n", "", f.Fix)
		}
	}
	return b.String()
}

// modeChecks reports every applied mode, and as suboptimal one nobody will restore by itself (an orphan).
func modeChecks(st *State) []check {
	var out []check
	for _, m := range st.Modes {
		c := check{name: "applied-mode", subject: m.Journal}
		if m.Orphaned != "" {
			c.warn = advise(m.Fix, "%s on %s is orphaned: %s", m.Preset, m.Device, m.Orphaned)
		} else {
			c.ok = m.String()
		}
		out = append(out, c)
	}
	return out
}
