package lab

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// libDirs are where a Debian x86-64 dynamic loader finds libraries without an ld.so.cache, which the
// initramfs does not have; libraries are placed in the guest at the host path they were found at.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// sharedLibs returns the ELF interpreter and the shared libraries a host binary needs, transitively, as host
// paths (the guest uses the same paths). A static binary, or a file that is not ELF (a script), needs nothing.
// Copying them lets the lab run dynamically linked programs, including a napilab built with cgo.
func sharedLibs(bin string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var walk func(path string, top bool) error
	walk = func(path string, top bool) error {
		f, err := elf.Open(path)
		if err != nil {
			var fe *elf.FormatError
			if top && errors.As(err, &fe) {
				return nil // not ELF: a script
			}
			return fmt.Errorf("read ELF %s: %w", path, err)
		}
		defer f.Close()
		if top {
			for _, p := range f.Progs {
				if p.Type != elf.PT_INTERP {
					continue
				}
				b := make([]byte, p.Filesz)
				if _, err := p.ReadAt(b, 0); err != nil {
					return fmt.Errorf("read ELF interpreter of %s: %w", path, err)
				}
				interp := strings.TrimRight(string(b), "\x00")
				if !seen[interp] {
					seen[interp] = true
					out = append(out, interp)
				}
			}
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("read ELF libraries of %s: %w", path, err)
		}
		dirs := libDirs
		for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
			if rp, err := f.DynString(tag); err == nil {
				for _, r := range rp {
					dirs = append(strings.Split(strings.ReplaceAll(r, "$ORIGIN", filepath.Dir(path)), ":"), dirs...)
				}
			}
		}
		for _, lib := range needed {
			found := ""
			for _, d := range dirs {
				p := filepath.Join(d, lib)
				if _, err := os.Stat(p); err == nil {
					found = p
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, which is not in %s", path, lib, strings.Join(dirs, ", "))
			}
			if seen[found] {
				continue
			}
			seen[found] = true
			out = append(out, found)
			if err := walk(found, false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(bin, true); err != nil {
		return nil, err
	}
	return out, nil
}
