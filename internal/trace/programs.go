package trace

import (
	"strconv"

	"github.com/cilium/ebpf/asm"
)

// The tracers' eBPF programs, written with cilium/ebpf's asm package so that building and running napilab needs
// no C compiler. Each builder is a pure function of the map descriptors it refers to and of the kernel's layout
// (struct offsets found in its BTF at load time), so the programs can be printed and checked without a kernel.
//
// Every program counts into hash maps in place: no event crosses to user space while tracing, which keeps the
// cost per event to a few map operations and loses nothing when user space is slow. A new hash entry is copied
// from an all-zero value (the zero map) and then filled in; an entry that cannot be created because its map is
// full is counted in the drops map, which the reports show.

// Tracepoint argument positions in the context of a raw tracepoint program (an array of u64), as checked
// against the kernel's BTF by the loader (tracepointArgs).
const (
	argNAPIPollNAPI  = 0 // napi_poll(struct napi_struct *napi, int work, int budget)
	argNAPIPollWork  = 1
	argSwitchPreempt = 0 // sched_switch(bool preempt, struct task_struct *prev, *next, unsigned int prev_state)
	// argument 1, prev, is the current task: bpf_get_current_pid_tgid gives its tid
	argSwitchNext  = 2
	argSwitchState = 3
	argWakeupTask  = 0 // sched_wakeup(struct task_struct *p)
	argIRQEntryIRQ = 0 // irq_handler_entry(int irq, struct irqaction *action)
	argSoftirqVec  = 0 // softirq_entry/exit(unsigned int vec_nr)
	argSysEnterID  = 1 // sys_enter(struct pt_regs *regs, long id)
	argSysExitRet  = 1 // sys_exit(struct pt_regs *regs, long ret)
	// xdp_redirect(dev, xdp, tgt, int err, enum bpf_map_type map_type, u32 map_id, u32 index)
	argRedirectErr   = 3
	argRedirectMapID = 5
	argRedirectIndex = 6
	netRXSoftirq     = 3  // NET_RX_SOFTIRQ
	pfKthreadBit     = 21 // PF_KTHREAD = 0x00200000
	bpfAny           = 0
	bpfNoExist       = 1
	helperReadSize   = 4 // pid and flags are 32-bit
)

// layout is what the programs need to know of the running kernel's structures, from its BTF.
type layout struct {
	napiID    int32 // offsetof(struct napi_struct, napi_id)
	taskPID   int32 // offsetof(struct task_struct, pid): the thread id
	taskComm  int32 // offsetof(struct task_struct, comm)
	taskFlags int32 // offsetof(struct task_struct, flags): PF_KTHREAD
}

// mapFDs are the file descriptors of the maps a tracer's programs use; 0 for a map the tracer does not have.
type mapFDs struct {
	zero, drops              int // array: one all-zero value; array: one u64
	napiWant, polls, softirq int // napi_poll
	threads, preempts        int // sched
	irqWant, irqs            int // irq_handler_entry
	sysStart, syscalls       int // raw_syscalls
	xskStart, xskHist        int // xsk_recvmsg
	turnaround               int // xdp_redirect and sys_enter: the one state entry
}

// zero64 stores a zero double word at dst+off (BPF_ST, which the kernel accepts for double words with the
// immediate sign-extended; cilium/ebpf's StoreImm refuses that size).
func zero64(dst asm.Register, off int16) asm.Instruction {
	return asm.Instruction{OpCode: asm.StoreImmOp(asm.DWord), Dst: dst, Offset: off, Constant: 0}
}

// ctxArg loads tracepoint argument i (a u64 slot) into dst.
func ctxArg(dst, ctx asm.Register, i int) asm.Instruction {
	return asm.LoadMem(dst, ctx, int16(8*i), asm.DWord)
}

// low32 clears the upper half of r: an int or unsigned int argument in its u64 slot.
func low32(r asm.Register) asm.Instructions {
	return asm.Instructions{asm.LSh.Imm(r, 32), asm.RSh.Imm(r, 32)}
}

// readKernel copies size bytes from the kernel address src+off to the stack at fp+dst (bpf_probe_read_kernel,
// which zeroes the destination when the read faults). It clobbers R0 to R5.
func readKernel(dst int16, size int32, src asm.Register, off int32) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R3, src),
		asm.Add.Imm(asm.R3, off),
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, int32(dst)),
		asm.Mov.Imm(asm.R2, size),
		asm.FnProbeReadKernel.Call(),
	}
}

// lookup leaves in R0 the value of map m at the key on the stack at fp+key, or 0.
func lookup(m int, key int16) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, m),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(key)),
		asm.FnMapLookupElem.Call(),
	}
}

// insertZero creates the entry of map m at fp+key from the zero value, unless it exists; R0 is 0 when this
// call created it.
func insertZero(m, zero int, key int16) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, m),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(key)),
		asm.LoadMapValue(asm.R3, zero, 0),
		asm.Mov.Imm(asm.R4, bpfNoExist),
		asm.FnMapUpdateElem.Call(),
	}
}

// lookupOrCreate leaves in R0 the value of map m at fp+key, creating it from the zero value first when needed;
// it jumps to created with R0 set when it made the entry (so the caller fills in what identifies it), to found
// when the entry existed, and to drop when the map is full.
func lookupOrCreate(m, zero int, key int16, found, created, drop string) asm.Instructions {
	ins := lookup(m, key)
	ins = append(ins, asm.JNE.Imm(asm.R0, 0, found))
	ins = append(ins, insertZero(m, zero, key)...)
	ins = append(ins, lookup(m, key)...)
	return append(ins, asm.JEq.Imm(asm.R0, 0, drop), asm.Ja.Label(created))
}

// bucketInsns leaves BucketOf(v) in out, clobbering v and tmp: the position of v's highest set bit found by
// halving (no loops, which the verifier would have to unroll), capped at the last bucket. Labels start with p.
func bucketInsns(v, out, tmp asm.Register, p string) asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Imm(out, 0),
		asm.JEq.Imm(v, 0, p+"done"),
		asm.Mov.Imm(out, 1),
	}
	shifts := []int32{32, 16, 8, 4, 2, 1}
	for i, s := range shifts {
		step := asm.Mov.Reg(tmp, v)
		if i > 0 {
			step = step.WithSymbol(p + strconv.Itoa(i))
		}
		ins = append(ins,
			step,
			asm.RSh.Imm(tmp, s),
			asm.JEq.Imm(tmp, 0, p+strconv.Itoa(i+1)),
			asm.Mov.Reg(v, tmp),
			asm.Add.Imm(out, s),
		)
	}
	return append(ins,
		asm.JLE.Imm(out, Buckets-1, p+"done").WithSymbol(p+strconv.Itoa(len(shifts))),
		asm.Mov.Imm(out, Buckets-1),
		asm.Mov.Reg(out, out).WithSymbol(p+"done"), // the jump target; changes nothing
	)
}

// histAdd adds one to the bucket of the value in v of the Hist at ptr+off (ptr a map value). It clobbers v, R1,
// R4 and R5.
func histAdd(ptr, v asm.Register, off int16, p string) asm.Instructions {
	ins := bucketInsns(v, asm.R4, asm.R5, p)
	return append(ins,
		asm.LSh.Imm(asm.R4, 3),
		asm.Add.Reg(asm.R4, ptr),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R4, asm.R1, asm.DWord, off),
	)
}

// currentComm writes the current task's name to the entry at ptr+off. It runs on every count, not only when
// the entry is made: a Go program names a thread after the thread has already run (rr's threads are named when
// their goroutine locks them), so the name at the first event can be a stale one. It costs a 16-byte copy.
func currentComm(ptr asm.Register, off int32) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R1, ptr),
		asm.Add.Imm(asm.R1, off),
		asm.Mov.Imm(asm.R2, commLen),
		asm.FnGetCurrentComm.Call(),
	}
}

// entryTail ends a program that counts into an entry (at ptr) of a map keyed by thread: the histogram at histOff
// counts the value in v, the thread's name goes to commOff, and the program exits; before the exit, at "drop",
// is the path for an entry the map had no room for.
func entryTail(ptr, v asm.Register, histOff int16, commOff int32, drops int) asm.Instructions {
	ins := histAdd(ptr, v, histOff, "b")
	ins = append(ins, currentComm(ptr, commOff)...)
	ins = append(ins, asm.Ja.Label("out"))
	ins = append(ins, countDrop(drops, "drop")...)
	return append(ins, exit("out")...)
}

// countDrop, at label, adds one to the drops counter.
func countDrop(drops int, label string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapValue(asm.R1, drops, 0).WithSymbol(label),
		asm.Mov.Imm(asm.R2, 1),
		asm.AddAtomic.Mem(asm.R1, asm.R2, asm.DWord, 0),
	}
}

func exit(label string) asm.Instructions {
	return asm.Instructions{asm.Mov.Imm(asm.R0, 0).WithSymbol(label), asm.Return()}
}

// napiPollInsns counts each poll of a watched NAPI (napi_poll tracepoint) per (NAPI, thread, CPU, softirq or
// not): polls, packets, a histogram of packets per poll, and, when the entry is made, the task's process, name
// and whether it is a kernel thread. A thread that polls outside softirq also gets a sched entry (when the
// tracer has the sched maps), so that its preemptions are counted from its first poll on.
//
// Stack: the key at fp-16 (napi id, tid, cpu, flags), the softirq map key at fp-20, task flags at fp-24.
// Registers: R6 context, R7 tgid, R8 packets of this poll, R9 the entry.
func napiPollInsns(m mapFDs, l layout) asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		zero64(asm.RFP, -16),
		zero64(asm.RFP, -8),
		ctxArg(asm.R7, asm.R6, argNAPIPollNAPI),
	}
	ins = append(ins, readKernel(-16, helperReadSize, asm.R7, l.napiID)...)
	ins = append(ins, asm.JNE.Imm(asm.R0, 0, "out"))
	ins = append(ins, lookup(m.napiWant, -16)...)
	ins = append(ins,
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.FnGetCurrentPidTgid.Call(),
		asm.StoreMem(asm.RFP, -12, asm.R0, asm.Word),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.RSh.Imm(asm.R7, 32),
		asm.FnGetSmpProcessorId.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.Word),
		asm.StoreImm(asm.RFP, -20, 0, asm.Word),
	)
	ins = append(ins, lookup(m.softirq, -20)...)
	ins = append(ins,
		asm.JEq.Imm(asm.R0, 0, "work"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R1, asm.Word),
		ctxArg(asm.R8, asm.R6, argNAPIPollWork).WithSymbol("work"),
	)
	ins = append(ins, low32(asm.R8)...)
	ins = append(ins, lookupOrCreate(m.polls, m.zero, -16, "count", "new", "drop")...)

	// A new entry: who polled.
	ins = append(ins,
		asm.Mov.Reg(asm.R9, asm.R0).WithSymbol("new"),
		asm.StoreMem(asm.R9, pvPID, asm.R7, asm.Word),
		asm.FnGetCurrentTask.Call(),
		asm.Mov.Reg(asm.R7, asm.R0),
	)
	ins = append(ins, readKernel(-24, helperReadSize, asm.R7, l.taskFlags)...)
	ins = append(ins,
		asm.LoadMem(asm.R1, asm.RFP, -24, asm.Word),
		asm.RSh.Imm(asm.R1, pfKthreadBit),
		asm.And.Imm(asm.R1, 1),
		asm.StoreMem(asm.R9, pvTaskFlags, asm.R1, asm.Word),
	)
	if m.threads != 0 {
		ins = append(ins,
			asm.LoadMem(asm.R1, asm.RFP, -4, asm.Word),
			asm.JNE.Imm(asm.R1, 0, "filled"),
		)
		ins = append(ins, insertZero(m.threads, m.zero, -12)...)
		ins = append(ins, asm.JNE.Imm(asm.R0, 0, "filled")) // already watched: leave its entry be
		ins = append(ins, lookup(m.threads, -12)...)
		ins = append(ins,
			asm.JEq.Imm(asm.R0, 0, "filled"),
			asm.Mov.Reg(asm.R7, asm.R0),
			asm.StoreImm(asm.R7, tvFlags, taskAutoWatch, asm.Word),
			asm.Mov.Reg(asm.R1, asm.R7),
			asm.Add.Imm(asm.R1, tvComm),
			asm.Mov.Imm(asm.R2, commLen),
			asm.FnGetCurrentComm.Call(),
		)
	}
	ins = append(ins, asm.Mov.Reg(asm.R0, asm.R9).WithSymbol("filled"))

	// Count the poll.
	ins = append(ins,
		asm.Mov.Reg(asm.R9, asm.R0).WithSymbol("count"),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R9, asm.R1, asm.DWord, pvPolls),
		asm.AddAtomic.Mem(asm.R9, asm.R8, asm.DWord, pvPackets),
	)
	return append(ins, entryTail(asm.R9, asm.R8, pvHist, pvComm, m.drops)...)
}

// softirqInsns keeps, per CPU, whether NET_RX softirq is running (softirq_entry sets it, softirq_exit clears it):
// napi_poll tells a softirq poll from a busy poll or a kthread's poll by it. Softirqs do not nest on a CPU.
func softirqInsns(m mapFDs, entry bool) asm.Instructions {
	var val int64
	if entry {
		val = 1
	}
	ins := asm.Instructions{ctxArg(asm.R6, asm.R1, argSoftirqVec)}
	ins = append(ins, low32(asm.R6)...)
	ins = append(ins,
		asm.JNE.Imm(asm.R6, netRXSoftirq, "out"),
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
	)
	ins = append(ins, lookup(m.softirq, -4)...)
	ins = append(ins,
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.StoreImm(asm.R0, 0, val, asm.Word),
	)
	return append(ins, exit("out")...)
}

// schedSwitchInsns accounts a context switch to the watched threads among prev and next: for prev, a voluntary
// or involuntary switch (involuntary when it was preempted or left the CPU still runnable, as the kernel counts
// nivcsw) and, when involuntary, who took the CPU; for next, the time since it left the CPU (also charged to its
// preemptor, if it was preempted) and, if it was woken, since its wake-up.
//
// Stack: prev's tid at fp-8 and next's at fp-4 (together the preemption key of prev), next's preemption key at
// fp-16. Registers: R6 context, R7 now, R8 an entry, R9 next's time off CPU.
func schedSwitchInsns(m mapFDs, l layout) asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnKtimeGetNs.Call(),
		asm.Mov.Reg(asm.R7, asm.R0),
		// prev is still the current task: its tid comes without reading its task_struct.
		asm.FnGetCurrentPidTgid.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.Word),
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		ctxArg(asm.R8, asm.R6, argSwitchNext),
	}
	ins = append(ins, readKernel(-4, helperReadSize, asm.R8, l.taskPID)...)

	// prev leaves the CPU. Its name is taken again (it is the current task): a thread can be watched before it
	// is named, as a Go thread that polled before its goroutine locked and named it.
	ins = append(ins, lookup(m.threads, -8)...)
	ins = append(ins,
		asm.JEq.Imm(asm.R0, 0, "next"),
		asm.Mov.Reg(asm.R8, asm.R0),
	)
	ins = append(ins, currentComm(asm.R8, tvComm)...)
	ins = append(ins,
		asm.Mov.Reg(asm.R0, asm.R8),
		asm.StoreMem(asm.R0, tvOutTS, asm.R7, asm.DWord),
		zero64(asm.R0, tvWakeTS), // a wake-up seen while it ran is not a wait
		zero64(asm.R0, tvOutBy),
		asm.Mov.Imm(asm.R1, 1),
		ctxArg(asm.R2, asm.R6, argSwitchPreempt),
		asm.And.Imm(asm.R2, 0xff),
		asm.JNE.Imm(asm.R2, 0, "invol"),
		ctxArg(asm.R2, asm.R6, argSwitchState),
	)
	ins = append(ins, low32(asm.R2)...)
	ins = append(ins,
		asm.JEq.Imm(asm.R2, 0, "invol"),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, tvVoluntary),
		asm.Ja.Label("next"),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, tvInvoluntary).WithSymbol("invol"),
		asm.LoadMem(asm.R2, asm.RFP, -4, asm.Word),
		asm.StoreMem(asm.R0, tvOutBy, asm.R2, asm.Word),
	)
	ins = append(ins, lookupOrCreate(m.preempts, m.zero, -8, "pcount", "pnew", "pdrop")...)
	ins = append(ins, asm.Mov.Reg(asm.R8, asm.R0).WithSymbol("pnew"))
	ins = append(ins, ctxArg(asm.R3, asm.R6, argSwitchNext))
	ins = append(ins,
		asm.Add.Imm(asm.R3, l.taskComm),
		asm.Mov.Reg(asm.R1, asm.R8),
		asm.Add.Imm(asm.R1, prvComm),
		asm.Mov.Imm(asm.R2, commLen),
		asm.FnProbeReadKernel.Call(),
		asm.Mov.Reg(asm.R0, asm.R8),
		asm.Mov.Imm(asm.R1, 1).WithSymbol("pcount"),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, prvCount),
		asm.Ja.Label("next"),
	)
	ins = append(ins, countDrop(m.drops, "pdrop")...)

	// next takes the CPU.
	next := lookup(m.threads, -4)
	next[0] = next[0].WithSymbol("next")
	ins = append(ins, next...)
	ins = append(ins,
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R8, asm.R0),
		asm.LoadMem(asm.R2, asm.R8, tvOutTS, asm.DWord),
		asm.JEq.Imm(asm.R2, 0, "wake"),
		zero64(asm.R8, tvOutTS),
		asm.JGT.Reg(asm.R2, asm.R7, "wake"),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Sub.Reg(asm.R3, asm.R2),
		asm.AddAtomic.Mem(asm.R8, asm.R3, asm.DWord, tvOffCPU),
		asm.Mov.Reg(asm.R9, asm.R3),
	)
	ins = append(ins, histAdd(asm.R8, asm.R3, tvOffHist, "o")...)
	// The time off CPU after a preemption goes to the preemptor's entry (key at fp-16: next, preemptor).
	ins = append(ins,
		asm.LoadMem(asm.R2, asm.R8, tvOutBy, asm.Word),
		asm.JEq.Imm(asm.R2, 0, "wake"),
		zero64(asm.R8, tvOutBy),
		asm.StoreMem(asm.RFP, -12, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.RFP, -4, asm.Word),
		asm.StoreMem(asm.RFP, -16, asm.R2, asm.Word),
	)
	ins = append(ins, lookup(m.preempts, -16)...)
	ins = append(ins,
		asm.JEq.Imm(asm.R0, 0, "wake"),
		asm.AddAtomic.Mem(asm.R0, asm.R9, asm.DWord, prvOffCPU),
		asm.LoadMem(asm.R1, asm.R0, prvLongest, asm.DWord),
		asm.JGE.Reg(asm.R1, asm.R9, "wake"),
		asm.StoreMem(asm.R0, prvLongest, asm.R9, asm.DWord),
		asm.LoadMem(asm.R2, asm.R8, tvWakeTS, asm.DWord).WithSymbol("wake"),
		asm.JEq.Imm(asm.R2, 0, "out"),
		zero64(asm.R8, tvWakeTS),
		asm.JGT.Reg(asm.R2, asm.R7, "out"),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Sub.Reg(asm.R3, asm.R2),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R8, asm.R1, asm.DWord, tvWakeups),
		asm.AddAtomic.Mem(asm.R8, asm.R3, asm.DWord, tvWakeLat),
	)
	ins = append(ins, histAdd(asm.R8, asm.R3, tvWakeHist, "w")...)
	return append(ins, exit("out")...)
}

// schedWakeupInsns notes when a watched thread is woken (sched_wakeup), for its wake-up latency.
func schedWakeupInsns(m mapFDs, l layout) asm.Instructions {
	ins := asm.Instructions{
		zero64(asm.RFP, -8),
		ctxArg(asm.R6, asm.R1, argWakeupTask),
	}
	ins = append(ins, readKernel(-4, helperReadSize, asm.R6, l.taskPID)...)
	ins = append(ins, lookup(m.threads, -4)...)
	ins = append(ins,
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R8, asm.R0),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.R8, tvWakeTS, asm.R0, asm.DWord),
	)
	return append(ins, exit("out")...)
}

// irqEntryInsns counts the handler runs of the watched IRQs per CPU (irq_handler_entry).
// Stack: the key at fp-8 (irq, cpu).
func irqEntryInsns(m mapFDs) asm.Instructions {
	ins := asm.Instructions{
		ctxArg(asm.R2, asm.R1, argIRQEntryIRQ),
		asm.StoreMem(asm.RFP, -8, asm.R2, asm.Word),
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
	}
	ins = append(ins, lookup(m.irqWant, -8)...)
	ins = append(ins,
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.FnGetSmpProcessorId.Call(),
		asm.StoreMem(asm.RFP, -4, asm.R0, asm.Word),
	)
	ins = append(ins, lookupOrCreate(m.irqs, m.zero, -8, "count", "count", "drop")...)
	ins = append(ins,
		asm.Mov.Imm(asm.R1, 1).WithSymbol("count"),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, 0),
		asm.Ja.Label("out"),
	)
	ins = append(ins, countDrop(m.drops, "drop")...)
	return append(ins, exit("out")...)
}

// tgidFilter jumps to out unless the current task belongs to process tgid (0: any). It leaves pid_tgid in R7.
func tgidFilter(tgid int32) asm.Instructions {
	ins := asm.Instructions{
		asm.FnGetCurrentPidTgid.Call(),
		asm.Mov.Reg(asm.R7, asm.R0),
	}
	if tgid != 0 {
		ins = append(ins, asm.RSh.Imm(asm.R0, 32), asm.JNE.Imm(asm.R0, tgid, "out"))
	}
	return ins
}

// stampStart stores the current time at fp+val, then map m's entry for the key at fp+key from the value at
// fp+val (the time first, the caller may have put more after it).
func stampStart(m int, key, val int16) asm.Instructions {
	return asm.Instructions{
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.RFP, val, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, m),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(key)),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, int32(val)),
		asm.Mov.Imm(asm.R4, bpfAny),
		asm.FnMapUpdateElem.Call(),
	}
}

// elapsed looks up the start stampStart stored for the key at fp+key in map m (jumping to out when there is
// none), runs keep with the entry in R0, deletes the entry, and leaves the time since the start in R8.
func elapsed(m int, key int16, keep ...asm.Instruction) asm.Instructions {
	ins := lookup(m, key)
	ins = append(ins,
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R8, asm.R0, 0, asm.DWord),
	)
	ins = append(ins, keep...)
	return append(ins,
		asm.LoadMapPtr(asm.R1, m),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(key)),
		asm.FnMapDeleteElem.Call(),
		asm.FnKtimeGetNs.Call(),
		asm.Sub.Reg(asm.R0, asm.R8),
		asm.Mov.Reg(asm.R8, asm.R0),
	)
}

// sysEnterInsns notes when a thread of process tgid enters one of the system calls nrs, and which
// (raw_syscalls sys_enter). Stack: the key (tid) at fp-4, the start (time, nr) at fp-24.
func sysEnterInsns(m mapFDs, tgid int32, nrs []int32) asm.Instructions {
	ins := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
	ins = append(ins, tgidFilter(tgid)...)
	ins = append(ins, ctxArg(asm.R8, asm.R6, argSysEnterID))
	for _, nr := range nrs {
		ins = append(ins, asm.JEq.Imm(asm.R8, nr, "hit"))
	}
	ins = append(ins,
		asm.Ja.Label("out"),
		asm.StoreMem(asm.RFP, -4, asm.R7, asm.Word).WithSymbol("hit"),
		asm.StoreMem(asm.RFP, -24+ssNR, asm.R8, asm.DWord),
	)
	ins = append(ins, stampStart(m.sysStart, -4, -24)...)
	return append(ins, exit("out")...)
}

// sysExitInsns accounts a system call that sysEnterInsns saw start: per (thread, syscall) the count, errors,
// total time and a histogram of the time (raw_syscalls sys_exit). Stack: the start key (tid) at fp-4, the
// entry key (tid, nr) at fp-16. Registers: R6 context, R7 pid_tgid, R8 duration, R9 return value.
func sysExitInsns(m mapFDs, tgid int32) asm.Instructions {
	ins := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
	ins = append(ins, tgidFilter(tgid)...)
	ins = append(ins, asm.StoreMem(asm.RFP, -4, asm.R7, asm.Word))
	ins = append(ins, elapsed(m.sysStart, -4,
		asm.LoadMem(asm.R9, asm.R0, ssNR, asm.DWord),
		asm.StoreMem(asm.RFP, -16, asm.R7, asm.Word),
		asm.StoreMem(asm.RFP, -12, asm.R9, asm.Word),
	)...)
	ins = append(ins, ctxArg(asm.R9, asm.R6, argSysExitRet))
	ins = append(ins, lookupOrCreate(m.syscalls, m.zero, -16, "count", "new", "drop")...)
	ins = append(ins,
		asm.Mov.Reg(asm.R2, asm.R7).WithSymbol("new"),
		asm.RSh.Imm(asm.R2, 32),
		asm.StoreMem(asm.R0, svPID, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R1, 1).WithSymbol("count"),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, svCount),
		asm.AddAtomic.Mem(asm.R0, asm.R8, asm.DWord, svTotal),
		asm.JSGE.Imm(asm.R9, 0, "hist"),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, svErrors),
		asm.Mov.Reg(asm.R7, asm.R0).WithSymbol("hist"),
	)
	return append(ins, entryTail(asm.R7, asm.R8, svHist, svComm, m.drops)...)
}

// xskEntryInsns notes when a thread enters xsk_recvmsg (fentry). Stack: key (tid) at fp-4, time at fp-16.
func xskEntryInsns(m mapFDs, tgid int32) asm.Instructions {
	ins := tgidFilter(tgid)
	ins = append(ins, asm.StoreMem(asm.RFP, -4, asm.R7, asm.Word))
	ins = append(ins, stampStart(m.xskStart, -4, -16)...)
	return append(ins, exit("out")...)
}

// xskExitInsns adds the time since the thread entered xsk_recvmsg to the histogram (fexit), as the seed's
// bpftrace script does with kprobe and kretprobe.
func xskExitInsns(m mapFDs, tgid int32) asm.Instructions {
	ins := tgidFilter(tgid)
	ins = append(ins, asm.StoreMem(asm.RFP, -4, asm.R7, asm.Word))
	ins = append(ins, elapsed(m.xskStart, -4)...)
	ins = append(ins,
		asm.LoadMapValue(asm.R7, m.xskHist, 0),
		asm.AddAtomic.Mem(asm.R7, asm.R8, asm.DWord, xvTotal),
	)
	ins = append(ins, histAdd(asm.R7, asm.R8, xvHist, "b")...)
	return append(ins, exit("out")...)
}

// turnaroundInInsns notes when a request lands in XSKMAP mapID's slot queue (xdp_redirect, err 0), unless an
// older one is still waiting for its reply: the turnaround is the oldest waiting request's.
func turnaroundInInsns(m mapFDs, mapID, queue uint32) asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		ctxArg(asm.R2, asm.R6, argRedirectErr),
	}
	ins = append(ins, low32(asm.R2)...)
	ins = append(ins, asm.JNE.Imm(asm.R2, 0, "out"), ctxArg(asm.R2, asm.R6, argRedirectMapID))
	ins = append(ins, low32(asm.R2)...)
	ins = append(ins, asm.JNE.Imm32(asm.R2, int32(mapID), "out"), ctxArg(asm.R2, asm.R6, argRedirectIndex))
	ins = append(ins, low32(asm.R2)...)
	ins = append(ins,
		asm.JNE.Imm32(asm.R2, int32(queue), "out"),
		asm.LoadMapValue(asm.R7, m.turnaround, 0),
		asm.LoadMem(asm.R2, asm.R7, tvPending, asm.DWord),
		asm.JNE.Imm(asm.R2, 0, "out"),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.R7, tvPending, asm.R0, asm.DWord),
	)
	return append(ins, exit("out")...)
}

// turnaroundOutInsns ends the waiting request's turnaround when a thread of process tgid (named comm, when comm
// is not empty) enters one of the system calls nrs (sys_enter): it counts the time since the request arrived in
// the state entry's histogram (linear buckets of TurnaroundBucket) and clears the wait. Stack: the thread's name
// at fp-16.
func turnaroundOutInsns(m mapFDs, tgid int32, comm string, nrs []int32) asm.Instructions {
	// The system call first: it is in the context, while the process takes a helper call, and this program runs
	// for every system call on the machine, the traced server's idle kicks included.
	ins := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1), ctxArg(asm.R8, asm.R6, argSysEnterID)}
	for _, nr := range nrs {
		ins = append(ins, asm.JEq.Imm(asm.R8, nr, "kick"))
	}
	ins = append(ins, asm.Ja.Label("out"))
	filter := tgidFilter(tgid)
	filter[0] = filter[0].WithSymbol("kick")
	ins = append(ins, filter...)
	kick := asm.Instructions{
		asm.LoadMapValue(asm.R7, m.turnaround, 0),
		asm.LoadMem(asm.R9, asm.R7, tvPending, asm.DWord),
		asm.JEq.Imm(asm.R9, 0, "out"),
	}
	if comm != "" {
		var name [commLen]byte
		copy(name[:], comm)
		kick = append(kick, zero64(asm.RFP, -16), zero64(asm.RFP, -8))
		kick = append(kick, currentComm(asm.RFP, -16)...)
		kick = append(kick,
			asm.LoadMem(asm.R1, asm.RFP, -16, asm.DWord),
			asm.LoadImm(asm.R2, int64(ne.Uint64(name[:8])), asm.DWord),
			asm.JNE.Reg(asm.R1, asm.R2, "out"),
			asm.LoadMem(asm.R1, asm.RFP, -8, asm.DWord),
			asm.LoadImm(asm.R2, int64(ne.Uint64(name[8:])), asm.DWord),
			asm.JNE.Reg(asm.R1, asm.R2, "out"),
		)
	}
	ins = append(ins, kick...)
	ins = append(ins,
		zero64(asm.R7, tvPending),
		asm.FnKtimeGetNs.Call(),
		asm.Sub.Reg(asm.R0, asm.R9),
		asm.Mov.Reg(asm.R8, asm.R0),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R7, asm.R1, asm.DWord, tvCount),
		asm.AddAtomic.Mem(asm.R7, asm.R8, asm.DWord, tvTotal),
		asm.Mov.Reg(asm.R2, asm.R8),
		asm.Div.Imm(asm.R2, int32(TurnaroundBucket)),
		asm.JGE.Imm(asm.R2, TurnaroundBuckets, "over"),
		asm.LSh.Imm(asm.R2, 3),
		asm.Add.Reg(asm.R2, asm.R7),
		asm.AddAtomic.Mem(asm.R2, asm.R1, asm.DWord, tvBuckets),
		asm.Ja.Label("out"),
		asm.AddAtomic.Mem(asm.R7, asm.R1, asm.DWord, tvOver).WithSymbol("over"),
	)
	return append(ins, exit("out")...)
}
