package lab

import (
	"strings"
	"testing"

	"github.com/napilab/napilab/internal/lab/guest"
)

const testNonce = "0123456789abcdef0123456789abcdef"

func TestParseConsoleVerdict(t *testing.T) {
	log := strings.Join([]string{
		"[    0.000000] Linux version 7.3.4+deb13-cloud-amd64",
		guest.StartLine(testNonce, "7.3.4+deb13-cloud-amd64", 2242e6),
		"step zero output",
		guest.StepLine(testNonce, 0, 0),
		// A step that prints a verdict with another nonce must not end the run.
		guest.ExitLine(strings.Repeat("f", 32), 0),
		"[    3.1] some kernel message " + guest.StepLine(testNonce, 1, 3), // marker sharing a line with the kernel
		guest.ExitLine(testNonce, 3),
		guest.ExitLine(testNonce, 0), // anything after the verdict is ignored
		"[    3.3] reboot: Power down",
	}, "\r\n")
	v := parseConsole([]byte(log), testNonce)
	if !v.started || v.release != "7.3.4+deb13-cloud-amd64" || v.uptimeMs != 2242 {
		t.Errorf("start: %+v", v)
	}
	if !v.exited || v.exitCode != 3 {
		t.Errorf("verdict exited=%v code=%d, want 3", v.exited, v.exitCode)
	}
	if len(v.steps) != 2 || v.steps[0].rc != 0 || v.steps[1].rc != 3 {
		t.Fatalf("steps %+v", v.steps)
	}
	if out := log[v.steps[0].begin:v.steps[0].end]; out != "step zero output\r\n" {
		t.Errorf("step 0 output %q", out)
	}
	if v.panicked || v.earlyOops {
		t.Errorf("panicked %v earlyOops %v", v.panicked, v.earlyOops)
	}
}

func TestParseConsoleFailures(t *testing.T) {
	cases := []struct {
		name, log                    string
		started, exited, oops, panic bool
	}{
		{"empty", "", false, false, false, false},
		{"panic before init", "[ 1.0] Oops: int3\n[ 1.0] Kernel panic - not syncing: Fatal exception\n", false, false, true, true},
		{"panic in a step", guest.StartLine(testNonce, "7.3.4", 1) + "\nsysrq: Trigger a crash\nKernel panic - not syncing: sysrq triggered crash\n", true, false, false, true},
		{"oops after start is not the boot race", guest.StartLine(testNonce, "7.3.4", 1) + "\nOops: int3\n", true, false, false, false},
		{"init failed", "napilab-init: load module: EINVAL\n" + guest.ExitLine(testNonce, guest.ExitInitFailed) + "\n", false, true, false, false},
		{"wrong nonce only", guest.StartLine("aaaaaaaa", "7.3.4", 1) + "\n" + guest.ExitLine("aaaaaaaa", 0) + "\n", false, false, false, false},
		{"malformed markers", guest.MarkStart + testNonce + ":x\n" + guest.MarkExit + testNonce + ":zero\n", false, false, false, false},
		{"out-of-order step", guest.StartLine(testNonce, "7.3.4", 1) + "\n" + guest.StepLine(testNonce, 1, 0) + "\n", true, false, false, false},
		{"no trailing newline", guest.StartLine(testNonce, "7.3.4", 1) + "\n" + guest.ExitLine(testNonce, 0), true, true, false, false},
	}
	if v := parseConsole([]byte(cases[2].log), testNonce); v.panicWhy != "not syncing: sysrq triggered crash" {
		t.Errorf("panic reason %q", v.panicWhy)
	}
	for _, c := range cases {
		v := parseConsole([]byte(c.log), testNonce)
		if v.started != c.started || v.exited != c.exited || v.earlyOops != c.oops || v.panicked != c.panic {
			t.Errorf("%s: started %v exited %v oops %v panic %v, want %v %v %v %v", c.name,
				v.started, v.exited, v.earlyOops, v.panicked, c.started, c.exited, c.oops, c.panic)
		}
		if c.name == "out-of-order step" && len(v.steps) != 0 {
			t.Errorf("%s: accepted %+v", c.name, v.steps)
		}
	}
}

func TestTail(t *testing.T) {
	cases := []struct {
		log  string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\r\nb\r\nc", 2, "b\nc"},
		{"a\nb", 5, "a\nb"},
		{"\nb", 1, "b"},
		{"", 3, ""},
		{"only", 1, "only"},
	}
	for _, c := range cases {
		if got := tail([]byte(c.log), c.n); got != c.want {
			t.Errorf("tail(%q, %d) = %q, want %q", c.log, c.n, got, c.want)
		}
	}
}

// FuzzParseConsole feeds arbitrary console bytes: the parser must not panic, step slices must lie inside the
// log in order, and no verdict may be found without the nonce appearing in the log.
func FuzzParseConsole(f *testing.F) {
	f.Add([]byte(guest.StartLine(testNonce, "7.3.4", 5) + "\nx\n" + guest.StepLine(testNonce, 0, 1) + "\n" + guest.ExitLine(testNonce, 1) + "\n"))
	f.Add([]byte("Oops: int3\nKernel panic\n"))
	f.Fuzz(func(t *testing.T, log []byte) {
		v := parseConsole(log, testNonce)
		prev := 0
		for _, s := range v.steps {
			if s.begin < prev || s.end < s.begin || s.end > len(log) {
				t.Fatalf("step slice [%d:%d] out of order or range (prev %d, len %d)", s.begin, s.end, prev, len(log))
			}
			prev = s.end
		}
		if (v.exited || v.started) && !strings.Contains(string(log), testNonce) {
			t.Fatalf("verdict without the nonce in %q", log)
		}
		_ = tail(log, 3)
	})
}

// A guest whose initramfs did not fit its memory is told apart from other early ends, with the fix.
func TestUnpackFailureNamesMemory(t *testing.T) {
	console := []byte("[    3.433527] Initramfs unpacking failed: write error\n" +
		"napilab-init: read plan: open /napilab/plan.json: no such file or directory\n[    4.894090] reboot: Power down\n")
	if why := unpackFailure(console, 1024); !strings.Contains(why, "1024 MiB") || !strings.Contains(why, "--memory") {
		t.Errorf("got %q, want the guest's memory and the flag named", why)
	}
	if why := unpackFailure([]byte("Kernel panic - not syncing: VFS: Unable to mount root fs\n"), 1024); why != "" {
		t.Errorf("another failure read as an unpacking failure: %q", why)
	}
}
