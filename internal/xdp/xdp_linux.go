package xdp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

const privilegeHint = "run as root, or grant CAP_BPF and CAP_NET_ADMIN"

// Program is the loaded steering program with its XSKMAP. Its methods are safe for concurrent use.
type Program struct {
	mu      sync.Mutex
	spec    Spec
	prog    *ebpf.Program
	xsks    *ebpf.Map
	noMeta  *ebpf.Map // one counter: frames steered without an arrival stamp (see Stamp)
	link    link.Link // nil until Attach
	ifindex int
	device  string
	mode    Mode
}

// Load creates the XSKMAP and loads the program into the kernel (the verifier checks it here). Nothing is
// attached yet.
func Load(spec Spec) (*Program, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	xsks, err := ebpf.NewMap(&ebpf.MapSpec{Name: mapName, Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4,
		MaxEntries: uint32(spec.queues())})
	if err != nil {
		return nil, loadError("create XSKMAP", err)
	}
	noMeta, err := ebpf.NewMap(&ebpf.MapSpec{Name: stampsMapName, Type: ebpf.Array, KeySize: 4, ValueSize: 8,
		MaxEntries: 1})
	if err != nil {
		xsks.Close()
		return nil, loadError("create the arrival stamp counter", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: progName, Type: ebpf.XDP, License: "Dual MIT/GPL",
		Instructions: instructions(spec, xsks.FD(), noMeta.FD())})
	if err != nil {
		xsks.Close()
		noMeta.Close()
		return nil, loadError("load XDP program", err)
	}
	return &Program{spec: spec, prog: prog, xsks: xsks, noMeta: noMeta}, nil
}

// StampFailures returns how many frames the program steered without an arrival stamp because the driver gave
// it no metadata area (bpf_xdp_adjust_meta failed); see Stamp.
func (p *Program) StampFailures() (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prog == nil {
		return 0, fmt.Errorf("xdp: stamp failures: %w", os.ErrClosed)
	}
	var n uint64
	if err := p.noMeta.Lookup(uint32(0), &n); err != nil {
		return 0, kernel.NewOpError("read", stampsMapName, err)
	}
	return n, nil
}

func loadError(op string, err error) error {
	err = kernel.NewOpError(op, progName, err)
	if errors.Is(err, os.ErrPermission) {
		// cilium/ebpf suggests raising RLIMIT_MEMLOCK for any EPERM with an empty verifier log; on current
		// kernels BPF memory is charged to the memory cgroup and the cause is a missing capability (gotcha 10).
		return kernel.WithHint(err, privilegeHint)
	}
	return err
}

// Attach attaches the program to the device with ifindex in the calling thread's network namespace (for a
// testbed host, call it inside Host.Do), through a bpf_link, and returns the mode it runs in. ModeAuto tries
// native mode and falls back to generic mode only when the driver has no native XDP. A program is attached to
// one device at a time. Some drivers reset the link to attach XDP: call WaitRunning before sending.
func (p *Program) Attach(ifindex int, mode Mode) (Mode, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prog == nil {
		return 0, fmt.Errorf("xdp: attach: %w", os.ErrClosed)
	}
	if p.link != nil {
		return 0, fmt.Errorf("xdp: the program is already attached to %s; load another one for a second device", p.device)
	}
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		// link_create answers EINVAL for an unknown ifindex; say what is wrong instead.
		return 0, fmt.Errorf("xdp: no device with ifindex %d in this network namespace: %w", ifindex, os.ErrNotExist)
	}
	m := mode
	switch mode {
	case ModeAuto:
		m = ModeNative
	case ModeNative, ModeGeneric:
	default:
		return 0, fmt.Errorf("xdp: cannot attach in %s mode: use auto, native or generic", mode)
	}
	l, err := attachLink(p.prog, ifindex, m)
	if mode == ModeAuto && errors.Is(err, unix.EOPNOTSUPP) {
		m = ModeGeneric // the driver has no native XDP
		l, err = attachLink(p.prog, ifindex, m)
	}
	if err != nil {
		return 0, attachError(ifindex, ifi.Name, m, err)
	}
	p.link, p.ifindex, p.device, p.mode = l, ifindex, ifi.Name, m
	return m, nil
}

func attachLink(prog *ebpf.Program, ifindex int, m Mode) (link.Link, error) {
	flags := link.XDPDriverMode
	if m == ModeGeneric {
		flags = link.XDPGenericMode
	}
	return link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: flags})
}

func attachError(ifindex int, dev string, m Mode, err error) error {
	switch {
	case errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST):
		if a, ok, qerr := AttachedProgram(ifindex); qerr == nil && ok {
			return &AttachedError{Device: dev, Existing: a, Err: err}
		}
		return fmt.Errorf("xdp: attach to %s: another XDP program is attached (%w); remove it first", dev, err)
	case errors.Is(err, unix.EOPNOTSUPP) && m == ModeNative:
		return kernel.WithHint(&kernel.UnsupportedError{Feature: "native XDP on " + dev, Err: err},
			"attach in generic mode instead")
	}
	err = kernel.NewOpError("attach XDP program in "+m.String()+" mode to", dev, err)
	if errors.Is(err, os.ErrPermission) {
		return kernel.WithHint(err, privilegeHint)
	}
	return err
}

// Attached returns the device the program is attached to and its mode; ifindex 0 when it is not attached.
func (p *Program) Attached() (ifindex int, mode Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ifindex, p.mode
}

// ID returns the kernel's id of the loaded program, as AttachedProgram reports it.
func (p *Program) ID() (uint32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prog == nil {
		return 0, fmt.Errorf("xdp: program id: %w", os.ErrClosed)
	}
	info, err := p.prog.Info()
	if err != nil {
		return 0, kernel.NewOpError("read program info of", progName, err)
	}
	id, ok := info.ID()
	if !ok {
		return 0, fmt.Errorf("xdp: program id: %w", kernel.ErrNotSupported)
	}
	return uint32(id), nil
}

// Register steers the frames of rx queue to the AF_XDP socket xskFD, which must be bound to that queue of the
// device with an RX ring. It replaces an earlier socket of the queue.
func (p *Program) Register(queue, xskFD int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkQueue("register", queue); err != nil {
		return err
	}
	err := p.xsks.Put(uint32(queue), uint32(xskFD))
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EBADF) {
		return fmt.Errorf("xdp: register queue %d: fd %d is not an AF_XDP socket bound with an RX ring: %w", queue, xskFD, err)
	}
	return kernel.NewOpError("register AF_XDP socket for", "queue "+strconv.Itoa(queue), err)
}

// Unregister removes the socket of rx queue; its frames pass to the stack again. A queue without a socket is
// not an error.
func (p *Program) Unregister(queue int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkQueue("unregister", queue); err != nil {
		return err
	}
	err := p.xsks.Delete(uint32(queue))
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return kernel.NewOpError("unregister AF_XDP socket of", "queue "+strconv.Itoa(queue), err)
}

func (p *Program) checkQueue(op string, queue int) error {
	if p.prog == nil {
		return fmt.Errorf("xdp: %s: %w", op, os.ErrClosed)
	}
	if queue < 0 || queue >= p.spec.queues() {
		return fmt.Errorf("xdp: %s queue %d: the XSKMAP has queues 0 to %d; load with a larger Spec.Queues",
			op, queue, p.spec.queues()-1)
	}
	return nil
}

// Close detaches the program and frees it and its map. It is idempotent.
func (p *Program) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	if p.link != nil {
		errs = append(errs, p.link.Close())
		p.link = nil
	}
	if p.prog != nil {
		errs = append(errs, p.prog.Close(), p.xsks.Close(), p.noMeta.Close())
		p.prog, p.xsks, p.noMeta = nil, nil, nil
	}
	p.ifindex = 0
	return errors.Join(errs...)
}

// AttachedProgram reports the XDP program attached to the device with ifindex in the calling thread's network
// namespace; ok is false when there is none. It asks rtnetlink (IFLA_XDP), which also sees programs attached the
// legacy way, and then looks for the bpf_link holding the program.
func AttachedProgram(ifindex int) (a Attachment, ok bool, err error) {
	l, err := getLink(ifindex)
	if err != nil {
		return Attachment{}, false, err
	}
	a, ok = l.XDP.attachment()
	if !ok {
		return Attachment{}, false, nil
	}
	if prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(a.ProgramID)); err == nil {
		if info, err := prog.Info(); err == nil {
			a.Name = info.Name
		}
		prog.Close()
	}
	a.LinkID = findXDPLink(uint32(ifindex), a.ProgramID)
	return a, true, nil
}

// findXDPLink returns the id of the XDP bpf_link of the program on ifindex, or 0. Link info carries an ifindex
// but no namespace, so the program id, which is global, decides.
func findXDPLink(ifindex, progID uint32) uint32 {
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || uint32(info.Program) != progID {
			continue
		}
		if x := info.XDP(); x != nil && x.Ifindex == ifindex {
			return uint32(info.ID)
		}
	}
	return 0
}
