package labsuite

import (
	"os"
	"testing"

	"github.com/napilab/napilab/internal/lab/guest"
)

// TestMain lets this test binary be the lab guest's init, so the host side of the hang suite can boot a guest
// that runs this same binary's guest side.
func TestMain(m *testing.M) {
	guest.MaybeRunInit()
	os.Exit(m.Run())
}
