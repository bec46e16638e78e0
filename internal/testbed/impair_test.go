package testbed

import (
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNetemValidate(t *testing.T) {
	for _, n := range []Netem{{}, {Loss: 5}, {Delay: 200 * time.Microsecond, Reorder: 25, Loss: 5}, {Delay: time.Millisecond, Jitter: 100 * time.Microsecond, Duplicate: 1, Limit: 10}} {
		if err := n.Validate(); err != nil {
			t.Errorf("%v: %v", n, err)
		}
	}
	for _, tc := range []struct {
		n    Netem
		want string
	}{
		{Netem{Loss: 101}, "netem loss of 101% is not a percentage"},
		{Netem{Loss: math.NaN()}, "netem loss of NaN% is not a percentage"},
		{Netem{Duplicate: -1}, "netem duplicate of -1%"},
		{Netem{Reorder: 10}, "set a delay longer than the gap between frames"},
		{Netem{Jitter: time.Microsecond}, "netem jitter varies the delay: set a delay too"},
		{Netem{Delay: -time.Second}, "netem delay of -1s is out of range"},
		{Netem{Delay: time.Hour}, "netem delay of 1h0m0s is out of range: use 0 to 1m0s"},
	} {
		if err := tc.n.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want %q", tc.n, err, tc.want)
		}
	}
}

func TestNetemString(t *testing.T) {
	for _, tc := range []struct {
		n    Netem
		want string
	}{
		{Netem{}, "none"},
		{Netem{Loss: 5}, "loss 5%"},
		{Netem{Delay: 200 * time.Microsecond, Jitter: 10 * time.Microsecond, Reorder: 25, Loss: 0.5, Duplicate: 1, Limit: 50},
			"delay 200µs 10µs reorder 25% loss 0.5% duplicate 1% limit 50"},
	} {
		if got := tc.n.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestResolveBridge(t *testing.T) {
	if _, err := (Topology{Bridge: true}).Resolve(); err != nil {
		t.Fatal(err)
	}
	for _, l := range []Lifetime{Owned, Persistent} {
		_, err := Topology{Bridge: true, Lifetime: l}.Resolve()
		if err == nil || !strings.Contains(err.Error(), "use an Ephemeral one") {
			t.Errorf("%s bridged testbed: %v", l, err)
		}
	}
}

func TestDiagramBridged(t *testing.T) {
	topo, err := Topology{Name: "bed", Bridge: true}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	a4, b4 := hostAddrs(topo.IPv4)
	a6, b6 := hostAddrs(topo.IPv6)
	tb := &Testbed{Name: "bed", Topology: topo,
		A:   &Host{Namespace: "bed-a", Link: LinkA, Ifindex: 2, MAC: mac("02:00:00:00:00:0a"), IPv4: a4, IPv6: a6},
		M:   &Host{Namespace: "bed-m", Link: BridgeName, Ifindex: 2},
		B:   &Host{Namespace: "bed-b", Link: LinkB, Ifindex: 3, MAC: mac("02:00:00:00:00:0b"), IPv4: b4, IPv6: b6},
		toB: Netem{Delay: 200 * time.Microsecond, Reorder: 25, Loss: 5},
	}
	want := `testbed bed (ephemeral): 1 rx and 1 tx queue per end, MTU 1500, veth NAPI only while XDP is attached

+- netns bed-a --------+                  +- netns bed-m -------------------------------+                  +- netns bed-b --------+
| veth-a  ifindex 2    |------ veth ------| port-a = bridge = port-b                    |------ veth ------| veth-b  ifindex 3    |
| 02:00:00:00:00:0a    |                  | bridge  ifindex 2                           |                  | 02:00:00:00:00:0b    |
| 198.18.0.1/24        |                  | netem to a: none                            |                  | 198.18.0.2/24        |
| fd6e:6170:696c::1/64 |                  | netem to b: delay 200µs reorder 25% loss 5% |                  | fd6e:6170:696c::2/64 |
+----------------------+                  +---------------------------------------------+                  +----------------------+
`
	if diff := cmp.Diff(want, tb.Diagram()); diff != "" {
		t.Fatalf("Diagram() mismatch (-want +got):\n%s", diff)
	}
}
