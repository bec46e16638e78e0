package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
)

// runIn runs napilab inside host h as `ip netns exec` would (its network namespace, its sysfs on /sys).
func cliRunIn(t *testing.T, h *testbed.Host, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(testenv.Napilab(t), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := h.Start(cmd); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// TestPrivInsideNetNS: napilab run inside a network namespace (ip netns exec NS napilab ...) cannot reach
// net.core.busy_read and its kin, which the kernel keeps in the initial namespace alone. mode plan and apply
// refuse a mode that sets them, naming the namespace and the --netns to use from the initial one, and change
// nothing; show says where they are instead of "?"; doctor says why it cannot check busy polling. From the
// initial namespace with --netns, the same plan works.
func TestPrivInsideNetNS(t *testing.T) {
	testenv.RequirePriv(t)
	bed := testbedtest.New(t, testbed.Topology{Lifetime: testbed.Owned, StateDir: t.TempDir(), NAPI: true})
	name := filepath.Base(bed.B.NetNSPath())
	journal := filepath.Join(t.TempDir(), "mode.journal")
	want := "net.core.busy_read exists only in the initial network namespace, and napilab runs in network " +
		"namespace " + name
	hint := "--netns " + name
	for _, args := range [][]string{
		{"mode", "plan", "busy-poll", "--dev", bed.B.Link},
		{"mode", "apply", "busy-poll", "--dev", bed.B.Link, "--journal", journal},
	} {
		out, errOut, code := cliRunIn(t, bed.B, args...)
		if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, hint) || out != "" {
			t.Errorf("napilab %s inside %s: status %d; want 1, %q and %q, and no script:\n%s%s",
				strings.Join(args, " "), name, code, want, hint, out, errOut)
		}
	}
	if _, err := os.Stat(journal); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused apply wrote a journal (%v)", err)
	}
	out, errOut, code := cliRunIn(t, bed.B, "show", "--dev", bed.B.Link)
	if code != 0 || !strings.Contains(out, "initial network namespace only") {
		t.Errorf("show inside %s: status %d:\n%s%s", name, code, out, errOut)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "net.core") && strings.Contains(line, "?") {
			t.Errorf("show prints an unknown: %q", line)
		}
	}
	out, errOut, _ = cliRunIn(t, bed.B, "doctor", "--dev", bed.B.Link)
	if !strings.Contains(out, "exist only in the initial network namespace") {
		t.Errorf("doctor inside %s does not say why it cannot check busy polling:\n%s%s", name, out, errOut)
	}
	if out, errOut, code := cliRun(t, "mode", "plan", "busy-poll", "--dev", bed.B.Link, "--netns", name); code != 0 ||
		!strings.Contains(out, "/proc/sys/net/core/busy_read") {
		t.Errorf("mode plan from the initial namespace with --netns %s: status %d:\n%s%s", name, code, out, errOut)
	}
}

// TestPrivTestbedDownRestoresModes: testbed down restores a mode left applied on its devices first (the
// machine-wide busy_read goes back), and refuses while a running napilab holds one, naming it; once that holder
// has restored, down goes through.
func TestPrivTestbedDownRestoresModes(t *testing.T) {
	testenv.RequirePriv(t)
	testenv.Exclusive(t) // machine-wide knobs change
	state := t.TempDir()
	name := fmt.Sprintf("napilabtest-down-%d", os.Getpid())
	if _, errOut, code := cliRun(t, "testbed", "up", "--name", name, "--napi", "--state-dir", state); code != 0 {
		t.Fatalf("testbed up: %s", errOut)
	}
	t.Cleanup(func() { cliRun(t, "testbed", "down", name, "--state-dir", state) })
	busyRead := func() string { return cliBusyRead(t) }
	before := busyRead()
	if before == "400" {
		t.Skip("busy_read is already 400 µs here: the test could not tell a restore from nothing")
	}
	journal := filepath.Join(t.TempDir(), "mode.journal")
	if _, errOut, code := cliRun(t, "mode", "apply", "busy-poll", "--dev", "veth-b", "--netns", name+"-b",
		"--journal", journal); code != 0 || busyRead() != "400" {
		t.Fatalf("mode apply: status %d, busy_read %s:\n%s", code, busyRead(), errOut)
	}
	out, errOut, code := cliRun(t, "testbed", "down", name, "--state-dir", state)
	if code != 0 || !strings.Contains(out, "restored  net.core.busy_read 400 → "+before+" µs") ||
		!strings.Contains(out, "removed testbed "+name) || busyRead() != before {
		t.Fatalf("testbed down: status %d, busy_read %s (was %s):\n%s%s", code, busyRead(), before, out, errOut)
	}
	if _, err := os.Stat(journal); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the journal stays after the restore (%v)", err)
	}

	// A mode whose holder runs is the holder's to restore.
	if _, errOut, code := cliRun(t, "testbed", "up", "--name", name, "--napi", "--state-dir", state); code != 0 {
		t.Fatalf("testbed up: %s", errOut)
	}
	holder := cliStart(t, "mode", "apply", "busy-poll", "--dev", "veth-b", "--netns", name+"-b", "--journal",
		journal, "--until-exit")
	holder.waitLine(t, "holding the mode")
	out, errOut, code = cliRun(t, "testbed", "down", name, "--state-dir", state)
	if code != 1 || !strings.Contains(errOut, "testbed "+name+" stays: busy-poll on veth-b") ||
		!strings.Contains(errOut, "(running)") || !strings.Contains(errOut, "stop that napilab first") {
		t.Fatalf("testbed down under a running holder: status %d:\n%s%s", code, out, errOut)
	}
	holder.signal(t, syscall.SIGINT)
	if code, hout := holder.wait(t); code != 0 || busyRead() != before {
		t.Fatalf("the holder: status %d, busy_read %s:\n%s", code, busyRead(), hout)
	}
	if out, errOut, code := cliRun(t, "testbed", "down", name, "--state-dir", state); code != 0 {
		t.Fatalf("testbed down after the holder restored: status %d:\n%s%s", code, out, errOut)
	}
}

// TestPrivOrphanedJournal: a holder killed before it could restore (SIGKILL of mode apply --until-exit) leaves
// a journal nobody will restore: show calls it orphaned with the command that restores it, doctor reports it
// as suboptimal with that fix, and the command puts the machine back.
func TestPrivOrphanedJournal(t *testing.T) {
	testenv.RequirePriv(t)
	testenv.Exclusive(t) // busy_read is machine-wide
	bed := testbedtest.New(t, testbed.Topology{NAPI: true})
	journal := filepath.Join(t.TempDir(), "mode.journal")
	holder := cliStart(t, "mode", "apply", "busy-poll", "--dev", bed.B.Link, "--netns", bed.B.NetNSPath(),
		"--journal", journal, "--until-exit")
	holder.waitLine(t, "holding the mode")
	holder.signal(t, syscall.SIGKILL)
	holder.wait(t)
	fix := "napilab mode restore --journal " + journal
	out, errOut, code := cliRun(t, "show", "--dev", bed.B.Link, "--netns", bed.B.NetNSPath())
	if code != 0 || !strings.Contains(out, "ORPHANED, its holder, napilab pid "+fmt.Sprint(holder.cmd.Process.Pid)+
		", exited without restoring it") || !strings.Contains(out, "restore it: "+fix) {
		t.Fatalf("show: status %d:\n%s%s", code, out, errOut)
	}
	out, errOut, _ = cliRun(t, "doctor", "--dev", bed.B.Link, "--netns", bed.B.NetNSPath())
	if !strings.Contains(out, "suboptimal      applied-mode ["+journal+"]: busy-poll on "+bed.B.Link+" is orphaned") ||
		!strings.Contains(out, "fix: "+fix) {
		t.Fatalf("doctor does not report the orphan with its fix:\n%s%s", out, errOut)
	}
	if out, errOut, code := cliRun(t, "mode", "restore", "--journal", journal); code != 0 ||
		!strings.Contains(out, "restored  net.core.busy_read 400 → ") {
		t.Fatalf("mode restore: status %d:\n%s%s", code, out, errOut)
	}
	if out, _, _ := cliRun(t, "show", "--dev", bed.B.Link, "--netns", bed.B.NetNSPath()); strings.Contains(out, journal) {
		t.Fatalf("show still lists the restored journal:\n%s", out)
	}
}

// cliBusyRead is the machine-wide busy_read (µs), which busy-poll sets and every exit path must put back.
func cliBusyRead(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/core/busy_read")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
