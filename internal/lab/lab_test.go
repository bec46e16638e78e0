package lab

import (
	"testing"

	"github.com/napilab/napilab/internal/testenv"
)

// skipInLab skips host-side tests when this binary runs inside the lab (napilab lab test): the guest has no
// qemu, apt or host binaries, and the lab does not nest.
func skipInLab(t *testing.T) {
	t.Helper()
	if testenv.InLab() {
		t.Skip("host-side lab test; the lab does not nest")
	}
}
