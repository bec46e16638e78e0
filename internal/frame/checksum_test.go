package frame

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// refSum is the Internet checksum sum written the plain way, 16-bit big-endian words one at a time, as an oracle
// independent of Checksum's 64-bit little-endian loop.
func refSum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func TestChecksumRFC1071Example(t *testing.T) {
	// RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Checksum(b, 0); got != 0xddf2 {
		t.Errorf("Checksum = %#04x, want 0xddf2", got)
	}
	if got := refSum(b); got != 0xddf2 {
		t.Errorf("refSum = %#04x, want 0xddf2 (the oracle is wrong)", got)
	}
}

func TestChecksumMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 300; n++ {
		for _, fill := range []string{"random", "ones", "zeros"} {
			b := make([]byte, n)
			for i := range b {
				switch fill {
				case "random":
					b[i] = byte(rng.Uint32())
				case "ones":
					b[i] = 0xff
				}
			}
			init := uint16(rng.Uint32())
			want := Combine(refSum(b), init)
			if got := Checksum(b, init); got != want {
				t.Fatalf("len %d %s, initial %#04x: Checksum = %#04x, reference %#04x", n, fill, init, got, want)
			}
		}
	}
}

func TestChecksumChains(t *testing.T) {
	// Summing a buffer in even-length pieces through initial equals summing it at once.
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 999)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	whole := Checksum(b, 0)
	for cut := 0; cut <= len(b); cut += 2 {
		if got := Checksum(b[cut:], Checksum(b[:cut], 0)); got != whole {
			t.Fatalf("cut at %d: %#04x, whole %#04x", cut, got, whole)
		}
	}
}

func TestCombine(t *testing.T) {
	for _, c := range []struct{ a, b, want uint16 }{
		{0, 0, 0},
		{1, 2, 3},
		{0xffff, 1, 1},                    // -0 + 1
		{0xffff, 0xffff, 0xffff},          // -0 + -0
		{0x8000, 0x8000, 1},               // end-around carry
		{0x1234, ^uint16(0x1234), 0xffff}, // x - x = -0
	} {
		if got := Combine(c.a, c.b); got != c.want {
			t.Errorf("Combine(%#x, %#x) = %#x, want %#x", c.a, c.b, got, c.want)
		}
	}
}

func TestChecksumAllocs(t *testing.T) {
	b := make([]byte, 1500)
	if n := testing.AllocsPerRun(100, func() { _ = Checksum(b, 0) }); n != 0 {
		t.Errorf("Checksum allocates %v times per call", n)
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{64, 442, 1500, 4096} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var s uint16
			for b.Loop() {
				s = Checksum(buf, s)
			}
		})
	}
}

func BenchmarkChecksumReference(b *testing.B) {
	buf := make([]byte, 1500)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		_ = refSum(buf)
	}
}
