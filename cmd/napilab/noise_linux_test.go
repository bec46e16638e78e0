package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/napilab/napilab/internal/rr"
)

// TestNoise: the command measures the CPUs it is given, as JSON and as text, and refuses a CPU the process may
// not use by naming the flag.
func TestNoise(t *testing.T) {
	status, out, errs := napilab(t, "noise", "--cpus", "0", "--duration", "150ms", "--json")
	if status != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", status, errs)
	}
	var r rr.NoiseResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if res := r.CPUs; len(res) != 1 || res[0].CPU != 0 || res[0].Reads < 2 || res[0].Gaps.Min.String() != "10µs" {
		t.Fatalf("results %+v", res)
	}
	status, out, errs = napilab(t, "noise", "--cpus", "0", "--duration", "100ms", "--min", "5us")
	if status != 0 || errs != "" || !strings.Contains(out, "gaps of 5.00 µs or more") ||
		!strings.Contains(out, "\n  CPU 0: ") {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", status, errs, out)
	}
	status, out, errs = napilab(t, "noise", "--cpus", "0,4095", "--duration", "100ms")
	if status != 1 || out != "" || !strings.HasPrefix(errs, "napilab: --cpus names CPU 4095, which this process may not run on") {
		t.Fatalf("exit %d, stdout %q, stderr %q", status, out, errs)
	}
}
