package lab

import (
	"slices"
	"strings"
	"testing"
)

const showOutput = `Package: linux-binary-7.3.4+deb13-cloud-amd64
Version: 7.3.4-1~bpo13+1
Depends: kmod,
 linux-base
SHA256: c4fbc8e404958693b28825474c20742d70594d65ca58aea7be6a279c81eb6fa0
Description: Linux 7.3 for x86-64 cloud

Package: linux-base-7.3.4+deb13-cloud-amd64
sha256: e08baa43706ba6e8daff58029b039f46beecfb3b3750c6fa0d6d5ca508a46a43
`

func TestParseStanzas(t *testing.T) {
	st := parseStanzas([]byte(showOutput))
	if len(st) != 2 {
		t.Fatalf("%d stanzas, want 2: %v", len(st), st)
	}
	if got := st[0].get("Package"); got != "linux-binary-7.3.4+deb13-cloud-amd64" {
		t.Errorf("Package %q", got)
	}
	if got := st[0].get("Depends"); got != "kmod,\nlinux-base" {
		t.Errorf("continuation line: Depends %q", got)
	}
	if got := st[1].get("SHA256"); !strings.HasPrefix(got, "e08baa43") {
		t.Errorf("field names must be case-insensitive: SHA256 %q", got)
	}
}

func TestCompleteReleases(t *testing.T) {
	// From a real trixie-backports listing: 7.0.x and 6.19.x have binaries but their modules left the archive.
	names := `linux-binary-6.19.14+deb13-cloud-amd64
linux-binary-7.0.13+deb13-cloud-amd64
linux-binary-7.2.9+deb13-cloud-amd64
linux-binary-7.2.12+deb13-cloud-amd64
linux-binary-7.3.4+deb13-cloud-amd64
linux-binary-7.3.4+deb13-amd64
linux-binary-unsigned-7.3.4+deb13-cloud-amd64
linux-binary-7.10.1+deb13-cloud-amd64
linux-modules-7.2.9+deb13-cloud-amd64
linux-modules-7.2.12+deb13-cloud-amd64
linux-modules-7.3.4+deb13-cloud-amd64
linux-modules-7.3.4+deb13-amd64
linux-modules-7.10.1+deb13-cloud-amd64
linux-modules-cloud-amd64
linux-base-7.2.9+deb13-cloud-amd64
linux-base-7.2.12+deb13-cloud-amd64
linux-base-7.3.4+deb13-cloud-amd64
linux-base-cloud-amd64
`
	got := completeReleases([]byte(names), "cloud-amd64")
	want := []string{"7.3.4+deb13-cloud-amd64", "7.2.12+deb13-cloud-amd64", "7.2.9+deb13-cloud-amd64"}
	if !slices.Equal(got, want) {
		t.Errorf("cloud releases %v, want %v (7.10.1 lacks linux-base; numeric order)", got, want)
	}
	if got := completeReleases([]byte(names), "amd64"); len(got) != 0 {
		t.Errorf("generic releases %v, want none (7.3.4 generic lacks linux-base)", got)
	}
}

func TestCompareAndMatchReleases(t *testing.T) {
	ordered := []string{"6.19.6+deb13-cloud-amd64", "7.2.9+deb13-cloud-amd64", "7.2.12+deb13-cloud-amd64", "7.2.12+deb14-cloud-amd64", "7.10.1+deb13-cloud-amd64"}
	for i := 1; i < len(ordered); i++ {
		if compareReleases(ordered[i-1], ordered[i]) >= 0 {
			t.Errorf("%s should sort before %s", ordered[i-1], ordered[i])
		}
	}
	match := []struct {
		kver, want string
		ok         bool
	}{
		{"7.3.4+deb13-cloud-amd64", "", true},
		{"7.3.4+deb13-cloud-amd64", "7.3.4", true},
		{"7.3.4+deb13-cloud-amd64", "7.3.4+deb13-cloud-amd64", true},
		{"7.3.4+deb13-cloud-amd64", "7.3", false},
		{"7.3.40+deb13-cloud-amd64", "7.3.4", false},
	}
	for _, m := range match {
		if got := matchRelease(m.kver, m.want); got != m.ok {
			t.Errorf("matchRelease(%q, %q) = %v", m.kver, m.want, got)
		}
	}
	if _, _, _, ok := kernelRelease("linux-cloud-amd64"); ok {
		t.Error("a meta package name parsed as a release")
	}
}

// FuzzParseStanzas: arbitrary apt output must not panic, and every field a stanza holds is lower-case.
func FuzzParseStanzas(f *testing.F) {
	f.Add([]byte(showOutput))
	f.Add([]byte("a\n :\n\n\nK:V\n x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range parseStanzas(b) {
			if len(s) == 0 {
				t.Fatal("empty stanza returned")
			}
			for k := range s {
				if k != strings.ToLower(k) {
					t.Fatalf("field %q not canonical", k)
				}
			}
		}
		_ = completeReleases(b, "cloud-amd64")
	})
}
