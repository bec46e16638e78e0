package sysknob_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/napilab/napilab/internal/sysknob"
)

// TestParseInterruptsVirtio parses /proc/interrupts as captured on a 2-vCPU 6.18 virtio guest.
func TestParseInterruptsVirtio(t *testing.T) {
	text, err := os.ReadFile("testdata/interrupts-virtio-2cpu.txt")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sysknob.ParseInterrupts(string(text))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.CPUs, []int{0, 1}) {
		t.Fatalf("CPUs = %v, want [0 1]", s.CPUs)
	}
	byID := map[string]sysknob.Interrupt{}
	for _, in := range s.IRQs {
		byID[in.ID] = in
	}
	want := sysknob.Interrupt{ID: "38", IRQ: 38, Counts: []uint64{0, 4706}, Chip: "PCI-MSIX-0000:00:03.0",
		Actions: []string{"virtio2-input.0"}}
	if diff := cmp.Diff(want, byID["38"]); diff != "" {
		t.Errorf("IRQ 38 (-want +got):\n%s", diff)
	}
	if got := byID["24"].Actions; !slices.Equal(got, []string{"ACPI:Ged"}) {
		t.Errorf("IRQ 24 actions = %q", got)
	}
	loc := byID["LOC"]
	if loc.IRQ != -1 || loc.Desc != "Local timer interrupts" || len(loc.Counts) != 2 || loc.Total() != 795289+734412 {
		t.Errorf("LOC = %+v", loc)
	}
	if e := byID["ERR"]; len(e.Counts) != 1 || e.Counts[0] != 0 || e.Desc != "" {
		t.Errorf("ERR = %+v, want one total count", e)
	}
	if got, ok := s.PerCPU(39); !ok || got[0] != 3780 || got[1] != 0 {
		t.Errorf("PerCPU(39) = %v, %v", got, ok)
	}
	if _, ok := s.PerCPU(999); ok {
		t.Error("PerCPU(999) found an IRQ that is not there")
	}
	if got := sysknob.MatchQueueIRQs(s, "eth0", "virtio2", 0); !slices.Equal(got, []int{38, 39}) {
		t.Errorf("eth0 queue 0 IRQs = %v, want [38 39] (virtio2-input.0, virtio2-output.0)", got)
	}
	if got := sysknob.MatchQueueIRQs(s, "eth0", "virtio2", 1); len(got) != 0 {
		t.Errorf("eth0 queue 1 IRQs = %v, want none", got)
	}
}

// TestParseInterruptsShapes covers row shapes other machines print: a GIC with a trigger level and no handler
// name, an action list with a space inside a name, offline CPUs missing from the header, an IRQ without
// action, and driver names as the seed's script greps them.
func TestParseInterruptsShapes(t *testing.T) {
	const text = `           CPU0       CPU2       CPU3
 11:      12345      23456          7     GICv3  27 Level     arch_timer
 41:          0          0          0   PCI-MSI 458752-edge      PCIe PME, pciehp
 70:        100          0          0   IR-PCI-MSI 1048577-edge      eth0-TxRx-1
 71:          0        100          0   IR-PCI-MSI 1048578-edge      i40e-eth0-TxRx-10
 72:          5          5          5   IR-PCI-MSI 1048579-edge      eth0-TxRx-11
 73:          0          0          9   IR-PCI-MSI 1048580-edge      ice-eth1-TxRx-1
 74:          1          0          0   IR-PCI-MSI 1048581-edge
IPI0:       900        800        700       Rescheduling interrupts
`
	s, err := sysknob.ParseInterrupts(text)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.CPUs, []int{0, 2, 3}) {
		t.Fatalf("CPUs = %v", s.CPUs)
	}
	got := map[int][]string{}
	for _, in := range s.IRQs {
		got[in.IRQ] = in.Actions
	}
	for irq, want := range map[int][]string{11: {"arch_timer"}, 41: {"PCIe PME", "pciehp"}, 71: {"i40e-eth0-TxRx-10"}, 74: nil} {
		if !slices.Equal(got[irq], want) {
			t.Errorf("IRQ %d actions = %q, want %q", irq, got[irq], want)
		}
	}
	if c, _ := s.PerCPU(71); c[2] != 100 || c[0] != 0 {
		t.Errorf("PerCPU(71) = %v: counts must be keyed by the header's CPU numbers", c)
	}
	for q, want := range map[int][]int{1: {70}, 10: {71}, 11: {72}} {
		if got := sysknob.MatchQueueIRQs(s, "eth0", "", q); !slices.Equal(got, want) {
			t.Errorf("eth0 queue %d IRQs = %v, want %v", q, got, want)
		}
	}
	if got := sysknob.MatchQueueIRQs(s, "eth1", "", 1); !slices.Equal(got, []int{73}) {
		t.Errorf("eth1 queue 1 IRQs = %v, want [73] (ice-eth1-TxRx-1)", got)
	}
}

func TestParseInterruptsRejects(t *testing.T) {
	for text, want := range map[string]string{
		"":                                 "names no CPU",
		"CPU0 CPUx\n":                      "is not CPU<n>",
		"CPU0\n 5 0 IO-APIC x\n":           "does not start with an IRQ id",
		"CPU0\n 5: IO-APIC 1-edge foo\n":   "has no counts",
		"CPU0\nfoo bar: 1\n":               "does not start with an IRQ id",
		"  CPU0  CPU99999\n 5: 1 2 chip\n": "is not CPU<n>",
	} {
		_, err := sysknob.ParseInterrupts(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseInterrupts(%q) error = %v, want it to say %q", text, err, want)
		}
	}
}

func TestQueueIRQNames(t *testing.T) {
	got := sysknob.QueueIRQNames("eth0", "virtio2", 3)
	want := []string{"eth0-TxRx-3", "eth0-rx-3", "eth0-tx-3", "eth0-3", "virtio2-input.3", "virtio2-output.3"}
	if !slices.Equal(got, want) {
		t.Errorf("QueueIRQNames = %q, want %q", got, want)
	}
	if got := sysknob.QueueIRQNames("eth0", "0000:01:00.0", 3); len(got) != 4 {
		t.Errorf("a PCI bus device must not add virtio names: %q", got)
	}
}

// FuzzParseInterrupts checks that the parser never panics and that what it returns is consistent: counts never
// outnumber the CPU columns, numbered IRQs are non-negative and match their id, and parsing is deterministic.
func FuzzParseInterrupts(f *testing.F) {
	if b, err := os.ReadFile("testdata/interrupts-virtio-2cpu.txt"); err == nil {
		f.Add(string(b))
	}
	f.Add("     CPU0 CPU1\n 41: 0 0 PCI-MSI 458752-edge PCIe PME, pciehp\nERR: 0\n")
	f.Add("CPU0\n 11: 1 GICv3 27 Level arch_timer\n")
	f.Add("CPU0\n 5 0\n")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := sysknob.ParseInterrupts(text)
		if err != nil {
			return
		}
		for _, in := range s.IRQs {
			if len(in.Counts) == 0 || len(in.Counts) > len(s.CPUs) {
				t.Fatalf("IRQ %q has %d counts for %d CPUs", in.ID, len(in.Counts), len(s.CPUs))
			}
			if in.IRQ >= 0 && (in.Desc != "" || in.ID == "") {
				t.Fatalf("numbered IRQ %+v carries an architecture description", in)
			}
			for _, a := range in.Actions {
				if a == "" || strings.TrimSpace(a) != a {
					t.Fatalf("IRQ %q has untrimmed action %q", in.ID, a)
				}
			}
		}
		again, err := sysknob.ParseInterrupts(text)
		if err != nil || !cmp.Equal(s, again) {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}

// TestInterruptsOnCPU sums a CPU's column over every row with a count per CPU, leaving out rows such as ERR
// that print one total (which would otherwise be counted on the first CPU).
func TestInterruptsOnCPU(t *testing.T) {
	s, err := sysknob.ParseInterrupts("           CPU0       CPU1       CPU3\n" +
		" 24:          1          2          3  IO-APIC  24-fasteoi   eth0\n" +
		"LOC:         10         20         30   Local timer interrupts\n" +
		"ERR:        500\n" +
		"MIS:          7\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cpu  int
		want uint64
		ok   bool
	}{{0, 11, true}, {1, 22, true}, {3, 33, true}, {2, 0, false}} {
		if got, ok := s.OnCPU(c.cpu); got != c.want || ok != c.ok {
			t.Errorf("OnCPU(%d) = %d, %v; want %d, %v", c.cpu, got, ok, c.want, c.ok)
		}
	}
}
