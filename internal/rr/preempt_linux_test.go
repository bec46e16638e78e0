package rr

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// restartHelperEnv makes this test binary the program TestRestartForSpinning restarts: it prints its pid and
// GODEBUG, restarts, and prints them again from the restarted program.
const restartHelperEnv = "NAPILAB_TEST_RESTART_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(restartHelperEnv) == "1" {
		fmt.Printf("pid=%d godebug=%q\n", os.Getpid(), os.Getenv("GODEBUG"))
		if err := RestartForSpinning(); err != nil {
			fmt.Printf("error: %v\n", err)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestRestartForSpinning(t *testing.T) {
	run := func(godebug ...string) []string {
		t.Helper()
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(append(withoutGODEBUG(os.Environ()), restartHelperEnv+"=1"), godebug...)
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

	lines := run()
	if len(lines) != 2 {
		t.Fatalf("want the helper's line before and after the restart, got %q", lines)
	}
	var pid1, pid2 int
	var env1, env2 string
	if _, err := fmt.Sscanf(lines[0], "pid=%d godebug=%q", &pid1, &env1); err != nil {
		t.Fatalf("%q: %v", lines[0], err)
	}
	if _, err := fmt.Sscanf(lines[1], "pid=%d godebug=%q", &pid2, &env2); err != nil {
		t.Fatalf("%q: %v", lines[1], err)
	}
	if pid1 != pid2 || env1 != "" || env2 != "asyncpreemptoff=1" {
		t.Errorf("restart: pid %d → %d, GODEBUG %q → %q; want the same pid (an exec, not a child) and "+
			"asyncpreemptoff=1", pid1, pid2, env1, env2)
	}

	// A GODEBUG that already says it: no restart.
	if lines := run("GODEBUG=asyncpreemptoff=0"); len(lines) != 1 || !strings.Contains(lines[0], `"asyncpreemptoff=0"`) {
		t.Errorf("with asyncpreemptoff=0 set, the helper printed %q; want one line and no restart", lines)
	}
}

// withoutGODEBUG drops GODEBUG from env, so the helper starts as a user's command would without it.
func withoutGODEBUG(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
}
