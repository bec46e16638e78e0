package frame

import (
	"bytes"
	"testing"
)

// canonical reports whether a parsed frame is exactly what Build writes for its addresses, ports and payload:
// xsk_rr's header values, no IPv4 options or IPv6 extension headers, no UDP surplus, valid checksums.
func canonical(p Packet) bool {
	if p.VerifyChecksums() != nil || p.udpEnd != p.Len() {
		return false
	}
	u := p.UDP()
	if u.Checksum() == 0 { // IPv4 without checksum: Build always writes one
		return false
	}
	if ip := p.IPv4(); ip != nil {
		return ip.HeaderLen() == IPv4MinLen && ip.TOS() == 0 && ip.ID() == 0 && ip.FlagsFragment() == 0 && ip.TTL() == DefaultTTL
	}
	ip := p.IPv6()
	return len(ip) == IPv6Len && ip.TrafficClass() == 0 && ip.FlowLabel() == 0 && ip.HopLimit() == DefaultTTL
}

func specOf(p Packet) Spec {
	src, dst := srcDst(p)
	e, u := p.Ethernet(), p.UDP()
	return Spec{
		Src:        Endpoint{e.Src(), src, u.SrcPort()},
		Dst:        Endpoint{e.Dst(), dst, u.DstPort()},
		PayloadLen: len(p.Payload()),
	}
}

func addSeeds(f *testing.F, add func(b []byte)) {
	add(mustHex(f, capturedIPv4))
	add(mustHex(f, capturedIPv6))
	for _, n := range []int{0, 1, 400} {
		add(build(f, specV4, n))
		add(build(f, specV6, n))
	}
	add(withIPv6Ext(withIPv6Ext(build(f, specV6, 9), 60), 0))
	add(partial(f, build(f, specV4, 33)))
}

func FuzzParse(f *testing.F) {
	addSeeds(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			if p.Family() != 0 || p.Frame() != nil {
				t.Fatalf("error %v with a non-zero Packet", err)
			}
			return
		}
		// Every offset is inside the buffer and consistent with the length fields.
		if !(EthernetLen+IPv4MinLen <= p.L4Offset() && p.PayloadOffset() <= p.udpEnd && p.udpEnd <= p.Len() && p.Len() <= len(b)) {
			t.Fatalf("offsets out of order: L4 %d payload %d udp end %d len %d buffer %d",
				p.L4Offset(), p.PayloadOffset(), p.udpEnd, p.Len(), len(b))
		}
		if &p.Frame()[0] != &b[0] {
			t.Fatal("Packet does not view the caller's buffer")
		}
		if int(p.UDP().Length()) != len(p.UDP()) || len(p.Payload()) != len(p.UDP())-UDPLen {
			t.Fatalf("UDP length %d, view %d, payload %d", p.UDP().Length(), len(p.UDP()), len(p.Payload()))
		}
		switch p.Family() {
		case IPv4Family:
			ip := p.IPv4()
			if ip.Version() != 4 || ip.HeaderLen() != len(ip) || int(ip.TotalLen()) != p.Len()-EthernetLen || ip.Protocol() != ProtocolUDP {
				t.Fatalf("IPv4 header length %d (view %d), total %d, frame %d", ip.HeaderLen(), len(ip), ip.TotalLen(), p.Len())
			}
		case IPv6Family:
			ip := p.IPv6()
			if ip.Version() != 6 || int(ip.PayloadLen()) != p.Len()-EthernetLen-IPv6Len {
				t.Fatalf("IPv6 payload length %d, frame %d", ip.PayloadLen(), p.Len())
			}
		default:
			t.Fatalf("family %d", p.Family())
		}

		// Build from what Parse saw, with the same payload: the result parses back to the same flow, always
		// has valid checksums, and is byte for byte the input when the input was canonical.
		s := specOf(p)
		out := make([]byte, s.FrameLen())
		copy(out[s.PayloadOffset():], p.Payload())
		if _, err := Build(out, s); err != nil {
			t.Fatalf("Build(%+v): %v", s, err)
		}
		q, err := Parse(out)
		if err != nil {
			t.Fatalf("built frame does not parse: %v", err)
		}
		if specOf(q) != s || !bytes.Equal(q.Payload(), p.Payload()) || !canonical(q) {
			t.Fatalf("built frame parses to %+v, canonical %v", specOf(q), canonical(q))
		}
		if canonical(p) && !bytes.Equal(out, p.Frame()) {
			t.Fatalf("canonical frame\n%x\nrebuilt as\n%x", p.Frame(), out)
		}
	})
}

func FuzzReply(f *testing.F) {
	addSeeds(f, func(b []byte) { f.Add(b, false); f.Add(b, true) })
	f.Fuzz(func(t *testing.T, b []byte, recompute bool) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		req := append([]byte(nil), b...)
		before := p.VerifyChecksums()
		policy := KeepChecksums
		if recompute {
			policy = RecomputeChecksums
		}
		fixed := p.Reply(policy)
		r, err := Parse(b)
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if r.Len() != p.Len() || r.L4Offset() != p.L4Offset() || !bytes.Equal(r.Payload(), req[p.PayloadOffset():p.udpEnd]) {
			t.Fatal("reply changed the layout or the payload")
		}
		q := Packet{frame: req[:p.Len()], family: p.family, l4: p.l4, udpEnd: p.udpEnd}
		qs, qd := srcDst(q)
		rs, rd := srcDst(r)
		if rs != qd || rd != qs || r.Ethernet().Src() != q.Ethernet().Dst() || r.Ethernet().Dst() != q.Ethernet().Src() ||
			r.UDP().SrcPort() != q.UDP().DstPort() || r.UDP().DstPort() != q.UDP().SrcPort() {
			t.Fatal("ends not swapped")
		}
		after := r.VerifyChecksums()
		if recompute {
			if after != nil {
				t.Fatalf("RecomputeChecksums left %v", after)
			}
			if fixed != (before != nil) {
				t.Fatalf("fixed = %v but the request's checksums said %v", fixed, before)
			}
			return
		}
		if fixed || after != before {
			t.Fatalf("KeepChecksums changed validity: before %v, after %v (fixed %v)", before, after, fixed)
		}
		r.Reply(KeepChecksums)
		if !bytes.Equal(b, req) {
			t.Fatal("replying twice with KeepChecksums does not restore the request")
		}
	})
}

// FuzzAnswer: whatever arrives, Answer either refuses it and leaves it as it was, or makes a reply whose
// checksums verify; under KeepChecksums it answers only requests whose own checksums verified.
func FuzzAnswer(f *testing.F) {
	addSeeds(f, func(b []byte) { f.Add(b, false); f.Add(b, true) })
	f.Fuzz(func(t *testing.T, b []byte, recompute bool) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		req := append([]byte(nil), b...)
		before := p.VerifyChecksums()
		policy := KeepChecksums
		if recompute {
			policy = RecomputeChecksums
		}
		fixed, err := p.Answer(policy)
		if err != nil {
			if fixed || !bytes.Equal(b, req) {
				t.Fatalf("refused (%v), yet changed the frame or reported a fix", err)
			}
			return
		}
		if !recompute && (before != nil || fixed) {
			t.Fatalf("KeepChecksums answered a request whose checksums said %v (fixed %v)", before, fixed)
		}
		if fixed != (before != nil) {
			t.Fatalf("fixed = %v, but the request's checksums said %v", fixed, before)
		}
		r, err := Parse(b)
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if err := r.VerifyChecksums(); err != nil {
			t.Fatalf("the reply does not verify: %v", err)
		}
		q := Packet{frame: req[:p.Len()], family: p.family, l4: p.l4, udpEnd: p.udpEnd}
		qs, qd := srcDst(q)
		rs, rd := srcDst(r)
		if rs != qd || rd != qs || r.UDP().SrcPort() != q.UDP().DstPort() || !bytes.Equal(r.Payload(), q.Payload()) {
			t.Fatal("the reply is not the request turned around")
		}
	})
}
