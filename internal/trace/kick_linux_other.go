//go:build linux && !amd64

package trace

import "golang.org/x/sys/unix"

// kickSyscalls are the system calls that kick an AF_XDP socket (recvfrom and sendto with no buffer) or wait on one
// (ppoll; this architecture has no poll system call), by their numbers on this architecture.
var kickSyscalls = map[int]string{unix.SYS_RECVFROM: "recvfrom", unix.SYS_SENDTO: "sendto", unix.SYS_PPOLL: "ppoll"}
