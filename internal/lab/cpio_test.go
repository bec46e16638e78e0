package lab

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
)

type cpioEntry struct {
	name string
	mode uint32
	rdev [2]uint32
	data string
}

// readNewc is an independent reader of the newc format, checking the alignment rules the kernel relies on.
func readNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	for {
		if off%4 != 0 || off+110 > len(b) {
			t.Fatalf("header at %d misaligned or truncated (len %d)", off, len(b))
		}
		h := b[off : off+110]
		if string(h[:6]) != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("field %d: %v", i, err)
			}
			return uint32(v)
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+int(namesize)-1])
		if b[off+110+int(namesize)-1] != 0 {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		off = align4(off + 110 + int(namesize))
		data := string(b[off : off+int(size)])
		off = align4(off + int(size))
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, cpioEntry{name, mode, [2]uint32{field(9), field(10)}, data})
	}
}

func align4(n int) int { return (n + 3) &^ 3 }

func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIO(&buf)
	c.CharDev("/dev/console", 0o600, 5, 1)
	c.Bytes("/napilab/plan.json", 0o600, []byte(`{"x":1}`))
	c.Bytes("/lib/modules/k/kernel/a.ko.xz", 0o644, []byte("12345"))
	c.Symlink("/var/run", "/run")
	c.Dir("/napilab/bin")
	c.Bytes("/napilab/x", 0o755, nil)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, e := range readNewc(t, buf.Bytes()) {
		got += fmt.Sprintf("%s %o %v %q\n", e.name, e.mode, e.rdev, e.data)
	}
	want := `dev 40755 [0 0] ""
dev/console 20600 [5 1] ""
napilab 40755 [0 0] ""
napilab/plan.json 100600 [0 0] "{\"x\":1}"
lib 40755 [0 0] ""
lib/modules 40755 [0 0] ""
lib/modules/k 40755 [0 0] ""
lib/modules/k/kernel 40755 [0 0] ""
lib/modules/k/kernel/a.ko.xz 100644 [0 0] "12345"
var 40755 [0 0] ""
var/run 120777 [0 0] "/run"
napilab/bin 40755 [0 0] ""
napilab/x 100755 [0 0] ""
`
	if got != want {
		t.Errorf("archive:\n%s\nwant:\n%s", got, want)
	}
}

func TestCPIOShortReader(t *testing.T) {
	c := newCPIO(&bytes.Buffer{})
	c.File("/f", 0o644, 10, bytes.NewReader([]byte("short")))
	if err := c.Close(); err == nil {
		t.Fatal("a file shorter than its declared size was accepted")
	}
}
