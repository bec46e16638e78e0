package frame

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"testing"
)

// TestAnswer: every kind of request checksum under both policies. A refused request is left byte for byte as
// it came; an answered one is its reply, and that reply's checksums verify.
func TestAnswer(t *testing.T) {
	type mutate func(t *testing.T, b []byte)
	var (
		valid     mutate = func(*testing.T, []byte) {}
		isPartial mutate = func(t *testing.T, b []byte) { partial(t, b) }
		corrupt   mutate = func(t *testing.T, b []byte) { b[len(b)-1] ^= 0x40 } // a payload bit flipped in flight
		noUDPSum  mutate = func(t *testing.T, b []byte) { parse(t, b).UDP().SetChecksum(0) }
		badIPSum  mutate = func(t *testing.T, b []byte) { b[EthernetLen+10] ^= 0xff }
		// A corrupted partial: the field is not the pseudo-header sum any more, so it is not mistaken for one.
		badPartial mutate = func(t *testing.T, b []byte) { partial(t, b); b[len(b)-1] ^= 1; parse(t, b).UDP()[7] ^= 1 }
	)
	for _, c := range []struct {
		name          string
		spec          Spec
		m             mutate
		keep, recomp  error
		fixedRecomput bool
	}{
		{"IPv4 valid", specV4, valid, nil, nil, false},
		{"IPv6 valid", specV6, valid, nil, nil, false},
		{"IPv4 partial", specV4, isPartial, ErrUDPPartial, nil, true},
		{"IPv6 partial", specV6, isPartial, ErrUDPPartial, nil, true},
		{"IPv4 corrupt payload", specV4, corrupt, ErrUDPChecksum, ErrUDPChecksum, false},
		{"IPv6 corrupt payload", specV6, corrupt, ErrUDPChecksum, ErrUDPChecksum, false},
		{"IPv4 corrupt partial", specV4, badPartial, ErrUDPChecksum, ErrUDPChecksum, false},
		{"IPv4 no UDP checksum", specV4, noUDPSum, nil, nil, false},
		{"IPv6 no UDP checksum", specV6, noUDPSum, ErrUDPChecksum, ErrUDPChecksum, false},
		{"IPv4 bad header checksum", specV4, badIPSum, ErrIPv4Checksum, ErrIPv4Checksum, false},
	} {
		for _, pol := range []ChecksumPolicy{KeepChecksums, RecomputeChecksums} {
			want, wantFixed := c.keep, false
			if pol == RecomputeChecksums {
				want, wantFixed = c.recomp, c.fixedRecomput
			}
			t.Run(fmt.Sprintf("%s/policy%d", c.name, pol), func(t *testing.T) {
				b := build(t, c.spec, 61) // odd: the last byte sums as the high half of a word
				c.m(t, b)
				req := append([]byte(nil), b...)
				if err := parse(t, b).CheckRequest(pol); err != want || !bytes.Equal(b, req) {
					t.Fatalf("CheckRequest = %v, want %v, and the frame unchanged", err, want)
				}
				fixed, err := parse(t, b).Answer(pol)
				if !errors.Is(err, want) || (err == nil) != (want == nil) || fixed != wantFixed {
					t.Fatalf("Answer = %v, %v; want %v, %v", fixed, err, wantFixed, want)
				}
				if err != nil {
					if !bytes.Equal(b, req) {
						t.Fatal("a refused request was changed")
					}
					return
				}
				checkReply(t, req, b)
				if err := parse(t, b).VerifyChecksums(); err != nil {
					t.Fatalf("the reply does not verify: %v", err)
				}
			})
		}
	}
}

func TestCheckReplyAddrs(t *testing.T) {
	withMAC := func(s Spec, src, dst MAC) Spec { s.Src.MAC, s.Dst.MAC = src, dst; return s }
	withIP := func(s Spec, src, dst string) Spec {
		s.Src.IP, s.Dst.IP = netip.MustParseAddr(src), netip.MustParseAddr(dst)
		return s
	}
	a, b := MAC{2, 0, 0, 0, 0, 1}, MAC{2, 0, 0, 0, 0, 2}
	bcast, mcast := MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, MAC{0x01, 0x00, 0x5e, 0, 0, 1}
	for _, c := range []struct {
		name string
		s    Spec
		ok   bool
	}{
		{"IPv4 unicast", specV4, true},
		{"IPv6 unicast", specV6, true},
		{"IPv6 link-local", withIP(specV6, "fe80::1", "fe80::2"), true},
		{"broadcast destination MAC", withMAC(specV4, a, bcast), false},
		{"multicast destination MAC", withMAC(specV4, a, mcast), false},
		{"multicast source MAC", withMAC(specV4, mcast, b), false},
		{"zero source MAC", withMAC(specV4, MAC{}, b), false},
		{"zero destination MAC", withMAC(specV6, a, MAC{}), false},
		{"same MACs", withMAC(specV4, a, a), false},
		{"IPv4 limited broadcast destination", withIP(specV4, "192.0.2.1", "255.255.255.255"), false},
		{"IPv4 multicast destination", withIP(specV4, "192.0.2.1", "239.1.2.3"), false},
		{"IPv4 zero source", withIP(specV4, "0.0.0.0", "192.0.2.2"), false},
		{"IPv4 loopback source", withIP(specV4, "127.0.0.1", "192.0.2.2"), false},
		{"IPv4 class E source", withIP(specV4, "240.0.0.1", "192.0.2.2"), false},
		{"IPv4 to itself", withIP(specV4, "192.0.2.2", "192.0.2.2"), false},
		{"IPv6 unspecified source", withIP(specV6, "::", "2001:db8::2"), false},
		{"IPv6 loopback destination", withIP(specV6, "2001:db8::1", "::1"), false},
		{"IPv6 multicast destination", withIP(specV6, "2001:db8::1", "ff02::1"), false},
		{"IPv6 to itself", withIP(specV6, "2001:db8::2", "2001:db8::2"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := parse(t, build(t, c.s, 8)).CheckReplyAddrs()
			if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrReplyAddress)) {
				t.Fatalf("CheckReplyAddrs = %v, want ok %v", err, c.ok)
			}
		})
	}
}

func TestAnswerAllocs(t *testing.T) {
	b := build(t, specV6, 400)
	p := parse(t, b)
	bad := partial(t, build(t, specV4, 400))
	q := parse(t, bad)
	for name, f := range map[string]func(){
		"Answer keep":      func() { _, _ = p.Answer(KeepChecksums) },
		"Answer recompute": func() { _, _ = p.Answer(RecomputeChecksums) },
		"Answer refused":   func() { _, _ = q.Answer(KeepChecksums) },
		"CheckReplyAddrs":  func() { _ = p.CheckReplyAddrs() },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}

func BenchmarkAnswer(b *testing.B) {
	for _, s := range []Spec{specV4, specV6} {
		frame := build(b, s, 400)
		b.Run(fmt.Sprintf("IPv%d", s.Family()), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := Parse(frame)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.Answer(KeepChecksums); err != nil {
					b.Fatal(err)
				}
				if err := p.CheckReplyAddrs(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestTrustChecksums: under TrustChecksums every request is answered by swapping alone, whatever its checksums
// say: a valid one gets a valid reply, a corrupted one a reply with the same checksum fields (invalid in the same
// way), and CheckRequest refuses nothing.
func TestTrustChecksums(t *testing.T) {
	for _, s := range []Spec{specV4, specV6} {
		valid := build(t, s, 61)
		req := append([]byte(nil), valid...)
		if fixed, err := parse(t, valid).Answer(TrustChecksums); err != nil || fixed {
			t.Fatalf("Answer = %v, %v", fixed, err)
		}
		checkReply(t, req, valid)
		if err := parse(t, valid).VerifyChecksums(); err != nil {
			t.Fatalf("a valid request's reply does not verify: %v", err)
		}
		bad := build(t, s, 61)
		bad[len(bad)-1] ^= 0x40
		if err := parse(t, bad).CheckRequest(TrustChecksums); err != nil {
			t.Fatalf("CheckRequest refused a request under trust: %v", err)
		}
		sum := parse(t, bad).UDP().Checksum()
		if _, err := parse(t, bad).Answer(TrustChecksums); err != nil || parse(t, bad).UDP().Checksum() != sum {
			t.Fatalf("a corrupted request under trust: %v, checksum %#x → %#x", err, sum, parse(t, bad).UDP().Checksum())
		}
	}
}
