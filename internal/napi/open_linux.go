package napi

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"

	"github.com/vishvananda/netns"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/sysknob"
)

// Open connects to the machine for a device in network namespace netns (a name under /run/netns, a path, or
// "" for napilab's own): netdev and ethtool sockets opened inside the namespace, a sysfs view of it, and the
// host's procfs for everything machine-wide.
func Open(netns string) (*System, error) {
	path := NetNSPath(netns)
	ns := NetNS{Path: path}
	ino, err := nsInode(path)
	if err != nil {
		return nil, err
	}
	ns.Inode = ino
	return OpenNetNS(ns)
}

// OpenNetNS is Open for a namespace recorded in a journal: it refuses a namespace whose inode differs, i.e. one
// that took the recorded name after the recorded one was deleted. The error then matches os.ErrNotExist.
func OpenNetNS(ns NetNS) (_ *System, err error) {
	s := &System{NetNS: ns, Kernel: kernel.Release()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	ino, err := nsInode(ns.Path)
	if err != nil {
		return nil, err
	}
	switch {
	case ns.Inode == 0 || ino == ns.Inode:
	case ns.Path == "":
		return nil, fmt.Errorf("the journal was written in network namespace net:[%d], but napilab now runs in "+
			"net:[%d]: run it in the namespace the mode was applied in", ns.Inode, ino)
	default:
		return nil, &notFound{fmt.Sprintf("%s is gone (that path now holds net:[%d])", ns, ino)}
	}
	s.NetNS.Inode = ino
	fd := 0
	if ns.Path != "" {
		h, err := netns.GetFromPath(ns.Path)
		if err != nil {
			return nil, nsError(ns.Path, err)
		}
		s.closers = append(s.closers, h.Close)
		fd = int(h)
		s.Links = nsLinks{ns: h}
	} else {
		s.Links = nsLinks{ns: -1}
	}
	nd, err := netdev.Dial(&netdev.Options{NetNS: fd})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, nd.Close)
	s.Netdev = nd
	et, err := ethtool.Dial(&ethtool.Config{NetNS: fd})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, et.Close)
	s.Ethtool = et
	host, err := sysknob.Host()
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, host.Close)
	dev := host
	if fd != 0 {
		if dev, err = sysknob.NetNS(fd); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, dev.Close)
	}
	s.Knobs, s.Sched = NewKnobs(dev, host), host
	return s, nil
}

// nsInode returns the inode of the namespace at path, or of napilab's own for "".
func nsInode(path string) (uint64, error) {
	p := path
	if p == "" {
		p = "/proc/self/ns/net"
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, nsError(path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("stat %s: no inode", p)
	}
	return st.Ino, nil
}

func nsError(path string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return &notFound{fmt.Sprintf("there is no network namespace at %s: list them with `ip netns list` "+
			"(or napilab testbed show)", path)}
	}
	if errors.Is(err, os.ErrPermission) {
		return kernel.WithHint(fmt.Errorf("open network namespace %s: %w", path, err), "run as root")
	}
	return fmt.Errorf("open network namespace %s: %w", path, err)
}

// nsLinks lists interfaces with the standard library, from a thread inside the namespace (netlink route
// sockets belong to the namespace of the thread that opens them).
type nsLinks struct{ ns netns.NsHandle }

func (l nsLinks) Links() ([]Link, error) {
	if l.ns < 0 {
		return stdLinks()
	}
	type result struct {
		links []Link
		err   error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is retired with the goroutine, namespace and all
		if err := netns.Set(l.ns); err != nil {
			done <- result{err: kernel.WithHint(fmt.Errorf("enter network namespace: %w", err), "run as root")}
			return
		}
		links, err := stdLinks()
		done <- result{links, err}
	}()
	r := <-done
	return r.links, r.err
}

func stdLinks() ([]Link, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	links := make([]Link, len(ifs))
	for i, f := range ifs {
		links[i] = Link{Name: f.Name, Ifindex: uint32(f.Index)}
	}
	return links, nil
}
