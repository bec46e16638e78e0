package trace

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// The running kernel describes its own types in BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF). The
// tracers read a few struct fields through pointers a tracepoint hands them (a NAPI's id, a task's pid, name and
// flags), and the offsets of those fields differ between kernel builds, so they are looked up here at load time
// instead of being compiled in. The same BTF describes each tracepoint's arguments (the btf_trace_<name>
// typedef), which the loader checks against the argument positions the programs use.

// fieldSpec names a struct field the programs read and the size they read.
type fieldSpec struct {
	structName, field string
	size              uint32
}

var (
	fieldNAPIID    = fieldSpec{"napi_struct", "napi_id", 4}
	fieldTaskPID   = fieldSpec{"task_struct", "pid", 4}
	fieldTaskComm  = fieldSpec{"task_struct", "comm", commLen}
	fieldTaskFlags = fieldSpec{"task_struct", "flags", 4}
)

// typeFinder is the part of a btf.Spec the lookups use.
type typeFinder interface {
	AnyTypeByName(name string) (btf.Type, error)
}

// fieldOffset returns the byte offset of f in its struct, checking that the field has the size the programs read.
func fieldOffset(types typeFinder, f fieldSpec) (int32, error) {
	t, err := types.AnyTypeByName(f.structName)
	if err != nil {
		return 0, fmt.Errorf("the kernel's BTF has no struct %s: %w", f.structName, err)
	}
	s, ok := btf.UnderlyingType(t).(*btf.Struct)
	if !ok {
		return 0, fmt.Errorf("the kernel's BTF type %s is %s, not a struct", f.structName, t)
	}
	off, m, ok := findMember(s.Members, f.field, 0)
	if !ok {
		return 0, fmt.Errorf("the kernel's struct %s has no field %s", f.structName, f.field)
	}
	if m.BitfieldSize != 0 || off%8 != 0 {
		return 0, fmt.Errorf("the kernel's %s.%s is a bit field", f.structName, f.field)
	}
	size, err := btf.Sizeof(m.Type)
	if err != nil || uint32(size) != f.size {
		return 0, fmt.Errorf("the kernel's %s.%s is %d bytes (%v), napilab reads %d", f.structName, f.field, size,
			err, f.size)
	}
	return int32(off / 8), nil
}

// findMember finds a member by name, descending into anonymous structs and unions as C name lookup does; off
// is the offset in bits of the members' container.
func findMember(members []btf.Member, name string, off btf.Bits) (btf.Bits, btf.Member, bool) {
	for _, m := range members {
		if m.Name == name {
			return off + m.Offset, m, true
		}
		if m.Name != "" {
			continue
		}
		var inner []btf.Member
		switch c := btf.UnderlyingType(m.Type).(type) {
		case *btf.Struct:
			inner = c.Members
		case *btf.Union:
			inner = c.Members
		}
		if o, found, ok := findMember(inner, name, off+m.Offset); ok {
			return o, found, true
		}
	}
	return 0, btf.Member{}, false
}

// describe renders a type as C declares it: "struct task_struct *", "unsigned int", "bool".
func describe(t btf.Type) string {
	switch v := t.(type) {
	case *btf.Pointer:
		return describe(v.Target) + " *"
	case *btf.Struct:
		return "struct " + v.Name
	case *btf.Union:
		return "union " + v.Name
	case *btf.Const:
		return "const " + describe(v.Type)
	case *btf.Volatile:
		return describe(v.Type)
	case *btf.Void:
		return "void"
	case nil:
		return "void"
	}
	return t.TypeName()
}

// tracepointArgs checks that the tracepoint's arguments, as the kernel's BTF declares them (btf_trace_<name>:
// a pointer to a function whose first parameter is the tracepoint's private data), are the ones the programs
// were written for.
func tracepointArgs(types typeFinder, name string, want ...string) error {
	t, err := types.AnyTypeByName("btf_trace_" + name)
	if err != nil {
		return fmt.Errorf("the kernel has no tracepoint %s: %w", name, err)
	}
	var got []string
	if p, ok := btf.UnderlyingType(t).(*btf.Pointer); ok {
		if fn, ok := p.Target.(*btf.FuncProto); ok && len(fn.Params) > 0 {
			for _, a := range fn.Params[1:] {
				got = append(got, describe(a.Type))
			}
		}
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		return fmt.Errorf("this kernel's tracepoint %s takes (%s), napilab's program reads (%s)", name,
			strings.Join(got, ", "), strings.Join(want, ", "))
	}
	return nil
}

// tracepoints lists the tracepoints the programs attach to, with the arguments they read (programs.go).
var tracepoints = map[string][]string{
	"napi_poll":         {"struct napi_struct *", "int", "int"},
	"softirq_entry":     {"unsigned int"},
	"softirq_exit":      {"unsigned int"},
	"sched_switch":      {"bool", "struct task_struct *", "struct task_struct *", "unsigned int"},
	"sched_wakeup":      {"struct task_struct *"},
	"irq_handler_entry": {"int", "struct irqaction *"},
	"sys_enter":         {"struct pt_regs *", "long int"},
	"sys_exit":          {"struct pt_regs *", "long int"},
	"xdp_redirect": {"const struct net_device *", "const struct bpf_prog *", "const void *", "int", "bpf_map_type",
		"u32", "u32"},
}

// resolveLayout finds the fields the programs read and checks the tracepoints they attach to.
func resolveLayout(types typeFinder, tps []string) (layout, error) {
	var l layout
	var err error
	for _, f := range []struct {
		dst  *int32
		spec fieldSpec
	}{{&l.napiID, fieldNAPIID}, {&l.taskPID, fieldTaskPID}, {&l.taskComm, fieldTaskComm},
		{&l.taskFlags, fieldTaskFlags}} {
		if *f.dst, err = fieldOffset(types, f.spec); err != nil {
			return layout{}, err
		}
	}
	for _, tp := range tps {
		if err := tracepointArgs(types, tp, tracepoints[tp]...); err != nil {
			return layout{}, err
		}
	}
	return l, nil
}
