package xsk_test

// A minimal XDP program that steers UDP frames for one port into an XSKMAP. It stands in until internal/xdp
// lands.

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/napilab/napilab/internal/testbed"
)

// attachSteering attaches an XDP program to h's veth end that redirects UDP frames (IPv4 or IPv6) for port to the
// socket stored at their RX queue's index in the returned XSKMAP, and passes everything else.
func attachSteering(t testing.TB, h *testbed.Host, port uint16) *ebpf.Map {
	t.Helper()
	xsks, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { xsks.Close() })
	portLE := int32(port>>8 | port<<8&0xff00) // the port's network-order bytes read as a little-endian u16
	const xdpPass = 2
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL", Instructions: asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14+20+8),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half), // ethertype
		asm.JEq.Imm(asm.R5, 0x0008, "ipv4"),
		asm.JNE.Imm(asm.R5, int32(0xdd86), "pass"),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14+40+8),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14+6, asm.Byte), // next header
		asm.JNE.Imm(asm.R5, 17, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14+40+2, asm.Half), // UDP destination port
		asm.JNE.Imm(asm.R5, portLE, "pass"),
		asm.Ja.Label("redirect"),
		asm.LoadMem(asm.R5, asm.R2, 14, asm.Byte).WithSymbol("ipv4"), // version and header length
		asm.JNE.Imm(asm.R5, 0x45, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14+9, asm.Byte), // protocol
		asm.JNE.Imm(asm.R5, 17, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14+20+2, asm.Half),
		asm.JNE.Imm(asm.R5, portLE, "pass"),
		asm.LoadMem(asm.R2, asm.R6, 16, asm.Word).WithSymbol("redirect"), // rx_queue_index
		asm.LoadMapPtr(asm.R1, xsks.FD()),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	var l link.Link
	if err := h.Do(func() (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: h.Ifindex})
		return err
	}); err != nil {
		t.Fatalf("attach XDP: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return xsks
}

// register puts the socket's fd into the XSKMAP at its queue.
func register(t testing.TB, xsks *ebpf.Map, queue, fd int) {
	t.Helper()
	if err := xsks.Put(uint32(queue), uint32(fd)); err != nil {
		t.Fatalf("XSKMAP update: %v", err)
	}
}
