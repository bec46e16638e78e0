package rr

import (
	"os"
	"runtime"
	"strconv"
	"syscall"

	"github.com/napilab/napilab/internal/sysknob"
)

// lockThread locks the calling goroutine to its OS thread for good (the thread exits with the goroutine, so a
// pinned or real-time thread is never handed back to the Go scheduler), names it (what top -H, /proc and napilab
// trace show, instead of every thread reading "napilab"), pins it to cpu (-1: leave it) and makes it SCHED_FIFO
// at prio (0: leave it). It returns the thread's id for CPU accounting.
func lockThread(name string, cpu, prio int) (int, error) {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	// Writing comm is prctl(PR_SET_NAME) without a pointer to pass. The name is for people and traces only, so
	// a /proc that refuses it changes nothing the benchmark measures.
	_ = os.WriteFile("/proc/thread-self/comm", []byte(name), 0)
	if cpu < 0 && prio == 0 {
		return tid, nil
	}
	host, err := sysknob.Host()
	if err != nil {
		return tid, err
	}
	defer host.Close()
	if cpu >= 0 {
		if err := host.SetAffinity(tid, sysknob.CPUs(cpu)); err != nil {
			return tid, err
		}
	}
	if prio > 0 {
		if err := host.SetFIFO(tid, prio); err != nil {
			return tid, err
		}
	}
	return tid, nil
}

// UsableCPUs returns the CPUs this process may run on: online, and in its affinity mask.
func UsableCPUs() (sysknob.CPUSet, error) {
	host, err := sysknob.Host()
	if err != nil {
		return sysknob.CPUSet{}, err
	}
	defer host.Close()
	online, err := host.OnlineCPUs()
	if err != nil {
		return sysknob.CPUSet{}, err
	}
	self, err := host.Sched(os.Getpid())
	if err != nil {
		return sysknob.CPUSet{}, err
	}
	return online.Minus(online.Minus(self.CPUs)), nil
}

// procThreads is the running kernel's view of this process's threads.
type procThreads struct{}

func (procThreads) usable() (sysknob.CPUSet, error) { return UsableCPUs() }

func (procThreads) threads() []int {
	d, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil
	}
	tids := make([]int, 0, len(d))
	for _, e := range d {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids
}

func (procThreads) affinity(tid int) (sysknob.CPUSet, error) {
	host, err := sysknob.Host()
	if err != nil {
		return sysknob.CPUSet{}, err
	}
	defer host.Close()
	s, err := host.Sched(tid)
	return s.CPUs, err
}

func (procThreads) setAffinity(tid int, cpus sysknob.CPUSet) error {
	host, err := sysknob.Host()
	if err != nil {
		return err
	}
	defer host.Close()
	return host.SetAffinity(tid, cpus)
}
