package napi

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// appliedJournal applies preset on a fresh fake and returns the fake, the journal path and its bytes.
func appliedJournal(t testing.TB, preset, dev string) (*fakeOS, string, []byte) {
	f := newFakeOS(features6_19)
	m, err := Preset(preset, dev)
	if err != nil {
		t.Fatal(err)
	}
	p, err := resolveAndBuild(f.system(), m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mode.journal")
	if _, err := f.system().Apply(t.Context(), p, ApplyOptions{Journal: path, AllowSMT: true}); err != nil {
		t.Fatal(err)
	}
	f.takeLog()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return f, path, b
}

func TestJournalRoundTrip(t *testing.T) {
	f := newFakeOS(features6_19)
	path := journalPath(t)
	a, err := f.system().Apply(t.Context(), mustPlan(t, f, "seed-threaded-busy-poll", "eth1"),
		ApplyOptions{Journal: path, AllowSMT: true})
	if err != nil {
		t.Fatal(err)
	}
	j, err := LoadJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(a.Journal, j, cmpopts.IgnoreUnexported(Journal{})); d != "" {
		t.Errorf("journal read back differs (-applied +loaded):\n%s", d)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v (%v), want 0600: it records the machine's state", fi.Mode(), err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

// TestJournalCutShort: a journal cut off at any byte is refused, and nothing is restored from it; the journal
// stays for the user to inspect. Cut after its format line it is a corrupt journal, with the fix; cut before,
// nothing says it ever was one.
func TestJournalCutShort(t *testing.T) {
	f, path, full := appliedJournal(t, "seed-threaded-busy-poll", "eth1")
	state := f.state()
	head := len("{\n\t\"format\": \"napilab mode journal")
	for n := 0; n < len(full)-1; n += 1 + n/8 {
		if err := os.WriteFile(path, full[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := RestoreFile(path, openFake(f), RestoreOptions{})
		switch {
		case n < head:
			if !errors.Is(err, ErrNotJournal) {
				t.Fatalf("journal cut at byte %d, inside its format line: %v", n, err)
			}
		case err == nil || !strings.Contains(err.Error(), "is corrupt") ||
			!strings.Contains(err.Error(), "nothing was restored from it; put back by hand what it lists, then delete it"):
			t.Fatalf("journal cut at byte %d: %v", n, err)
		}
		if f.state() != state || f.takeLog() != "" {
			t.Fatalf("journal cut at byte %d: the machine changed", n)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("journal cut at byte %d was removed", n)
		}
	}
}

// TestJournalTornWrite: a crash while a new version was being written leaves a partial temporary file and the
// previous complete journal, which restore uses; a later apply overwrites the temporary file.
func TestJournalTornWrite(t *testing.T) {
	f, path, full := appliedJournal(t, "threaded", "vb")
	if err := os.WriteFile(path+".tmp", full[:len(full)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreFile(path, openFake(f), RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if f.napis[259].Threaded.String() != "disabled" {
		t.Error("restore from the complete journal did not switch threaded off")
	}
	if _, err := f.system().Apply(t.Context(), mustPlan(t, f, "busy-poll", "vb"), ApplyOptions{Journal: path}); err != nil {
		t.Fatalf("apply over a stale temporary file: %v", err)
	}
}

func TestParseJournalRejects(t *testing.T) {
	_, _, full := appliedJournal(t, "seed-threaded-busy-poll", "eth1")
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"format", `"format": "napilab mode journal v1"`, `"format": "napilab mode journal v9"`, "is not"},
		{"kind", `"kind": "kthread"`, `"kind": "reboot"`, `unknown kind of change "reboot"`},
		{"knob", `"id": "kernel.timer_migration"`, `"id": "kernel.panic"`, "lacks a known knob"},
		{"prior elsewhere", `"path": "/proc/sys/kernel/timer_migration"`, `"path": "/proc/sys/kernel/panic"`,
			"from the file it changes"},
		{"threaded", `"threaded": "busy-poll"`, `"threaded": "spinning"`, "unknown threaded NAPI state"},
		{"unknown field", `"complete": true`, `"complete": true, "extra": 1`, "unknown field"},
		{"trailing", "}\n", "}\n{}", "data after the journal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := strings.Replace(string(full), tc.old, tc.new, 1)
			if b == string(full) && tc.name != "trailing" {
				t.Fatalf("%q is not in the journal", tc.old)
			}
			if tc.name == "trailing" {
				b = string(full) + "{}"
			}
			if _, err := ParseJournal([]byte(b)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzParseJournal: any input either fails to parse or parses to a journal that encodes and parses back to
// the same value; nothing panics.
func FuzzParseJournal(f *testing.F) {
	for _, preset := range []string{"seed-threaded-busy-poll", "irq-suspend"} {
		_, _, b := appliedJournal(f, preset, "eth1")
		f.Add(b)
	}
	f.Add([]byte(`{"format":"napilab mode journal v1","device":"vb","ifindex":5,"entries":[{"change":{"kind":"napi-set","napi":1,"settings":{}}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := ParseJournal(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		j2, err := ParseJournal(again)
		if err != nil {
			t.Fatalf("a parsed journal does not parse after encoding: %v\n%s", err, again)
		}
		if d := cmp.Diff(j, j2, cmpopts.IgnoreUnexported(Journal{}), cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("round trip differs:\n%s", d)
		}
		for _, e := range j.Entries {
			_ = e.Change.Describe()
			_ = e.Change.Shell(Target{Device: j.Device})
		}
	})
}

// FuzzBuild: any preset with any parameters either fails with an error or plans changes that a journal would
// accept and that print; nothing panics.
func FuzzBuild(f *testing.F) {
	f.Add(uint8(0), uint32(100), int64(15000), int64(400), -1, 50, 0, uint32(0), uint32(0))
	f.Add(uint8(9), uint32(0), int64(0), int64(0), 2, 99, 1, uint32(1), uint32(1024))
	f.Add(uint8(5), uint32(1<<31), int64(-1), int64(1<<40), 70000, 0, -3, uint32(9), uint32(1<<20))
	targets := map[bool]Target{}
	for _, veth := range []bool{false, true} {
		fo := newFakeOS(features6_19)
		dev := map[bool]string{false: "eth1", true: "vb"}[veth]
		m, _ := Preset("seed-busy-poll", dev)
		m.Queues = []int{0}
		tgt, err := fo.system().Resolve(m)
		if err != nil {
			f.Fatal(err)
		}
		targets[veth] = tgt
	}
	names := PresetNames()
	f.Fuzz(func(t *testing.T, preset uint8, deferIRQs uint32, gro, busyRead int64, cpu, fifo, queue int,
		channels, ring uint32) {
		veth := preset&0x80 != 0
		tgt := targets[veth]
		m, err := Preset(names[int(preset&0x7f)%len(names)], tgt.Device)
		if err != nil {
			t.Fatal(err)
		}
		m.DeferHardIRQs, m.GROFlushTimeout, m.BusyRead = &deferIRQs, ptr(time.Duration(gro)), ptr(time.Duration(busyRead))
		m.PollCPU, m.FIFO, m.Queues, m.Channels, m.RingRX = cpu, fifo, []int{queue}, channels, ring
		if queue != 0 {
			tgt.Queues = nil // the target no longer matches the mode: Build must refuse, not index out of range
		}
		p, err := Build(m, tgt)
		if err != nil {
			return
		}
		for i, c := range p.Changes {
			if err := (Entry{Change: c}).check(); err != nil {
				t.Fatalf("change %d (%s) would not journal: %v", i+1, c.Describe(), err)
			}
		}
		_ = p.Format()
	})
}

// TestFuzzCorpus checks the committed seed corpora: the journals of real applies parse, the ones cut short do
// not. With -update it first rewrites them from the current journal format.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParseJournal")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, preset := range []string{"seed-threaded-busy-poll", "threaded", "irq-suspend"} {
			_, _, b := appliedJournal(t, preset, "eth1")
			for name, data := range map[string][]byte{preset: b, preset + "-cut": b[:len(b)*2/3]} {
				body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) < 6 {
		t.Fatalf("corpus %s has %d files (%v); go test -update writes it", dir, len(files), err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "go test fuzz v1\n[]byte(")
		data, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if !ok || err != nil {
			t.Fatalf("%s is not a fuzz corpus file: %v", file, err)
		}
		_, err = ParseJournal([]byte(data))
		if cut := strings.HasSuffix(file, "-cut"); cut != (err != nil) {
			t.Errorf("%s: parse error %v", file, err)
		}
	}
}
