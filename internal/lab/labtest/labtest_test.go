package labtest

import (
	"strings"
	"testing"
)

func TestParseNICs(t *testing.T) {
	nics, err := ParseNICs("eth0=52:54:00:6e:6c:01  eth1=52:54:00:6e:6c:02\n")
	if err != nil || len(nics) != 2 || nics[0].Name != "eth0" || nics[1].MAC.String() != "52:54:00:6e:6c:02" {
		t.Fatalf("ParseNICs = %+v, %v", nics, err)
	}
	if nics, err := ParseNICs(""); err != nil || len(nics) != 0 {
		t.Fatalf("ParseNICs(\"\") = %+v, %v; want none", nics, err)
	}
	for _, bad := range []struct{ in, want string }{
		{"eth0", "is not NAME=MAC"},
		{"=52:54:00:6e:6c:01", "is not NAME=MAC"},
		{"eth0=52:54", "has no Ethernet MAC"},
		{"eth0=00:00:00:00:fe:80:00:00:00:00:00:00:00:00:00:00:00:00:00:00", "has no Ethernet MAC"},
		{"eth0=52:54:00:6e:6c:01 eth0=52:54:00:6e:6c:02", "names eth0 twice"},
	} {
		if _, err := ParseNICs(bad.in); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseNICs(%q) = %v, want an error containing %q", bad.in, err, bad.want)
		}
	}
}

// TestNICsSkipsOutsideTheLab: on a host the virtio NICs do not exist, and not even NAPILAB_REQUIRE_PRIV=1 makes
// that a failure.
func TestNICsSkipsOutsideTheLab(t *testing.T) {
	t.Setenv("NAPILAB_LAB", "")
	t.Setenv("NAPILAB_REQUIRE_PRIV", "1")
	skipped := false
	t.Run("probe", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		NICs(t)
	})
	if !skipped {
		t.Fatal("NICs did not skip outside the lab")
	}
}

func FuzzParseNICs(f *testing.F) {
	f.Add("eth0=52:54:00:6e:6c:01 eth1=52:54:00:6e:6c:02")
	f.Fuzz(func(t *testing.T, s string) {
		nics, err := ParseNICs(s)
		if err != nil {
			return
		}
		var parts []string
		for _, n := range nics {
			parts = append(parts, n.Name+"="+n.MAC.String())
		}
		again, err := ParseNICs(strings.Join(parts, " "))
		if err != nil || len(again) != len(nics) {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}
