package napi

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/ethtool"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netdev"
	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/sysknob"
)

// Open connects to the machine for a device in network namespace netns (a name under /run/netns, a path, or
// "" for napilab's own): netdev and ethtool sockets opened inside the namespace, a sysfs view of it, and the
// host's procfs for everything machine-wide.
func Open(nsName string) (*System, error) {
	path := netns.Path(nsName)
	ns := NetNS{Path: path}
	ino, err := netns.Inode(path)
	if err != nil {
		return nil, err
	}
	ns.Inode = ino
	return OpenNetNS(ns)
}

// OpenNetNS is Open for a namespace recorded in a journal: it refuses a namespace whose inode differs, i.e. one
// that took the recorded name after the recorded one was deleted. The error then matches os.ErrNotExist.
func OpenNetNS(ns NetNS) (_ *System, err error) {
	s := &System{NetNS: ns, Kernel: kernel.Release(), Registry: DefaultRegistry, NetSysctls: netSysctls()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	ino, err := netns.Inode(ns.Path)
	if err != nil {
		return nil, err
	}
	switch {
	case ns.Inode == 0 || ino == ns.Inode:
	case ns.Path == "":
		return nil, fmt.Errorf("the journal was written in network namespace net:[%d], but napilab now runs in "+
			"net:[%d]: run it in the namespace the mode was applied in", ns.Inode, ino)
	default:
		return nil, kernel.NotFound("%s is gone (that path now holds net:[%d])", ns, ino)
	}
	s.NetNS.Inode = ino
	fd := 0
	if ns.Path != "" {
		h, err := netns.Open(ns.Path)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() error { return unix.Close(h) })
		fd = h
	}
	s.Links = nsLinks{fd: fd, name: ns.String()}
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

// nsLinks lists interfaces with the standard library, from a thread inside the namespace (netlink route
// sockets belong to the namespace of the thread that opens them).
type nsLinks struct {
	fd   int // 0: napilab's own namespace
	name string
}

func (l nsLinks) Links() (links []Link, err error) {
	if l.fd == 0 {
		return stdLinks()
	}
	err = netns.DoFD(l.fd, l.name, func() (err error) {
		links, err = stdLinks()
		return err
	})
	return links, err
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

// netSysctls says why napilab cannot reach the machine-wide network sysctls from the namespace it runs in, or ""
// when it runs in the initial one.
func netSysctls() string {
	if initial, err := netns.Initial(); err != nil || initial {
		return ""
	}
	if name := netns.NameOf(); name != "" {
		return "napilab runs in network namespace " + name
	}
	ino, _ := netns.Inode("")
	return fmt.Sprintf("napilab runs in network namespace net:[%d]", ino)
}
