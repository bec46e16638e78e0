package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/napilab/napilab/internal/kernel"
)

// listsMaxAge is how long downloaded package lists are trusted before `apt-get update` runs again: resolving
// "the newest kernel" then costs no network round trip for most runs.
const listsMaxAge = 6 * time.Hour

// hostTool names a program lab runs on the host and the Debian package that provides it.
type hostTool struct{ name, pkg string }

var (
	toolAptGet  = hostTool{"apt-get", "apt"}
	toolAptCach = hostTool{"apt-cache", "apt"}
	toolDpkgDeb = hostTool{"dpkg-deb", "dpkg"}
	toolBusybox = hostTool{"busybox", "busybox-static"}
	toolQemu    = hostTool{"qemu-system-x86_64", "qemu-system-x86"}
)

func (t hostTool) path() (string, error) {
	p, err := exec.LookPath(t.name)
	if err != nil {
		return "", kernel.WithHint(fmt.Errorf("lab: %s is not installed (%w)", t.name, exec.ErrNotFound),
			"install it with: apt-get install --no-install-recommends "+t.pkg)
	}
	return p, nil
}

// CheckHostTools reports the first missing host program, naming the package to install.
func CheckHostTools() error {
	for _, t := range []hostTool{toolAptGet, toolAptCach, toolDpkgDeb, toolBusybox, toolQemu} {
		if _, err := t.path(); err != nil {
			return err
		}
	}
	return nil
}

// FetchKernel returns a cached kernel matching ks, downloading it first if needed. With ks.Version set, a cached
// match is used without any network access; otherwise the newest complete release of the first suite that has
// one is resolved from package lists younger than six hours (or refreshed). When the archive cannot be reached
// the newest cached match is used; with nothing cached the error names the packages that were needed.
func FetchKernel(ctx context.Context, ks KernelSpec, cache string, progress io.Writer) (*Kernel, error) {
	if err := (&Spec{Kernel: ks, Shell: true}).Validate(); err != nil {
		return nil, err
	}
	cache, err := cacheDir(cache)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, fmt.Errorf("lab: create cache %s: %w", cache, err)
	}
	unlock, err := lockFile(filepath.Join(cache, "lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	cached, err := CachedKernels(cache)
	if err != nil {
		return nil, err
	}
	if k := pickCached(cached, ks); k != nil && (ks.Version != "" || ks.Offline) {
		return k, nil
	}
	if ks.Offline {
		return nil, fmt.Errorf("lab: no cached %s kernel matches %q in %s and offline mode forbids fetching; run once with network access", ks.flavour(), ks.Version, cache)
	}
	var unreachable []string
	var missing []string
	for _, suite := range ks.suites() {
		a := &aptDir{root: filepath.Join(cache, "apt", suite), suite: suite, mirror: ks.mirror()}
		kver, err := a.resolve(ctx, ks, progress)
		if err != nil {
			var nf *notFoundError
			if errors.As(err, &nf) {
				missing = append(missing, nf.Error())
				continue
			}
			unreachable = append(unreachable, err.Error())
			continue
		}
		if k := pickCached(cached, KernelSpec{Version: kver, Flavour: ks.flavour()}); k != nil {
			return k, nil
		}
		return a.download(ctx, kver, cache, progress)
	}
	if k := pickCached(cached, ks); k != nil {
		fmt.Fprintf(orDiscard(progress), "lab: archive unavailable (%s); using cached kernel %s\n", strings.Join(unreachable, "; "), k.Release)
		return k, nil
	}
	want := "linux-binary, linux-modules and linux-base of the newest " + ks.flavour() + " kernel"
	if ks.Version != "" {
		want = "linux-binary, linux-modules and linux-base of kernel " + ks.Version + " (" + ks.flavour() + ")"
	}
	if len(unreachable) > 0 {
		return nil, fmt.Errorf("lab: cannot fetch %s from %s (%s) and no kernel is cached in %s; check network access to the mirror or pass another mirror",
			want, strings.Join(ks.suites(), " or "), strings.Join(unreachable, "; "), cache)
	}
	return nil, fmt.Errorf("lab: %s: %s; pick a listed version or another suite", want, strings.Join(missing, "; "))
}

// ResolveKernel says which release FetchKernel would download for ks, and from which suite, without
// downloading it (package lists are refreshed when older than six hours).
func ResolveKernel(ctx context.Context, ks KernelSpec, cache string, progress io.Writer) (release, suite string, err error) {
	if err := (&Spec{Kernel: ks, Shell: true}).Validate(); err != nil {
		return "", "", err
	}
	cache, err = cacheDir(cache)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", "", fmt.Errorf("lab: create cache %s: %w", cache, err)
	}
	unlock, err := lockFile(filepath.Join(cache, "lock"))
	if err != nil {
		return "", "", err
	}
	defer unlock()
	var problems []string
	for _, suite := range ks.suites() {
		a := &aptDir{root: filepath.Join(cache, "apt", suite), suite: suite, mirror: ks.mirror()}
		kver, err := a.resolve(ctx, ks, progress)
		if err == nil {
			return kver, suite, nil
		}
		problems = append(problems, err.Error())
	}
	return "", "", fmt.Errorf("lab: no %s kernel matching %q: %s", ks.flavour(), ks.Version, strings.Join(problems, "; "))
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// lockFile serialises fetching (and initramfs caching) between concurrent lab runs; reading a finished cache
// entry needs no lock because entries appear by rename.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: open cache lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lab: take cache lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

type notFoundError struct {
	suite, want string
	have        []string
}

func (e *notFoundError) Error() string {
	if len(e.have) == 0 {
		return fmt.Sprintf("%s has no complete kernel release", e.suite)
	}
	return fmt.Sprintf("%s has no release matching %q (it has %s)", e.suite, e.want, strings.Join(e.have, ", "))
}

// aptDir is a private apt configuration for one suite: its own sources, lists and cache under the lab cache.
// The host's sources.list, lists and package cache are never read or written.
type aptDir struct{ root, suite, mirror string }

func (a *aptDir) opts() []string {
	return []string{
		"-o", "Dir::Etc::sourcelist=/dev/null",
		"-o", "Dir::Etc::sourceparts=" + filepath.Join(a.root, "sources"),
		"-o", "Dir::State::Lists=" + filepath.Join(a.root, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(a.root, "cache"),
		// The host's pins must not steer which kernel the lab picks.
		"-o", "Dir::Etc::preferences=/dev/null",
		"-o", "Dir::Etc::preferencesparts=" + filepath.Join(a.root, "preferences.d"),
		"-o", "APT::Sandbox::User=root",
		"-o", "Acquire::Languages=none",
		// One retry: apt's default three, with back-off, make an unreachable archive cost 7 s per suite.
		"-o", "Acquire::Retries=1",
		// Refuse anything apt could not authenticate, whatever the host's configuration says.
		"-o", "Acquire::AllowInsecureRepositories=false",
		"-o", "APT::Get::AllowUnauthenticated=false",
	}
}

func (a *aptDir) setup() error {
	for _, d := range []string{"sources", "preferences.d", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(a.root, d), 0o755); err != nil {
			return fmt.Errorf("lab: prepare apt directory: %w", err)
		}
	}
	src := fmt.Sprintf("Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n", a.mirror, a.suite)
	return os.WriteFile(filepath.Join(a.root, "sources", "napilab.sources"), []byte(src), 0o644)
}

func (a *aptDir) run(ctx context.Context, dir string, tool hostTool, args ...string) ([]byte, error) {
	bin, err := tool.path()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, append(a.opts(), args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 && len(msg) > 400 {
			msg = msg[i+1:]
		}
		return out, fmt.Errorf("%s %s: %w: %s", tool.name, args[0], err, msg)
	}
	return out, nil
}

func (a *aptDir) update(ctx context.Context, progress io.Writer) error {
	if err := a.setup(); err != nil {
		return err
	}
	fmt.Fprintf(orDiscard(progress), "lab: updating package lists for %s\n", a.suite)
	// --error-on=any: a failed download or a bad signature is an error, not a warning with exit status 0.
	if _, err := a.run(ctx, a.root, toolAptGet, "update", "--error-on=any", "-q"); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(a.root, "updated"), nil, 0o644)
}

// listsAge is the time since the last successful update. apt stamps list files with the archive's own
// modification time, so the lab keeps its own stamp.
func (a *aptDir) listsAge() time.Duration {
	fi, err := os.Stat(filepath.Join(a.root, "updated"))
	if err != nil {
		return time.Duration(1 << 62)
	}
	return time.Since(fi.ModTime())
}

// resolve returns the release to use from this suite, refreshing the lists when they are old or do not have it.
func (a *aptDir) resolve(ctx context.Context, ks KernelSpec, progress io.Writer) (string, error) {
	fresh := false
	if a.listsAge() > listsMaxAge {
		if err := a.update(ctx, progress); err != nil {
			return "", err
		}
		fresh = true
	}
	for {
		names, err := a.run(ctx, a.root, toolAptCach, "pkgnames", "linux-")
		if err != nil && !fresh {
			names = nil // broken lists: refresh below
		} else if err != nil {
			return "", err
		}
		have := completeReleases(names, ks.flavour())
		for _, kver := range have {
			if matchRelease(kver, ks.Version) {
				return kver, nil
			}
		}
		if fresh {
			return "", &notFoundError{suite: a.suite, want: ks.Version, have: have}
		}
		if err := a.update(ctx, progress); err != nil {
			return "", err
		}
		fresh = true
	}
}

// download fetches the three packages of kver with apt-get (which checks their hashes against the signed
// lists), checks the hashes again against apt-cache's record, unpacks them, builds modules.dep and moves the
// kept files into the cache under their release name.
func (a *aptDir) download(ctx context.Context, kver, cache string, progress io.Writer) (*Kernel, error) {
	start := time.Now()
	pkgs := make([]string, len(kernelParts))
	for i, p := range kernelParts {
		pkgs[i] = p + kver
	}
	fmt.Fprintf(orDiscard(progress), "lab: downloading kernel %s from %s\n", kver, a.suite)
	show, err := a.run(ctx, a.root, toolAptCach, append([]string{"show", "--no-all-versions"}, pkgs...)...)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	want := map[string]stanza{}
	for _, s := range parseStanzas(show) {
		want[s.get("Package")] = s
	}
	tmp, err := os.MkdirTemp(cache, "fetch-")
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := a.run(ctx, tmp, toolAptGet, append([]string{"download", "-q"}, pkgs...)...); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	k := &Kernel{Release: kver, Suite: a.suite, Debs: map[string]string{}, Files: map[string]string{}, Fetched: true}
	root := filepath.Join(tmp, "root")
	for _, p := range pkgs {
		st, ok := want[p]
		if !ok || st.get("SHA256") == "" {
			return nil, fmt.Errorf("lab: apt-cache has no SHA256 for %s; refresh the lists in %s", p, a.root)
		}
		debs, _ := filepath.Glob(filepath.Join(tmp, p+"_*.deb"))
		if len(debs) != 1 {
			return nil, fmt.Errorf("lab: apt-get download left %d files for %s", len(debs), p)
		}
		sum, err := sha256File(debs[0])
		if err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		if sum != st.get("SHA256") {
			return nil, fmt.Errorf("lab: %s has SHA-256 %s but the signed lists say %s; the mirror or the download is corrupt", filepath.Base(debs[0]), sum, st.get("SHA256"))
		}
		k.Debs[p] = sum
		k.PackageVersion = st.get("Version")
		dpkg, err := toolDpkgDeb.path()
		if err != nil {
			return nil, err
		}
		if out, err := exec.CommandContext(ctx, dpkg, "-x", debs[0], root).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("lab: unpack %s: %w: %s", filepath.Base(debs[0]), err, out)
		}
		os.Remove(debs[0])
	}
	// The packages ship no modules.dep (depmod normally runs at install time).
	bb, err := toolBusybox.path()
	if err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, bb, "depmod", "-b", filepath.Join(root, "usr"), kver).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("lab: depmod %s: %w: %s", kver, err, out)
	}
	modDir := filepath.Join(root, "usr", "lib", "modules", kver)
	keep := filepath.Join(tmp, "kernel")
	if err := os.MkdirAll(keep, 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	for _, name := range []string{"vmlinuz", "config", "modules.dep", "modules.builtin", "kernel"} {
		if err := os.Rename(filepath.Join(modDir, name), filepath.Join(keep, name)); err != nil {
			return nil, fmt.Errorf("lab: kernel %s lacks %s: %w", kver, name, err)
		}
	}
	err = filepath.WalkDir(keep, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		sum, err := sha256File(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(keep, p)
		k.Files[filepath.ToSlash(rel)] = sum
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab: hash kernel files: %w", err)
	}
	k.FetchedAt = time.Now().UTC()
	mb, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := os.WriteFile(filepath.Join(keep, manifestName), mb, 0o644); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cache, "kernels"), 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	k.Dir = filepath.Join(cache, "kernels", kver)
	os.RemoveAll(k.Dir) // a leftover without a valid manifest (we hold the lock, and pickCached did not find it)
	if err := os.Rename(keep, k.Dir); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	fmt.Fprintf(orDiscard(progress), "lab: cached kernel %s (%s) in %v\n", kver, k.PackageVersion, time.Since(start).Round(time.Millisecond))
	return k, nil
}
