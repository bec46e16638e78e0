package xdp

import (
	"encoding/binary"

	"github.com/cilium/ebpf/asm"
)

// XDP verdicts (enum xdp_action).
const (
	xdpAborted  = 0
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4
)

// Offsets in struct xdp_md, the program's context.
const (
	mdData         = 0
	mdDataEnd      = 4
	mdDataMeta     = 8
	mdRxQueueIndex = 16
)

// Header sizes and fields the program reads.
const (
	ethLen      = 14
	vlanLen     = 4
	ipv4MinLen  = 20
	ipv6Len     = 40
	udpLen      = 8
	ethTypeOff  = 12
	ipProtoUDP  = 17
	ipv4FragOff = 6 // flags (3 bits) and fragment offset (13 bits)
	ipv4Proto   = 9
	ipv6Next    = 6
	udpDstOff   = 2
)

const (
	progName      = "napilab_steer" // at most 15 characters (BPF_OBJ_NAME_LEN)
	mapName       = "napilab_xsks"
	stampsMapName = "napilab_nometa"
)

// netOrder returns the value a 16-bit load of v's network-order bytes yields on this machine, so the program
// compares packet fields without byte-swapping them.
func netOrder(v uint16) int32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return int32(binary.NativeEndian.Uint16(b[:]))
}

// instructions builds the steering program for spec; xsksFD is the XSKMAP, noMetaFD the one-entry array that
// counts frames the driver refused metadata for. Registers: R6 context, R2 data, R3 data_end, R7 network header,
// R8 UDP header, R4 and R5 scratch, R9 the arrival time.
func instructions(spec Spec, xsksFD, noMetaFD int) asm.Instructions {
	fallback := spec.fallback
	if fallback == 0 {
		fallback = xdpPass
	}
	parse := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, mdData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, mdDataEnd, asm.Word),

		// Ethernet, and at most one VLAN tag.
		asm.Mov.Reg(asm.R7, asm.R2),
		asm.Add.Imm(asm.R7, ethLen),
		asm.JGT.Reg(asm.R7, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, ethTypeOff, asm.Half),
		asm.JEq.Imm(asm.R5, netOrder(0x8100), "vlan"), // 802.1Q
		asm.JNE.Imm(asm.R5, netOrder(0x88a8), "l3"),   // 802.1ad
		asm.Mov.Reg(asm.R7, asm.R2).WithSymbol("vlan"),
		asm.Add.Imm(asm.R7, ethLen+vlanLen),
		asm.JGT.Reg(asm.R7, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, ethTypeOff+vlanLen, asm.Half),

		asm.JEq.Imm(asm.R5, netOrder(0x0800), "ipv4").WithSymbol("l3"),
		asm.JNE.Imm(asm.R5, netOrder(0x86dd), "pass"),

		// IPv6: UDP must follow the fixed header directly.
		asm.Mov.Reg(asm.R8, asm.R7),
		asm.Add.Imm(asm.R8, ipv6Len),
		asm.Mov.Reg(asm.R4, asm.R8),
		asm.Add.Imm(asm.R4, udpLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R7, ipv6Next, asm.Byte),
		asm.JNE.Imm(asm.R5, ipProtoUDP, "pass"),
		asm.Ja.Label("udp"),

		// IPv4: version 4, header length from IHL (5..15 words), UDP, not a fragment.
		asm.Mov.Reg(asm.R4, asm.R7).WithSymbol("ipv4"),
		asm.Add.Imm(asm.R4, ipv4MinLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R7, 0, asm.Byte),
		asm.Mov.Reg(asm.R4, asm.R5),
		asm.RSh.Imm(asm.R4, 4),
		asm.JNE.Imm(asm.R4, 4, "pass"),
		asm.And.Imm(asm.R5, 0x0f),
		asm.JLT.Imm(asm.R5, 5, "pass"),
		asm.LoadMem(asm.R4, asm.R7, ipv4Proto, asm.Byte),
		asm.JNE.Imm(asm.R4, ipProtoUDP, "pass"),
		asm.LoadMem(asm.R4, asm.R7, ipv4FragOff, asm.Half),
		asm.And.Imm(asm.R4, netOrder(0x3fff)), // more-fragments flag and fragment offset
		asm.JNE.Imm(asm.R4, 0, "pass"),
		asm.LSh.Imm(asm.R5, 2),
		asm.Mov.Reg(asm.R8, asm.R7),
		asm.Add.Reg(asm.R8, asm.R5),
		asm.Mov.Reg(asm.R4, asm.R8),
		asm.Add.Imm(asm.R4, udpLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),

		// UDP destination port.
		asm.LoadMem(asm.R5, asm.R8, udpDstOff, asm.Half).WithSymbol("udp"),
		asm.JNE.Imm(asm.R5, netOrder(spec.Port), "pass"),
	}
	// The socket of the receiving queue.
	redirect := asm.Instructions{
		asm.LoadMapPtr(asm.R1, xsksFD).WithSymbol("redirect"),
		asm.LoadMem(asm.R2, asm.R6, mdRxQueueIndex, asm.Word),
		asm.Mov.Imm(asm.R3, int32(fallback)),
		asm.FnRedirectMap.Call(),
		asm.Return(),

		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	}
	if spec.NoStamp {
		return append(parse, redirect...)
	}
	return append(append(parse, stamp(noMetaFD)...), redirect...)
}

// stamp writes the arrival stamp in front of a steered frame (see Stamp): the time first, then room for the
// metadata. bpf_xdp_adjust_meta fails where the driver gives XDP no metadata area; the frame is steered without a
// stamp then, and the failure is counted in the noMeta array, so the application can say why it saw none.
func stamp(noMetaFD int) asm.Instructions {
	return asm.Instructions{
		asm.FnKtimeGetNs.Call(), // CLOCK_MONOTONIC, as the application's clock
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, -StampLen),
		asm.FnXdpAdjustMeta.Call(),
		asm.JNE.Imm(asm.R0, 0, "nometa"),
		// adjust_meta invalidated every packet pointer: reload, and show the verifier that the area fits.
		asm.LoadMem(asm.R2, asm.R6, mdDataMeta, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, mdData, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, StampLen),
		asm.JGT.Reg(asm.R4, asm.R3, "redirect"),
		asm.StoreImm(asm.R2, 0, int64(stampMagicWord), asm.Word),
		asm.StoreImm(asm.R2, 4, 0, asm.Word),
		asm.StoreMem(asm.R2, 8, asm.R9, asm.DWord),
		asm.Ja.Label("redirect"),

		asm.StoreImm(asm.RFP, -4, 0, asm.Word).WithSymbol("nometa"),
		asm.LoadMapPtr(asm.R1, noMetaFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "redirect"),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, 0), // falls through to the redirect
	}
}
