package testbedtest

import (
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/testbed"
)

// RootQdisc returns the root queueing discipline of link in host h, with its statistics, failing tb when there
// is none.
func RootQdisc(tb testing.TB, h *testbed.Host, link string) netlink.Qdisc {
	tb.Helper()
	q, err := LookupRootQdisc(h, link)
	if err != nil {
		tb.Fatal(err)
	}
	return q
}

// LookupRootQdisc is RootQdisc for a goroutine other than the test's, which must not call tb.Fatal.
func LookupRootQdisc(h *testbed.Host, link string) (netlink.Qdisc, error) {
	nl, err := netlink.NewHandleAt(netns.NsHandle(h.NetNS()), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	l, err := nl.LinkByName(link)
	if err != nil {
		return nil, err
	}
	qds, err := nl.QdiscList(l)
	if err != nil {
		return nil, err
	}
	for _, q := range qds {
		if a := q.Attrs(); a.Parent == netlink.HANDLE_ROOT && a.Statistics != nil && a.Statistics.Basic != nil && a.Statistics.Queue != nil {
			return q, nil
		}
	}
	return nil, fmt.Errorf("no root qdisc with statistics on %s/%s: %v", h.Namespace, link, qds)
}
