package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInputRefused: a value out of its range is one sentence naming the flag, status 1, before anything
// starts (no link opened, no testbed, nothing applied). The same flag is refused the same way in every command
// that has it. None of these needs root: every check runs before napilab touches the machine. (A negative value
// must be written --flag=-5s: kong reads "-5s" after a space as a short flag and says so, status 2.)
func TestBadInputRefused(t *testing.T) {
	notes := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notes, []byte("not a journal\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	client := []string{"rr", "client", "--dev", "lo", "--peer", "127.0.0.1"}
	server := []string{"rr", "server", "--dev", "lo"}
	with := func(base []string, extra ...string) []string { return append(append([]string{}, base...), extra...) }
	for _, c := range []struct {
		args []string
		want string
	}{
		{with(client, "--period=-80us"), "--period -80µs is negative"},
		{with(client, "--period", "0"), "--period 0 is no period"},
		{with(client, "--outstanding=-1"), "--outstanding -1 is negative: keep at least one request in flight"},
		{with(client, "--outstanding", "0"), "--outstanding 0: a closed loop needs at least one request"},
		{with(client, "--rate", "0.001", "--duration", "1s"),
			"--rate sends one request every 16m40s, longer than the whole duration (1s)"},
		{with(client, "--rate", "0.5", "--duration", "1s"),
			"--rate sends one request every 2s, longer than the whole duration (1s)"},
		{with(client, "--period", "2s", "--duration", "1s"), "--period sends one request every 2s"},
		{with(client, "--duration", "1ns"), "--duration 1ns is too short to measure anything"},
		{with(client, "--duration=-1s"), "--duration -1s is negative"},
		{with(client, "--count", "0"), "--count 0 would stop before the first request"},
		{with(client, "--timeout", "0"), "--timeout 0s would give up on replies before any could come"},
		{with(client, "--warmup=-1s"), "--warmup -1s is negative"},
		{with(client, "--rate", "0"), "--rate \"0\" is out of range"},
		{with(client, "--period", "80us", "--rate", "12.5k"), "give only one"},
		{with(client, "--cpu", "4095"), "--cpu 4095 is not a CPU this process can run on"},
		{with(client, "--csv", "/nonexistent-napilab-dir/x.csv"), "--csv /nonexistent-napilab-dir/x.csv cannot be written"},
		{with(client, "--csv", "/tmp"), "it is a directory"},
		{with(server, "--duration=-5s"), "--duration -5s is negative"},
		{with(server, "--duration", "1ns"), "--duration 1ns is too short to measure anything"},
		{with(server, "--cpu", "4095"), "--cpu 4095 is not a CPU this process can run on"},
		{with(server, "--ring", "100"), "--ring size 100 is not a power of two"},
		{[]string{"demo", "--duration", "1ns"}, "--duration 1ns is too short to measure anything"},
		{[]string{"demo", "--duration=-5s"}, "--duration -5s is negative"},
		{[]string{"demo", "--load", "0.5", "--duration", "1s"},
			"--load 0.5 sends one request every 2s, longer than the whole duration"},
		{[]string{"demo", "--ring", "100"}, "--ring size 100 is not a power of two"},
		{[]string{"demo", "--timeout", "0"}, "--timeout 0s would give up"},
		{[]string{"mode", "apply", "busy-poll", "--dev", "lo", "--journal", "/tmp"},
			"--journal /tmp is a directory: give a file path, such as /tmp/mode.journal"},
		{[]string{"mode", "apply", "busy-poll", "--dev", "lo", "--journal", notes},
			"--journal " + notes + " exists and is not a napilab mode journal: choose another path"},
		{[]string{"mode", "restore", "--journal", notes}, notes + " is not a napilab mode journal"},
		{[]string{"mode", "restore", "--journal", "/tmp"}, "/tmp is a directory, not a napilab mode journal"},
		{[]string{"trace", "turnaround", "--pid=-3", "--dev", "lo"}, "--pid -3 is not a process id"},
		{[]string{"trace", "turnaround", "--pid", "4194305", "--dev", "lo"}, "--pid 4194305: there is no such process"},
		{[]string{"trace", "turnaround", "--pid", "1", "--dev", "lo", "--thread", "a-name-of-17-bytes"},
			"--thread \"a-name-of-17-bytes\" is longer than the kernel keeps"},
		{[]string{"trace", "turnaround", "--pid", "1", "--dev", "lo"}, "--dev lo in this process's network namespace has no XDP program attached"},
	} {
		out, errOut, code := cliRun(t, c.args...)
		if code != 1 || !strings.Contains(errOut, c.want) || out != "" {
			t.Errorf("napilab %s: status %d, stdout %q; want 1, nothing started, and %q:\n%s",
				strings.Join(c.args, " "), code, out, c.want, errOut)
		}
	}
}

// TestModeFlagsRefused: mode plan refuses, before it opens anything, a tuning flag the mode has no use for or
// an explicit zero that would mean nothing; the flag names are those of every other command (--poll-cpu as in
// sweep, --nic-ring apart from rr's --ring).
func TestModeFlagsRefused(t *testing.T) {
	plan := func(extra ...string) []string {
		return append([]string{"mode", "plan", "busy-poll", "--dev", "lo"}, extra...)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{plan("--fifo", "50"), "--fifo: busy-poll has no NAPI kthread to schedule: drop it"},
		{plan("--poll-cpu", "1"), "--poll-cpu: busy-poll puts nothing on a poll CPU"},
		{plan("--channels", "0"), "--channels 0 would leave the device without queues"},
		{plan("--nic-ring", "0"), "--nic-ring 0 would leave the queue without descriptors"},
		{plan("--queue=-1"), "--queue -1 is negative"},
		{plan("--gro=-1us"), "--gro -1µs is negative"},
		{plan("--busy-read", "1500ns"), "--busy-read 1.5µs is not a whole number of microseconds"},
		{[]string{"mode", "plan", "threaded", "--dev", "lo", "--fifo", "0"}, "--fifo priority 0 is out of range"},
		{[]string{"mode", "plan", "threaded", "--dev", "lo", "--poll-cpu=-2"}, "--poll-cpu -2 is out of range"},
		{[]string{"mode", "plan", "irq-suspend", "--dev", "lo", "--suspend", "0"}, "--suspend must be above 0"},
	} {
		out, errOut, code := cliRun(t, c.args...)
		if code != 1 || !strings.Contains(errOut, c.want) || out != "" {
			t.Errorf("napilab %s: status %d; want 1 and %q:\n%s%s", strings.Join(c.args, " "), code, c.want, out, errOut)
		}
	}
}
