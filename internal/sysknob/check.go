package sysknob

import "fmt"

// CheckRTThrottling returns warn when RT throttling takes CPU time from a SCHED_FIFO thread that never sleeps
// (a threaded busy-poll NAPI kthread, or a busy-polling benchmark at `chrt -f`), and err when it cannot tell.
// Like every Check, it changes nothing; the fix is SchedRTRuntime().Set(Unlimited).
func (r *Root) CheckRTThrottling() (warn, err error) {
	runtime, err := r.SchedRTRuntime().Get()
	if err != nil || runtime == Unlimited {
		return nil, err
	}
	period, err := r.SchedRTPeriod().Get()
	if err != nil || runtime >= period {
		return nil, err
	}
	loss := 100 * float64(period-runtime) / float64(period)
	return fmt.Errorf("RT throttling is on: SCHED_FIFO threads may run %v of every %v, so a busy-polling FIFO "+
		"thread loses %.3g%% of its CPU; write -1 to %s to turn it off", runtime, period, loss,
		r.SchedRTRuntime().Path()), nil
}
