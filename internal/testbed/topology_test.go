package testbed

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/napilab/napilab/internal/kernel"
)

func TestResolveDefaults(t *testing.T) {
	got, err := Topology{}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := Topology{Prefix: DefaultPrefix, Queues: 1, IPv4: DefaultIPv4, IPv6: DefaultIPv6, MTU: 1500,
		Lifetime: Ephemeral, StateDir: DefaultStateDir}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Fatalf("Resolve() mismatch (-want +got):\n%s", diff)
	}
	// Host bits in a subnet are dropped, so hosts are always .1 and .2 of the network.
	got, err = Topology{IPv4: netip.MustParsePrefix("10.1.2.77/24")}.Resolve()
	if err != nil || got.IPv4.String() != "10.1.2.0/24" {
		t.Fatalf("Resolve(10.1.2.77/24) = %v, %v; want 10.1.2.0/24", got.IPv4, err)
	}
}

func TestResolveRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		topo Topology
		want string // part of the one-sentence error that says how to fix it
	}{
		{"queues negative", Topology{Queues: -1}, "use 1 to 256"},
		{"queues too many", Topology{Queues: MaxQueues + 1}, "use 1 to 256"},
		{"ipv4 is v6", Topology{IPv4: netip.MustParsePrefix("fd00::/64")}, "not an IPv4 prefix"},
		{"ipv4 no room", Topology{IPv4: netip.MustParsePrefix("10.0.0.0/31")}, "room for two hosts"},
		{"ipv6 is v4", Topology{IPv6: netip.MustParsePrefix("10.0.0.0/24")}, "not an IPv6 prefix"},
		{"ipv6 mapped", Topology{IPv6: netip.MustParsePrefix("::ffff:10.0.0.0/120")}, "not an IPv6 prefix"},
		{"ipv6 no room", Topology{IPv6: netip.MustParsePrefix("fd00::/127")}, "room for two hosts"},
		{"mtu small", Topology{MTU: 1279}, "1280 (the IPv6 minimum)"},
		{"mtu large", Topology{MTU: 65536}, "to 65535"},
		{"name slash", Topology{Name: "a/b"}, "use letters, digits"},
		{"name dot first", Topology{Name: ".."}, "starting with a letter or digit"},
		{"name long", Topology{Name: strings.Repeat("x", 49)}, "1 to 48 characters"},
		{"prefix space", Topology{Prefix: "my bed"}, "testbed name prefix"},
		{"lifetime", Topology{Lifetime: 9}, "use Ephemeral, Owned or Persistent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.topo.Resolve()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Resolve() error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestHostAddrs(t *testing.T) {
	a, b := hostAddrs(netip.MustParsePrefix("198.18.0.0/24"))
	if a.String() != "198.18.0.1/24" || b.String() != "198.18.0.2/24" {
		t.Errorf("IPv4 hosts %v %v", a, b)
	}
	a, b = hostAddrs(netip.MustParsePrefix("fd6e:6170:696c::/64"))
	if a.String() != "fd6e:6170:696c::1/64" || b.String() != "fd6e:6170:696c::2/64" {
		t.Errorf("IPv6 hosts %v %v", a, b)
	}
}

func TestGeneratedNamesAreUniqueAndValid(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		n := generateName(DefaultPrefix)
		if err := ValidateName(n); err != nil {
			t.Fatal(err)
		}
		if seen[n] {
			t.Fatalf("name %s generated twice", n)
		}
		seen[n] = true
	}
}

func TestLifetimeText(t *testing.T) {
	for _, l := range []Lifetime{Ephemeral, Owned, Persistent} {
		b, err := l.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Lifetime
		if err := back.UnmarshalText(b); err != nil || back != l {
			t.Fatalf("%s round trip: %v, %v", l, back, err)
		}
	}
	var l Lifetime
	if err := l.UnmarshalText([]byte("forever")); err == nil {
		t.Fatal("UnmarshalText(forever) succeeded")
	}
	if _, err := Lifetime(7).MarshalText(); err == nil {
		t.Fatal("MarshalText(7) succeeded")
	}
}

func TestDiagram(t *testing.T) {
	topo, err := Topology{Name: "bed", Queues: 2, NAPI: true}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	a4, b4 := hostAddrs(topo.IPv4)
	a6, b6 := hostAddrs(topo.IPv6)
	tb := &Testbed{Name: "bed", Topology: topo,
		A: &Host{Namespace: "bed-a", Link: LinkA, Ifindex: 2, MAC: mac("02:00:00:00:00:0a"), IPv4: a4, IPv6: a6},
		B: &Host{Namespace: "bed-b", Link: LinkB, Ifindex: 3, MAC: mac("02:00:00:00:00:0b"), IPv4: b4, IPv6: b6},
	}
	want := `testbed bed (ephemeral): 2 rx and 2 tx queues per end, MTU 1500, GRO on, TSO off: socket traffic passes the veth NAPI

+- netns bed-a --------+                  +- netns bed-b --------+
| veth-a  ifindex 2    |------ veth ------| veth-b  ifindex 3    |
| 02:00:00:00:00:0a    |                  | 02:00:00:00:00:0b    |
| 198.18.0.1/24        |                  | 198.18.0.2/24        |
| fd6e:6170:696c::1/64 |                  | fd6e:6170:696c::2/64 |
+----------------------+                  +----------------------+
`
	if diff := cmp.Diff(want, tb.Diagram()); diff != "" {
		t.Fatalf("Diagram() mismatch (-want +got):\n%s", diff)
	}
	for _, line := range strings.Split(strings.TrimSpace(tb.Diagram()), "\n")[2:] {
		if len(line) != len(strings.Split(want, "\n")[2]) {
			t.Fatalf("ragged box line %q", line)
		}
	}
}

func validRecord() Record {
	topo, _ := Topology{Name: "bed", Lifetime: Persistent}.Resolve()
	a4, b4 := hostAddrs(topo.IPv4)
	a6, b6 := hostAddrs(topo.IPv6)
	return Record{Version: recordVersion, Name: "bed", Topology: topo, Owner: kernel.Process{PID: 42, Start: 7},
		Complete: true,
		A:        HostRecord{Namespace: "bed-a", Inode: 4026532001, Link: LinkA, Ifindex: 2, IPv4: a4, IPv6: a6},
		B:        HostRecord{Namespace: "bed-b", Inode: 4026532002, Link: LinkB, Ifindex: 2, IPv4: b4, IPv6: b6}}
}

func TestParseRecord(t *testing.T) {
	good, err := json.Marshal(validRecord())
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRecord(good)
	if err != nil {
		t.Fatalf("ParseRecord(valid) = %v", err)
	}
	if r.A.Inode != 4026532001 || r.Topology.Lifetime != Persistent || !r.Complete {
		t.Fatalf("ParseRecord lost fields: %+v", r)
	}

	for _, tc := range []struct {
		name   string
		mutate func(*Record)
		want   string
	}{
		{"foreign namespace", func(r *Record) { r.A.Namespace = "../../etc" }, "instead of"},
		{"version", func(r *Record) { r.Version = 2 }, "another napilab version"},
		{"name", func(r *Record) { r.Name, r.Topology.Name = "a b", "a b" }, "use letters"},
		{"topology name", func(r *Record) { r.Topology.Name = "other" }, "describes topology"},
		{"ephemeral", func(r *Record) { r.Topology.Lifetime = Ephemeral }, "lifetime ephemeral"},
		{"owner", func(r *Record) { r.Owner.PID = 0 }, "no owner pid"},
		{"bad topology", func(r *Record) { r.Topology.Queues = 1000 }, "use 1 to 256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := validRecord()
			tc.mutate(&rec)
			b, _ := json.Marshal(rec)
			if _, err := ParseRecord(b); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseRecord() error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := ParseRecord([]byte(`{"version":1,"extra":true}`)); err == nil {
		t.Fatal("ParseRecord accepted an unknown field")
	}
}

func TestStoreRoundTrip(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	r := validRecord()
	r.Complete = false
	if err := s.reserve(&r); err != nil {
		t.Fatal(err)
	}
	err := s.reserve(&r)
	if !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), "napilab testbed down bed") {
		t.Fatalf("second reserve = %v, want a name-taken error with the fix", err)
	}
	r.Complete = true
	if err := s.update(&r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.path("junk"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err := s.List()
	if len(recs) != 1 || !recs[0].Complete || err == nil || !strings.Contains(err.Error(), "junk") {
		t.Fatalf("List() = %+v, %v; want the one complete record and an error about junk", recs, err)
	}
	if _, err := s.Get("missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Get(missing) = %v, want os.ErrNotExist", err)
	}
	if err := s.remove("bed"); err != nil {
		t.Fatal(err)
	}
	if err := s.remove("bed"); err != nil {
		t.Fatalf("second remove = %v, want nil (idempotent)", err)
	}
	if recs, err := (Store{Dir: t.TempDir() + "/none"}).List(); recs != nil || err != nil {
		t.Fatalf("List of a missing store = %v, %v", recs, err)
	}
}

func FuzzParseRecord(f *testing.F) {
	good, _ := json.Marshal(validRecord())
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		// Whatever parses must be safe for Down: namespaces derived from a valid name, nothing else.
		na, nb := namespaceNames(r.Name)
		if ValidateName(r.Name) != nil || r.A.Namespace != na || r.B.Namespace != nb {
			t.Fatalf("ParseRecord accepted unsafe record %+v", r)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseRecord(again); err != nil {
			t.Fatalf("re-encoded record does not parse: %v", err)
		}
	})
}
