package lab

import (
	"os"
	"testing"

	"github.com/napilab/napilab/internal/lab/guest"
	"github.com/napilab/napilab/internal/testenv"
)

// TestMain lets this test binary be the lab's guest init (PID 1 started as /init) and a guest-side helper
// program (NAPILAB_LAB_HELPER), so the boot tests need no binary besides the one under test.
func TestMain(m *testing.M) {
	guest.MaybeRunInit()
	if h := os.Getenv("NAPILAB_LAB_HELPER"); h != "" {
		os.Exit(runHelper(h))
	}
	os.Exit(m.Run())
}

// skipInLab skips host-side tests when this binary runs inside the lab (napilab lab test): the guest has no
// qemu, apt or host binaries, and the lab does not nest.
func skipInLab(t *testing.T) {
	t.Helper()
	if testenv.InLab() {
		t.Skip("host-side lab test; the lab does not nest")
	}
}
