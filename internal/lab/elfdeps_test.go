package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSharedLibs(t *testing.T) {
	skipInLab(t)
	// A host binary from coreutils is dynamically linked against glibc on Debian.
	libs, err := sharedLibs("/usr/bin/env")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(libs, " ")
	if !strings.Contains(joined, "ld-linux-x86-64.so.2") || !strings.Contains(joined, "libc.so.6") {
		t.Errorf("/usr/bin/env needs the loader and libc, got %v", libs)
	}
	for _, l := range libs {
		if _, err := os.Stat(l); err != nil {
			t.Errorf("listed library %s: %v", l, err)
		}
	}

	script := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if libs, err := sharedLibs(script); err != nil || len(libs) != 0 {
		t.Errorf("a script needs no libraries: %v %v", libs, err)
	}
	if _, err := sharedLibs(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing binary gave no error")
	}
}
