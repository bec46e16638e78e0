package labsuite

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/testenv"
)

// TestLabFentryFexit is the smoke test the tracing work relies on: fentry and fexit programs (BPF trampolines)
// load and attach to xsk_recvmsg, the kernel function the seed's bpftrace histogram times, and see every call an
// AF_XDP socket's recvfrom makes, with its return value. The host refuses BPF tracing programs with EPERM
// whatever the target (gotcha 10: an environment restriction, not a kernel version gate), so there the test
// checks that the refusal is a clean permission error and skips; in the lab it must pass.
func TestLabFentryFexit(t *testing.T) {
	testenv.RequirePriv(t)
	const target = "xsk_recvmsg"
	counts, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer counts.Close()
	// Slot 0 counts fentry hits; slot 1 holds the return value fexit saw last. fexit's context is the
	// function's arguments as u64s followed by its return value: xsk_recvmsg has four arguments.
	entry := tracingProgram(t, counts, ebpf.AttachTraceFEntry, target, 0, nil)
	if entry == nil {
		return // refused on this machine; tracingProgram said why
	}
	exit := tracingProgram(t, counts, ebpf.AttachTraceFExit, target, 1, asm.Instructions{asm.LoadMem(asm.R6, asm.R1, 4*8, asm.DWord)})
	for _, p := range []*ebpf.Program{entry, exit} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			t.Fatalf("attach %v to %s: %v", p, target, err)
		}
		defer l.Close()
	}

	// An unbound AF_XDP socket answers recvfrom with ENXIO from inside xsk_recvmsg.
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	const calls = 5
	for range calls {
		if _, _, err := unix.Recvfrom(fd, make([]byte, 1), unix.MSG_DONTWAIT); !errors.Is(err, unix.ENXIO) {
			t.Fatalf("recvfrom on an unbound AF_XDP socket: %v, want ENXIO", err)
		}
	}
	var hits, ret uint64
	if err := counts.Lookup(uint32(0), &hits); err != nil {
		t.Fatal(err)
	}
	if err := counts.Lookup(uint32(1), &ret); err != nil {
		t.Fatal(err)
	}
	if hits < calls {
		t.Errorf("fentry on %s counted %d calls, want at least the %d recvfrom made", target, hits, calls)
	}
	if int32(ret) != -int32(unix.ENXIO) {
		t.Errorf("fexit on %s saw return value %d, want -ENXIO (%d)", target, int32(ret), -int32(unix.ENXIO))
	}
	t.Logf("fentry counted %d calls of %s; fexit saw %d", hits, target, int32(ret))
}

// tracingProgram loads a tracing program of kind attach on fn that adds 1 to slot of m, or, after prologue
// (which leaves a value in R6), stores R6 there. On a machine that refuses tracing programs it checks the
// refusal is clean, skips t and returns nil; in the lab any error fails t.
func tracingProgram(t *testing.T, m *ebpf.Map, attach ebpf.AttachType, fn string, slot int32, prologue asm.Instructions) *ebpf.Program {
	t.Helper()
	insns := append(asm.Instructions{}, prologue...)
	insns = append(insns,
		asm.StoreImm(asm.RFP, -4, int64(slot), asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
	)
	if prologue == nil {
		insns = append(insns, asm.Mov.Imm(asm.R1, 1), asm.StoreXAdd(asm.R0, asm.R1, asm.DWord))
	} else {
		insns = append(insns, asm.StoreMem(asm.R0, 0, asm.R6, asm.DWord))
	}
	insns = append(insns, asm.Mov.Imm(asm.R0, 0).WithSymbol("out"), asm.Return())
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: attach, AttachTo: fn,
		License: "GPL", Instructions: insns})
	if err == nil {
		t.Cleanup(func() { p.Close() })
		return p
	}
	if testenv.InLab() {
		t.Fatalf("load %v program on %s in the lab: %v", attach, fn, err)
	}
	if !errors.Is(err, os.ErrPermission) && !errors.Is(err, ebpf.ErrNotSupported) {
		t.Fatalf("load %v program on %s: %v; want a clean refusal (permission or not supported) or success", attach, fn, err)
	}
	// Not testenv.Skip: the refusal is the machine's policy, not a missing privilege of the test.
	t.Skipf("this kernel refuses BPF tracing programs (%v): an environment restriction, not a version gate (cilium's MEMLOCK hint is a guess it makes for any EPERM); the qemu lab runs the test", err)
	return nil
}
