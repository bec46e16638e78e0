package kernel

import (
	"bytes"
	"os"
	"strconv"
	"testing"
)

func TestParseStatStart(t *testing.T) {
	// The command name may hold spaces and parentheses; fields count from the last ')'.
	stat := "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 200 " +
		"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
	got, err := ParseStatStart([]byte(stat))
	if err != nil || got != 987654 {
		t.Fatalf("ParseStatStart = %d, %v; want 987654", got, err)
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 zz"} {
		if _, err := ParseStatStart([]byte(bad)); err == nil {
			t.Errorf("ParseStatStart(%q) succeeded", bad)
		}
	}
}

func FuzzParseStatStart(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 1 1 0 0 1 1 0 0 20 0 1 0 5 1 1 1 1 1"))
	f.Add([]byte("7 (a ) b)) R"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseStatStart(b) // must not panic; errors are fine
		if err == nil && !bytes.Contains(b, []byte(strconv.FormatUint(v, 10))) {
			t.Fatalf("ParseStatStart(%q) = %d, which is not in the input", b, v)
		}
	})
}

func TestProcessAlive(t *testing.T) {
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if self.PID != os.Getpid() || !self.Alive() {
		t.Fatalf("Self() = %+v, alive %v", self, self.Alive())
	}
	if (Process{PID: self.PID, Start: self.Start + 1}).Alive() {
		t.Error("a process with this PID but another start time counts as alive")
	}
	if (Process{}).Alive() {
		t.Error("PID 0 counts as alive")
	}
}
