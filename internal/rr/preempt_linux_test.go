package rr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// restartHelperEnv makes this test binary the program TestRestartForSpinning restarts: it prints its pid and
// GODEBUG and its name (comm), restarts, and prints them again from the restarted program.
const restartHelperEnv = "NAPILAB_TEST_RESTART_HELPER"

// restartRemoveSelfEnv makes the helper delete its own executable before it restarts, as an upgrade or a
// `go run` clean-up can while a program runs.
const restartRemoveSelfEnv = "NAPILAB_TEST_RESTART_REMOVE_SELF"

func TestMain(m *testing.M) {
	if os.Getenv(restartHelperEnv) == "1" {
		comm, _ := os.ReadFile("/proc/self/comm")
		fmt.Printf("pid=%d godebug=%q comm=%q\n", os.Getpid(), os.Getenv("GODEBUG"), strings.TrimSpace(string(comm)))
		if os.Getenv(restartRemoveSelfEnv) == "1" && os.Getenv("GODEBUG") == "" {
			if err := os.Remove(os.Args[0]); err != nil {
				fmt.Printf("error: %v\n", err)
			}
		}
		if err := RestartForSpinning(); err != nil {
			fmt.Printf("error: %v\n", err)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runRestartHelper runs program (a copy of this test binary) as the restart helper, with env added to an
// environment without GODEBUG, and returns the lines it printed: its own and any error.
func runRestartHelper(t *testing.T, program string, env ...string) []string {
	t.Helper()
	cmd := exec.Command(program)
	cmd.Env = append(append(withoutGODEBUG(os.Environ()), restartHelperEnv+"=1"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "pid=") || strings.HasPrefix(l, "error:") {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestRestartForSpinning(t *testing.T) {
	lines := runRestartHelper(t, os.Args[0])
	if len(lines) != 2 {
		t.Fatalf("want the helper's line before and after the restart, got %q", lines)
	}
	var pid1, pid2 int
	var env1, env2, comm1, comm2 string
	if _, err := fmt.Sscanf(lines[0], "pid=%d godebug=%q comm=%q", &pid1, &env1, &comm1); err != nil {
		t.Fatalf("%q: %v", lines[0], err)
	}
	if _, err := fmt.Sscanf(lines[1], "pid=%d godebug=%q comm=%q", &pid2, &env2, &comm2); err != nil {
		t.Fatalf("%q: %v", lines[1], err)
	}
	if pid1 != pid2 || env1 != "" || env2 != "asyncpreemptoff=1" {
		t.Errorf("restart: pid %d → %d, GODEBUG %q → %q; want the same pid (an exec, not a child) and "+
			"asyncpreemptoff=1", pid1, pid2, env1, env2)
	}
	if comm1 == "" || comm2 != comm1 {
		t.Errorf("restart renamed the process from %q to %q; want its name kept (ps, top and pgrep show it)",
			comm1, comm2)
	}

	// A GODEBUG that already says it: no restart.
	if lines := runRestartHelper(t, os.Args[0], "GODEBUG=asyncpreemptoff=0"); len(lines) != 1 || !strings.Contains(lines[0], `"asyncpreemptoff=0"`) {
		t.Errorf("with asyncpreemptoff=0 set, the helper printed %q; want one line and no restart", lines)
	}
}

// TestRestartWithoutItsFile: a program whose executable was deleted while it ran still restarts, as itself
// (through /proc/self/exe).
func TestRestartWithoutItsFile(t *testing.T) {
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	program := filepath.Join(t.TempDir(), "restart-helper")
	if err := os.WriteFile(program, self, 0o700); err != nil {
		t.Fatal(err)
	}
	lines := runRestartHelper(t, program, restartRemoveSelfEnv+"=1")
	if _, err := os.Stat(program); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the helper did not delete its executable (%v): %q", err, lines)
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "pid=") || !strings.Contains(lines[1], `godebug="asyncpreemptoff=1"`) {
		t.Errorf("want the helper's line before and after a restart without its file, and no error; got %q", lines)
	}
}

// withoutGODEBUG drops GODEBUG from env, so the helper starts as a user's command would without it.
func withoutGODEBUG(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
}
