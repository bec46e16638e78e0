package rr

import (
	"fmt"
	"os"
	"syscall"
)

// RestartForSpinning replaces the process with itself (execve of its own executable, same arguments, same pid)
// started with asynchronous preemption off, for the spinning loops' sake (see preempt.go). It returns nil at once
// when GODEBUG already sets asyncpreemptoff, and an error, leaving the process as it was, when the exec fails.
// Call it first thing in main, before any thread or file of the program matters.
func RestartForSpinning() error {
	env, changed := spinningEnv(os.Environ())
	if !changed {
		return nil
	}
	err := syscall.Exec(selfPath(), os.Args, env)
	return fmt.Errorf("restart with GODEBUG=%s=1 for the spinning loops: %w (set GODEBUG=%s=0 to start "+
		"without trying)", asyncPreemptOff, err, asyncPreemptOff)
}

// selfPath is the file to exec to run this program again. The kernel names a process after the file it was
// exec'd from (its comm, which ps, top, pgrep and the scheduler's traces show), so /proc/self/exe would rename
// every napilab process "exe": the executable's own path is used when it still is this program's file. When it
// is gone or has been replaced (an upgrade in place), /proc/self/exe still reaches the running program's.
func selfPath() string {
	const self = "/proc/self/exe"
	path, err := os.Executable()
	if err != nil {
		return self
	}
	running, err1 := os.Stat(self)
	named, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(running, named) {
		return self
	}
	return path
}
