package sysknob_test

import (
	"io"
	"os"
	"testing"
)

// envSleeper makes the test binary a child that blocks until its stdin closes: a thread whose scheduling the
// privileged tests may change without touching anything of the system's.
const envSleeper = "SYSKNOB_TEST_SLEEPER"

func TestMain(m *testing.M) {
	if os.Getenv(envSleeper) == "1" {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}
