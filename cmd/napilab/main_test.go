package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/google/go-cmp/cmp"

	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/testbed"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// napilab runs the command in-process, as the binary would run with args, and returns its exit status and
// what it wrote to stdout and stderr.
func napilab(t *testing.T, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	status = run(args, &out, &errb)
	return status, out.String(), errb.String()
}

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

// parse parses args into napilab's command line without running anything.
func parse(t *testing.T, args ...string) (*cli, error) {
	t.Helper()
	var c cli
	parser, err := newParser(&c, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, err = parser.Parse(args)
	return &c, err
}

// commands returns every command of the parser's model, as the words that select it (nil: napilab itself).
func commands(t *testing.T) []*kong.Node {
	t.Helper()
	var c cli
	parser, err := newParser(&c, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*kong.Node{parser.Model.Node}
	for i := 0; i < len(nodes); i++ {
		for _, child := range nodes[i].Children {
			if child.Type == kong.CommandNode && !child.Hidden {
				nodes = append(nodes, child)
			}
		}
	}
	return nodes
}

// TestHelp: --help and -h of every command exit 0 and print, on stdout only, the command's usage with each of
// its flags and subcommands.
func TestHelp(t *testing.T) {
	nodes := commands(t)
	if len(nodes) < 20 {
		t.Fatalf("found %d commands in the model; the walk is broken", len(nodes))
	}
	for _, n := range nodes {
		path := strings.Fields(n.FullPath())[1:] // without "napilab"
		for _, h := range []string{"--help", "-h"} {
			t.Run(strings.Join(append(path, h), " "), func(t *testing.T) {
				status, out, errs := napilab(t, append(path, h)...)
				if status != 0 || errs != "" {
					t.Fatalf("exit %d, stderr %q; want 0 and nothing on stderr", status, errs)
				}
				if want := "Usage: " + n.FullPath(); !strings.HasPrefix(out, want) {
					t.Fatalf("help does not start with %q:\n%s", want, out)
				}
				for _, f := range n.Flags {
					if !f.Hidden && !strings.Contains(out, "--"+f.Name) && !strings.Contains(out, "--[no-]"+f.Name) {
						t.Errorf("help does not mention --%s:\n%s", f.Name, out)
					}
				}
				for _, c := range n.Children {
					if c.Type == kong.CommandNode && !c.Hidden && !strings.Contains(out, c.Name) {
						t.Errorf("help does not mention the command %s:\n%s", c.Name, out)
					}
				}
			})
		}
	}
}

// TestExitStatus: 0 for success, 2 for a command line that does not parse, 1 for a command that fails; a
// failure is one line on stderr, prefixed with the program's name, and nothing on stdout.
func TestExitStatus(t *testing.T) {
	noJournal := filepath.Join(t.TempDir(), "no-such.journal")
	state := t.TempDir()
	for _, c := range []struct {
		args   []string
		status int
		stderr string // a phrase stderr must hold; "" for nothing on stderr
	}{
		{[]string{"version"}, 0, ""},
		{[]string{"mode", "list"}, 0, ""},
		{[]string{"mode", "restore", "--journal", noJournal}, 0, ""},
		{[]string{"testbed", "down", "--all", "--state-dir", state}, 0, ""},
		{[]string{"testbed", "show", "--state-dir", state}, 0, ""},

		{nil, 2, `expected one of "demo"`},
		{[]string{"nosuch"}, 2, "unexpected argument nosuch"},
		{[]string{"mode"}, 2, `expected one of "plan"`},
		{[]string{"mode", "list", "--bogus"}, 2, "unknown flag --bogus"},
		{[]string{"mode", "plan", "threaded"}, 2, "missing flags: --dev"},
		{[]string{"mode", "plan", "threaded", "--dev", "eth0", "--queue", "x"}, 2, "--queue"},
		{[]string{"mode", "plan", "threaded", "--dev", "eth0", "--gro", "soon"}, 2, "--gro"},
		{[]string{"testbed", "up", "--queues", "many"}, 2, "--queues"},
		{[]string{"testbed", "up", "--ipv4", "198.18.0.1"}, 2, "--ipv4"},
		{[]string{"testbed", "exec", "x", "c", "--", "sh"}, 2, "must be one of \"a\",\"b\""},
		{[]string{"rr", "client", "--bogus"}, 2, "unknown flag --bogus"},

		{[]string{"mode", "plan", "no-such-mode", "--dev", "eth0"}, 1, `napilab: unknown mode "no-such-mode"`},
		{[]string{"mode", "plan", "threaded", "--dev", "eth0", "--fifo", "100"}, 1,
			"--fifo priority 100 is out of range"},
		{[]string{"testbed", "down", "--state-dir", state}, 1, "napilab: testbed down: name the testbed to remove"},
		{[]string{"testbed", "up", "--queues", "0", "--state-dir", state}, 1, "napilab: testbed up: --queues 0"},
		{[]string{"doctor", "--queue", "1"}, 1, "napilab: --queue needs --dev"},
		{[]string{"lab", "run", "--offline"}, 2, `expected "<program> ..."`},
		{[]string{"noise", "--duration", "soon"}, 2, "--duration"},
		{[]string{"noise", "--cpus", "0", "--duration", "1ms"}, 1, "napilab: --duration 1ms is out of range: give 100ms"},
		{[]string{"noise", "--cpus", "0", "--min", "0s"}, 1, "napilab: --min 0s is out of range"},
		{[]string{"noise", "--cpus", "x"}, 1, `napilab: --cpus "x" is not a CPU list`},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			status, out, errs := napilab(t, c.args...)
			if status != c.status {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", status, c.status, out, errs)
			}
			if c.stderr == "" {
				if errs != "" {
					t.Fatalf("stderr %q, want nothing", errs)
				}
				return
			}
			if !strings.Contains(errs, c.stderr) {
				t.Fatalf("stderr %q does not say %q", errs, c.stderr)
			}
			if c.status == 1 && (out != "" || strings.Count(strings.TrimSuffix(errs, "\n"), "\n") != 0) {
				t.Fatalf("a failed command printed %q on stdout and %q on stderr; want one line on stderr", out, errs)
			}
		})
	}
}

// TestModeList: the presets and what each sets, as a table and as JSON (the presets themselves).
func TestModeList(t *testing.T) {
	status, out, errs := napilab(t, "mode", "list")
	if status != 0 || errs != "" {
		t.Fatalf("exit %d: %s", status, errs)
	}
	golden(t, "mode-list.txt", out)

	status, out, errs = napilab(t, "mode", "list", "--json")
	if status != 0 || errs != "" {
		t.Fatalf("exit %d: %s", status, errs)
	}
	golden(t, "mode-list.json", out)
	var modes []napi.Mode
	if err := json.Unmarshal([]byte(out), &modes); err != nil {
		t.Fatal(err)
	}
	if len(modes) != len(napi.PresetNames()) {
		t.Fatalf("%d modes in the JSON, %d presets", len(modes), len(napi.PresetNames()))
	}
	for i, name := range napi.PresetNames() {
		want, _ := napi.Preset(name, "IFACE")
		if diff := cmp.Diff(want, modes[i]); diff != "" {
			t.Errorf("preset %s in the JSON (-want +got):\n%s", name, diff)
		}
	}
}

// checkMapping checks what a flag mapping returned: want, or, when wantErr is set, an error saying it.
func checkMapping[T any](t *testing.T, got T, err error, want T, wantErr string, opts ...cmp.Option) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("got %v, want an error saying %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, opts...); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestModeFlags: each mode flag lands in the field it names, unset flags keep the preset's values, and values
// the mode cannot take are refused with the field's own sentence.
func TestModeFlags(t *testing.T) {
	preset := func(name string, edit func(*napi.Mode)) napi.Mode {
		m, err := napi.Preset(name, "eth1")
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(&m)
		}
		return m
	}
	for _, c := range []struct {
		name string
		args []string
		want napi.Mode
		err  string
	}{
		{"preset", []string{"threaded"}, preset("threaded", nil), ""},
		{"seed preset keeps its CPU", []string{"seed-interrupts"}, preset("seed-interrupts", nil), ""},
		{"every flag", []string{"threaded", "--queue", "0", "--queue", "2", "--poll-cpu", "1", "--fifo", "20",
			"--netns", "ns1", "--defer", "5", "--gro", "20us", "--busy-read", "50us", "--channels", "2", "--nic-ring", "512"},
			preset("threaded", func(m *napi.Mode) {
				m.Queues, m.PollCPU, m.FIFO, m.NetNS = []int{0, 2}, 1, 20, "ns1"
				m.DeferHardIRQs, m.GROFlushTimeout = new(uint32(5)), new(20*time.Microsecond)
				m.BusyRead, m.Channels, m.RingRX = new(50*time.Microsecond), 2, 512
			}), ""},
		{"suspend", []string{"irq-suspend", "--suspend", "10ms"},
			preset("irq-suspend", func(m *napi.Mode) { m.IRQSuspendTimeout = new(10 * time.Millisecond) }), ""},
		{"suspend outside irq-suspend", []string{"threaded", "--suspend", "10ms"}, napi.Mode{},
			"--suspend only acts in mode irq-suspend, not threaded: drop it"},
		{"zero values are values", []string{"busy-poll", "--defer", "0", "--gro", "0s", "--busy-read", "0s"},
			preset("busy-poll", func(m *napi.Mode) {
				m.DeferHardIRQs, m.GROFlushTimeout, m.BusyRead = new(uint32(0)), new(time.Duration(0)), new(time.Duration(0))
			}), ""},
		{"unknown mode", []string{"fast"}, napi.Mode{}, `unknown mode "fast"`},
		{"priority", []string{"threaded", "--fifo", "100"}, napi.Mode{}, "--fifo priority 100 is out of range"},
		{"negative queue", []string{"threaded", "--queue=-1"}, napi.Mode{}, "queue -1 is negative"},
		{"queue twice", []string{"threaded", "--queue", "1", "--queue", "1"}, napi.Mode{}, "queue 1 is named twice"},
		{"busy_read resolution", []string{"busy-poll", "--busy-read", "1ns"}, napi.Mode{},
			"not a whole number of microseconds"},
		{"negative gro", []string{"busy-poll", "--gro=-1us"}, napi.Mode{}, "--gro -1µs is negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, err := parse(t, append(append([]string{"mode", "plan"}, c.args...), "--dev", "eth1")...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cl.Mode.Plan.mode()
			checkMapping(t, got, err, c.want, c.err)
		})
	}
	// apply reads the same flags.
	cl, err := parse(t, "mode", "apply", "irq-suspend", "--dev", "eth1", "--suspend", "5ms")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := cl.Mode.Apply.mode(); err != nil || *got.IRQSuspendTimeout != 5*time.Millisecond {
		t.Fatalf("mode apply --suspend 5ms: %+v, %v", got, err)
	}
}

// TestTestbedFlags: testbed up's flags map onto the Topology it builds, a named and persistent one; a zero
// count is refused instead of read as "default".
func TestTestbedFlags(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want testbed.Topology
		err  string
	}{
		{"defaults", nil, testbed.Topology{Queues: 1, MTU: 1500, Lifetime: testbed.Persistent,
			StateDir: "/run/napilab/testbed"}, ""},
		{"every flag", []string{"--name", "tb1", "--queues", "4", "--napi", "--mtu", "9000", "--ipv4", "10.9.0.0/24",
			"--ipv6", "fd00:9::/64", "--neighbours", "--state-dir", "/tmp/napilab-state"},
			testbed.Topology{Name: "tb1", Queues: 4, NAPI: true, MTU: 9000, IPv4: netip.MustParsePrefix("10.9.0.0/24"),
				IPv6: netip.MustParsePrefix("fd00:9::/64"), Neighbours: true, Lifetime: testbed.Persistent,
				StateDir: "/tmp/napilab-state"}, ""},
		{"zero queues", []string{"--queues", "0"}, testbed.Topology{}, "--queues 0: use 1 to"},
		{"zero MTU", []string{"--mtu", "0"}, testbed.Topology{}, "--mtu 0: use 1280 to 65535"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, err := parse(t, append([]string{"testbed", "up"}, c.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cl.Testbed.Up.topology()
			checkMapping(t, got, err, c.want, c.err, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }))
		})
	}
}
