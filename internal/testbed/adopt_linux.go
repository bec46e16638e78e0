package testbed

import (
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

// adopt moves the devices of Topology.Devices from the caller's network namespace into hosts A and B. It
// records where they came from first, so that teardown can give back whatever was moved even when a later
// step fails. ha and hb are rtnetlink handles in A and B.
func (tb *Testbed) adopt(ha, hb *netlink.Handle) error {
	home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return kernel.NewOpError("open", "this network namespace", err)
	}
	tb.adopted = &adoption{home: &Host{Namespace: "the adopting namespace", nsfd: home}}
	hn, err := handleAt(tb.adopted.home)
	if err != nil {
		return err
	}
	defer hn.Close()
	for i, e := range []struct {
		h  *Host
		nl *netlink.Handle
	}{{tb.A, ha}, {tb.B, hb}} {
		link, err := hn.LinkByName(e.h.Link)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return kernel.WithHint(fmt.Errorf("testbed: adopt device %s: %w", e.h.Link, os.ErrNotExist),
				"name two devices of this network namespace that are wired to each other")
		}
		if err != nil {
			return kernel.NewOpError("find", e.h.Link, err)
		}
		if err := hn.LinkSetNsFd(link, e.h.nsfd); err != nil {
			return kernel.NewOpError("move device "+e.h.Link+" into", e.h.Namespace, err)
		}
		tb.adopted.mtu[i] = link.Attrs().MTU
		if mtu := tb.Topology.MTU; mtu != link.Attrs().MTU {
			moved, err := e.nl.LinkByName(e.h.Link)
			if err != nil {
				return kernel.NewOpError("find", e.h.Namespace+"/"+e.h.Link, err)
			}
			if err := e.nl.LinkSetMTU(moved, mtu); err != nil {
				return kernel.NewOpError(fmt.Sprintf("set MTU %d on", mtu), e.h.Namespace+"/"+e.h.Link, err)
			}
		}
	}
	return nil
}

// giveBack moves the adopted devices back to the namespace they came from, with their MTUs as they were. A
// device moved between namespaces loses its addresses and goes down, so nothing of the testbed stays on it.
func (tb *Testbed) giveBack() error {
	a := tb.adopted
	if a == nil {
		return nil
	}
	defer a.home.close()
	var errs []error
	for i, h := range []*Host{tb.A, tb.B} {
		if h == nil || h.nsfd < 0 || a.mtu[i] == 0 {
			continue
		}
		err := h.Do(func() error {
			link, err := netlink.LinkByName(h.Link)
			var notFound netlink.LinkNotFoundError
			if errors.As(err, &notFound) {
				return nil // deleted meanwhile (a driver unbind): nothing to give back
			}
			if err != nil {
				return kernel.NewOpError("find", h.Namespace+"/"+h.Link, err)
			}
			if link.Attrs().MTU != a.mtu[i] {
				if err := netlink.LinkSetMTU(link, a.mtu[i]); err != nil {
					return kernel.NewOpError(fmt.Sprintf("put MTU %d back on", a.mtu[i]), h.Namespace+"/"+h.Link, err)
				}
			}
			return kernel.NewOpError("give device back from", h.Namespace+"/"+h.Link, netlink.LinkSetNsFd(link, a.home.nsfd))
		})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
