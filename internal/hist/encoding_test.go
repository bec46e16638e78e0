package hist

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

func recorded(t testing.TB, vs ...int64) *Recorder {
	t.Helper()
	r, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		r.Record(v)
	}
	return r
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	var vs []int64
	for i := range 20000 {
		vs = append(vs, int64(3000+i%977*13+i/1000*i%7919)) // a few µs with a tail
	}
	vs = append(vs, 250_000, 1_700_000)
	r := recorded(t, vs...)
	enc, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "HISTF") {
		t.Fatalf("encoding %.20q does not start like HdrHistogram's V2 compressed base64", enc)
	}
	b, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if b.Count() != r.Count() {
		t.Fatalf("decoded %d values, recorded %d", b.Count(), r.Count())
	}
	// Below the last bucket the two agree exactly; in it the Recorder knows the exact max, the buckets only its
	// bucket's top.
	for _, p := range []float64{1, 5, 50, 90, 99, 99.9, 99.99} {
		want := r.Percentile(p)
		if got := b.Percentile(p); got != want && want != r.Max() {
			t.Errorf("p%v: decoded %d, recorded %d", p, got, want)
		}
	}
	if b.Max() < r.Max() || b.Max() > r.Max()+r.Max()/1000 || b.Min() > r.Min() {
		t.Fatalf("decoded bounds %d..%d do not hold the recorded %d..%d within a bucket", b.Min(), b.Max(), r.Min(), r.Max())
	}
}

func TestDecodeEmpty(t *testing.T) {
	enc, err := recorded(t).Encode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if b.Count() != 0 || b.Min() != 0 || b.Max() != 0 || b.Percentile(99) != 0 {
		t.Fatalf("empty histogram decoded as count %d min %d max %d p99 %d", b.Count(), b.Min(), b.Max(), b.Percentile(99))
	}
}

func TestDecodeRejects(t *testing.T) {
	wide := hdrhistogram.New(1, 1<<50, 3) // values up to 13 days: beyond any latency Config accepts
	_ = wide.RecordValue(5)
	wideEnc, err := wide.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := recorded(t, 1000, 2000).Encode()
	for name, in := range map[string]string{
		"empty":      "",
		"not base64": "this is not a histogram",
		"truncated":  good[:len(good)/2],
		"too wide":   string(wideEnc),
		"json":       `{"p99_ns": 5}`,
	} {
		if _, err := Decode(in); !errors.Is(err, ErrNotHistogram) {
			t.Errorf("%s: err = %v, want ErrNotHistogram", name, err)
		}
	}
}

func TestWriteHgrm(t *testing.T) {
	b, err := Decode(mustEncode(t, recorded(t, 1000, 2000, 3000, 4000)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := b.WriteHgrm(&out, 1e3); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.HasPrefix(strings.TrimSpace(lines[0]), "Value") || !strings.Contains(lines[0], "1/(1-Percentile)") {
		t.Fatalf("header %q", lines[0])
	}
	// The line before the three footer lines: 100 %, all 4 values, at the top of 4000's bucket (2 ns wide).
	last := strings.Fields(lines[len(lines)-4])
	if len(last) != 4 || last[0] != "4.001" || last[1] != "1.000000" || last[2] != "4" || last[3] != "inf" {
		t.Fatalf("last percentile line %q, want 4.001 µs at 1.0 with 4 values", lines[len(lines)-4])
	}
	if !strings.Contains(out.String(), "Total count    =            4]") {
		t.Fatalf("footer lacks the total count:\n%s", out.String())
	}
	if err := b.WriteHgrm(&out, 0); err == nil {
		t.Fatal("a zero unit was accepted")
	}
}

func mustEncode(t testing.TB, r *Recorder) string {
	t.Helper()
	s, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func FuzzDecode(f *testing.F) {
	f.Add(mustEncode(f, recorded(f, 1000, 2000, 3000, 4000)))
	f.Add(mustEncode(f, recorded(f)))
	f.Add(mustEncode(f, recorded(f, 1, 10e9, 5_000_000)))
	f.Add("HISTFAAAACB4nJNpmSzMwMDAxQABzFCaEUzOmNZg/wEi0AgAKb0EAQ==")
	f.Add("HISTFAAAAA==")
	for _, digits := range []int{1, 5} { // the widest and the coarsest geometry Decode accepts
		h := hdrhistogram.New(1, maxHighest, digits)
		_ = h.RecordValue(maxHighest)
		b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := Decode(s)
		if err != nil {
			if !errors.Is(err, ErrNotHistogram) {
				t.Fatalf("error %v is not ErrNotHistogram", err)
			}
			return
		}
		prev := b.Min()
		for _, p := range []float64{0, 5, 50, 90, 99, 99.9, 99.99, 100} {
			v := b.Percentile(p)
			if v < prev || v > b.Max() {
				t.Fatalf("p%v = %d outside [%d, %d] or below the previous percentile", p, v, prev, b.Max())
			}
			prev = v
		}
		if err := b.WriteHgrm(&bytes.Buffer{}, 1e3); err != nil {
			t.Fatal(err)
		}
	})
}
