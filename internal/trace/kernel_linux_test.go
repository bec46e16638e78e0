package trace

import (
	"math"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/napilab/napilab/internal/testenv"
)

// TestKernelLayout: the running kernel's BTF has every field the programs read, and every tracepoint they attach
// to takes the arguments they expect. (Reading BTF needs no privileges.)
func TestKernelLayout(t *testing.T) {
	var tps []string
	for tp := range tracepoints {
		tps = append(tps, tp)
	}
	l, err := kernelLayout(tps...)
	if err != nil {
		t.Fatal(err)
	}
	if l.napiID <= 0 || l.taskPID <= 0 || l.taskComm <= 0 || l.taskFlags <= 0 {
		t.Fatalf("layout %+v: a field at offset 0 or below", l)
	}
	t.Logf("%+v", l)
}

// TestPrivBucketInKernel: the eBPF programs' bucket function, run by the kernel (BPF_PROG_TEST_RUN), gives the
// bucket BucketOf gives, for 0, every power of two and its neighbours, and the largest value.
func TestPrivBucketInKernel(t *testing.T) {
	testenv.RequirePriv(t)
	insns := asm.Instructions{ctxArg(asm.R6, asm.R1, 0)}
	insns = append(insns, bucketInsns(asm.R6, asm.R0, asm.R7, "b")...)
	insns = append(insns, asm.Return())
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.RawTracepoint, License: license, Instructions: insns})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	values := []uint64{0, math.MaxUint64}
	for i := range 64 {
		v := uint64(1) << i
		values = append(values, v-1, v, v+1)
	}
	for _, v := range values {
		got, err := p.Run(&ebpf.RunOptions{Context: []uint64{v}})
		if err != nil {
			t.Fatal(err)
		}
		if int(got) != BucketOf(v) {
			t.Errorf("in the kernel, %d goes to bucket %d; BucketOf says %d", v, got, BucketOf(v))
		}
	}
}
