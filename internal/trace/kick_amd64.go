//go:build linux

package trace

import "golang.org/x/sys/unix"

// kickSyscalls are the system calls that kick an AF_XDP socket (recvfrom and sendto with no buffer) or wait on one
// (poll, ppoll), by their numbers on this architecture.
var kickSyscalls = map[int]string{unix.SYS_RECVFROM: "recvfrom", unix.SYS_SENDTO: "sendto", unix.SYS_POLL: "poll",
	unix.SYS_PPOLL: "ppoll"}
