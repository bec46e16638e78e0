package main

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
)

// napiBed is a veth testbed whose server end has a NAPI (GRO on), for the mode commands to act on.
func napiBed(t *testing.T) *testbed.Host {
	t.Helper()
	testenv.RequirePriv(t)
	testenv.RequireKernel(t, 6, 17, "per-NAPI threaded settings") // the plans below assume them
	// The tests compare show --json, machine-wide knobs included, before and after, and apply changes
	// machine-wide knobs: keep other packages' tests that change them out meanwhile.
	testenv.Exclusive(t)
	return testbedtest.New(t, testbed.Topology{NAPI: true}).B
}

// machineNumbers replaces what differs between machines and runs in a plan by placeholders: the namespace's
// path, the NAPI id, the kernel's release and feature line.
func machineNumbers(h *testbed.Host, plan string) string {
	plan = strings.ReplaceAll(plan, h.NetNSPath(), "NETNS")
	plan = regexp.MustCompile(`(?m)^# kernel .*$`).ReplaceAllString(plan, "# kernel KERNEL")
	return regexp.MustCompile(`(NAPI |napi |"id": |NAPI, )\d+`).ReplaceAllString(plan, "${1}ID")
}

// TestPrivModePlan: mode plan on a real veth prints the same script as the golden files, for the modes whose
// plan does not depend on the kernel past per-NAPI threading, and changes nothing.
func TestPrivModePlan(t *testing.T) {
	testenv.CheckLeaks(t)
	b := napiBed(t)
	show := []string{"show", "--netns", b.NetNSPath(), "--dev", b.Link, "--json"}
	_, before, _ := napilab(t, show...)
	for _, mode := range []string{"interrupts", "busy-poll", "threaded", "irq-suspend"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{"mode", "plan", mode, "--dev", b.Link, "--netns", b.NetNSPath()}
			if mode == "threaded" {
				args = append(args, "--poll-cpu", "1") // only a mode with a kthread takes a poll CPU
			}
			status, out, errs := napilab(t, args...)
			if status != 0 || errs != "" {
				t.Fatalf("exit %d: %s", status, errs)
			}
			golden(t, "plan-"+mode+".sh", machineNumbers(b, out))
		})
	}
	if status, after, errs := napilab(t, show...); status != 0 || after != before {
		t.Fatalf("mode plan changed the device (exit %d, %s):\nbefore %s\nafter  %s", status, errs, before, after)
	}
}

// TestPrivModeApplyUntilSignal: mode apply --until-exit holds the mode until SIGINT, then restores it, removes
// its journal and exits 0; the device reads as before. The signal reaches run's context, not the process's
// default handler (which would end the test binary).
func TestPrivModeApplyUntilSignal(t *testing.T) {
	testenv.CheckLeaks(t)
	b := napiBed(t)
	show := []string{"show", "--netns", b.NetNSPath(), "--dev", b.Link, "--json"}
	_, before, _ := napilab(t, show...)
	journal := filepath.Join(t.TempDir(), "mode.journal")

	r, w := io.Pipe()
	var errb strings.Builder
	status := make(chan int, 1)
	go func() {
		defer w.Close()
		status <- run([]string{"mode", "apply", "threaded", "--dev", b.Link, "--netns", b.NetNSPath(), "--poll-cpu", "1",
			"--journal", journal, "--until-exit"}, w, &errb)
	}()
	var out strings.Builder
	lines := bufio.NewScanner(r)
	held := false
	for !held && lines.Scan() {
		out.WriteString(lines.Text() + "\n")
		held = strings.HasPrefix(lines.Text(), "holding the mode")
	}
	if !held {
		t.Fatalf("apply ended without holding the mode (exit %d):\n%s%s", <-status, out.String(), errb.String())
	}
	if _, err := os.Stat(journal); err != nil {
		t.Fatalf("no journal while the mode is held: %v", err)
	}
	if _, during, _ := napilab(t, show...); during == before {
		t.Fatalf("the held mode changed nothing on the device:\n%s", during)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	out.Write(rest)
	if s := <-status; s != 0 {
		t.Fatalf("exit %d after SIGINT:\n%s%s", s, out.String(), errb.String())
	}
	t.Logf("%s", out.String())
	if _, err := os.Stat(journal); !os.IsNotExist(err) {
		t.Errorf("the journal is still there after the restore: %v", err)
	}
	if _, after, _ := napilab(t, show...); after != before {
		t.Fatalf("the device is not as before after SIGINT:\nbefore %s\nafter  %s", before, after)
	}
}
