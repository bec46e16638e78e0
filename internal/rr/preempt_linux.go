package rr

import (
	"fmt"
	"os"
	"syscall"
)

// RestartForSpinning replaces the process with itself (execve of /proc/self/exe, same arguments, same pid)
// started with asynchronous preemption off, for the spinning loops' sake (see preempt.go). It returns nil at once
// when GODEBUG already sets asyncpreemptoff, and an error, leaving the process as it was, when the exec fails.
// Call it first thing in main, before any thread or file of the program matters.
func RestartForSpinning() error {
	env, changed := spinningEnv(os.Environ())
	if !changed {
		return nil
	}
	err := syscall.Exec("/proc/self/exe", os.Args, env)
	return fmt.Errorf("restart with GODEBUG=%s=1 for the spinning loops: %w (set GODEBUG=%s=0 to start "+
		"without trying)", asyncPreemptOff, err, asyncPreemptOff)
}
