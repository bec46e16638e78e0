package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/napilab/napilab/internal/testenv"
)

// TestPrivDemoInterrupted: SIGINT ends napilab demo with the interrupted sentence and status 130, whether it
// comes while the testbed and the agent are being set up or between cells, and what the modes changed
// machine-wide (busy_read, which busy-poll sets to 400 µs) is back as it was.
func TestPrivDemoInterrupted(t *testing.T) {
	testenv.RequirePriv(t)
	testenv.Exclusive(t)
	busyRead := func() string { return cliBusyRead(t) }
	before := busyRead()
	for _, c := range []struct{ name, after string }{
		{"while setting up", "napilab demo on a veth testbed"},
		{"between cells", "[2/"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "demo.json")
			p := cliStart(t, "demo", "--modes", "interrupts,busy-poll", "--load", "12.5k", "--duration", "200ms",
				"--warmup", "0s", "--reps", "20", "--json", out)
			p.waitLine(t, c.after)
			p.signal(t, syscall.SIGINT)
			code, output := p.wait(t)
			if code != 130 || !strings.Contains(output, "interrupted; everything napilab changed is restored") ||
				strings.Contains(output, "context canceled") {
				t.Fatalf("status %d; want 130 and the interrupted sentence:\n%s", code, output)
			}
			if got := busyRead(); got != before {
				t.Fatalf("busy_read is %s after the interrupted demo, %s before", got, before)
			}
		})
	}
}
