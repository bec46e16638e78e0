package sysknob

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/napilab/napilab/internal/kernel"
)

// Policy is a Linux scheduling policy (sched(7)).
type Policy int

// Scheduling policies.
const (
	PolicyOther    Policy = 0
	PolicyFIFO     Policy = 1
	PolicyRR       Policy = 2
	PolicyBatch    Policy = 3
	PolicyIdle     Policy = 5
	PolicyDeadline Policy = 6
)

func (p Policy) String() string {
	switch p {
	case PolicyOther:
		return "SCHED_OTHER"
	case PolicyFIFO:
		return "SCHED_FIFO"
	case PolicyRR:
		return "SCHED_RR"
	case PolicyBatch:
		return "SCHED_BATCH"
	case PolicyIdle:
		return "SCHED_IDLE"
	case PolicyDeadline:
		return "SCHED_DEADLINE"
	}
	return "policy " + strconv.Itoa(int(p))
}

// Sched is how a thread is scheduled: what Root.Sched reads and, kept from before a change, what
// Root.RestoreSched puts back.
type Sched struct {
	PID      int    `json:"pid"`
	Policy   Policy `json:"policy"`
	Priority int    `json:"priority"` // real-time priority, 1 to 99 under SCHED_FIFO and SCHED_RR, else 0
	Nice     int    `json:"nice"`     // under SCHED_OTHER and SCHED_BATCH
	CPUs     CPUSet `json:"cpus"`     // the CPUs the thread may run on (Cpus_allowed_list)
}

// FIFO priority bounds (sched_get_priority_min/max for SCHED_FIFO).
const (
	MinFIFOPriority = 1
	MaxFIFOPriority = 99
)

func checkFIFOPriority(prio int) error {
	if prio < MinFIFOPriority || prio > MaxFIFOPriority {
		return fmt.Errorf("SCHED_FIFO priority %d is out of range: want %d to %d", prio, MinFIFOPriority, MaxFIFOPriority)
	}
	return nil
}

// checkOnline refuses an affinity that names a CPU that is not online: the kernel would silently drop it or,
// if none is left, answer EINVAL.
func (r *Root) checkOnline(pid int, cpus CPUSet) error {
	if cpus.IsEmpty() {
		return fmt.Errorf("pin thread %d: the CPU set is empty", pid)
	}
	online, err := r.OnlineCPUs()
	if err != nil {
		return err
	}
	if off := cpus.Minus(online); !off.IsEmpty() {
		return fmt.Errorf("pin thread %d to CPUs %s: %s (online CPUs: %s)", pid, cpus,
			cpusAre(off, "is not online", "are not online"), online)
	}
	return nil
}

// allowedCPUs reads Cpus_allowed_list from /proc/<pid>/status.
func (r *Root) allowedCPUs(pid int) (CPUSet, error) {
	f := procFile(strconv.Itoa(pid), "status")
	text, err := r.read(f)
	if err != nil {
		return CPUSet{}, r.fail("read", fmt.Sprintf("status of thread %d", pid), f, err,
			func() string { return gone(pid).Error() })
	}
	return parseCPUsAllowed(text)
}

// parseCPUsAllowed finds the Cpus_allowed_list line of a /proc/<pid>/status text.
func parseCPUsAllowed(status string) (CPUSet, error) {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return ParseCPUList(v)
		}
	}
	return CPUSet{}, fmt.Errorf("status has no Cpus_allowed_list line")
}

// gone is the error for a thread that no longer exists (ESRCH).
func gone(pid int) error {
	return kernel.NotFound("thread %d is gone (a NAPI kthread exits when threaded NAPI is switched off or the "+
		"device resets: look its pid up again with netdev napi-get)", pid)
}
