package sysknob_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/napilab/napilab/internal/sysknob"
)

// BenchmarkParseInterrupts measures one parse of /proc/interrupts, which CPU accounting does at every interval
// boundary: the captured 2-CPU guest, and a synthetic 96-CPU host with 300 IRQs.
func BenchmarkParseInterrupts(b *testing.B) {
	small, err := os.ReadFile("testdata/interrupts-virtio-2cpu.txt")
	if err != nil {
		b.Fatal(err)
	}
	var big strings.Builder
	for c := range 96 {
		fmt.Fprintf(&big, " CPU%d", c)
	}
	big.WriteString("\n")
	for irq := range 300 {
		fmt.Fprintf(&big, "%4d:", irq)
		for c := range 96 {
			fmt.Fprintf(&big, " %10d", irq*c)
		}
		fmt.Fprintf(&big, " IR-PCI-MSI %d-edge      eth0-TxRx-%d\n", 1048576+irq, irq)
	}
	for _, tc := range []struct {
		name, text string
	}{{"2cpu", string(small)}, {"96cpu-300irq", big.String()}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.text)))
			for b.Loop() {
				if _, err := sysknob.ParseInterrupts(tc.text); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHostKnobGet measures reading and parsing one procfs and one sysfs knob of the running system.
func BenchmarkHostKnobGet(b *testing.B) {
	host, err := sysknob.Host()
	if err != nil {
		b.Skip(err)
	}
	defer host.Close()
	b.Run("busy_read", func(b *testing.B) {
		b.ReportAllocs()
		k := host.BusyRead()
		for b.Loop() {
			if _, err := k.Get(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lo/gro_flush_timeout", func(b *testing.B) {
		b.ReportAllocs()
		k := host.GROFlushTimeout("lo")
		for b.Loop() {
			if _, err := k.Get(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("interrupts", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := host.Interrupts(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
