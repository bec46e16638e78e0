package netns_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/napilab/napilab/internal/netns"
)

func TestPath(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"bed-b":            "/run/netns/bed-b",
		"/proc/1/ns/net":   "/proc/1/ns/net",
		"./relative/ns":    "./relative/ns",
		"/run/netns/other": "/run/netns/other",
	} {
		if got := netns.Path(in); got != want {
			t.Errorf("Path(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDoHereRunsInPlace(t *testing.T) {
	ran := false
	err := netns.Do("", func() error { ran = true; return errors.New("from fn") })
	if !ran || err == nil || err.Error() != "from fn" {
		t.Fatalf("Do(\"\") ran=%v err=%v; want fn run and its error returned", ran, err)
	}
}

func TestOpenRefusesWhatIsNotANamespace(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := netns.Open(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want os.ErrNotExist", err)
	}
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := netns.Open(plain)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(plain file) = %v, want os.ErrNotExist", err)
	}
	if err := netns.Do(plain, func() error { t.Error("fn ran for a file that is no namespace"); return nil }); err == nil {
		t.Error("Do(plain file) succeeded")
	}
}
