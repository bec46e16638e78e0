package rr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/frame"
	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netns"
	"github.com/napilab/napilab/internal/note"
	"github.com/napilab/napilab/internal/xdp"
	"github.com/napilab/napilab/internal/xsk"
)

// Link is one end's AF_XDP datapath: a socket bound to a device queue, the steering program attached to the
// device and pointing at it, and the flow's addresses. Open it in the network namespace of the device; once
// open, it may be used from any thread.
type Link struct {
	Sock *xsk.Socket
	Prog *xdp.Program
	Info LinkInfo
}

// OpenLink opens the datapath o describes in the calling thread's network namespace. With a peer address it
// resolves the flow's addresses first: the local ones from the device, the peer's MAC from the neighbour table,
// probing the peer when the table has no entry yet.
func OpenLink(ctx context.Context, o LinkOptions) (*Link, error) { return openLink(ctx, o, "") }

func openLink(ctx context.Context, o LinkOptions, nsPath string) (_ *Link, err error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	ifc, err := net.InterfaceByName(o.Dev)
	if err != nil {
		return nil, &kernel.FieldError{Field: "dev", Kind: os.ErrNotExist, Msg: fmt.Sprintf("%q does not exist in "+
			"%s: check the device's name and the network namespace it lives in", o.Dev, netns.Describe(nsPath))}
	}
	info := LinkInfo{Dev: o.Dev, Ifindex: ifc.Index, Queue: o.Queue, MTU: ifc.MTU}
	if err := checkQueue(o); err != nil {
		return nil, err
	}
	if err := resolveAddrs(ctx, &o, ifc, &info); err != nil {
		return nil, err
	}

	cfg, err := socketConfig(o)
	if err != nil {
		return nil, err
	}
	sock, err := openSocket(ctx, ifc.Index, o.Queue, cfg)
	if err != nil {
		return nil, err
	}
	l := &Link{Sock: sock}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	info.ZeroCopy = sock.ZeroCopy()
	if err := SetBusyPoll(sock, o.BusyPoll); err != nil {
		return nil, err
	}

	mode, err := xdp.ParseMode(o.XDPMode)
	if err != nil {
		return nil, err
	}
	if l.Prog, err = xdp.Load(xdp.Spec{Port: o.Port, NoStamp: o.NoStamp}); err != nil {
		return nil, err
	}
	if err := l.Prog.Register(o.Queue, sock.FD()); err != nil {
		return nil, err
	}
	active, err := l.Prog.Attach(ifc.Index, mode)
	if err != nil {
		return nil, err
	}
	info.XDPMode = active.String()
	if err := waitRunning(ctx, ifc.Index); err != nil {
		return nil, err
	}
	// The kernel copies the queue's NAPI id into the socket when it binds; read it now for the record and for
	// the warning that busy polling would poll nothing.
	if id, err := sock.NAPIID(); err == nil {
		info.NAPIID = id
	}
	if o.BusyPoll.Active() {
		info.Notes = note.Merge(info.Notes, info.BusyPollNotes()...)
	}
	l.Info = info
	return l, nil
}

// checkQueue refuses a queue the device does not have, before anything is attached: binding to it would fail
// with a bare EINVAL.
func checkQueue(o LinkOptions) error {
	l, err := netlink.LinkByName(o.Dev)
	if err != nil {
		return nil // the bind names the problem
	}
	if n := l.Attrs().NumRxQueues; n > 0 && o.Queue >= n {
		return kernel.Fieldf("queue", "%d does not exist on %s, which has %s", o.Queue, o.Dev, queueRange(n))
	}
	return nil
}

func queueRange(n int) string {
	if n == 1 {
		return "rx queue 0 only"
	}
	return fmt.Sprintf("rx queues 0-%d", n-1)
}

// OpenLinkIn opens the link inside the network namespace at nsPath (e.g. /run/netns/NAME), or in the caller's
// when nsPath is empty. The socket and the program stay in that namespace; the link may be used from any
// goroutine afterwards.
func OpenLinkIn(ctx context.Context, o LinkOptions, nsPath string) (l *Link, err error) {
	err = netns.Do(nsPath, func() (err error) {
		l, err = openLink(ctx, o, nsPath)
		return err
	})
	return l, err
}

// Close detaches the program and closes the socket. It is idempotent.
func (l *Link) Close() error {
	var errs []error
	if l.Prog != nil {
		errs = append(errs, l.Prog.Close())
	}
	if l.Sock != nil {
		errs = append(errs, l.Sock.Close())
	}
	return errors.Join(errs...)
}

// openSocket binds the AF_XDP socket, waiting out a short EBUSY: the kernel releases a closed socket's hold on
// its queue asynchronously, so a socket bound right after the previous one on the same queue closed can find
// the queue still taken for a moment.
func openSocket(ctx context.Context, ifindex, queue int, cfg xsk.Config) (*xsk.Socket, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		sock, err := xsk.Open(ifindex, queue, cfg)
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return sock, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func socketConfig(o LinkOptions) (xsk.Config, error) {
	cfg := xsk.DefaultConfig()
	switch o.Bind {
	case BindCopy:
		cfg.Mode = xsk.ModeCopy
	case BindZeroCopy:
		cfg.Mode = xsk.ModeZeroCopy
	default:
		cfg.Mode = xsk.ModeAuto
	}
	cfg.NeedWakeup = o.NeedWakeup
	ring := uint32(o.Ring)
	cfg.FillSize, cfg.RXSize = ring, ring
	cfg.TXSize, cfg.CompletionSize = min(ring, 512), min(ring, 512)
	cfg.FrameSize = 2048
	cfg.FrameCount = ceilPow2(cfg.FillSize + cfg.TXSize)
	return cfg, cfg.Validate()
}

func ceilPow2(n uint32) uint32 {
	p := uint32(1)
	for p < n {
		p <<= 1
	}
	return p
}

// waitRunning waits for the device to report its carrier after the XDP attach: some drivers reset the device to
// attach a program (xsk_rr waits on /sys/class/net/<dev>/carrier for the same reason).
func waitRunning(ctx context.Context, ifindex int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ifc, err := net.InterfaceByIndex(ifindex)
		if err != nil {
			return fmt.Errorf("device %d disappeared after the XDP attach: %w", ifindex, err)
		}
		if ifc.Flags&net.FlagRunning != 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("device %s has no carrier 5 s after the XDP attach: bring it (and its peer) up", ifc.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// resolveAddrs fills in the flow's addresses: what o gives, else the device's own, and with a peer address the
// peer's MAC from the neighbour table.
func resolveAddrs(ctx context.Context, o *LinkOptions, ifc *net.Interface, info *LinkInfo) error {
	local := frame.Endpoint{Port: o.Port}
	mac := o.LocalMAC
	if mac == nil {
		mac = ifc.HardwareAddr
	}
	if len(mac) != 6 {
		return fmt.Errorf("device %s has no Ethernet address: AF_XDP benchmarks need an Ethernet device", o.Dev)
	}
	local.MAC = frame.MAC(mac)
	info.LocalMAC = net.HardwareAddr(mac).String()

	if !o.PeerIP.IsValid() {
		info.Local = local
		return nil // an echo server answers whoever asks: it needs no addresses
	}
	local.IP = o.LocalIP
	if !local.IP.IsValid() {
		ip, err := deviceAddr(ifc, o.PeerIP)
		if err != nil {
			return err
		}
		local.IP = ip
	}
	peer := frame.Endpoint{IP: o.PeerIP, Port: o.Port}
	if o.PeerMAC != nil {
		peer.MAC = frame.MAC(o.PeerMAC)
	} else {
		hop, err := nextHop(ifc, o.PeerIP)
		if err != nil {
			return err
		}
		m, err := neighbour(ctx, ifc, hop)
		if err != nil {
			return err
		}
		peer.MAC = m
		if hop != o.PeerIP {
			info.Notes = append(info.Notes, note.Infof("%s is reached through the router %s (%s): the round "+
				"trips include it", o.PeerIP, hop, m))
		}
	}
	info.Local, info.Peer = local, peer
	info.LocalIP, info.PeerIP, info.PeerMAC = local.IP.String(), peer.IP.String(), peer.MAC.String()
	return nil
}

// deviceAddr picks the device's address of the peer's family, preferring one on the peer's subnet.
func deviceAddr(ifc *net.Interface, peer netip.Addr) (netip.Addr, error) {
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", ifc.Name, err)
	}
	var fallback netip.Addr
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, _ := netip.AddrFromSlice(n.IP)
		ip = ip.Unmap()
		if ip.Is4() != peer.Is4() || ip.IsLinkLocalUnicast() && !peer.IsLinkLocalUnicast() {
			continue
		}
		ones, _ := n.Mask.Size()
		if netip.PrefixFrom(ip, ones).Contains(peer) {
			return ip, nil
		}
		if !fallback.IsValid() {
			fallback = ip
		}
	}
	if fallback.IsValid() {
		return fallback, nil
	}
	fam := "IPv4"
	if peer.Is6() {
		fam = "IPv6"
	}
	return netip.Addr{}, fmt.Errorf("device %s has no %s address to send from: add one, or give --local-ip", ifc.Name, fam)
}

// nextHop is the address whose MAC a frame to peer carries: peer itself on its own link, else the gateway of
// the kernel's route to it. The route must leave through the device the socket is bound to: AF_XDP sends on
// that device whatever the routing table says, so a peer that the kernel reaches through another one would
// never see the requests.
func nextHop(ifc *net.Interface, peer netip.Addr) (netip.Addr, error) {
	routes, err := netlink.RouteGet(peer.AsSlice())
	if err != nil || len(routes) == 0 {
		return netip.Addr{}, kernel.WithHint(fmt.Errorf("no route to %s: %w", peer, err),
			"add an address or a route for it on "+ifc.Name)
	}
	r := routes[0]
	if r.LinkIndex != ifc.Index {
		out := fmt.Sprint(r.LinkIndex)
		if l, err := net.InterfaceByIndex(r.LinkIndex); err == nil {
			out = l.Name
		}
		return netip.Addr{}, kernel.Fieldf("dev", "%s does not lead to %s: the kernel routes it through %s; "+
			"bind the device the route uses, or route the peer through %s", ifc.Name, peer, out, ifc.Name)
	}
	if gw, ok := netip.AddrFromSlice(r.Gw); ok && gw.IsValid() && !gw.IsUnspecified() {
		return gw.Unmap(), nil
	}
	return peer, nil
}

// neighbour returns the peer's MAC from the kernel's neighbour table, asking the kernel to resolve it first
// (a datagram to the discard port makes it send an ARP request or neighbour solicitation) when it is missing.
func neighbour(ctx context.Context, ifc *net.Interface, peer netip.Addr) (frame.MAC, error) {
	deadline := time.Now().Add(3 * time.Second)
	probed := false
	for {
		neighs, err := netlink.NeighList(ifc.Index, family(peer))
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return frame.MAC{}, fmt.Errorf("read the neighbour table of %s: %w", ifc.Name, err)
		}
		for _, n := range neighs {
			ip, _ := netip.AddrFromSlice(n.IP)
			usable := n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0
			if ip.Unmap() == peer && usable && len(n.HardwareAddr) == 6 {
				return frame.MAC(n.HardwareAddr), nil
			}
		}
		if !probed {
			probe(ifc, peer)
			probed = true
		}
		if time.Now().After(deadline) {
			return frame.MAC{}, kernel.WithHint(fmt.Errorf("peer %s does not answer ARP or neighbour solicitation on %s", peer, ifc.Name),
				"check that it is up and on this link, or give its MAC with --peer-mac")
		}
		select {
		case <-ctx.Done():
			return frame.MAC{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func family(ip netip.Addr) int {
	if ip.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// probe sends one datagram to the peer's discard port from a socket bound to the device, so the kernel resolves
// the peer's link-layer address.
func probe(ifc *net.Interface, peer netip.Addr) {
	network := "udp4"
	if peer.Is6() {
		network = "udp6"
	}
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), ifc.Name) })
		return errors.Join(err, serr)
	}}
	addr := netip.AddrPortFrom(peer, 9)
	if peer.Is6() && peer.IsLinkLocalUnicast() {
		addr = netip.AddrPortFrom(peer.WithZone(ifc.Name), 9)
	}
	conn, err := d.Dial(network, addr.String())
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("napilab neighbour probe"))
}
