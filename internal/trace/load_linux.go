package trace

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

const (
	privilegeHint = "run as root, or grant CAP_BPF and CAP_PERFMON"
	license       = "Dual MIT/GPL" // GPL-compatible: bpf_probe_read_kernel and bpf_get_current_comm need it
)

// objects are a tracer's kernel objects: maps, programs, and the links that attach the programs. Closing the
// links (or the process dying) detaches everything.
type objects struct {
	maps     []*ebpf.Map
	progs    []*ebpf.Program
	names    []string
	links    []link.Link // attached for the objects' lifetime
	onDemand []onDemand  // attached by attach, detached by detach
	stats    io.Closer   // BPF run-time statistics, while on
}

// onDemand is a raw tracepoint program attached only while it is wanted: between observations nothing of it
// runs, so the machine pays for the tracer only while a cell is observed.
type onDemand struct {
	prog *ebpf.Program
	tp   string
	link link.Link
}

func loadError(op, subject string, err error) error {
	err = kernel.NewOpError(op, subject, err)
	if errors.Is(err, os.ErrPermission) {
		// cilium/ebpf suggests raising RLIMIT_MEMLOCK for any EPERM with an empty verifier log; on current
		// kernels BPF memory is charged to the memory cgroup and the cause is a missing capability.
		return kernel.WithHint(err, privilegeHint)
	}
	return err
}

func (o *objects) newMap(name string, typ ebpf.MapType, key, val, max uint32, flags uint32) (*ebpf.Map, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: name, Type: typ, KeySize: key, ValueSize: val, MaxEntries: max,
		Flags: flags})
	if err != nil {
		return nil, loadError("create BPF map", name, err)
	}
	o.maps = append(o.maps, m)
	return m, nil
}

// common creates the maps every tracer uses: the all-zero value new entries are copied from (read-only to the
// programs) and the drops counter.
func (o *objects) common(m *mapFDs) (drops *ebpf.Map, err error) {
	zero, err := o.newMap("napilab_zero", ebpf.Array, 4, zeroValSize, 1, unix.BPF_F_RDONLY_PROG)
	if err != nil {
		return nil, err
	}
	if drops, err = o.newMap("napilab_drops", ebpf.Array, 4, 8, 1, 0); err != nil {
		return nil, err
	}
	m.zero, m.drops = zero.FD(), drops.FD()
	return drops, nil
}

// begin starts a tracer's objects: it checks the tracepoints tps against the kernel's BTF, turns on the BPF
// run-time statistics when stats asks, and creates the common maps.
func (o *objects) begin(stats bool, m *mapFDs, tps ...string) (drops *ebpf.Map, err error) {
	if len(tps) > 0 {
		if _, err := kernelLayout(tps...); err != nil {
			return nil, err
		}
	}
	if stats {
		if err := o.enableStats(); err != nil {
			return nil, err
		}
	}
	return o.common(m)
}

// load loads a program; its error is the library's, for the caller to explain.
func (o *objects) load(spec *ebpf.ProgramSpec) (*ebpf.Program, error) {
	spec.License = license
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		return nil, err
	}
	o.progs = append(o.progs, p)
	o.names = append(o.names, spec.Name)
	return p, nil
}

// rawTracepoint loads insns as a raw tracepoint program for tracepoint tp and attaches it: for the objects'
// lifetime (always), or only between attach and detach, in which case it is attached once here and detached
// again, so that a tracepoint the kernel cannot attach to is an error now rather than at the first attach. A
// raw tracepoint program gets the tracepoint's arguments as they are passed, an array of u64, and reads kernel
// memory through bpf_probe_read_kernel: it needs neither BTF-typed access nor BPF trampolines, so it loads where
// fentry does not.
func (o *objects) rawTracepoint(name, tp string, insns asm.Instructions, always bool) error {
	p, err := o.load(&ebpf.ProgramSpec{Name: name, Type: ebpf.RawTracepoint, Instructions: insns})
	if err != nil {
		return loadError("load BPF program", name, err)
	}
	l, err := attachRawTracepoint(p, tp)
	if err != nil {
		return err
	}
	if always {
		o.links = append(o.links, l)
		return nil
	}
	o.onDemand = append(o.onDemand, onDemand{prog: p, tp: tp})
	return l.Close()
}

func attachRawTracepoint(p *ebpf.Program, tp string) (link.Link, error) {
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp, Program: p})
	if errors.Is(err, unix.ENOENT) {
		return nil, &kernel.UnsupportedError{Feature: "tracing " + tp, Err: loadError("attach to tracepoint", tp, err)}
	}
	return l, loadError("attach to tracepoint", tp, err)
}

// attach attaches the on-demand programs, in the order they were loaded; on failure none stays attached.
func (o *objects) attach() error {
	for i := range o.onDemand {
		d := &o.onDemand[i]
		if d.link != nil {
			continue
		}
		l, err := attachRawTracepoint(d.prog, d.tp)
		if err != nil {
			return errors.Join(err, o.detach())
		}
		d.link = l
	}
	return nil
}

// detach detaches the on-demand programs: once it returns, none of them runs any more.
func (o *objects) detach() error {
	var errs []error
	for i := range o.onDemand {
		if d := &o.onDemand[i]; d.link != nil {
			errs = append(errs, d.link.Close())
			d.link = nil
		}
	}
	return errors.Join(errs...)
}

// enableStats turns the kernel's BPF run-time statistics on until close.
func (o *objects) enableStats() error {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return loadError("enable BPF statistics", "", err)
	}
	o.stats = c
	return nil
}

// costs reads the programs' run counts and run time so far; nil without statistics.
func (o *objects) costs() []ProgramCost {
	if o.stats == nil {
		return nil
	}
	out := make([]ProgramCost, 0, len(o.progs))
	for i, p := range o.progs {
		st, err := p.Stats()
		if err != nil {
			continue
		}
		out = append(out, ProgramCost{Program: o.names[i], Runs: st.RunCount, Time: st.Runtime,
			Missed: st.RecursionMisses})
	}
	return out
}

// costSince returns the costs accrued since before (an earlier costs()).
func costSince(before, now []ProgramCost) []ProgramCost {
	out := make([]ProgramCost, 0, len(now))
	for i, c := range now {
		if i < len(before) && before[i].Program == c.Program {
			c.Runs -= before[i].Runs
			c.Time -= before[i].Time
			c.Missed -= before[i].Missed
		}
		out = append(out, c)
	}
	return out
}

func (o *objects) close() error {
	errs := []error{o.detach()}
	for _, l := range o.links {
		errs = append(errs, l.Close())
	}
	for _, p := range o.progs {
		errs = append(errs, p.Close())
	}
	for _, m := range o.maps {
		errs = append(errs, m.Close())
	}
	if o.stats != nil {
		errs = append(errs, o.stats.Close())
	}
	*o = objects{}
	return errors.Join(errs...)
}

// kernelLayout reads the running kernel's BTF and resolves what the programs need, checking the tracepoints tps.
func kernelLayout(tps ...string) (layout, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return layout{}, &kernel.UnsupportedError{Feature: "BPF tracing with kernel type information (BTF)",
			Err: fmt.Errorf("read the kernel's BTF (CONFIG_DEBUG_INFO_BTF): %w", err)}
	}
	l, err := resolveLayout(spec, tps)
	if err != nil {
		return layout{}, &kernel.UnsupportedError{Feature: "napilab's tracers on this kernel", Err: err}
	}
	return l, nil
}

// entries returns the entries of a hash map, and deletes them when clear is set.
func entries(m *ebpf.Map, clear bool) (keys, values [][]byte, err error) {
	it := m.Iterate()
	for {
		// Fresh slices each time: a lookup into a slice of the right size reuses its memory.
		var k, v []byte
		if !it.Next(&k, &v) {
			break
		}
		keys, values = append(keys, k), append(values, v)
	}
	if err := it.Err(); err != nil {
		return nil, nil, kernel.NewOpError("read BPF map", "", err)
	}
	if clear {
		for _, k := range keys {
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return nil, nil, kernel.NewOpError("clear BPF map", "", err)
			}
		}
	}
	return keys, values, nil
}

// clearMap empties a hash map.
func clearMap(m *ebpf.Map) error {
	_, _, err := entries(m, true)
	return err
}
