package usage

import (
	"strconv"
	"time"
)

// Spec says what a Snapshot covers beyond the CPUs and the process itself.
type Spec struct {
	// Threads of this process to account by role, e.g. "receiver" → tid. Their time is part of the
	// process's own CPU time; the split shows which thread spent it.
	Threads map[string]int
	// Tasks outside this process to account, e.g. "napi/vb-259" → the pid of a NAPI kthread that polls for us.
	Tasks map[string]int
	IRQs  []int // IRQ lines to count, e.g. the NIC queue's
}

// Snapshot is the accounting state at one instant.
type Snapshot struct {
	At         time.Time
	CPUs       []CPUTimes
	User, Sys  time.Duration // this process
	VolCtxSw   int64         // voluntary context switches of this process
	InvolCtxSw int64         // involuntary ones
	GCCycles   uint64
	Tasks      map[string]TaskTimes
	IRQs       map[int][]uint64 // per IRQ, per CPU
}

// TaskTimes is the CPU time of one task (thread or kthread).
type TaskTimes struct {
	Name       string
	OnCPU      time.Duration // schedstat run time, ns resolution
	WaitRun    time.Duration // time runnable but waiting for a CPU
	User, Sys  time.Duration // from stat, USER_HZ resolution
	Timeslices uint64
	Own        bool // a thread of this process
	Gone       bool // the task had exited when the snapshot was taken
}

// Usage is the difference between two snapshots.
type Usage struct {
	Wall       time.Duration          `json:"wall_ns"`
	User       time.Duration          `json:"process_user_ns"`
	Sys        time.Duration          `json:"process_sys_ns"`
	VolCtxSw   int64                  `json:"voluntary_ctx_switches"`
	InvolCtxSw int64                  `json:"involuntary_ctx_switches"`
	GCCycles   uint64                 `json:"gc_cycles"`
	CPUs       []CPUPercent           `json:"cpus"`
	Tasks      map[string]TaskUsage   `json:"tasks,omitempty"`
	IRQs       map[string]IRQActivity `json:"irqs,omitempty"`
}

// CPUPercent is one CPU's time split over the window, in percent.
type CPUPercent struct {
	CPU     int     `json:"cpu"`
	User    float64 `json:"usr_pct"`
	System  float64 `json:"sys_pct"`
	SoftIRQ float64 `json:"softirq_pct"`
	IRQ     float64 `json:"irq_pct"`
	Idle    float64 `json:"idle_pct"`
	Steal   float64 `json:"steal_pct"`
}

// TaskUsage is the CPU one task used over the window.
type TaskUsage struct {
	Name    string        `json:"name"`
	OnCPU   time.Duration `json:"on_cpu_ns"`
	WaitRun time.Duration `json:"wait_run_ns"`
	Percent float64       `json:"cpu_pct"` // of one CPU
	Own     bool          `json:"own_thread"`
	Gone    bool          `json:"gone,omitempty"`
}

// IRQActivity counts one IRQ line's interrupts over the window.
type IRQActivity struct {
	Total  uint64   `json:"total"`
	PerCPU []uint64 `json:"per_cpu"`
}

// Sub returns what happened between before and after.
func Sub(before, after Snapshot) Usage {
	u := Usage{
		Wall:       after.At.Sub(before.At),
		User:       after.User - before.User,
		Sys:        after.Sys - before.Sys,
		VolCtxSw:   after.VolCtxSw - before.VolCtxSw,
		InvolCtxSw: after.InvolCtxSw - before.InvolCtxSw,
		GCCycles:   after.GCCycles - before.GCCycles,
	}
	prev := map[int]CPUTimes{}
	for _, c := range before.CPUs {
		prev[c.CPU] = c
	}
	for _, a := range after.CPUs {
		b, ok := prev[a.CPU]
		if !ok {
			continue // CPU came online in the window
		}
		total := float64(a.total() - b.total())
		if total <= 0 {
			continue
		}
		pct := func(x, y uint64) float64 { return 100 * float64(x-y) / total }
		u.CPUs = append(u.CPUs, CPUPercent{CPU: a.CPU,
			User: pct(a.User+a.Nice, b.User+b.Nice), System: pct(a.System, b.System),
			SoftIRQ: pct(a.SoftIRQ, b.SoftIRQ), IRQ: pct(a.IRQ, b.IRQ),
			Idle: pct(a.Idle+a.IOWait, b.Idle+b.IOWait), Steal: pct(a.Steal, b.Steal)})
	}
	if len(after.Tasks) > 0 {
		u.Tasks = map[string]TaskUsage{}
		for key, a := range after.Tasks {
			b := before.Tasks[key]
			t := TaskUsage{Name: a.Name, Own: a.Own, Gone: a.Gone || b.Gone}
			if !t.Gone { // a task missing from either snapshot has no difference to report
				t.OnCPU, t.WaitRun = a.OnCPU-b.OnCPU, a.WaitRun-b.WaitRun
			}
			if u.Wall > 0 {
				t.Percent = 100 * float64(t.OnCPU) / float64(u.Wall)
			}
			u.Tasks[key] = t
		}
	}
	if len(after.IRQs) > 0 {
		u.IRQs = map[string]IRQActivity{}
		for irq, a := range after.IRQs {
			b := before.IRQs[irq]
			act := IRQActivity{PerCPU: make([]uint64, len(a))}
			for i := range a {
				if i < len(b) && a[i] >= b[i] {
					act.PerCPU[i] = a[i] - b[i]
				}
				act.Total += act.PerCPU[i]
			}
			u.IRQs[strconv.Itoa(irq)] = act
		}
	}
	return u
}

// ProcessCPU is the process's user plus system time.
func (u Usage) ProcessCPU() time.Duration { return u.User + u.Sys }

// CPUPerOp is the CPU time per operation, counting the process and every accounted task (a NAPI kthread that
// busy-polls on behalf of the process costs as much as the process itself).
func (u Usage) CPUPerOp(ops uint64) time.Duration {
	if ops == 0 {
		return 0
	}
	total := u.ProcessCPU()
	for _, t := range u.Tasks {
		if !t.Own && !t.Gone {
			total += t.OnCPU
		}
	}
	return total / time.Duration(ops)
}
