package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDeviceNotHere: an interface that is not in xsk_rr's network namespace is one sentence naming the
// namespace searched and how to run xsk_rr where the interface is, status 1, before anything is opened.
func TestDeviceNotHere(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(strings.Fields("-4 -i nosuchdev0 -S 10.0.0.1 -D 10.0.0.2 -m 02:00:00:00:00:01 "+
		"-M 02:00:00:00:00:02 -p 54321"), &out, &errOut)
	msg := errOut.String()
	if code != 1 || !strings.Contains(msg, `-i "nosuchdev0" does not exist in this process's network namespace`) ||
		!strings.Contains(msg, "ip netns exec NAME xsk_rr") || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
		t.Fatalf("status %d; want 1 and one sentence naming the namespace and ip netns exec:\n%s%s", code, &out, msg)
	}
}
