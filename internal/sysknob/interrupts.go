package sysknob

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Interrupts is one reading of /proc/interrupts.
type Interrupts struct {
	CPUs []int       // the CPU of each count column: online CPUs only, as the kernel prints them
	IRQs []Interrupt // in file order
}

// Interrupt is one row of /proc/interrupts.
type Interrupt struct {
	ID      string   // "38" for a numbered IRQ, "LOC", "NMI", ... for architecture rows
	IRQ     int      // the IRQ number, or -1 for an architecture row
	Counts  []uint64 // per CPU, aligned with Interrupts.CPUs; rows such as ERR that print one total have one entry
	Chip    string   // interrupt chip of a numbered IRQ, e.g. "PCI-MSIX-0000:00:03.0"
	Actions []string // handler names of a numbered IRQ, e.g. "virtio2-input.0", "eth0-TxRx-1"
	Desc    string   // the text of an architecture row, e.g. "Local timer interrupts"
}

// Total returns the interrupt count summed over all CPUs.
func (in Interrupt) Total() uint64 {
	var n uint64
	for _, c := range in.Counts {
		n += c
	}
	return n
}

// OnCPU returns the interrupts delivered to cpu, every row with a count per CPU summed (numbered IRQs, the
// local timer, IPIs, ...; rows such as ERR that print one total are left out), and false when cpu has no column.
func (s Interrupts) OnCPU(cpu int) (uint64, bool) {
	col := slices.Index(s.CPUs, cpu)
	if col < 0 {
		return 0, false
	}
	var n uint64
	for _, in := range s.IRQs {
		if len(in.Counts) == len(s.CPUs) {
			n += in.Counts[col]
		}
	}
	return n, true
}

// PerCPU returns the counts of the numbered IRQ irq keyed by CPU, and false when the IRQ is not listed.
func (s Interrupts) PerCPU(irq int) (map[int]uint64, bool) {
	for _, in := range s.IRQs {
		if in.IRQ != irq || irq < 0 {
			continue
		}
		out := make(map[int]uint64, len(in.Counts))
		for i, c := range in.Counts {
			if i < len(s.CPUs) {
				out[s.CPUs[i]] = c
			}
		}
		return out, true
	}
	return nil, false
}

// ParseInterrupts parses the text of /proc/interrupts. The header names the CPU columns; each row is
// "ID: count per CPU, then chip, hardware IRQ and handler type, then the action names" for numbered IRQs
// (kernel/irq/proc.c show_interrupts), or "ID: counts description" for architecture rows.
func ParseInterrupts(text string) (Interrupts, error) {
	lines := strings.Split(text, "\n")
	var s Interrupts
	for _, f := range strings.Fields(lines[0]) {
		n, ok := strings.CutPrefix(f, "CPU")
		cpu, err := strconv.Atoi(n)
		if !ok || err != nil || cpu < 0 || cpu >= MaxCPUs {
			return Interrupts{}, fmt.Errorf("parse /proc/interrupts: header column %q is not CPU<n>", shorten(f))
		}
		s.CPUs = append(s.CPUs, cpu)
	}
	if len(s.CPUs) == 0 {
		return Interrupts{}, fmt.Errorf("parse /proc/interrupts: header %q names no CPU", shorten(lines[0]))
	}
	for i, line := range lines[1:] {
		if strings.TrimSpace(line) == "" {
			continue
		}
		in, err := parseInterruptRow(line, len(s.CPUs))
		if err != nil {
			return Interrupts{}, fmt.Errorf("parse /proc/interrupts line %d: %w", i+2, err)
		}
		s.IRQs = append(s.IRQs, in)
	}
	return s, nil
}

func parseInterruptRow(line string, ncpu int) (Interrupt, error) {
	id, rest, ok := strings.Cut(line, ":")
	id = strings.TrimSpace(id)
	if !ok || id == "" || strings.ContainsAny(id, " \t") {
		return Interrupt{}, fmt.Errorf("%q does not start with an IRQ id and a colon", shorten(line))
	}
	in := Interrupt{ID: id, IRQ: -1}
	if n, err := strconv.Atoi(id); err == nil && n >= 0 {
		in.IRQ = n
	}
	for len(in.Counts) < ncpu {
		tok, after := nextToken(rest)
		c, err := strconv.ParseUint(tok, 10, 64)
		if err != nil {
			break
		}
		in.Counts = append(in.Counts, c)
		rest = after
	}
	if len(in.Counts) == 0 {
		return Interrupt{}, fmt.Errorf("IRQ %s has no counts", shorten(id))
	}
	if in.IRQ < 0 {
		in.Desc = strings.TrimSpace(rest)
		return in, nil
	}
	in.Chip, rest = nextToken(rest)
	// The hardware IRQ number, handler name and level ("38", "1-edge", "Edge", "-fasteoi") come next; the first
	// token that is none of these starts the action list, whose names may contain spaces ("PCIe PME").
	for {
		tok, after := nextToken(rest)
		if tok == "" || !isIRQDescriptor(tok) {
			break
		}
		rest = after
	}
	for _, a := range strings.Split(strings.TrimSpace(rest), ", ") {
		if a = strings.TrimSpace(a); a != "" {
			in.Actions = append(in.Actions, a)
		}
	}
	return in, nil
}

// nextToken returns the first white-space separated token of s and the text after it.
func nextToken(s string) (tok, rest string) {
	s = strings.TrimLeft(s, " \t")
	end := strings.IndexAny(s, " \t")
	if end < 0 {
		return s, ""
	}
	return s[:end], s[end:]
}

// isIRQDescriptor reports whether tok is a hardware IRQ number and/or handler name ("27", "1-edge", "-fasteoi",
// "49153-edge") or a trigger level ("Edge", "Level"), as opposed to an action name.
func isIRQDescriptor(tok string) bool {
	if tok == "Edge" || tok == "Level" {
		return true
	}
	num, handler, hasHandler := strings.Cut(tok, "-")
	if strings.TrimLeft(num, "0123456789") != "" || (num == "" && !hasHandler) {
		return false
	}
	if !hasHandler {
		return true
	}
	return handler != "" && strings.TrimLeft(handler, "abcdefghijklmnopqrstuvwxyz_") == ""
}

// QueueIRQNames returns the action names drivers give the interrupt of queue q of device dev, most common first:
// "<dev>-TxRx-<q>" (ixgbe, i40e, ice, bnxt; the seed's script greps for it), "<dev>-rx-<q>", "<dev>-tx-<q>",
// "<dev>-<q>", and for virtio_net "<virtioN>-input.<q>" and "<virtioN>-output.<q>", where busDev is the
// device's bus device (the virtioN that /sys/class/net/<dev>/device points at; empty when it has none).
func QueueIRQNames(dev, busDev string, q int) []string {
	qs := strconv.Itoa(q)
	names := []string{dev + "-TxRx-" + qs, dev + "-rx-" + qs, dev + "-tx-" + qs, dev + "-" + qs}
	if strings.HasPrefix(busDev, "virtio") {
		names = append(names, busDev+"-input."+qs, busDev+"-output."+qs)
	}
	return names
}

// MatchQueueIRQs returns the numbered IRQs, ascending, with an action named as QueueIRQNames says, either
// exactly or after a driver prefix ("i40e-eth0-TxRx-1").
func MatchQueueIRQs(s Interrupts, dev, busDev string, q int) []int {
	names := QueueIRQNames(dev, busDev, q)
	var irqs []int
	for _, in := range s.IRQs {
		if in.IRQ < 0 {
			continue
		}
		for _, a := range in.Actions {
			if slices.ContainsFunc(names, func(n string) bool { return a == n || strings.HasSuffix(a, "-"+n) }) {
				irqs = append(irqs, in.IRQ)
				break
			}
		}
	}
	slices.Sort(irqs)
	return slices.Compact(irqs)
}
