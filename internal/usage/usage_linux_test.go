package usage

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const interruptsSample = `           CPU0       CPU1       
 24:          1          0  IO-APIC   5-edge      ACPI:Ged
 29:        100        250  PCI-MSIX-0000:00:01.0   1-edge      virtio0-input.0
NMI:          0          0   Non-maskable interrupts
`

func TestIRQCounts(t *testing.T) {
	got, err := irqCounts(interruptsSample, []int{29, 77})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[29]) != 2 || got[29][0] != 100 || got[29][1] != 250 {
		t.Fatalf("got %v", got)
	}
}

func TestTakeReal(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	before, err := Take(Spec{Threads: map[string]int{"me": tid}, Tasks: map[string]int{"init": 1, "gone": 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Millisecond)
	for time.Now().Before(deadline) { // burn a little CPU on this thread
	}
	after, err := Take(Spec{Threads: map[string]int{"me": tid}, Tasks: map[string]int{"init": 1, "gone": 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	u := Sub(before, after)
	if len(u.CPUs) == 0 {
		t.Fatalf("no CPUs in %+v", u)
	}
	if u.Tasks["me"].OnCPU <= 0 || !u.Tasks["me"].Own {
		t.Fatalf("this thread burned CPU but shows %+v", u.Tasks["me"])
	}
	if !u.Tasks["gone"].Gone || u.Tasks["init"].Gone {
		t.Fatalf("task presence wrong: %+v", u.Tasks)
	}
}
