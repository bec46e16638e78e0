package testbed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/xdp"
)

const privilegeHint = "run as root: a testbed needs CAP_SYS_ADMIN (namespaces, mounts) and CAP_NET_ADMIN"

// Up builds the testbed topo describes. On error, everything made so far is removed again.
func Up(ctx context.Context, topo Topology) (*Testbed, error) {
	tb, err := up(ctx, topo)
	if errors.Is(err, os.ErrPermission) {
		var hint *kernel.HintError
		if !errors.As(err, &hint) {
			err = kernel.WithHint(err, privilegeHint)
		}
	}
	return tb, err
}

func up(ctx context.Context, topo Topology) (_ *Testbed, err error) {
	t, err := topo.Resolve()
	if err != nil {
		return nil, err
	}
	tb := &Testbed{}
	if err := tb.claimName(t); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tb.teardown())
		}
	}()

	for _, h := range tb.hosts() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		path := ""
		if t.Lifetime.Named() {
			path = filepath.Join(netnsDir, h.Namespace)
		}
		h.nsfd, h.inode, err = newNamespace(path)
		if err != nil {
			return nil, err
		}
		h.nsPath = path
		if path == "" {
			h.nsPath = fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), h.nsfd)
		}
		if err := tb.saveRecord(); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := tb.build(ctx); err != nil {
		return nil, err
	}
	if tb.record != nil {
		tb.record.Complete = true
		if err := tb.saveRecord(); err != nil {
			return nil, err
		}
	}
	return tb, nil
}

// claimName fixes the testbed's name and, for a named testbed, claims it by creating its state file. A
// generated name that another process happens to hold (same pid, earlier boot) moves on to the next counter.
func (tb *Testbed) claimName(t Topology) error {
	generated := t.Name == ""
	for attempt := 0; ; attempt++ {
		if generated {
			t.Name = generateName(t.Prefix)
		}
		tb.Name, tb.Topology = t.Name, t
		na, nb := namespaceNames(t.Name)
		a4, b4 := hostAddrs(t.IPv4)
		a6, b6 := hostAddrs(t.IPv6)
		tb.A = &Host{Side: "a", Namespace: na, Link: LinkA, IPv4: a4, IPv6: a6, nsfd: -1}
		tb.B = &Host{Side: "b", Namespace: nb, Link: LinkB, IPv4: b4, IPv6: b6, nsfd: -1}
		if t.Bridge {
			tb.M = &Host{Side: "m", Namespace: middleName(t.Name), Link: BridgeName, nsfd: -1}
		}
		if t.Adopted() {
			tb.A.Link, tb.B.Link = t.Devices[0], t.Devices[1]
		}
		if !t.Lifetime.Named() {
			return nil
		}
		self, err := kernel.Self()
		if err != nil {
			return err
		}
		tb.record = &Record{Version: recordVersion, Name: t.Name, Topology: t, Owner: self,
			Created: time.Now().UTC().Truncate(time.Second)}
		tb.fillRecord()
		err = Store{Dir: t.StateDir}.reserve(tb.record)
		if err == nil {
			return nil
		}
		tb.record = nil
		if !generated || !errors.Is(err, fs.ErrExist) || attempt == 10 {
			return err
		}
	}
}

func (tb *Testbed) fillRecord() {
	for _, p := range []struct {
		h *Host
		r *HostRecord
	}{{tb.A, &tb.record.A}, {tb.B, &tb.record.B}} {
		*p.r = HostRecord{Namespace: p.h.Namespace, Inode: p.h.inode, Link: p.h.Link, Ifindex: p.h.Ifindex,
			IPv4: p.h.IPv4, IPv6: p.h.IPv6}
		if p.h.MAC != nil {
			p.r.MAC = p.h.MAC.String()
		}
	}
}

func (tb *Testbed) saveRecord() error {
	if tb.record == nil {
		return nil
	}
	tb.fillRecord()
	return Store{Dir: tb.Topology.StateDir}.update(tb.record)
}

// build makes the veth pair, addresses, features and neighbours inside the two namespaces.
func (tb *Testbed) build(ctx context.Context) error {
	t := tb.Topology
	ha, err := handleAt(tb.A)
	if err != nil {
		return err
	}
	defer ha.Close()
	hb, err := handleAt(tb.B)
	if err != nil {
		return err
	}
	defer hb.Close()

	switch {
	case t.Adopted():
		if err := tb.adopt(ha, hb); err != nil {
			return err
		}
	case tb.M == nil:
		// Create the pair from A with the peer placed straight into B, so no name ever appears in the caller's
		// namespace.
		if err := addVeth(ha, LinkA, LinkB, tb.B, t); err != nil {
			return err
		}
	default:
		if err := tb.buildBridge(ctx, ha, hb); err != nil {
			return err
		}
	}

	ends := []struct {
		h  *Host
		nl *netlink.Handle
	}{{tb.A, ha}, {tb.B, hb}}
	for _, e := range ends {
		if err := e.h.configure(e.nl, t); err != nil {
			return err
		}
	}
	if t.Neighbours {
		if err := tb.A.addNeighbour(ha, tb.B); err != nil {
			return err
		}
		if err := tb.B.addNeighbour(hb, tb.A); err != nil {
			return err
		}
	}
	for _, e := range ends {
		if err := e.h.waitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// addVeth creates a veth pair from the namespace of nl: name there, peer in host h.
func addVeth(nl *netlink.Handle, name, peer string, h *Host, t Topology) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = name, t.MTU
	attrs.NumTxQueues, attrs.NumRxQueues = t.Queues, t.Queues
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: peer, PeerNamespace: netlink.NsFd(h.nsfd), PeerTxQLen: -1}
	return kernel.NewOpError("create veth pair", name+"/"+peer, nl.LinkAdd(veth))
}

// buildBridge joins A and B through a bridge in M: veth-a pairs with port-a, veth-b with port-b, both ports
// enslaved to the bridge. The ports are enslaved only once they and the bridge are up and running: the bridge then
// puts them into the forwarding state at once (no spanning tree), instead of later from the link watcher, so no
// frame sent after Up meets a port that still discards.
func (tb *Testbed) buildBridge(ctx context.Context, ha, hb *netlink.Handle) error {
	t, m := tb.Topology, tb.M
	// No IPv6 in the middle: the bridge and its ports would send router solicitations and MLD reports onto the
	// wire between the hosts.
	if err := m.Do(disableIPv6); err != nil {
		return err
	}
	hm, err := handleAt(m)
	if err != nil {
		return err
	}
	defer hm.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = BridgeName, t.MTU
	if err := hm.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		err = kernel.NewOpError("create bridge in", m.Namespace, err)
		if errors.Is(err, kernel.ErrNotSupported) {
			err = kernel.WithHint(&kernel.UnsupportedError{Feature: "Linux bridges (CONFIG_BRIDGE)", Err: err},
				"load the bridge module, or build the testbed without a bridge")
		}
		return err
	}
	ports := []struct {
		nl         *netlink.Handle
		end        *Host
		link, port string
	}{{ha, tb.A, LinkA, PortA}, {hb, tb.B, LinkB, PortB}}
	for _, p := range ports {
		if err := addVeth(p.nl, p.link, p.port, m, t); err != nil {
			return err
		}
		end, err := p.nl.LinkByName(p.link)
		if err != nil {
			return kernel.NewOpError("find", p.end.Namespace+"/"+p.link, err)
		}
		if err := p.nl.LinkSetUp(end); err != nil {
			return kernel.NewOpError("set link up", p.end.Namespace+"/"+p.link, err)
		}
	}
	for _, name := range []string{"lo", BridgeName, PortA, PortB} {
		l, err := hm.LinkByName(name)
		if err != nil {
			return kernel.NewOpError("find", m.Namespace+"/"+name, err)
		}
		if err := hm.LinkSetUp(l); err != nil {
			return kernel.NewOpError("set link up", m.Namespace+"/"+name, err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	br, err := hm.LinkByName(BridgeName)
	if err != nil {
		return kernel.NewOpError("find", m.Namespace+"/"+BridgeName, err)
	}
	for _, p := range ports {
		port, err := hm.LinkByName(p.port)
		if err != nil {
			return kernel.NewOpError("find", m.Namespace+"/"+p.port, err)
		}
		if err := m.Do(func() error { return xdp.WaitRunning(wctx, port.Attrs().Index) }); err != nil {
			return fmt.Errorf("testbed: %s/%s is not ready to carry traffic: %w", m.Namespace, p.port, err)
		}
		if err := hm.LinkSetMaster(port, br); err != nil {
			return kernel.NewOpError("add "+p.port+" to", m.Namespace+"/"+BridgeName, err)
		}
	}
	return m.refresh(hm)
}

// disableIPv6 turns IPv6 off for every device of the calling thread's network namespace, present and future.
func disableIPv6() error {
	for _, dev := range []string{"default", "all"} {
		path := "/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6"
		err := os.WriteFile(path, []byte("1"), 0)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a kernel without IPv6
		}
		if err != nil {
			return fmt.Errorf("turn IPv6 off in the bridge namespace: %w", err)
		}
	}
	return nil
}

// readyTimeout bounds the wait for a veth end to carry traffic, which takes microseconds unless something is
// badly wrong.
const readyTimeout = 30 * time.Second

// waitReady returns once the veth end can carry traffic. Carrier comes up synchronously, but the kernel's link
// watcher attaches the queueing discipline afterwards, in a worker; until then the "noop" discipline drops every
// frame without an error, so the first packet of a test sent right after Up could vanish.
func (h *Host) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	return h.Do(func() error {
		if err := xdp.WaitRunning(ctx, h.Ifindex); err != nil {
			return fmt.Errorf("testbed: %s/%s is not ready to carry traffic: %w", h.Namespace, h.Link, err)
		}
		return nil
	})
}

func handleAt(h *Host) (*netlink.Handle, error) {
	// The socket is opened on a thread moved into the namespace here, rather than by NewHandleAt, whose
	// setns error loses its errno (and with it os.ErrPermission). Only NETLINK_ROUTE: the default set includes
	// XFRM, which kernels without XFRM_USER refuse (lab.md §10).
	var nl *netlink.Handle
	err := h.Do(func() (err error) {
		nl, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return kernel.NewOpError("open rtnetlink in", h.Namespace, err)
	})
	return nl, err
}

// configure brings lo and the veth end up, adds the addresses, sets the NAPI features and reads the link back.
func (h *Host) configure(nl *netlink.Handle, t Topology) error {
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return kernel.NewOpError("find lo in", h.Namespace, err)
	}
	if err := nl.LinkSetUp(lo); err != nil {
		return kernel.NewOpError("set lo up in", h.Namespace, err)
	}
	link, err := nl.LinkByName(h.Link)
	if err != nil {
		return kernel.NewOpError("find", h.Namespace+"/"+h.Link, err)
	}
	// Up before addressing: an IPv6 address added to a down link stays tentative until the link comes up.
	if err := nl.LinkSetUp(link); err != nil {
		return kernel.NewOpError("set link up", h.Namespace+"/"+h.Link, err)
	}
	for _, p := range []netip.Prefix{h.IPv4, h.IPv6} {
		addr := &netlink.Addr{IPNet: ipNet(p)}
		if p.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD // usable at once; nothing else is on this wire
		}
		if err := nl.AddrAdd(link, addr); err != nil {
			return kernel.NewOpError("add address "+p.String()+" to", h.Namespace+"/"+h.Link, err)
		}
	}
	if t.NAPI {
		if err := h.Do(func() error { return setNAPIFeatures(h.Link) }); err != nil {
			return err
		}
	}
	for _, p := range []netip.Prefix{h.IPv4, h.IPv6} {
		if err := waitLocal(nl, p.Addr()); err != nil {
			return fmt.Errorf("testbed: %s/%s: %w", h.Namespace, h.Link, err)
		}
	}
	return h.refresh(nl)
}

// waitLocal returns once the kernel delivers packets for addr to this host. An IPv6 address is in the address
// list (sockets can bind it) as soon as it is added, but its local route enters the FIB only when addrconf's DAD
// work runs, from a workqueue, even with IFA_F_NODAD: until then packets to it are dropped as Ip6InAddrErrors.
// On a busy machine the first datagram of a test sent right after Up vanished so (1 run in 4 with a CPU hog).
// No event marks the moment, so the route is polled, bounded only against a broken kernel.
func waitLocal(nl *netlink.Handle, addr netip.Addr) error {
	deadline := time.Now().Add(readyTimeout)
	for pause := 100 * time.Microsecond; ; pause = min(2*pause, 10*time.Millisecond) {
		routes, err := nl.RouteGet(addr.AsSlice())
		if err == nil && len(routes) > 0 && routes[0].Type == unix.RTN_LOCAL {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("address %s is not delivered locally %v after it was added (route %v, %v)",
				addr, readyTimeout, routes, err)
		}
		time.Sleep(pause)
	}
}

// setNAPIFeatures turns GRO on and TSO off, so that packets from this end's sockets are eligible for GRO at
// the peer (veth_skb_is_eligible_for_gro) and take the peer's NAPI instead of the backlog.
func setNAPIFeatures(link string) error {
	if _, err := ethtoolFlag(link, unix.ETHTOOL_SGRO, 1); err != nil {
		return err
	}
	if _, err := ethtoolFlag(link, unix.ETHTOOL_STSO, 0); err != nil {
		return err
	}
	gro, err := ethtoolFlag(link, unix.ETHTOOL_GGRO, 0)
	if err != nil {
		return err
	}
	tso, err := ethtoolFlag(link, unix.ETHTOOL_GTSO, 0)
	if err != nil {
		return err
	}
	if gro != 1 || tso != 0 {
		return fmt.Errorf("set GRO on and TSO off on %s: the kernel kept GRO=%d TSO=%d", link, gro, tso)
	}
	return nil
}

// refresh reads the link's ifindex, MAC and queue counts and checks that both addresses are usable.
func (h *Host) refresh(nl *netlink.Handle) error {
	link, err := nl.LinkByName(h.Link)
	if err != nil {
		return kernel.NewOpError("find", h.Namespace+"/"+h.Link, err)
	}
	a := link.Attrs()
	h.Ifindex, h.MAC, h.RxQueues, h.TxQueues = a.Index, a.HardwareAddr, a.NumRxQueues, a.NumTxQueues
	if !h.IPv4.IsValid() {
		return nil // the bridge namespace has no addresses
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return nl.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return kernel.NewOpError("list addresses of", h.Namespace+"/"+h.Link, err)
	}
	for _, want := range []netip.Prefix{h.IPv4, h.IPv6} {
		if err := checkAddr(addrs, want); err != nil {
			return fmt.Errorf("%s/%s: %w", h.Namespace, h.Link, err)
		}
	}
	return nil
}

func checkAddr(addrs []netlink.Addr, want netip.Prefix) error {
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.Unmap() != want.Addr() {
			continue
		}
		if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			return fmt.Errorf("address %s is not usable (flags %#x)", want, a.Flags)
		}
		return nil
	}
	return fmt.Errorf("address %s is missing", want)
}

// addNeighbour adds permanent ARP and NDP entries for peer's addresses.
func (h *Host) addNeighbour(nl *netlink.Handle, peer *Host) error {
	for _, p := range []netip.Prefix{peer.IPv4, peer.IPv6} {
		family := netlink.FAMILY_V4
		if p.Addr().Is6() {
			family = netlink.FAMILY_V6
		}
		n := &netlink.Neigh{LinkIndex: h.Ifindex, Family: family, State: netlink.NUD_PERMANENT,
			IP: p.Addr().AsSlice(), HardwareAddr: peer.MAC}
		if err := nl.NeighSet(n); err != nil {
			return kernel.NewOpError("add neighbour "+p.Addr().String()+" to", h.Namespace+"/"+h.Link, err)
		}
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

// retryDump repeats a netlink dump the kernel interrupted (NLM_F_DUMP_INTR: the table changed under it);
// vishvananda/netlink returns partial data with ErrDumpInterrupted in that case (gotcha 14).
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	for attempt := 1; ; attempt++ {
		v, err := dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt == 3 {
			return v, err
		}
	}
}

// Down removes the testbed: the veth pair, the namespaces and, for a named testbed, the namespace files and
// the state file. Processes still running inside keep their namespace alive, without the veth. Down is
// idempotent.
func (tb *Testbed) Down() error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return nil
	}
	tb.closed = true
	return tb.teardown()
}

// Close releases this process's descriptors of the namespaces. A named testbed stays up; an Ephemeral one
// disappears once nothing else holds its namespaces (Down removes it at once).
func (tb *Testbed) Close() error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return nil
	}
	tb.closed = true
	for _, h := range tb.hosts() {
		h.close()
	}
	return nil
}

// hosts returns the testbed's namespaces that exist: A, B and, when bridged, M.
func (tb *Testbed) hosts() []*Host {
	var hs []*Host
	for _, h := range []*Host{tb.A, tb.B, tb.M} {
		if h != nil {
			hs = append(hs, h)
		}
	}
	return hs
}

func (h *Host) close() {
	if h.nsfd >= 0 {
		unix.Close(h.nsfd)
		h.nsfd = -1
	}
}

// teardown removes whatever exists of the testbed. Deleting the veth explicitly makes its removal synchronous
// (a namespace whose last reference goes away is cleaned up later by a kernel worker).
func (tb *Testbed) teardown() error {
	var errs []error
	ends := []*Host{tb.A}
	if tb.M != nil {
		ends = append(ends, tb.B) // two pairs: A's end and B's each take their bridge port along
	}
	if tb.Topology.Adopted() {
		errs = append(errs, tb.giveBack())
		ends = nil
	}
	for _, h := range ends {
		if h != nil && h.nsfd >= 0 {
			if err := deleteVeth(h); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, h := range tb.hosts() {
		h.close()
	}
	if tb.record != nil {
		tb.fillRecord()
		errs = append(errs, removeRecorded(Store{Dir: tb.Topology.StateDir}, *tb.record))
	}
	return errors.Join(errs...)
}

func deleteVeth(h *Host) error {
	nl, err := handleAt(h)
	if err != nil {
		return err
	}
	defer nl.Close()
	link, err := nl.LinkByName(h.Link)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return kernel.NewOpError("find", h.Namespace+"/"+h.Link, err)
	}
	if err := nl.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return kernel.NewOpError("delete veth pair", h.Namespace+"/"+h.Link, err)
	}
	return nil
}

// removeRecorded deletes the named namespaces of r that still are the ones it records, then the state file.
// The state file stays when a namespace could not be removed, so a later Down can retry.
func removeRecorded(s Store, r Record) error {
	var errs []error
	for _, hr := range []HostRecord{r.A, r.B} {
		if err := deleteNamed(filepath.Join(netnsDir, hr.Namespace), hr.Inode); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		errs = append(errs, s.remove(r.Name))
	}
	return errors.Join(errs...)
}

// Open returns the named testbed of the store, holding its namespaces, with the links read back from the
// kernel. Down on it removes the testbed; Close only lets go of it.
func (s Store) Open(name string) (*Testbed, error) {
	r, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	if !r.Complete {
		return nil, fmt.Errorf("testbed %q is incomplete: its creator (pid %d) did not finish it; remove it with `napilab testbed down %s`",
			name, r.Owner.PID, name)
	}
	topo := r.Topology
	topo.StateDir = s.Dir
	tb := &Testbed{Name: r.Name, Topology: topo, record: &r}
	for _, p := range []struct {
		side string
		hr   HostRecord
		dst  **Host
	}{{"a", r.A, &tb.A}, {"b", r.B, &tb.B}} {
		h := &Host{Side: p.side, Namespace: p.hr.Namespace, Link: p.hr.Link, IPv4: p.hr.IPv4, IPv6: p.hr.IPv6,
			nsPath: filepath.Join(netnsDir, p.hr.Namespace), inode: p.hr.Inode, nsfd: -1}
		*p.dst = h
		h.nsfd, err = openNamespace(h.nsPath, h.inode)
		if err == nil {
			err = h.refreshAt()
		}
		if err != nil {
			tb.Close()
			return nil, fmt.Errorf("testbed %q: %w", name, err)
		}
	}
	return tb, nil
}

func (h *Host) refreshAt() error {
	nl, err := handleAt(h)
	if err != nil {
		return err
	}
	defer nl.Close()
	return h.refresh(nl)
}

// Down removes the named testbed of the store, whether or not its namespaces still exist.
func (s Store) Down(name string) error {
	r, err := s.Get(name)
	if err != nil {
		return err
	}
	return s.down(r)
}

func (s Store) down(r Record) error {
	for _, hr := range []HostRecord{r.A, r.B} {
		fd, err := openNamespace(filepath.Join(netnsDir, hr.Namespace), hr.Inode)
		if err != nil {
			continue // gone, or not ours: removeRecorded decides what to do with the file
		}
		h := &Host{Namespace: hr.Namespace, Link: hr.Link, nsfd: fd}
		err = deleteVeth(h)
		h.close()
		if err != nil {
			return fmt.Errorf("testbed %q: %w", r.Name, err)
		}
		break // one end deletes the pair
	}
	if err := removeRecorded(s, r); err != nil {
		return fmt.Errorf("testbed %q: %w", r.Name, err)
	}
	return nil
}

// Reap removes the testbeds whose owner died before it was done with them: Owned testbeds of dead processes,
// and testbeds of any lifetime that their creator never finished building. It returns the names it removed.
func (s Store) Reap() ([]string, error) {
	recs, listErr := s.List()
	var reaped []string
	var errs []error
	for _, r := range recs {
		if r.Complete && r.Topology.Lifetime != Owned || r.Owner.Alive() {
			continue
		}
		if err := s.down(r); err != nil {
			errs = append(errs, err)
			continue
		}
		reaped = append(reaped, r.Name)
	}
	return reaped, errors.Join(append(errs, listErr)...)
}

// Alive reports whether the process that made r is still running.
func (r Record) Alive() bool { return r.Owner.Alive() }
