package frame

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"testing"
)

// Frames the Linux 6.18 kernel sent from one veth to its peer with TX checksum offload turned off
// (ETHTOOL_STXCSUM 0), so it wrote full checksums itself; captured with an AF_PACKET socket on the peer. Their
// checksums were verified with an independent Python implementation before they were pasted here.
const (
	capturedIPv4 = "02000000000b02000000000a0800450000501d854000401108500a6300010a6300029c400009003c4c176e6170696c6162" +
		"20636170747572653a20495076342f5544502c203533206279746573206f66207061796c6f61642c206f646421"
	capturedIPv6 = "02000000000b02000000000a86dd6007895600291140fd000099000000000000000000000001fd000099000000000000000000" +
		"0000029c410009002902c96e6170696c616220636170747572653a20495076362f554450207061796c6f6164"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refUDPChecksum computes a UDP checksum from scratch: pseudo-header bytes laid out as the RFCs draw them, the
// datagram with its checksum field zeroed, refSum over all of it.
func refUDPChecksum(src, dst netip.Addr, udp []byte) uint16 {
	var ph []byte
	ph = append(ph, src.AsSlice()...)
	ph = append(ph, dst.AsSlice()...)
	if src.Is4() {
		ph = append(ph, 0, ProtocolUDP, byte(len(udp)>>8), byte(len(udp)))
	} else {
		ph = binary.BigEndian.AppendUint32(ph, uint32(len(udp)))
		ph = append(ph, 0, 0, 0, ProtocolUDP)
	}
	d := append([]byte(nil), udp...)
	d[6], d[7] = 0, 0
	c := ^refSum(append(ph, d...))
	if c == 0 {
		c = 0xffff
	}
	return c
}

func TestParseCaptured(t *testing.T) {
	for _, c := range []struct {
		name              string
		hex               string
		family            Family
		src, dst          string
		sport, dport      uint16
		payload           string
		udpCheck, ipCheck uint16
	}{
		{"IPv4", capturedIPv4, IPv4Family, "10.99.0.1", "10.99.0.2", 40000, 9,
			"napilab capture: IPv4/UDP, 53 bytes of payload, odd!", 0x4c17, 0x0850},
		{"IPv6", capturedIPv6, IPv6Family, "fd00:99::1", "fd00:99::2", 40001, 9,
			"napilab capture: IPv6/UDP payload", 0x02c9, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := mustHex(t, c.hex)
			p, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if p.Family() != c.family || p.Len() != len(b) || string(p.Payload()) != c.payload {
				t.Fatalf("family %d len %d payload %q", p.Family(), p.Len(), p.Payload())
			}
			e := p.Ethernet()
			if e.Src() != (MAC{2, 0, 0, 0, 0, 0x0a}) || e.Dst() != (MAC{2, 0, 0, 0, 0, 0x0b}) {
				t.Errorf("MACs %v -> %v", e.Src(), e.Dst())
			}
			src, dst := srcDst(p)
			if src != netip.MustParseAddr(c.src) || dst != netip.MustParseAddr(c.dst) {
				t.Errorf("addresses %v -> %v", src, dst)
			}
			u := p.UDP()
			if u.SrcPort() != c.sport || u.DstPort() != c.dport || u.Checksum() != c.udpCheck {
				t.Errorf("UDP %d -> %d checksum %#04x", u.SrcPort(), u.DstPort(), u.Checksum())
			}
			if err := p.VerifyChecksums(); err != nil {
				t.Errorf("kernel-written checksums do not verify: %v", err)
			}
			if got := refUDPChecksum(src, dst, u); got != c.udpCheck {
				t.Errorf("reference UDP checksum %#04x, kernel wrote %#04x", got, c.udpCheck)
			}
			if ip := p.IPv4(); ip != nil && ip.ComputeChecksum() != c.ipCheck {
				t.Errorf("IPv4 header checksum computes to %#04x, kernel wrote %#04x", ip.ComputeChecksum(), c.ipCheck)
			}
			// Build, fed the same flow, must arrive at the kernel's UDP checksum: it covers only the pseudo-header
			// and the datagram, which Build reproduces exactly (the IP headers differ: the kernel set DF and an ID).
			s := Spec{Src: Endpoint{e.Src(), src, c.sport}, Dst: Endpoint{e.Dst(), dst, c.dport}, PayloadLen: len(c.payload)}
			out := make([]byte, s.FrameLen())
			copy(out[s.PayloadOffset():], c.payload)
			if _, err := Build(out, s); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out[s.PayloadOffset()-UDPLen:], b[p.L4Offset():]) {
				t.Errorf("built UDP datagram\n%x\ndiffers from the kernel's\n%x", out[s.PayloadOffset()-UDPLen:], b[p.L4Offset():])
			}
		})
	}
}

func srcDst(p Packet) (netip.Addr, netip.Addr) {
	if ip := p.IPv4(); ip != nil {
		return ip.Src(), ip.Dst()
	}
	return p.IPv6().Src(), p.IPv6().Dst()
}

var (
	specV4 = Spec{
		Src: Endpoint{MAC{0x02, 0, 0, 0, 0, 0x01}, netip.MustParseAddr("192.0.2.1"), 54321},
		Dst: Endpoint{MAC{0x02, 0, 0, 0, 0, 0x02}, netip.MustParseAddr("192.0.2.2"), 54321},
	}
	specV6 = Spec{
		Src: Endpoint{MAC{0x02, 0, 0, 0, 0, 0x01}, netip.MustParseAddr("2001:db8::1"), 40000},
		Dst: Endpoint{MAC{0x02, 0, 0, 0, 0, 0x02}, netip.MustParseAddr("2001:db8::2"), 7},
	}
)

// build returns a frame for s with n payload bytes of 'a', as xsk_rr sends.
func build(t testing.TB, s Spec, n int) []byte {
	t.Helper()
	s.PayloadLen = n
	b := make([]byte, s.FrameLen())
	for i := s.PayloadOffset(); i < len(b); i++ {
		b[i] = 'a'
	}
	got, err := Build(b, s)
	if err != nil {
		t.Fatal(err)
	}
	if got != len(b) {
		t.Fatalf("Build returned %d, FrameLen %d", got, len(b))
	}
	return b
}

func TestBuildParseRoundTrip(t *testing.T) {
	for _, s := range []Spec{specV4, specV6} {
		for _, n := range []int{0, 1, 7, 8, 31, 200, 400, 1024, 1472} {
			t.Run(fmt.Sprintf("IPv%d/%d", s.Family(), n), func(t *testing.T) {
				b := build(t, s, n)
				p, err := Parse(b)
				if err != nil {
					t.Fatal(err)
				}
				src, dst := srcDst(p)
				u := p.UDP()
				if p.Family() != s.Family() || p.Ethernet().Src() != s.Src.MAC || p.Ethernet().Dst() != s.Dst.MAC ||
					src != s.Src.IP || dst != s.Dst.IP || u.SrcPort() != s.Src.Port || u.DstPort() != s.Dst.Port ||
					len(p.Payload()) != n || p.PayloadOffset() != s.PayloadOffset() {
					t.Fatalf("parsed %+v", p)
				}
				if err := p.VerifyChecksums(); err != nil {
					t.Error(err)
				}
				if want := refUDPChecksum(src, dst, u); u.Checksum() != want {
					t.Errorf("UDP checksum %#04x, reference %#04x", u.Checksum(), want)
				}
				if s.Family() == IPv4Family {
					// xsk_rr's IPv4 header: version 4, IHL 5, TOS 0, total length, ID 0, no flags, TTL 64, UDP.
					want := []byte{0x45, 0, byte((28 + n) >> 8), byte(28 + n), 0, 0, 0, 0, 64, 17}
					if !bytes.Equal(b[14:24], want) {
						t.Errorf("IPv4 header starts % x, want % x", b[14:24], want)
					}
					if c := binary.BigEndian.Uint16(b[24:26]); c != ^refSum(append(append([]byte(nil), b[14:24]...), b[26:34]...)) {
						t.Errorf("IPv4 header checksum %#04x does not match the reference", c)
					}
					if len(b) != 14+20+8+n {
						t.Errorf("frame length %d", len(b))
					}
				} else {
					want := []byte{0x60, 0, 0, 0, byte((8 + n) >> 8), byte(8 + n), 17, 64}
					if !bytes.Equal(b[14:22], want) {
						t.Errorf("IPv6 header starts % x, want % x", b[14:22], want)
					}
				}
			})
		}
	}
}

func TestBuildXskRRFrameLength(t *testing.T) {
	// notes/xsk_rr.md §3: "-B 400 -4" sends 442-byte frames.
	s := specV4
	s.PayloadLen = 400
	if s.FrameLen() != 442 {
		t.Errorf("FrameLen = %d, want 442", s.FrameLen())
	}
}

func TestBuildErrors(t *testing.T) {
	mixed := specV4
	mixed.Dst.IP = specV6.Dst.IP
	invalid := specV4
	invalid.Src.IP = netip.Addr{}
	big4 := specV4
	big4.PayloadLen = MaxPayloadIPv4 + 1
	neg := specV6
	neg.PayloadLen = -1
	for _, c := range []struct {
		name string
		s    Spec
		buf  int
		want error
	}{
		{"mixed families", mixed, 2048, ErrAddrFamily},
		{"no address", invalid, 2048, ErrAddrFamily},
		{"payload too large", big4, 1 << 17, ErrPayloadLen},
		{"negative payload", neg, 2048, ErrPayloadLen},
		{"short buffer", specV4, 41, ErrShortBuffer},
	} {
		if _, err := Build(make([]byte, c.buf), c.s); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	max6 := specV6
	max6.PayloadLen = MaxPayloadIPv6
	b := make([]byte, max6.FrameLen())
	if _, err := Build(b, max6); err != nil {
		t.Fatalf("largest IPv6 payload: %v", err)
	}
	if p, err := Parse(b); err != nil || len(p.Payload()) != MaxPayloadIPv6 {
		t.Fatalf("largest IPv6 payload parses to %d bytes, %v", len(p.Payload()), err)
	}
}

func TestSetAddrFamily(t *testing.T) {
	b := build(t, specV4, 0)
	p := parse(t, b)
	before := append([]byte(nil), b...)
	ip4 := p.IPv4()
	for _, a := range []netip.Addr{specV6.Src.IP, {}} {
		if ip4.SetSrc(a) != ErrAddrFamily || ip4.SetDst(a) != ErrAddrFamily {
			t.Errorf("IPv4 header accepted %v", a)
		}
	}
	if !bytes.Equal(b, before) {
		t.Error("a refused address was written")
	}
	if err := ip4.SetDst(netip.MustParseAddr("::ffff:198.51.100.7")); err != nil || ip4.Dst() != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("4-in-6 address: %v, %v", err, ip4.Dst())
	}
	ip6 := parse(t, build(t, specV6, 0)).IPv6()
	for _, a := range []netip.Addr{specV4.Src.IP, {}} {
		if ip6.SetSrc(a) != ErrAddrFamily || ip6.SetDst(a) != ErrAddrFamily {
			t.Errorf("IPv6 header accepted %v", a)
		}
	}
	if err := ip6.SetSrc(netip.MustParseAddr("2001:db8::9")); err != nil || ip6.Src() != netip.MustParseAddr("2001:db8::9") {
		t.Errorf("IPv6 address: %v, %v", err, ip6.Src())
	}
}

func TestParseMAC(t *testing.T) {
	m, err := ParseMAC("02:00:00:00:00:0a")
	if err != nil || m != (MAC{2, 0, 0, 0, 0, 0x0a}) || m.String() != "02:00:00:00:00:0a" {
		t.Errorf("ParseMAC = %v, %v", m, err)
	}
	for _, bad := range []string{"", "02:00:00:00:00", "02:00:00:00:00:00:00:01", "zz:00:00:00:00:00"} {
		if _, err := ParseMAC(bad); err == nil {
			t.Errorf("ParseMAC(%q) accepted", bad)
		}
	}
}

// mutate returns a copy of a frame built from s (payload n) after f changed it.
func mutate(t *testing.T, s Spec, n int, f func(b []byte) []byte) []byte {
	t.Helper()
	return f(build(t, s, n))
}

// withIPv6Ext inserts an 8-byte extension header of type typ right after the IPv6 header.
func withIPv6Ext(b []byte, typ uint8) []byte {
	ext := []byte{b[20], 0, 0, 0, 0, 0, 0, 0}
	out := append(append(append([]byte(nil), b[:54]...), ext...), b[54:]...)
	out[20] = typ
	binary.BigEndian.PutUint16(out[18:20], binary.BigEndian.Uint16(out[18:20])+8)
	return out
}

func TestParseErrors(t *testing.T) {
	v4 := func(f func(b []byte) []byte) []byte { return mutate(t, specV4, 16, f) }
	v6 := func(f func(b []byte) []byte) []byte { return mutate(t, specV6, 16, f) }
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"half an Ethernet header", make([]byte, 13), ErrTruncated},
		{"ARP", v4(func(b []byte) []byte { b[12], b[13] = 0x08, 0x06; return b }), ErrNotIP},
		{"VLAN tag", v4(func(b []byte) []byte { b[12], b[13] = 0x81, 0x00; return b }), ErrNotIP},
		{"IPv4 cut in the header", v4(func(b []byte) []byte { return b[:30] }), ErrTruncated},
		{"IPv4 version 6", v4(func(b []byte) []byte { b[14] = 0x65; return b }), ErrIPVersion},
		{"IPv4 IHL 4", v4(func(b []byte) []byte { b[14] = 0x44; return b }), ErrIPv4HeaderLen},
		{"IPv4 IHL past the buffer", v4(func(b []byte) []byte { b[14] = 0x4f; return b[:14+40] }), ErrTruncated},
		{"IPv4 total length below IHL", v4(func(b []byte) []byte { b[16], b[17] = 0, 19; return b }), ErrLength},
		{"IPv4 total length past the buffer", v4(func(b []byte) []byte { b[17]++; return b }), ErrTruncated},
		{"IPv4 more fragments", v4(func(b []byte) []byte { b[20] = 0x20; return b }), ErrFragment},
		{"IPv4 later fragment", v4(func(b []byte) []byte { b[21] = 1; return b }), ErrFragment},
		{"IPv4 TCP", v4(func(b []byte) []byte { b[23] = 6; return b }), ErrNotUDP},
		{"IPv4 no room for UDP", v4(func(b []byte) []byte { b[16], b[17] = 0, 27; return b }), ErrLength},
		{"UDP length 7", v4(func(b []byte) []byte { b[38], b[39] = 0, 7; return b }), ErrLength},
		{"UDP length past IP", v4(func(b []byte) []byte { b[39]++; return b }), ErrLength},
		{"IPv6 cut in the header", v6(func(b []byte) []byte { return b[:50] }), ErrTruncated},
		{"IPv6 version 4", v6(func(b []byte) []byte { b[14] = 0x40; return b }), ErrIPVersion},
		{"IPv6 payload length past the buffer", v6(func(b []byte) []byte { b[19]++; return b }), ErrTruncated},
		{"IPv6 ICMPv6", v6(func(b []byte) []byte { b[20] = 58; return b }), ErrNotUDP},
		{"IPv6 fragment header", v6(func(b []byte) []byte { return withIPv6Ext(b, 44) }), ErrFragment},
		{"IPv6 routing header", v6(func(b []byte) []byte { return withIPv6Ext(b, 43) }), ErrExtensionHeader},
		{"IPv6 extension header past the payload", v6(func(b []byte) []byte {
			b = withIPv6Ext(b, 60)
			b[55] = 200 // header claims 1608 bytes
			return b
		}), ErrLength},
		{"IPv6 hop-by-hop after destination options", v6(func(b []byte) []byte {
			b = withIPv6Ext(withIPv6Ext(b, 0), 60) // dest-opts, then hop-by-hop, then UDP
			return b
		}), ErrExtensionHeader},
		{"IPv6 payload length 0 (jumbogram)", v6(func(b []byte) []byte { b[18], b[19] = 0, 0; return b }), ErrLength},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse(c.b)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if p.Family() != 0 || p.Frame() != nil {
				t.Errorf("rejected frame returned a non-zero Packet")
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	t.Run("Ethernet padding", func(t *testing.T) {
		b := append(build(t, specV4, 2), make([]byte, 16)...) // 44-byte frame padded to 60
		p, err := Parse(b)
		if err != nil || p.Len() != 44 || len(p.Payload()) != 2 {
			t.Fatalf("len %d payload %d, %v", p.Len(), len(p.Payload()), err)
		}
	})
	t.Run("IPv4 options", func(t *testing.T) {
		b := build(t, specV4, 16)
		opts := []byte{0x94, 0x04, 0, 0} // router alert
		b = append(append(append([]byte(nil), b[:34]...), opts...), b[34:]...)
		b[14] = 0x46
		binary.BigEndian.PutUint16(b[16:18], binary.BigEndian.Uint16(b[16:18])+4)
		ip := IPv4(b[14:])
		ip.SetChecksum(ip.ComputeChecksum())
		p, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if p.L4Offset() != 14+24 || !bytes.Equal(p.IPv4().Options(), opts) || string(p.Payload()) != "aaaaaaaaaaaaaaaa" {
			t.Fatalf("L4 at %d, options % x, payload %q", p.L4Offset(), p.IPv4().Options(), p.Payload())
		}
		if err := p.VerifyChecksums(); err != nil {
			t.Error(err)
		}
	})
	t.Run("IPv4 DF", func(t *testing.T) {
		b := build(t, specV4, 16)
		b[20] = 0x40
		if _, err := Parse(b); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("IPv6 hop-by-hop and destination options", func(t *testing.T) {
		b := withIPv6Ext(withIPv6Ext(build(t, specV6, 16), 60), 0)
		p, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if p.L4Offset() != 14+40+16 || string(p.Payload()) != "aaaaaaaaaaaaaaaa" {
			t.Fatalf("L4 at %d, payload %q", p.L4Offset(), p.Payload())
		}
		if err := p.VerifyChecksums(); err != nil {
			t.Errorf("extension headers are not in the UDP checksum, yet: %v", err)
		}
	})
	t.Run("UDP surplus area", func(t *testing.T) {
		b := build(t, specV4, 16)
		binary.BigEndian.PutUint16(b[38:40], 8+10) // UDP says 10 payload bytes, IP carries 16
		p, err := Parse(b)
		if err != nil || len(p.Payload()) != 10 || p.Len() != len(b) {
			t.Fatalf("payload %d len %d, %v", len(p.Payload()), p.Len(), err)
		}
	})
}

func TestParseBuildAllocs(t *testing.T) {
	b := build(t, specV6, 400)
	bad := b[:30]
	s := specV4
	s.PayloadLen = 400
	out := make([]byte, s.FrameLen())
	for name, f := range map[string]func(){
		"Parse":          func() { _, _ = Parse(b) },
		"Parse rejected": func() { _, _ = Parse(bad) },
		"Build":          func() { _, _ = Build(out, s) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	for _, s := range []Spec{specV4, specV6} {
		frame := build(b, s, 400)
		b.Run(fmt.Sprintf("IPv%d", s.Family()), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, s := range []Spec{specV4, specV6} {
		s.PayloadLen = 400
		out := make([]byte, s.FrameLen())
		b.Run(fmt.Sprintf("IPv%d", s.Family()), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Build(out, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
