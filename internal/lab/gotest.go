package lab

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// GuestSrcDir is where GoTestSteps places each package's testdata in the guest: a test binary runs in
// GuestSrcDir/<import path>, as `go test` runs it in the package's directory, so relative testdata paths and
// fuzz seed corpora resolve.
const GuestSrcDir = "/src"

// GuestNapilab is where GoTestSteps places a static napilab binary in the guest (on PATH), and EnvNapilabBin the
// variable that tells tests so: tests that run napilab as a process (e.g. xsk_rr's interop tests) build it with
// the go toolchain on a host, and the guest has none.
const (
	GuestNapilab  = "/usr/bin/napilab"
	EnvNapilabBin = "NAPILAB_BIN"
)

// GoTestSteps compiles the test binaries of the packages matching patterns (run from moduleDir, like `go test`)
// into outDir as static binaries (CGO_ENABLED=0; the guest has no C library) and returns one step per package
// that has tests, plus the files that carry the packages' testdata directories. testArgs go to every binary
// (e.g. -test.v, -test.run=Lab). Packages without test files are skipped. When the module has the napilab
// command, it is built too and placed at GuestNapilab, and every step sees EnvNapilabBin.
func GoTestSteps(ctx context.Context, moduleDir, outDir string, patterns, testArgs []string) ([]Step, []File, error) {
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	list := exec.CommandContext(ctx, "go", append([]string{"list", "-f",
		"{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}"}, patterns...)...)
	list.Dir = moduleDir
	var stderr bytes.Buffer
	list.Stderr = &stderr
	out, err := list.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("lab: go list %s: %w: %s", strings.Join(patterns, " "), err, strings.TrimSpace(stderr.String()))
	}
	var steps []Step
	var files []File
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		importPath, dir, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		bin := filepath.Join(outDir, strings.ReplaceAll(importPath, "/", "_")+".test")
		build := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, importPath)
		build.Dir = moduleDir
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := build.CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("lab: go test -c %s: %w: %s", importPath, err, bytes.TrimSpace(b))
		}
		guestDir := path.Join(GuestSrcDir, importPath)
		td, err := testdataFiles(dir, guestDir)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, td...)
		steps = append(steps, Step{Name: importPath, Path: bin, Args: testArgs, Dir: guestDir})
	}
	if len(steps) == 0 {
		return nil, nil, fmt.Errorf("lab: no package matching %s has tests", strings.Join(patterns, " "))
	}
	napilab, err := buildNapilab(ctx, moduleDir, outDir)
	if err != nil {
		return nil, nil, err
	}
	if napilab != "" {
		files = append(files, File{Host: napilab, Guest: GuestNapilab})
		for i := range steps {
			steps[i].Env = append(steps[i].Env, EnvNapilabBin+"="+GuestNapilab)
		}
	}
	return steps, files, nil
}

// napilabPkg is the import path of the napilab command.
const napilabPkg = "github.com/napilab/napilab/cmd/napilab"

// buildNapilab builds the napilab command statically into outDir, or returns "" when moduleDir's module has no
// such command.
func buildNapilab(ctx context.Context, moduleDir, outDir string) (string, error) {
	list := exec.CommandContext(ctx, "go", "list", napilabPkg)
	list.Dir = moduleDir
	if err := list.Run(); err != nil {
		return "", nil // another module: nothing to provide
	}
	bin := filepath.Join(outDir, "napilab")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, napilabPkg)
	build.Dir = moduleDir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("lab: go build %s: %w: %s", napilabPkg, err, bytes.TrimSpace(b))
	}
	return bin, nil
}

// testdataFiles lists the regular files under dir/testdata as files for guestDir/testdata.
func testdataFiles(dir, guestDir string) ([]File, error) {
	var files []File
	root := filepath.Join(dir, "testdata")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && os.IsNotExist(err) {
				return fs.SkipDir
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, File{Host: p, Guest: path.Join(guestDir, filepath.ToSlash(rel))})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab: list testdata of %s: %w", dir, err)
	}
	return files, nil
}
