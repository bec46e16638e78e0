package testbed

import (
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAdoptedDevicesRejects(t *testing.T) {
	both := [2]string{"eth0", "eth1"}
	for _, tc := range []struct {
		name string
		topo Topology
		want string // part of the one-sentence error that says how to fix it
	}{
		{"one missing", Topology{Devices: [2]string{"eth0", ""}}, "name two existing devices"},
		{"same twice", Topology{Devices: [2]string{"eth0", "eth0"}}, "name two different devices"},
		{"name too long", Topology{Devices: [2]string{"eth0", strings.Repeat("e", 16)}}, "not a network interface name"},
		{"name with slash", Topology{Devices: [2]string{"eth0", "a/b"}}, "not a network interface name"},
		{"bridge", Topology{Devices: both, Bridge: true}, "drop the bridge"},
		{"napi", Topology{Devices: both, NAPI: true}, "keep their own features"},
		{"queues", Topology{Devices: both, Queues: 4}, "drop the queue count 4"},
		{"named", Topology{Devices: both, Lifetime: Owned}, "only an Ephemeral one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.topo.Resolve()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Resolve() error = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if topo, err := (Topology{Devices: both}).Resolve(); err != nil || !topo.Adopted() {
		t.Fatalf("Resolve(eth0, eth1) = %+v, %v; want an adopting topology", topo, err)
	}
	if (Topology{}).Adopted() {
		t.Fatal("a topology without devices says it adopts some")
	}
}

func TestDiagramAdopted(t *testing.T) {
	topo, err := Topology{Name: "lab", Devices: [2]string{"eth0", "eth1"}}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	a4, b4 := hostAddrs(topo.IPv4)
	a6, b6 := hostAddrs(topo.IPv6)
	tb := &Testbed{Name: "lab", Topology: topo,
		A: &Host{Namespace: "lab-a", Link: "eth0", Ifindex: 2, MAC: mac("52:54:00:6e:6c:01"), IPv4: a4, IPv6: a6},
		B: &Host{Namespace: "lab-b", Link: "eth1", Ifindex: 3, MAC: mac("52:54:00:6e:6c:02"), IPv4: b4, IPv6: b6},
	}
	want := `testbed lab (ephemeral): adopted devices eth0 and eth1 with their own queues and NAPIs, MTU 1500

+- netns lab-a --------+                  +- netns lab-b --------+
| eth0  ifindex 2      |------ wire ------| eth1  ifindex 3      |
| 52:54:00:6e:6c:01    |                  | 52:54:00:6e:6c:02    |
| 198.18.0.1/24        |                  | 198.18.0.2/24        |
| fd6e:6170:696c::1/64 |                  | fd6e:6170:696c::2/64 |
+----------------------+                  +----------------------+
`
	if diff := cmp.Diff(want, tb.Diagram()); diff != "" {
		t.Fatalf("Diagram() mismatch (-want +got):\n%s", diff)
	}
}
