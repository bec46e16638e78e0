package lab

import (
	"context"
	"strings"
	"testing"

	"github.com/napilab/napilab/internal/testenv"
)

// unreachableMirror refuses connections at once (port 9, discard, is closed on CI machines), standing in for
// a machine without access to the Debian archive.
const unreachableMirror = "http://127.0.0.1:9/debian"

func requireApt(t *testing.T) {
	skipInLab(t)
	if _, err := toolAptGet.path(); err != nil {
		testenv.Skip(t, "%v", err)
	}
}

func TestFetchKernelUnreachableArchive(t *testing.T) {
	requireApt(t)
	cache := t.TempDir()
	_, err := FetchKernel(context.Background(), KernelSpec{Mirror: unreachableMirror}, cache, nil)
	if err == nil {
		t.Fatal("fetch from an unreachable mirror succeeded")
	}
	for _, want := range []string{"linux-binary, linux-modules and linux-base", "trixie-backports or sid", "no kernel is cached in " + cache} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestFetchKernelFallsBackToCache(t *testing.T) {
	requireApt(t)
	cache := t.TempDir()
	fakeKernel(t, cache, "7.2.9+deb13-cloud-amd64", "trixie-backports")
	var progress strings.Builder
	k, err := FetchKernel(context.Background(), KernelSpec{Mirror: unreachableMirror}, cache, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if k.Release != "7.2.9+deb13-cloud-amd64" || k.Fetched {
		t.Errorf("got %s (fetched %v), want the cached 7.2.9", k.Release, k.Fetched)
	}
	if !strings.Contains(progress.String(), "using cached kernel 7.2.9+deb13-cloud-amd64") {
		t.Errorf("the fallback was not reported: %q", progress.String())
	}
}

func TestFetchKernelPinnedCachedNeedsNoNetwork(t *testing.T) {
	cache := t.TempDir()
	fakeKernel(t, cache, "7.2.9+deb13-cloud-amd64", "trixie-backports")
	// The mirror is unreachable and apt is never asked: a pinned, cached kernel is used as it is.
	k, err := FetchKernel(context.Background(), KernelSpec{Version: "7.2.9", Mirror: unreachableMirror}, cache, nil)
	if err != nil || k.Release != "7.2.9+deb13-cloud-amd64" {
		t.Fatalf("FetchKernel = %v, %v", k, err)
	}
	_, err = FetchKernel(context.Background(), KernelSpec{Version: "7.3.4", Offline: true}, cache, nil)
	if err == nil || !strings.Contains(err.Error(), "offline mode forbids fetching") {
		t.Errorf("offline without a match: %v", err)
	}
}

func TestFetchKernelRejectsBadSpec(t *testing.T) {
	_, err := FetchKernel(context.Background(), KernelSpec{Flavour: "s390x"}, t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "flavour") {
		t.Errorf("bad flavour: %v", err)
	}
}
