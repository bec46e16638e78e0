package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// protocolStdout takes standard output for the protocol alone: the protocol gets a descriptor of its own and
// descriptor 1 becomes standard error, so that nothing else the process might print can corrupt a message,
// and a write to a vanished controller fails with EPIPE instead of killing the agent before it restores.
func protocolStdout() (*os.File, error) {
	fd, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("take standard output for the protocol: %w", err)
	}
	if err := unix.Dup3(2, 1, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("point standard output at standard error: %w", err)
	}
	return os.NewFile(uintptr(fd), "agent-protocol"), nil
}
