package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/rr"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
)

// rrBed is a testbed for rr command tests, its namespaces as --netns paths.
func rrBed(t *testing.T, topo testbed.Topology) (bed *testbed.Testbed, client []string, server []string) {
	t.Helper()
	testenv.Exclusive(t) // the ends spin
	topo.Neighbours = true
	bed = testbedtest.New(t, topo)
	client = []string{"rr", "client", "--netns", bed.A.NetNSPath(), "--dev", bed.A.Link, "--peer",
		bed.B.IPv4.Addr().String(), "--cpu", "1", "--colocated", "1"}
	server = []string{"rr", "server", "--netns", bed.B.NetNSPath(), "--dev", bed.B.Link, "--cpu", "0"}
	return bed, client, server
}

func rrStartServer(t *testing.T, args []string, extra ...string) *cliProc {
	t.Helper()
	srv := cliStart(t, append(append([]string{}, args...), extra...)...)
	srv.waitLine(t, "napilab rr server ") // "on ..." or, with --json, "ready"
	return srv
}

// TestPrivRRClientNoServer: against a peer that answers ARP but runs no server, the client ends after its
// duration and the reply timeout, prints no latency (never "0 ns"), says in one sentence that nothing answered
// and exits 1; nothing stays attached.
func TestPrivRRClientNoServer(t *testing.T) {
	bed, client, _ := rrBed(t, testbed.Topology{})
	out, errOut, code := cliRun(t, append(client, "--duration", "50ms", "--warmup", "0", "--timeout", "100ms",
		"--interval", "20ms")...)
	if code != 1 || !strings.Contains(errOut, "none of the") || !strings.Contains(errOut, "requests was answered") ||
		!strings.Contains(errOut, "napilab rr server runs on "+bed.B.IPv4.Addr().String()) {
		t.Fatalf("status %d; want 1 and the sentence that nothing answered:\n%s%s", code, out, errOut)
	}
	if strings.Contains(out, "from schedule") || !strings.Contains(out, "none measured") ||
		!strings.Contains(out, "no replies") {
		t.Fatalf("the report of a run without replies:\n%s", out)
	}
	if xdpAttached(t, bed.A) {
		t.Fatal("the client left its XDP program attached")
	}
}

// TestPrivRRPayloadAboveMTU: a payload that does not fit the device's MTU is refused before a request is sent,
// with each family's headers counted.
func TestPrivRRPayloadAboveMTU(t *testing.T) {
	bed, client, server := rrBed(t, testbed.Topology{MTU: 1280})
	v6 := append([]string{}, client...)
	v6[7] = bed.B.IPv6.Addr().String() // the --peer
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(client, "--payload", "1400"), "--payload of 1400 bytes does not fit the device's MTU of 1280"},
		{append(client, "--payload", "1253"), "with 28 bytes of IPv4 and UDP headers a payload takes at most 1252"},
		{append(v6, "--payload", "1233"), "with 48 bytes of IPv6 and UDP headers a payload takes at most 1232"},
		{append(server, "--payload", "1400", "--verify"), "--payload of 1400 bytes does not fit"},
	} {
		out, errOut, code := cliRun(t, c.args...)
		if code != 1 || !strings.Contains(errOut, c.want) || strings.Contains(out, "req/s") {
			t.Errorf("napilab %s: status %d; want 1 and %q before any request:\n%s%s", strings.Join(c.args, " "),
				code, c.want, out, errOut)
		}
	}
	if xdpAttached(t, bed.A) || xdpAttached(t, bed.B) {
		t.Fatal("a refused run left its XDP program attached")
	}
}

// TestPrivRRClientSignal: SIGINT stops a client gracefully: nothing more is sent, the replies in flight are
// awaited, the report counts no request lost that the server answered, and the status is 130. SIGTERM too.
func TestPrivRRClientSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			_, client, server := rrBed(t, testbed.Topology{})
			srv := rrStartServer(t, server, "--json")
			cli := cliStart(t, append(client, "--duration", "1h", "--interval", "50ms", "--warmup", "0",
				"--rate", "5k")...)
			cli.waitLine(t, "req/s  p50")
			cli.signal(t, sig)
			code, out := cli.wait(t)
			m := regexp.MustCompile(`requests  sent (\d+), answered (\d+), lost (\d+) `).FindStringSubmatch(out)
			if code != 130 || !strings.Contains(out, "interrupted: sending stopped") || m == nil || m[1] != m[2] ||
				m[3] != "0" {
				t.Fatalf("status %d; want 130, every request answered and none lost:\n%s", code, out)
			}
			srv.signal(t, syscall.SIGINT)
			if code, sout := srv.wait(t); code != 0 || !strings.Contains(sout, `"replied": `+m[1]+",") {
				t.Fatalf("server status %d; want 0 and %s replies:\n%s", code, m[1], sout)
			}
		})
	}
}

// TestPrivRRResultNeverLost: a CSV that cannot be written after the run (its directory went away) costs
// neither the printed report nor the result, which is saved elsewhere; the error says where.
func TestPrivRRResultNeverLost(t *testing.T) {
	_, client, server := rrBed(t, testbed.Topology{})
	srv := rrStartServer(t, server)
	defer srv.signal(t, syscall.SIGINT)
	dir := t.TempDir()
	sub := filepath.Join(dir, "gone")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	cli := cliStart(t, append(client, "--duration", "1h", "--interval", "50ms", "--warmup", "0", "--csv",
		filepath.Join(sub, "iv.csv"))...)
	cli.waitLine(t, "req/s  p50")
	if err := os.RemoveAll(sub); err != nil {
		t.Fatal(err)
	}
	cli.signal(t, syscall.SIGINT)
	code, out := cli.wait(t)
	m := regexp.MustCompile(`the result is saved in (\S+\.json)`).FindStringSubmatch(out)
	if code != 1 || !strings.Contains(out, "requests  sent") || m == nil {
		t.Fatalf("status %d; want 1, the report, and where the result went:\n%s", code, out)
	}
	defer os.Remove(m[1])
	b, err := os.ReadFile(m[1])
	var doc rr.Document
	if err != nil || json.Unmarshal(b, &doc) != nil || doc.Client == nil || doc.Client.Sent == 0 {
		t.Fatalf("the saved result %s: %v\n%s", m[1], err, b)
	}
}

// TestPrivRRLoadNotKept: a rate the machine cannot send ends with the duration and the reply timeout, not
// after the sender caught up, and the summary says plainly that the load was not kept.
func TestPrivRRLoadNotKept(t *testing.T) {
	_, client, server := rrBed(t, testbed.Topology{})
	srv := rrStartServer(t, server)
	defer srv.signal(t, syscall.SIGINT)
	out, errOut, code := cliRun(t, append(client, "--rate", "100M", "--duration", "200ms", "--warmup", "0",
		"--interval", "0", "--json")...)
	var doc rr.Document
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Client == nil {
		t.Fatalf("status %d, no result: %v\n%s%s", code, err, out, errOut)
	}
	r := doc.Client
	if !r.LoadNotKept || r.Behind == 0 || r.LastSend >= 200e6 || r.SendRate >= r.TargetRate {
		t.Fatalf("load not kept %v, behind %d, last send %v, sent %.0f/s of %.0f/s; want the shortfall said and "+
			"no request sent after the duration", r.LoadNotKept, r.Behind, r.LastSend, r.SendRate, r.TargetRate)
	}
}

// TestPrivRRDeviceElsewhere: a device that is not in the namespace searched is an error naming that namespace
// and the --netns that finds it. (Other tests may hold named testbeds with the same link names at the same time:
// the sentence then lists every namespace that has one, which still names the right one.)
func TestPrivRRDeviceElsewhere(t *testing.T) {
	testenv.RequirePriv(t)
	bed := testbedtest.New(t, testbed.Topology{Lifetime: testbed.Owned, StateDir: t.TempDir()})
	nameA, nameB := filepath.Base(bed.A.NetNSPath()), filepath.Base(bed.B.NetNSPath())
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"rr", "client", "--dev", bed.B.Link, "--netns", nameA, "--peer", "198.18.0.2"},
			[]string{"does not exist in network namespace /run/netns/" + nameA, nameB, "--netns"}},
		{[]string{"rr", "server", "--dev", bed.B.Link}, []string{"does not exist in this process's network " +
			"namespace", nameB, "--netns"}},
		{[]string{"show", "--dev", bed.A.Link}, []string{nameA, "--netns"}},
		{[]string{"mode", "plan", "busy-poll", "--dev", bed.A.Link, "--netns", nameB}, []string{nameA, "--netns"}},
		{[]string{"rr", "client", "--dev", "nosuchdev0", "--peer", "198.18.0.2"},
			[]string{"does not exist in this process's network namespace", "with --netns NAME"}},
	} {
		out, errOut, code := cliRun(t, c.args...)
		for _, w := range c.want {
			if code != 1 || !strings.Contains(errOut, w) {
				t.Errorf("napilab %s: status %d; want 1 and %q:\n%s%s", strings.Join(c.args, " "), code, w, out, errOut)
			}
		}
	}
}

// TestPrivQueueOutsideDevice: a queue the device does not have is an error naming the device's queues, before
// anything is attached, in rr as in mode.
func TestPrivQueueOutsideDevice(t *testing.T) {
	bed, client, server := rrBed(t, testbed.Topology{NAPI: true})
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(client, "--queue", "3"), "--queue 3 does not exist on veth-a, which has rx queue 0 only"},
		{append(server, "--queue", "1"), "--queue 1 does not exist on veth-b, which has rx queue 0 only"},
		{[]string{"mode", "plan", "interrupts", "--dev", bed.B.Link, "--netns", bed.B.NetNSPath(), "--queue", "2"},
			"veth-b has no rx queue 2 (its rx queues: 0)"},
	} {
		out, errOut, code := cliRun(t, c.args...)
		if code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("napilab %s: status %d; want 1 and %q:\n%s%s", strings.Join(c.args, " "), code, c.want, out, errOut)
		}
	}
	if xdpAttached(t, bed.A) || xdpAttached(t, bed.B) {
		t.Fatal("a refused run left its XDP program attached")
	}
}

// TestPrivRRPacedWindow: --outstanding with --rate is a paced window end to end: the document keeps both, the
// sender runs in the receive loop, every request is answered once, and the report names the loop.
func TestPrivRRPacedWindow(t *testing.T) {
	_, client, server := rrBed(t, testbed.Topology{})
	srv := rrStartServer(t, server)
	defer srv.signal(t, syscall.SIGINT)
	window := append(client, "--rate", "5k", "--outstanding", "1", "--count", "500", "--warmup", "0",
		"--interval", "0")
	out, errOut, code := cliRun(t, append(window, "--json")...)
	var doc rr.Document
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Client == nil || doc.Workload == nil {
		t.Fatalf("status %d, no result: %v\n%s%s", code, err, out, errOut)
	}
	w, r := doc.Workload, doc.Client
	if code != 0 || !w.Windowed() || w.Outstanding != 1 || w.Period != 200*time.Microsecond ||
		r.Placement.Sender != rr.SenderInline || r.Sent != 500 || r.Answered != 500 || r.Lost != 0 ||
		r.Duplicates != 0 {
		t.Fatalf("status %d; workload %+v; sender %s, sent %d answered %d lost %d duplicates %d; want a window of "+
			"one at 200µs, inline, every request answered once", code, *w, r.Placement.Sender, r.Sent, r.Answered,
			r.Lost, r.Duplicates)
	}
	out, errOut, code = cliRun(t, window...)
	if code != 0 || !strings.Contains(out, "paced window at 5000 req/s, at most 1 in flight") {
		t.Fatalf("status %d; the report does not name the paced window:\n%s%s", code, out, errOut)
	}
}
