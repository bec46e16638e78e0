package trace

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// programs builds every tracer program against made-up map descriptors and a made-up layout.
func programs() map[string]asm.Instructions {
	m := mapFDs{zero: 3, drops: 4, napiWant: 5, polls: 6, softirq: 7, threads: 8, preempts: 9, irqWant: 10, irqs: 11,
		sysStart: 12, syscalls: 13, xskStart: 14, xskHist: 15}
	l := layout{napiID: 360, taskPID: 2400, taskComm: 3000, taskFlags: 44}
	noSched := m
	noSched.threads = 0
	return map[string]asm.Instructions{
		"napi_poll": napiPollInsns(m, l), "napi_poll without sched": napiPollInsns(noSched, l),
		"softirq_entry": softirqInsns(m, true), "softirq_exit": softirqInsns(m, false),
		"sched_switch": schedSwitchInsns(m, l), "sched_wakeup": schedWakeupInsns(m, l),
		"irq_handler_entry": irqEntryInsns(m), "sys_enter": sysEnterInsns(m, 1234, []int32{44, 45}),
		"sys_exit": sysExitInsns(m, 1234), "fentry": xskEntryInsns(m, 0), "fexit": xskExitInsns(m, 1234),
		"xdp_redirect": turnaroundInInsns(m, 7, 0), "sys_enter turnaround": turnaroundOutInsns(m, 1234, "", []int32{44}),
		"sys_enter turnaround of a thread": turnaroundOutInsns(m, 1234, "rr-server", []int32{44, 46}),
	}
}

// TestProgramsAssemble: every program's jumps reach a label it defines, and it ends in an exit; the kernel's
// verifier checks the rest when the privileged tests load them.
func TestProgramsAssemble(t *testing.T) {
	for name, insns := range programs() {
		var buf bytes.Buffer
		if err := insns.Marshal(&buf, binary.LittleEndian); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if last := insns[len(insns)-1]; last.OpCode != asm.Return().OpCode {
			t.Errorf("%s ends with %v, not an exit", name, last)
		}
		t.Logf("%s: %d instructions", name, len(insns))
	}
	// The check above can fail: a jump to a label nobody defines does not assemble.
	broken := append(asm.Instructions{asm.Ja.Label("nowhere")}, exit("out")...)
	if err := broken.Marshal(&bytes.Buffer{}, binary.LittleEndian); err == nil {
		t.Error("a jump to a missing label assembled")
	}
}

// TestFieldOffset finds fields the way C does, through anonymous members, and refuses a wrong size.
func TestFieldOffset(t *testing.T) {
	u32 := &btf.Int{Name: "unsigned int", Size: 4}
	inner := &btf.Struct{Size: 8, Members: []btf.Member{{Name: "state", Type: u32}, {Name: "napi_id", Type: u32, Offset: 32}}}
	s := &btf.Struct{Name: "napi_struct", Size: 24, Members: []btf.Member{
		{Name: "poll_list", Type: &btf.Int{Size: 8}},
		{Type: &btf.Union{Size: 8, Members: []btf.Member{{Type: inner}}}, Offset: 64},
		{Name: "weight", Type: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}, Offset: 128},
	}}
	types := fakeTypes{"napi_struct": s}
	if off, err := fieldOffset(types, fieldNAPIID); err != nil || off != 12 {
		t.Errorf("napi_id at %d, %v; want 12", off, err)
	}
	if _, err := fieldOffset(types, fieldSpec{"napi_struct", "weight", 8}); err == nil {
		t.Error("an 8-byte read of a 4-byte field was accepted")
	}
	if _, err := fieldOffset(types, fieldSpec{"napi_struct", "gone", 4}); err == nil {
		t.Error("a missing field was found")
	}
	if _, err := fieldOffset(types, fieldTaskPID); err == nil {
		t.Error("a missing struct was found")
	}
}

func TestTracepointArgs(t *testing.T) {
	task := &btf.Pointer{Target: &btf.Struct{Name: "task_struct"}}
	proto := func(params ...btf.Type) btf.Type {
		fp := []btf.FuncParam{{Type: &btf.Pointer{Target: &btf.Void{}}}}
		for _, p := range params {
			fp = append(fp, btf.FuncParam{Type: p})
		}
		return &btf.Typedef{Name: "btf_trace_sched_switch", Type: &btf.Pointer{Target: &btf.FuncProto{Params: fp}}}
	}
	boolT := &btf.Typedef{Name: "bool", Type: &btf.Int{Name: "_Bool", Size: 1, Encoding: btf.Bool}}
	uint := &btf.Int{Name: "unsigned int", Size: 4}
	good := fakeTypes{"btf_trace_sched_switch": proto(boolT, task, task, uint)}
	if err := tracepointArgs(good, "sched_switch", tracepoints["sched_switch"]...); err != nil {
		t.Error(err)
	}
	// Before 5.18 sched_switch had no prev_state argument: the programs would read past its arguments.
	old := fakeTypes{"btf_trace_sched_switch": proto(boolT, task, task)}
	err := tracepointArgs(old, "sched_switch", tracepoints["sched_switch"]...)
	if err == nil || err.Error() != "this kernel's tracepoint sched_switch takes (bool, struct task_struct *, "+
		"struct task_struct *), napilab's program reads (bool, struct task_struct *, struct task_struct *, unsigned int)" {
		t.Errorf("old sched_switch: %v", err)
	}
	if err := tracepointArgs(good, "napi_poll"); err == nil {
		t.Error("a missing tracepoint was found")
	}
}

type fakeTypes map[string]btf.Type

func (f fakeTypes) AnyTypeByName(name string) (btf.Type, error) {
	if t, ok := f[name]; ok {
		return t, nil
	}
	return nil, btf.ErrNotFound
}
