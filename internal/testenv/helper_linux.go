package testenv

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// Helper is the test binary run again as a child process in a helper role: for what a test cannot do to itself,
// such as being killed by SIGKILL, giving up root for good, or holding a resource the parent checks from outside.
// The child recognises its role from an environment variable the test sets and writes lines to stdout.
type Helper struct {
	Cmd *exec.Cmd
	Out *bufio.Scanner // the child's stdout, by line
	In  io.WriteCloser // the child's stdin: closing it is a way to tell it to finish
}

// StartHelper starts the test binary (running no test) with env added to its environment and extra as file
// descriptors 3, 4, ... The child is killed and reaped when tb ends, if it has not exited by then.
func StartHelper(tb testing.TB, env []string, extra ...*os.File) *Helper {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.ExtraFiles = extra
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return &Helper{Cmd: cmd, Out: bufio.NewScanner(out), In: in}
}

// DropToNobody gives up root for the whole process (setuid applies to every thread), as a helper that must show
// what an unprivileged user sees. There is no way back: run it only in a Helper child.
func DropToNobody() error {
	if err := syscall.Setgroups(nil); err != nil {
		return err
	}
	if err := syscall.Setgid(65534); err != nil {
		return err
	}
	return syscall.Setuid(65534)
}
