package lab

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeKernel writes a cached kernel with one file and a manifest, as FetchKernel leaves it.
func fakeKernel(t *testing.T, cache, release, suite string) *Kernel {
	t.Helper()
	dir := filepath.Join(cache, "kernels", release)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("kernel image "+release), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := sha256File(filepath.Join(dir, "vmlinuz"))
	if err != nil {
		t.Fatal(err)
	}
	k := &Kernel{Release: release, Suite: suite, Files: map[string]string{"vmlinuz": sum}}
	b, _ := json.Marshal(k)
	if err := os.WriteFile(filepath.Join(dir, manifestName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	k.Dir = dir
	return k
}

func TestCachedKernels(t *testing.T) {
	cache := t.TempDir()
	if ks, err := CachedKernels(cache); err != nil || len(ks) != 0 {
		t.Fatalf("empty cache: %v %v", ks, err)
	}
	fakeKernel(t, cache, "7.2.9+deb13-cloud-amd64", "trixie-backports")
	fakeKernel(t, cache, "7.10.1+deb13-cloud-amd64", "sid")
	fakeKernel(t, cache, "7.3.4+deb13-amd64", "trixie-backports")
	// An interrupted fetch leaves a directory without a manifest: it must be ignored.
	if err := os.MkdirAll(filepath.Join(cache, "kernels", "7.11.0+deb13-cloud-amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	ks, err := CachedKernels(cache)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range ks {
		names = append(names, k.Release)
	}
	if strings.Join(names, " ") != "7.10.1+deb13-cloud-amd64 7.3.4+deb13-amd64 7.2.9+deb13-cloud-amd64" {
		t.Errorf("cached kernels %v, want newest first without the incomplete one", names)
	}
	pick := func(ks KernelSpec) string {
		if k := pickCached(mustCached(t, cache), ks); k != nil {
			return k.Release
		}
		return ""
	}
	if got := pick(KernelSpec{}); got != "7.10.1+deb13-cloud-amd64" {
		t.Errorf("newest cloud kernel: %q", got)
	}
	if got := pick(KernelSpec{Suite: "trixie-backports"}); got != "7.2.9+deb13-cloud-amd64" {
		t.Errorf("newest cloud kernel of trixie-backports: %q", got)
	}
	if got := pick(KernelSpec{Flavour: "amd64"}); got != "7.3.4+deb13-amd64" {
		t.Errorf("generic kernel: %q", got)
	}
	if got := pick(KernelSpec{Version: "7.2.9"}); got != "7.2.9+deb13-cloud-amd64" {
		t.Errorf("pinned upstream version: %q", got)
	}
	if got := pick(KernelSpec{Version: "7.3.4"}); got != "" {
		t.Errorf("7.3.4 is only cached as generic, got %q", got)
	}
}

func mustCached(t *testing.T, cache string) []*Kernel {
	ks, err := CachedKernels(cache)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestKernelOpenVerifies(t *testing.T) {
	k := fakeKernel(t, t.TempDir(), "7.3.4+deb13-cloud-amd64", "sid")
	b, err := k.ReadFile("vmlinuz")
	if err != nil || string(b) != "kernel image 7.3.4+deb13-cloud-amd64" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	if err := os.WriteFile(k.Path("vmlinuz"), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open("vmlinuz"); err == nil || !strings.Contains(err.Error(), "manifest says") {
		t.Errorf("a tampered file was accepted: %v", err)
	}
	if _, err := k.Open("config"); err == nil || !strings.Contains(err.Error(), "not part of cached kernel") {
		t.Errorf("a file outside the manifest was accepted: %v", err)
	}
}
