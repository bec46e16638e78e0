package agent

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/napi"
	"github.com/napilab/napilab/internal/napi/napitest"
	"github.com/napilab/napilab/internal/testbed"
	"github.com/napilab/napilab/internal/testbed/testbedtest"
	"github.com/napilab/napilab/internal/testenv"
)

// realSession serves the real machine in this process over a pipe, for the device dev of the namespace ns.
func realSession(t *testing.T, bed *testbed.Testbed) (*Conn, func() error) {
	t.Helper()
	ctrl, ag := net.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- Serve(t.Context(), ag, ag, NewMachine(MachineOptions{}), testMagic)
		ag.Close()
	}()
	c, err := Dial(t.Context(), ctrl, DialOptions{Version: testVersion, Where: "in-process agent"})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var endErr error
	end := func() error {
		once.Do(func() {
			ctrl.Close()
			select {
			case endErr = <-served:
			case <-time.After(generous):
				t.Error("the agent did not end")
			}
		})
		return endErr
	}
	t.Cleanup(func() { end() })
	return c, end
}

func helloBed(t *testing.T, c *Conn, bed *testbed.Testbed) (HelloResult, error) {
	return c.Hello(t.Context(), HelloArgs{Version: testVersion, Role: RoleServer, Controller: "test-" + t.Name(),
		Dev: bed.B.Link, NetNS: bed.B.NetNSPath()})
}

// TestPrivHelloRestoresStale: a mode left applied by a holder that died (its journal in the device's directory,
// its lease naming a process that is gone) is restored by the next hello, before anything else, and reported.
func TestPrivHelloRestoresStale(t *testing.T) {
	testenv.CheckLeaks(t)
	testenv.Exclusive(t)
	bed := testbedtest.New(t, testbed.Topology{NAPI: true})
	before := napitest.DeviceState(t, bed.B.NetNSPath(), bed.B.Link)

	sys, err := napi.Open(bed.B.NetNSPath())
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	m, err := napi.Preset("threaded", bed.B.Link)
	if err != nil {
		t.Fatal(err)
	}
	m.NetNS = bed.B.NetNSPath()
	target, err := sys.Resolve(m)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := napi.Build(m, target)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := sys.DeviceDirOf(bed.B.Link)
	if err != nil {
		t.Fatal(err)
	}
	// The holder that died: a process that has exited, named in the lease of a journal it wrote.
	dead := exec.Command("/bin/true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	journal := napi.NewJournalPath(dir)
	if _, err := sys.Apply(t.Context(), plan, napi.ApplyOptions{Journal: journal}); err != nil {
		t.Fatal(err)
	}
	lease := `{"format":"napilab mode lease v1","deadline":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano) +
		`","holder":{"pid":` + strconv.Itoa(dead.Process.Pid) + `,"start":1}}`
	if err := os.WriteFile(napi.LeasePath(journal), []byte(lease), 0o600); err != nil {
		t.Fatal(err)
	}
	if napitest.DeviceState(t, bed.B.NetNSPath(), bed.B.Link) == before {
		t.Fatal("the stale mode changed nothing")
	}

	c, _ := realSession(t, bed)
	h, err := helloBed(t, c, bed)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Stale) != 1 || h.Stale[0].Preset != "threaded" || h.Stale[0].Err != "" {
		t.Fatalf("hello reported stale journals %+v", h.Stale)
	}
	if after := napitest.DeviceState(t, bed.B.NetNSPath(), bed.B.Link); after != before {
		t.Fatalf("hello did not restore the stale mode:\nbefore %s\nafter  %s", before, after)
	}
	if _, err := os.Stat(journal); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stale journal is still there: %v", err)
	}
	if h.End.Device.Features == nil || len(h.End.Device.NAPIs) == 0 || h.End.Device.Ifindex == 0 {
		t.Fatalf("the end's header lacks the device: %+v", h.End.Device)
	}
}

// TestPrivOneControllerPerDevice: a second session on a device another session holds is refused, naming the
// holder; once the first ends, the device is free again.
func TestPrivOneControllerPerDevice(t *testing.T) {
	testenv.CheckLeaks(t)
	bed := testbedtest.New(t, testbed.Topology{NAPI: true})
	first, endFirst := realSession(t, bed)
	if _, err := helloBed(t, first, bed); err != nil {
		t.Fatal(err)
	}
	second, _ := realSession(t, bed)
	_, err := helloBed(t, second, bed)
	if !errors.Is(err, napi.ErrHeld) || !strings.Contains(err.Error(), "driven from test-"+t.Name()) {
		t.Fatalf("second hello = %v; want ErrHeld naming the first controller", err)
	}
	if err := endFirst(); err != nil {
		t.Fatal(err)
	}
	third, _ := realSession(t, bed)
	if _, err := helloBed(t, third, bed); err != nil {
		t.Fatalf("hello after the first session ended: %v", err)
	}
}
