package rr

import (
	"os"
	"testing"
)

// TestLockThreadNames: a locked benchmark thread carries its name, so top -H and napilab trace tell the rr
// threads apart; the name dies with the thread, which exits with its goroutine.
func TestLockThreadNames(t *testing.T) {
	got := make(chan string, 1)
	go func() {
		if _, err := lockThread("rr-test", -1, 0); err != nil {
			got <- err.Error()
			return
		}
		b, err := os.ReadFile("/proc/thread-self/comm")
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(b)
	}()
	if name := <-got; name != "rr-test\n" {
		t.Fatalf("a thread locked as rr-test reads comm %q", name)
	}
}
