package lab

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/napilab/napilab/internal/lab/guest"
)

// BenchmarkParseConsole parses a 1 MiB console (a verbose test run) with 100 steps.
func BenchmarkParseConsole(b *testing.B) {
	var log bytes.Buffer
	log.WriteString(guest.StartLine(testNonce, "7.3.4+deb13-cloud-amd64", 2000) + "\n")
	for i := 0; log.Len() < 1<<20; i++ {
		fmt.Fprintf(&log, "=== RUN   TestSomething%d\n--- PASS: TestSomething%d (0.00s)\n", i, i)
		if i%100 == 0 && i/100 < 100 {
			log.WriteString(guest.StepLine(testNonce, i/100, 0) + "\n")
		}
	}
	log.WriteString(guest.ExitLine(testNonce, 0) + "\n")
	b.SetBytes(int64(log.Len()))
	for b.Loop() {
		if v := parseConsole(log.Bytes(), testNonce); !v.exited {
			b.Fatal("no verdict")
		}
	}
}

// BenchmarkCPIO writes a 16 MiB file into an archive (the size of a napilab binary as init).
func BenchmarkCPIO(b *testing.B) {
	data := make([]byte, 16<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c := newCPIO(io.Discard)
		c.Bytes("/init", 0o755, data)
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
