package lab

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/napilab/napilab/internal/lab/guest"
)

// baseFormat changes whenever the base archive's layout changes, so stale cached archives are not reused.
const baseFormat = "napilab-lab-base-1"

// keepBases is how many base archives the cache keeps; each new init binary (every rebuilt test binary) makes one.
const keepBases = 4

// initBinary returns the host program that becomes the guest's /init.
func initBinary(s *Spec) (string, error) {
	if s.Init != "" {
		return filepath.Abs(s.Init)
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("lab: find the running executable to use as the guest init: %w; set Spec.Init", err)
	}
	return exe, nil
}

// buildInitrd writes the guest's initramfs to dst: the cached base archive (init, busybox, modules, their shared
// libraries) followed by a small per-run archive (plan, step binaries, extra files). The kernel unpacks
// concatenated cpio archives in order, so the per-run part is the only one built on every run.
func buildInitrd(s *Spec, k *Kernel, plan *guest.Plan, cache, dst string) error {
	initPath, err := initBinary(s)
	if err != nil {
		return err
	}
	busybox, err := toolBusybox.path()
	if err != nil {
		return err
	}
	dep, err := k.ReadFile("modules.dep")
	if err != nil {
		return err
	}
	builtin, err := k.ReadFile("modules.builtin")
	if err != nil {
		return err
	}
	ix, err := parseModuleIndex(dep, builtin)
	if err != nil {
		return fmt.Errorf("lab: kernel %s: %w", k.Release, err)
	}
	mods, err := ix.loadOrder(append(slices.Clone(DefaultModules), s.Modules...))
	if err != nil {
		return fmt.Errorf("lab: kernel %s: %w", k.Release, err)
	}
	modDir := "/lib/modules/" + k.Release + "/"
	for _, m := range mods {
		plan.Modules = append(plan.Modules, modDir+m)
	}
	bf, err := baseArchive(initPath, busybox, k, mods, modDir, cache)
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		bf.Close()
		return fmt.Errorf("lab: %w", err)
	}
	defer out.Close()
	_, err = io.Copy(out, bf)
	bf.Close()
	if err != nil {
		return fmt.Errorf("lab: copy base initramfs: %w", err)
	}
	w := bufio.NewWriterSize(out, 1<<20)
	if err := runArchive(w, s, plan); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("lab: write initramfs: %w", err)
	}
	return out.Close()
}

// baseArchive opens the cached base archive for these inputs, building it when missing. The archive is named
// after a hash of its inputs and checked, through the open file, against the SHA-256 recorded beside it; it is
// returned open, so a concurrent run pruning old archives cannot remove it between the check and the copy.
func baseArchive(initPath, busybox string, k *Kernel, mods []string, modDir, cache string) (*os.File, error) {
	key, libs, err := baseKey(initPath, busybox, k, mods)
	if err != nil {
		return nil, err
	}
	final := filepath.Join(cache, "initramfs", key+".cpio")
	if f, ok := openVerified(final); ok {
		return f, nil
	}
	if err := buildBase(final, initPath, busybox, libs, k, mods, modDir); err != nil {
		return nil, err
	}
	f, ok := openVerified(final)
	if !ok {
		return nil, fmt.Errorf("lab: base initramfs %s changed while it was being used; run again", final)
	}
	return f, nil
}

func openVerified(path string) (*os.File, bool) {
	want, err := os.ReadFile(path + ".sha256")
	if err != nil {
		return nil, false
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	got, err := sha256Reader(f)
	if err == nil && got == string(want) {
		if _, err := f.Seek(0, io.SeekStart); err == nil {
			now := time.Now()
			_ = os.Chtimes(path, now, now) // keeps it among the newest when pruning
			return f, true
		}
	}
	f.Close()
	return nil, false
}

// baseKey hashes everything the base archive is made of: the init binary, busybox, their shared libraries and
// the modules (by their manifest SHA-256).
func baseKey(initPath, busybox string, k *Kernel, mods []string) (string, []string, error) {
	initLibs, err := sharedLibs(initPath)
	if err != nil {
		return "", nil, fmt.Errorf("lab: guest init: %w", err)
	}
	bbLibs, err := sharedLibs(busybox)
	if err != nil {
		return "", nil, fmt.Errorf("lab: busybox: %w", err)
	}
	libs := mergeSorted(initLibs, bbLibs)
	h := sha256.New()
	fmt.Fprintln(h, baseFormat, k.Release)
	for _, p := range append([]string{initPath, busybox}, libs...) {
		sum, err := sha256File(p)
		if err != nil {
			return "", nil, fmt.Errorf("lab: hash %s: %w", p, err)
		}
		fmt.Fprintln(h, p, sum)
	}
	for _, m := range mods {
		fmt.Fprintln(h, m, k.Files[m])
	}
	return hex.EncodeToString(h.Sum(nil))[:32], libs, nil
}

func buildBase(final, initPath, busybox string, libs []string, k *Kernel, mods []string, modDir string) error {
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "build-*")
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer os.Remove(tmp.Name())
	hw := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, hw), 1<<20)
	c := newCPIO(bw)
	c.CharDev("/dev/console", 0o600, 5, 1)
	for _, d := range []string{"/proc", "/sys", "/tmp", "/run", "/root", "/etc", "/sbin", "/usr/bin", "/usr/sbin", "/napilab/bin"} {
		c.Dir(d)
	}
	c.Symlink("/var/run", "/run")
	c.Bytes("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	c.Bytes("/etc/group", 0o644, []byte("root:x:0:\n"))
	if err := addHostFile(c, guest.InitPath, initPath, 0o755); err != nil {
		return err
	}
	if err := addHostFile(c, "/bin/busybox", busybox, 0o755); err != nil {
		return err
	}
	for _, l := range libs {
		if err := addHostFile(c, l, l, 0o755); err != nil {
			return err
		}
	}
	for _, m := range mods {
		f, err := k.Open(m) // checks the module's SHA-256 against the manifest
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err == nil {
			c.File(modDir+m, 0o644, fi.Size(), f)
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("lab: build base initramfs: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("lab: write base initramfs: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("lab: write base initramfs: %w", err)
	}
	if err := os.WriteFile(final+".sha256", []byte(hex.EncodeToString(hw.Sum(nil))), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	pruneBases(dir, final)
	return nil
}

func mergeSorted(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// pruneBases deletes all but the newest keepBases archives. A concurrent run that still copies an older one
// keeps its open file: unlinking does not disturb a reader.
func pruneBases(dir, keep string) {
	ents, _ := filepath.Glob(filepath.Join(dir, "*.cpio"))
	type ent struct {
		p string
		t time.Time
	}
	var es []ent
	for _, p := range ents {
		if fi, err := os.Stat(p); err == nil && p != keep {
			es = append(es, ent{p, fi.ModTime()})
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].t.After(es[j].t) })
	for i := keepBases - 1; i < len(es); i++ {
		os.Remove(es[i].p)
		os.Remove(es[i].p + ".sha256")
	}
}

// runArchive writes the per-run cpio: the plan, the steps' binaries (and their shared libraries) and the
// extra files. Step i's binary goes to BinDir/i/<name>, so two steps may use binaries of the same name.
func runArchive(w io.Writer, s *Spec, plan *guest.Plan) error {
	c := newCPIO(w)
	var libs []string
	for i, st := range s.Steps {
		if st.Path == "" {
			continue
		}
		g := path.Join(guest.BinDir, strconv.Itoa(i), filepath.Base(st.Path))
		if err := addHostFile(c, g, st.Path, 0o755); err != nil {
			return err
		}
		l, err := sharedLibs(st.Path)
		if err != nil {
			return fmt.Errorf("lab: step %d: %w", i, err)
		}
		libs = mergeSorted(libs, l)
	}
	for _, f := range s.Files {
		if err := addHostFile(c, f.Guest, f.Host, f.Mode); err != nil {
			return err
		}
	}
	for _, l := range libs {
		if err := addHostFile(c, l, l, 0o755); err != nil {
			return err
		}
	}
	pb, err := plan.Marshal()
	if err != nil {
		return fmt.Errorf("lab: encode plan: %w", err)
	}
	c.Bytes(guest.PlanPath, 0o600, pb)
	if err := c.Close(); err != nil {
		return fmt.Errorf("lab: build run initramfs: %w", err)
	}
	return nil
}

// addHostFile copies a host file (following symlinks) into the archive; perm 0 keeps the host file's bits.
func addHostFile(c *cpioWriter, guestPath, hostPath string, perm uint32) error {
	f, err := os.Open(hostPath)
	if err != nil {
		return fmt.Errorf("lab: add %s to the guest: %w", hostPath, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("lab: add %s to the guest: %w", hostPath, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("lab: add %s to the guest: not a regular file", hostPath)
	}
	if perm == 0 {
		perm = uint32(fi.Mode().Perm())
	}
	c.File(guestPath, perm, fi.Size(), f)
	return nil
}
