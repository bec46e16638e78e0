package sweep

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
)

// showState is what `napilab show --json` would print for the server's device.
func showState(t *testing.T, ns, dev string) string {
	t.Helper()
	sys, err := napi.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	st, err := sys.Show(dev)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPrivSweep: a short sweep on a testbed measures every cell of the modes this kernel has, skips the others
// with a reason, and leaves the machine exactly as it found it.
func TestPrivSweep(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.Exclusive(t)
	bed := testbedtest.New(t, testbed.Topology{})
	env := Env{ServerDev: bed.B.Link, ServerNS: bed.B.NetNSPath(), ClientDev: bed.A.Link, ClientNS: bed.A.NetNSPath(),
		Peer: bed.B.IPv4.Addr(), Journal: filepath.Join(t.TempDir(), "journal")}
	before := showState(t, env.ServerNS, env.ServerDev)

	s := DefaultSpec()
	s.Modes = []string{"interrupts", "threaded", "threaded-busy-poll"}
	s.Rows, s.Reps, s.Duration, s.Warmup = s.Rows[:1], 2, 200*time.Millisecond, 50*time.Millisecond
	// Every request must be answered, however slowly: under TCG on a busy host replies have come ~0.8 s late,
	// which the default 1 s timeout counted as lost. A cell still ends at its last reply.
	s.ReplyTimeout = 30 * time.Second
	var seen int
	res, err := Run(t.Context(), s, env, func(Cell) { seen++ })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cells) != 6 || seen != 6 {
		t.Fatalf("%d cells (%d reported); want 3 modes x 2 repetitions", len(res.Cells), seen)
	}
	// Repetitions interleave the modes.
	if res.Cells[0].Mode != "interrupts" || res.Cells[1].Mode != "threaded" || res.Cells[3].Mode != "interrupts" {
		t.Fatalf("order %s %s %s %s", res.Cells[0].Mode, res.Cells[1].Mode, res.Cells[2].Mode, res.Cells[3].Mode)
	}
	for _, c := range res.Cells {
		if c.Mode == "threaded-busy-poll" {
			if c.Skipped == "" {
				t.Fatalf("threaded-busy-poll ran with the server and client on the only two CPUs: %+v", c)
			}
			continue
		}
		if c.Skipped != "" || c.Client == nil || c.Client.Lost != 0 || c.Client.Answered != c.Client.Sent ||
			c.Client.Duplicates != 0 || c.Client.Measured == 0 || c.Client.Latency.P50 <= 0 {
			t.Fatalf("cell %s rep %d: skipped %q client %+v", c.Mode, c.Rep, c.Skipped, c.Client)
		}
	}
	// The kernel lets go of a closed AF_XDP socket's queue asynchronously: wait for the queues to show no
	// socket before comparing (polling, with a bound generous enough for the lab under TCG on a busy host).
	after := showState(t, env.ServerNS, env.ServerDev)
	for deadline := time.Now().Add(30 * time.Second); strings.Contains(after, `"xsk":true`) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		after = showState(t, env.ServerNS, env.ServerDev)
	}
	if after != before {
		t.Fatalf("the sweep left the device changed:\nbefore %s\nafter  %s", before, after)
	}
}
