package lab

import (
	"os"
	"testing"

	"github.com/napilab/napilab/internal/lab/guest"
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
