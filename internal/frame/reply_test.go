package frame

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

func parse(t testing.TB, b []byte) Packet {
	t.Helper()
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// partial gives a frame the UDP checksum a veth peer's stack sends under CHECKSUM_PARTIAL: the folded
// pseudo-header sum, not complemented, which the hardware that never comes was to finish.
func partial(t testing.TB, b []byte) []byte {
	t.Helper()
	p := parse(t, b)
	p.UDP().SetChecksum(p.pseudoSum())
	return b
}

// checkReply asserts that reply is request with Ethernet, IP and UDP ends swapped and nothing else changed
// except the checksum fields.
func checkReply(t *testing.T, request, reply []byte) {
	t.Helper()
	q, r := parse(t, request), parse(t, reply)
	qs, qd := srcDst(q)
	rs, rd := srcDst(r)
	if r.Ethernet().Src() != q.Ethernet().Dst() || r.Ethernet().Dst() != q.Ethernet().Src() {
		t.Errorf("MACs not swapped: %v -> %v", r.Ethernet().Src(), r.Ethernet().Dst())
	}
	if rs != qd || rd != qs {
		t.Errorf("IPs not swapped: %v -> %v", rs, rd)
	}
	if r.UDP().SrcPort() != q.UDP().DstPort() || r.UDP().DstPort() != q.UDP().SrcPort() {
		t.Errorf("ports not swapped: %d -> %d", r.UDP().SrcPort(), r.UDP().DstPort())
	}
	if !bytes.Equal(r.Payload(), q.Payload()) || r.Len() != q.Len() {
		t.Errorf("payload or length changed")
	}
}

func TestReplyKeepsValidChecksums(t *testing.T) {
	for _, s := range []Spec{specV4, specV6} {
		for _, n := range []int{0, 1, 400} {
			t.Run(fmt.Sprintf("IPv%d/%d", s.Family(), n), func(t *testing.T) {
				req := build(t, s, n)
				b := append([]byte(nil), req...)
				if fixed := parse(t, b).Reply(KeepChecksums); fixed {
					t.Error("KeepChecksums reported a fix")
				}
				checkReply(t, req, b)
				if err := parse(t, b).VerifyChecksums(); err != nil {
					t.Errorf("reply of a valid request: %v", err)
				}
				if !bytes.Equal(parse(t, b).UDP()[6:8], req[len(req)-n-2:len(req)-n]) {
					t.Error("KeepChecksums rewrote the UDP checksum")
				}
				// The reply of the reply is the request again.
				parse(t, b).Reply(KeepChecksums)
				if !bytes.Equal(b, req) {
					t.Error("replying twice does not restore the request")
				}
			})
		}
	}
}

func TestReplyRecomputesPartialChecksum(t *testing.T) {
	for _, s := range []Spec{specV4, specV6} {
		t.Run(fmt.Sprintf("IPv%d", s.Family()), func(t *testing.T) {
			req := partial(t, build(t, s, 400))
			if err := parse(t, req).VerifyChecksums(); !errors.Is(err, ErrUDPChecksum) {
				t.Fatalf("partial checksum verifies: %v", err)
			}
			kept := append([]byte(nil), req...)
			parse(t, kept).Reply(KeepChecksums)
			if err := parse(t, kept).VerifyChecksums(); !errors.Is(err, ErrUDPChecksum) {
				t.Errorf("KeepChecksums turned a partial checksum valid: %v", err)
			}
			b := append([]byte(nil), req...)
			if fixed := parse(t, b).Reply(RecomputeChecksums); !fixed {
				t.Error("RecomputeChecksums did not report the partial checksum")
			}
			checkReply(t, req, b)
			p := parse(t, b)
			if err := p.VerifyChecksums(); err != nil {
				t.Error(err)
			}
			src, dst := srcDst(p)
			if want := refUDPChecksum(src, dst, p.UDP()); p.UDP().Checksum() != want {
				t.Errorf("UDP checksum %#04x, reference %#04x", p.UDP().Checksum(), want)
			}
			// A second recompute finds nothing to fix.
			if parse(t, b).Reply(RecomputeChecksums) {
				t.Error("RecomputeChecksums reported a fix of a valid checksum")
			}
		})
	}
}

// The same datagrams as capturedIPv4 and capturedIPv6, captured the same way but with TX checksum offload left
// on: the veth peer's stack sent CHECKSUM_PARTIAL frames, whose UDP checksum field holds the pseudo-header sum.
const (
	capturedPartialIPv4 = "02000000000b02000000000a080045000050361640004011efbe0a6300010a6300029c400009003c15166e6170696c61" +
		"6220636170747572653a20495076342f5544502c203533206279746573206f66207061796c6f61642c206f646421"
	capturedPartialIPv6 = "02000000000b02000000000a86dd6007895600291140fd000099000000000000000000000001fd0000990000000000000000" +
		"000000029c4100090029fb706e6170696c616220636170747572653a20495076362f554450207061796c6f6164"
)

func TestReplyCapturedPartial(t *testing.T) {
	for _, c := range []struct {
		name, partial string
		full          uint16 // the UDP checksum the kernel wrote for the same datagram with offload off
	}{{"IPv4", capturedPartialIPv4, 0x4c17}, {"IPv6", capturedPartialIPv6, 0x02c9}} {
		t.Run(c.name, func(t *testing.T) {
			b := mustHex(t, c.partial)
			p := parse(t, b)
			if p.UDP().Checksum() != p.pseudoSum() {
				t.Fatalf("captured field %#04x is not the pseudo-header sum %#04x", p.UDP().Checksum(), p.pseudoSum())
			}
			if err := p.VerifyChecksums(); !errors.Is(err, ErrUDPChecksum) {
				t.Fatalf("partial checksum: %v", err)
			}
			if !p.Reply(RecomputeChecksums) {
				t.Error("fix not reported")
			}
			// Swapping ends does not change the sum, so the reply carries the kernel's full checksum.
			if got := p.UDP().Checksum(); got != c.full {
				t.Errorf("recomputed %#04x, the kernel computes %#04x", got, c.full)
			}
		})
	}
}

func TestReplyRecomputeIPv4(t *testing.T) {
	t.Run("bad header checksum", func(t *testing.T) {
		b := build(t, specV4, 20)
		b[24] ^= 0xff
		if err := parse(t, b).VerifyChecksums(); !errors.Is(err, ErrIPv4Checksum) {
			t.Fatalf("corrupt header checksum: %v", err)
		}
		if !parse(t, b).Reply(RecomputeChecksums) {
			t.Error("fix not reported")
		}
		if err := parse(t, b).VerifyChecksums(); err != nil {
			t.Error(err)
		}
	})
	t.Run("no UDP checksum", func(t *testing.T) {
		b := build(t, specV4, 20)
		parse(t, b).UDP().SetChecksum(0)
		if err := parse(t, b).VerifyChecksums(); err != nil {
			t.Fatalf("IPv4 without UDP checksum: %v", err)
		}
		if parse(t, b).Reply(RecomputeChecksums) {
			t.Error("a missing IPv4 UDP checksum is valid, yet a fix was reported")
		}
		if c := parse(t, b).UDP().Checksum(); c == 0 {
			t.Error("RecomputeChecksums left the checksum out")
		}
		if err := parse(t, b).VerifyChecksums(); err != nil {
			t.Error(err)
		}
	})
}

func TestVerifyIPv6ZeroChecksum(t *testing.T) {
	b := build(t, specV6, 20)
	parse(t, b).UDP().SetChecksum(0)
	if err := parse(t, b).VerifyChecksums(); !errors.Is(err, ErrUDPChecksum) {
		t.Fatalf("zero UDP checksum over IPv6: %v, want ErrUDPChecksum", err)
	}
	if !parse(t, b).Reply(RecomputeChecksums) {
		t.Error("fix not reported")
	}
	if err := parse(t, b).VerifyChecksums(); err != nil {
		t.Error(err)
	}
}

func TestZeroSumBecomesAllOnes(t *testing.T) {
	// Find a payload whose computed checksum is 0: it must go on the wire as 0xffff (RFC 768), over IPv6 too,
	// where zero is forbidden. Two payload bytes give every sum, so a search over them always finds one.
	s := specV6
	s.PayloadLen = 2
	b := make([]byte, s.FrameLen())
	for v := range 1 << 16 {
		b[len(b)-2], b[len(b)-1] = byte(v>>8), byte(v)
		if _, err := Build(b, s); err != nil {
			t.Fatal(err)
		}
		p := parse(t, b)
		if ^Combine(p.udpSum(), ^p.UDP().Checksum()) != 0 {
			continue
		}
		if p.UDP().Checksum() != 0xffff {
			t.Fatalf("computed zero went out as %#04x", p.UDP().Checksum())
		}
		if err := p.VerifyChecksums(); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("no payload sums to zero")
}

// TestWritePayloadIncremental is the property test: for random frames and random writes (any offset, odd or
// even, any length) the incrementally updated checksum equals a full recomputation, bit for bit.
func TestWritePayloadIncremental(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		s := specV4
		if i%2 == 1 {
			s = specV6
		}
		var a4 [4]byte
		var a16 [16]byte
		for j := range a16 {
			a16[j] = byte(rng.Uint32())
		}
		copy(a4[:], a16[:])
		if s.Family() == IPv4Family {
			s.Src.IP = netip.AddrFrom4(a4)
		} else {
			s.Src.IP = netip.AddrFrom16(a16)
		}
		s.Src.Port, s.Dst.Port = uint16(rng.Uint32()), uint16(rng.Uint32())
		s.PayloadLen = rng.IntN(600)
		b := make([]byte, s.FrameLen())
		for j := s.PayloadOffset(); j < len(b); j++ {
			b[j] = byte(rng.Uint32())
		}
		if _, err := Build(b, s); err != nil {
			t.Fatal(err)
		}
		p := parse(t, b)
		for range 4 {
			off := rng.IntN(s.PayloadLen + 1)
			data := make([]byte, rng.IntN(s.PayloadLen-off+1))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			if err := p.WritePayload(off, data); err != nil {
				t.Fatal(err)
			}
			got := p.UDP().Checksum()
			src, dst := srcDst(p)
			if want := refUDPChecksum(src, dst, p.UDP()); got != want {
				t.Fatalf("frame %d, write %d bytes at %d: incremental %#04x, full %#04x", i, len(data), off, got, want)
			}
		}
	}
}

func TestWritePayloadOverlap(t *testing.T) {
	// Source and destination may overlap (shifting the payload within itself).
	b := build(t, specV4, 64)
	p := parse(t, b)
	pl := p.Payload()
	for i := range pl {
		pl[i] = byte(i)
	}
	p.Reply(RecomputeChecksums)
	if err := p.WritePayload(1, pl[:40]); err != nil {
		t.Fatal(err)
	}
	if err := p.VerifyChecksums(); err != nil {
		t.Error(err)
	}
}

func TestWritePayloadRange(t *testing.T) {
	p := parse(t, build(t, specV4, 10))
	for _, c := range []struct{ off, n int }{{-1, 1}, {11, 0}, {5, 6}, {0, 11}} {
		if err := p.WritePayload(c.off, make([]byte, c.n)); !errors.Is(err, ErrPayloadRange) {
			t.Errorf("WritePayload(%d, %d bytes) = %v, want ErrPayloadRange", c.off, c.n, err)
		}
	}
	if err := p.WritePayload(10, nil); err != nil {
		t.Errorf("empty write at the end: %v", err)
	}
}

func TestWritePayloadNoChecksum(t *testing.T) {
	p := parse(t, build(t, specV4, 10))
	p.UDP().SetChecksum(0)
	if err := p.WritePayload(3, []byte("xyz")); err != nil {
		t.Fatal(err)
	}
	if p.UDP().Checksum() != 0 || string(p.Payload()[3:6]) != "xyz" {
		t.Errorf("checksum %#04x payload %q", p.UDP().Checksum(), p.Payload())
	}
}

func TestReplyAllocs(t *testing.T) {
	b := build(t, specV6, 400)
	p := parse(t, b)
	stamp := []byte("12345678")
	for name, f := range map[string]func(){
		"Reply keep":      func() { p.Reply(KeepChecksums) },
		"Reply recompute": func() { p.Reply(RecomputeChecksums) },
		"VerifyChecksums": func() { _ = p.VerifyChecksums() },
		"WritePayload":    func() { _ = p.WritePayload(3, stamp) },
		"Parse+Reply":     func() { q, _ := Parse(b); q.Reply(KeepChecksums) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}

func BenchmarkReply(b *testing.B) {
	for _, s := range []Spec{specV4, specV6} {
		frame := build(b, s, 400)
		for _, pol := range []struct {
			name string
			p    ChecksumPolicy
		}{{"keep", KeepChecksums}, {"recompute", RecomputeChecksums}} {
			b.Run(fmt.Sprintf("IPv%d/%s", s.Family(), pol.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p, err := Parse(frame)
					if err != nil {
						b.Fatal(err)
					}
					p.Reply(pol.p)
				}
			})
		}
	}
}

func BenchmarkWritePayload(b *testing.B) {
	// The rr client stamps a 32-byte header into a 400-byte template per request: incremental update versus
	// rewriting and recomputing the whole checksum.
	p := parse(b, build(b, specV4, 400))
	stamp := make([]byte, 32)
	b.Run("incremental", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			stamp[9]++
			_ = p.WritePayload(0, stamp)
		}
	})
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			stamp[9]++
			copy(p.Payload(), stamp)
			p.UDP().SetChecksum(0)
			p.UDP().SetChecksum(udpChecksumField(p.udpSum()))
		}
	})
}
