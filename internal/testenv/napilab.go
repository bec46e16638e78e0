package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// EnvNapilabBin names a napilab binary for tests that run napilab as a process of its own (the qemu lab has no
// Go toolchain to build one; it provides a static napilab there).
const EnvNapilabBin = "NAPILAB_BIN"

var napilabBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// RunMain runs a package's tests (call it from TestMain: os.Exit(testenv.RunMain(m))) and removes the napilab
// that Napilab built for them.
func RunMain(m *testing.M) int {
	code := m.Run()
	if napilabBuild.dir != "" {
		os.RemoveAll(napilabBuild.dir)
	}
	return code
}

// Napilab returns the path of a static napilab executable: $NAPILAB_BIN, or one `go build` with CGO_ENABLED=0
// per test process (the build cache makes it cheap). Static, because tests copy it to "remote" hosts as
// napilab sweep does. A package that calls it runs its tests through RunMain, which removes the build.
func Napilab(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(EnvNapilabBin); p != "" {
		return p
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		Skip(tb, "no go toolchain to build napilab; set %s to a napilab binary", EnvNapilabBin)
	}
	b := &napilabBuild
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "napilab-test-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.dir = dir
		b.path = filepath.Join(dir, "napilab")
		cmd := exec.Command(goTool, "build", "-trimpath", "-o", b.path, "github.com/napilab/napilab/cmd/napilab")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build napilab: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}
