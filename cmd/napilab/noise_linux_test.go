package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/testenv"
)

// TestNoise: the command measures the CPUs it is given, as JSON and as text, and refuses a CPU the process may
// not use by naming the flag.
func TestNoise(t *testing.T) {
	testenv.Exclusive(t)
	usable, err := rr.UsableCPUs()
	if err != nil {
		t.Fatal(err)
	}
	cpu := usable.List()[0]
	c := strconv.Itoa(cpu)
	status, out, errs := napilab(t, "noise", "--cpus", c, "--duration", "150ms", "--json")
	if status != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", status, errs)
	}
	var r rr.NoiseResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if res := r.CPUs; len(res) != 1 || res[0].CPU != cpu || res[0].Reads < 2 || res[0].Gaps.Min.String() != "10µs" {
		t.Fatalf("results %+v", res)
	}
	status, out, errs = napilab(t, "noise", "--cpus", c, "--duration", "100ms", "--min", "5us")
	if status != 0 || errs != "" || !strings.Contains(out, "gaps of 5.00 µs or more") ||
		!strings.Contains(out, "\n  CPU "+c+": ") {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", status, errs, out)
	}
	status, out, errs = napilab(t, "noise", "--cpus", c+",4095", "--duration", "100ms")
	want := "napilab: --cpus names CPU 4095, which this process may not run on"
	if status != 1 || out != "" || !strings.HasPrefix(errs, want) {
		t.Fatalf("exit %d, stdout %q, stderr %q", status, out, errs)
	}
}
