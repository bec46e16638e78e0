package lab

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Kernel is a kernel release unpacked in the cache: vmlinuz, config, modules.dep, modules.builtin and the
// module tree, with the SHA-256 of every file recorded when it was fetched.
type Kernel struct {
	Release        string            `json:"release"`         // e.g. "7.3.4+deb13-cloud-amd64"
	Suite          string            `json:"suite"`           // where it came from
	PackageVersion string            `json:"package_version"` // e.g. "7.3.4-1~bpo13+1"
	Debs           map[string]string `json:"debs"`            // package -> SHA-256 of the .deb, as the archive listed it
	Files          map[string]string `json:"files"`           // path relative to Dir -> SHA-256
	FetchedAt      time.Time         `json:"fetched_at"`

	Dir     string `json:"-"`
	Fetched bool   `json:"-"` // downloaded by this call rather than found in the cache
}

const manifestName = "manifest.json"

// DefaultCacheDir is $XDG_CACHE_HOME/napilab/lab (~/.cache/napilab/lab).
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("lab: find the cache directory: %w; set XDG_CACHE_HOME or pass a cache directory", err)
	}
	return filepath.Join(d, "napilab", "lab"), nil
}

func cacheDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return DefaultCacheDir()
}

// Path returns the absolute path of a cached file.
func (k *Kernel) Path(rel string) string { return filepath.Join(k.Dir, filepath.FromSlash(rel)) }

// Open opens a cached file after checking its SHA-256 against the manifest, so a corrupted or tampered cache
// is caught before it boots. The returned file is positioned at its start.
func (k *Kernel) Open(rel string) (*os.File, error) {
	want, ok := k.Files[rel]
	if !ok {
		return nil, fmt.Errorf("lab: %s is not part of cached kernel %s", rel, k.Release)
	}
	f, err := os.Open(k.Path(rel))
	if err != nil {
		return nil, fmt.Errorf("lab: open cached %s: %w; delete %s to fetch it again", rel, err, k.Dir)
	}
	got, err := sha256Reader(f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lab: read cached %s: %w", rel, err)
	}
	if got != want {
		f.Close()
		return nil, fmt.Errorf("lab: cached %s of kernel %s has SHA-256 %s, manifest says %s; delete %s to fetch it again", rel, k.Release, got, want, k.Dir)
	}
	return f, nil
}

// ReadFile returns a verified cached file's contents.
func (k *Kernel) ReadFile(rel string) ([]byte, error) {
	f, err := k.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func sha256Reader(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return sha256Reader(f)
}

func loadKernel(dir string) (*Kernel, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, err
	}
	var k Kernel
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("lab: cached kernel manifest %s: %w", dir, err)
	}
	if k.Release != filepath.Base(dir) || len(k.Files) == 0 {
		return nil, fmt.Errorf("lab: cached kernel manifest %s does not describe %s", dir, filepath.Base(dir))
	}
	k.Dir = dir
	return &k, nil
}

// CachedKernels lists the kernels in the cache, newest first. Directories without a valid manifest (an
// interrupted fetch) are skipped.
func CachedKernels(cache string) ([]*Kernel, error) {
	cache, err := cacheDir(cache)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(cache, "kernels"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab: list cached kernels: %w", err)
	}
	var out []*Kernel
	for _, e := range ents {
		if k, err := loadKernel(filepath.Join(cache, "kernels", e.Name())); err == nil {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b *Kernel) int { return compareReleases(b.Release, a.Release) })
	return out, nil
}

// pickCached returns the newest cached kernel matching the spec, or nil.
func pickCached(kernels []*Kernel, ks KernelSpec) *Kernel {
	for _, k := range kernels {
		_, _, fl, ok := kernelRelease(k.Release)
		if ok && fl == ks.flavour() && matchRelease(k.Release, ks.Version) && (ks.Suite == "" || ks.Suite == k.Suite) {
			return k
		}
	}
	return nil
}
