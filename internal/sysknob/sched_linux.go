package sysknob

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

// Sched reads how thread pid is scheduled: policy, priority and nice from sched_getattr(2), allowed CPUs from
// /proc/<pid>/status (the view's procfs, so it agrees with what `taskset -p` and the seed's checks read).
func (r *Root) Sched(pid int) (Sched, error) {
	if pid <= 0 {
		return Sched{}, fmt.Errorf("thread id %d is not valid", pid)
	}
	attr, err := unix.SchedGetAttr(pid, 0)
	if err != nil {
		return Sched{}, schedError("sched_getattr", pid, err)
	}
	cpus, err := r.allowedCPUs(pid)
	if err != nil {
		return Sched{}, err
	}
	return Sched{PID: pid, Policy: Policy(attr.Policy), Priority: int(attr.Priority), Nice: int(attr.Nice), CPUs: cpus}, nil
}

// SetFIFO makes thread pid SCHED_FIFO at priority prio (1 to 99), as `chrt -f -p prio pid` does. A FIFO thread
// that never sleeps is throttled while RT throttling is on (CheckRTThrottling).
func (r *Root) SetFIFO(pid, prio int) error {
	if err := checkFIFOPriority(prio); err != nil {
		return err
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: uint32(PolicyFIFO), Priority: uint32(prio)}
	return schedError("sched_setattr SCHED_FIFO", pid, unix.SchedSetAttr(pid, &attr, 0))
}

// SetAffinity pins thread pid to cpus, as `taskset -pc` does; every CPU must be online.
func (r *Root) SetAffinity(pid int, cpus CPUSet) error {
	if err := r.checkOnline(pid, cpus); err != nil {
		return err
	}
	return setAffinity(pid, cpus)
}

func setAffinity(pid int, cpus CPUSet) error {
	set := unix.NewCPUSet(cpus.Max() + 1)
	for _, c := range cpus.List() {
		set.Set(c)
	}
	return schedError("sched_setaffinity "+cpus.String(), pid, unix.SchedSetaffinityDynamic(pid, set))
}

// RestoreSched puts back what Sched read earlier. The affinity is restored as recorded, offline CPUs included:
// the kernel keeps the mask and uses whichever of its CPUs are online.
func (r *Root) RestoreSched(s Sched) error {
	if s.Policy == PolicyDeadline {
		return fmt.Errorf("restore thread %d: SCHED_DEADLINE parameters are not recorded, so it cannot be put back", s.PID)
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: uint32(s.Policy), Priority: uint32(s.Priority),
		Nice: int32(s.Nice)}
	if err := schedError("sched_setattr "+s.Policy.String(), s.PID, unix.SchedSetAttr(s.PID, &attr, 0)); err != nil {
		return err
	}
	if s.CPUs.IsEmpty() {
		return nil
	}
	return setAffinity(s.PID, s.CPUs)
}

// schedError names the failed call and the thread, and says what to do: a vanished thread matches
// os.ErrNotExist, a refused one os.ErrPermission.
func schedError(op string, pid int, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%w (%s: %w)", gone(pid), op, err)
	}
	oe := kernel.NewOpError(op, fmt.Sprintf("thread %d", pid), err)
	switch {
	case errors.Is(err, unix.EPERM):
		return kernel.WithHint(oe, "run as root (real-time scheduling needs CAP_SYS_NICE)")
	case errors.Is(err, unix.EINVAL) && op != "sched_getattr":
		return kernel.WithHint(oe, "the kernel refused it: a per-CPU kernel thread cannot be moved, and an "+
			"affinity needs at least one online CPU")
	}
	return oe
}
