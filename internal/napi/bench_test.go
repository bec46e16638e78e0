package napi

import (
	"path/filepath"
	"testing"
)

// BenchmarkPlan measures resolving and planning the largest preset against the fake machine.
func BenchmarkPlan(b *testing.B) {
	f := newFakeOS(features6_19)
	m, _ := Preset("seed-threaded-busy-poll", "eth1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := resolveAndBuild(f.system(), m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyRestore measures a full journaled apply and restore of the largest preset (20 changes) against
// the fake machine: what napilab itself costs per mode switch, dominated by the fsynced journal writes.
func BenchmarkApplyRestore(b *testing.B) {
	f := newFakeOS(features6_19)
	m, _ := Preset("seed-threaded-busy-poll", "eth1")
	p, err := resolveAndBuild(f.system(), m)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "mode.journal")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.system().Apply(b.Context(), p, ApplyOptions{Journal: path, AllowSMT: true}); err != nil {
			b.Fatal(err)
		}
		if _, err := RestoreFile(path, openFake(f), RestoreOptions{}); err != nil {
			b.Fatal(err)
		}
		f.takeLog()
	}
}
