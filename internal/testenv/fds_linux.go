package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// netpollOnce makes the Go runtime create its netpoller (an epoll descriptor and an eventfd) before the first
// snapshot: the runtime does so lazily on the first pollable descriptor and keeps them for good, so a test whose
// first socket comes after the snapshot would otherwise seem to leak them.
var netpollOnce sync.Once

func openFDs() (FDs, error) {
	netpollOnce.Do(func() {
		if r, w, err := os.Pipe(); err == nil {
			r.Close()
			w.Close()
		}
	})
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	self := int(dir.Fd()) // the listing's own descriptor is no one's leak
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	fds := make(FDs, len(names))
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == self {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + name)
		if err != nil {
			continue // closed while we looked
		}
		fds[fd] = target
	}
	return fds, nil
}

// describeFD says what fd is beyond its /proc link: the address family (and netlink protocol) of a socket,
// the kind of a BPF map, program or link. It asks the descriptor itself, so it checks that fd still refers to
// target afterwards and otherwise says nothing more.
func describeFD(fd int, target string) string {
	var more string
	switch {
	case strings.HasPrefix(target, "socket:"):
		more = socketKind(fd)
	case strings.HasPrefix(target, "anon_inode:"):
		more = fdinfoTypes(fd)
	}
	if now, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); more == "" || err != nil || now != target {
		return target
	}
	return target + " (" + more + ")"
}

var families = map[int]string{
	unix.AF_UNIX: "AF_UNIX", unix.AF_INET: "AF_INET", unix.AF_INET6: "AF_INET6", unix.AF_NETLINK: "AF_NETLINK",
	unix.AF_PACKET: "AF_PACKET", unix.AF_XDP: "AF_XDP",
}

var netlinkProtocols = map[int]string{
	unix.NETLINK_ROUTE: "NETLINK_ROUTE", unix.NETLINK_GENERIC: "NETLINK_GENERIC",
	unix.NETLINK_SOCK_DIAG: "NETLINK_SOCK_DIAG", unix.NETLINK_NETFILTER: "NETLINK_NETFILTER",
	unix.NETLINK_XFRM: "NETLINK_XFRM", unix.NETLINK_KOBJECT_UEVENT: "NETLINK_KOBJECT_UEVENT",
}

var socketTypes = map[int]string{
	unix.SOCK_STREAM: "SOCK_STREAM", unix.SOCK_DGRAM: "SOCK_DGRAM", unix.SOCK_RAW: "SOCK_RAW",
	unix.SOCK_SEQPACKET: "SOCK_SEQPACKET",
}

func socketKind(fd int) string {
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return ""
	}
	name := named(families, domain, "family")
	if domain == unix.AF_NETLINK {
		if proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); err == nil {
			name += " " + named(netlinkProtocols, proto, "protocol")
		}
	}
	if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err == nil {
		name += ", " + named(socketTypes, typ, "type")
	}
	return name
}

func named(names map[int]string, v int, kind string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return fmt.Sprintf("%s %d", kind, v)
}

// fdinfoTypes returns the "*_type" lines of /proc/self/fdinfo/fd (map_type, prog_type, link_type of BPF objects).
func fdinfoTypes(fd int) string {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return ""
	}
	var types []string
	for sc := bufio.NewScanner(bytes.NewReader(b)); sc.Scan(); {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.HasSuffix(k, "_type") {
			types = append(types, k+" "+strings.TrimSpace(v))
		}
	}
	return strings.Join(types, ", ")
}
