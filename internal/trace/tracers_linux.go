package trace

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

const maxThreadsTraced = 8192 // syscalls in flight: one per thread of the traced process

// syscallKernel is a SyscallTracer's kernel side.
type syscallKernel struct {
	obj          objects
	stats, drops *ebpf.Map
	costStart    []ProgramCost
}

func (t *syscallKernel) load(pid int, stats bool) (err error) {
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("trace: there is no process %d", pid)
	}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	var m mapFDs
	if t.drops, err = t.obj.begin(stats, &m, "sys_enter", "sys_exit"); err != nil {
		return err
	}
	start, err := t.obj.newMap("napilab_sysin", ebpf.Hash, 4, startValSize, maxThreadsTraced, 0)
	if err != nil {
		return err
	}
	if t.stats, err = t.obj.newMap("napilab_sys", ebpf.Hash, sysKeySize, sysValSize, maxWatched, 0); err != nil {
		return err
	}
	m.sysStart, m.syscalls = start.FD(), t.stats.FD()
	nrs := make([]int32, 0, len(kickSyscalls))
	for nr := range kickSyscalls {
		nrs = append(nrs, int32(nr))
	}
	// sys_exit first: a call that enters before it is attached is never left half-recorded.
	if err := t.obj.rawTracepoint("napilab_sys_out", "sys_exit", sysExitInsns(m, int32(pid)), true); err != nil {
		return err
	}
	if err := t.obj.rawTracepoint("napilab_sys_in", "sys_enter", sysEnterInsns(m, int32(pid), nrs), true); err != nil {
		return err
	}
	t.costStart = t.obj.costs()
	return nil
}

func (t *syscallKernel) loaded() bool { return t.stats != nil }

func (t *syscallKernel) read(s *SyscallTrace) error {
	ks, vs, err := entries(t.stats, false)
	if err != nil {
		return err
	}
	for i := range ks {
		c, err := decodeSyscall(ks[i], vs[i])
		if err != nil {
			return err
		}
		c.Name = kickSyscalls[c.NR]
		s.Syscalls = append(s.Syscalls, c)
	}
	sortSyscalls(s.Syscalls)
	if err := t.drops.Lookup(uint32(0), &s.Dropped); err != nil {
		return kernel.NewOpError("read BPF map", "drops", err)
	}
	if c := t.obj.costs(); c != nil {
		s.Cost = costSince(t.costStart, c)
	}
	return nil
}

func (t *syscallKernel) close() error {
	err := t.obj.close()
	*t = syscallKernel{}
	return err
}

// xskKernel is an XSKRecvTracer's kernel side.
type xskKernel struct {
	obj       objects
	hist      *ebpf.Map
	costStart []ProgramCost
}

func (t *xskKernel) load(pid int, stats bool) (err error) {
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	var m mapFDs
	if _, err = t.obj.begin(stats, &m); err != nil {
		return err
	}
	start, err := t.obj.newMap("napilab_xskin", ebpf.Hash, 4, 8, maxThreadsTraced, 0)
	if err != nil {
		return err
	}
	if t.hist, err = t.obj.newMap("napilab_xsk", ebpf.Array, 4, xskValSize, 1, 0); err != nil {
		return err
	}
	m.xskStart, m.xskHist = start.FD(), t.hist.FD()
	// fexit first, as with the syscalls.
	if err := t.trampoline("napilab_xsk_out", ebpf.AttachTraceFExit, xskExitInsns(m, int32(pid))); err != nil {
		return err
	}
	if err := t.trampoline("napilab_xsk_in", ebpf.AttachTraceFEntry, xskEntryInsns(m, int32(pid))); err != nil {
		return err
	}
	t.costStart = t.obj.costs()
	return nil
}

func (t *xskKernel) trampoline(name string, at ebpf.AttachType, insns asm.Instructions) error {
	spec := &ebpf.ProgramSpec{Name: name, Type: ebpf.Tracing, AttachType: at, AttachTo: xskTarget,
		Instructions: insns}
	p, err := t.obj.load(spec)
	if err != nil {
		return trampolineError("load BPF program "+name, err)
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: p})
	if err != nil {
		return trampolineError("attach "+name+" to "+xskTarget, err)
	}
	t.obj.links = append(t.obj.links, l)
	return nil
}

// trampolineError tells a kernel that refuses BPF trampolines from a missing privilege: if a raw tracepoint
// program loads with the same privileges, the refusal is the kernel's (or the machine's) policy, and the error
// says so instead of suggesting privileges the process already has.
func trampolineError(op string, err error) error {
	const feature = "timing " + xskTarget + " with fentry/fexit (BPF trampolines)"
	const standIn = "; napilab trace syscalls times the recvfrom calls that reach " + xskTarget + " instead"
	switch {
	case errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP):
		return &kernel.UnsupportedError{Feature: feature, Err: fmt.Errorf("%s: %w%s", op, err, standIn)}
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH):
		return &kernel.UnsupportedError{Feature: feature, Err: fmt.Errorf("the kernel's BTF has no %s "+
			"(CONFIG_XDP_SOCKETS): %w", xskTarget, err)}
	case errors.Is(err, unix.EPERM) && rawTracepointLoads():
		return &kernel.UnsupportedError{Feature: feature, Err: fmt.Errorf("this kernel refuses BPF tracing "+
			"programs although it loads raw tracepoint programs with the same privileges: a policy of the kernel "+
			"or machine (a guest kernel without trampolines, lockdown), not a missing privilege (%s: %v)%s", op,
			unix.EPERM, standIn)}
	}
	return loadError(op, "", err)
}

// rawTracepointLoads reports whether this process may load a raw tracepoint program.
func rawTracepointLoads() bool {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.RawTracepoint, License: license,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		return false
	}
	p.Close()
	return true
}

func (t *xskKernel) loaded() bool { return t.hist != nil }

func (t *xskKernel) read(x *XSKRecvTrace) error {
	var v []byte
	if err := t.hist.Lookup(uint32(0), &v); err != nil {
		return kernel.NewOpError("read BPF map", "xsk_recvmsg histogram", err)
	}
	h, total, err := decodeXSK(v)
	if err != nil {
		return err
	}
	x.Calls, x.Total, x.Time = h.Count(), total, h
	if c := t.obj.costs(); c != nil {
		x.Cost = costSince(t.costStart, c)
	}
	return nil
}

func (t *xskKernel) close() error {
	err := t.obj.close()
	*t = xskKernel{}
	return err
}
